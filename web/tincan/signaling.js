// The signaling WebSocket: JSON frames per DESIGN.md, a keepalive `ping`
// well under API Gateway's 10-minute idle timeout, and reconnection with
// exponential backoff and jitter whenever the socket drops (API Gateway also
// cuts every connection after 2 hours).

/**
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ChannelState
 * @typedef {{reconnect?: boolean, failedBeforeOpen?: boolean}} UrlContext
 */

/**
 * Events: `state` (`detail.state`), `open` (`detail.reconnect`: true after a
 * drop), `message` (`detail` is the parsed server message), `drop` (the
 * socket closed unexpectedly; `detail {code, reason, attempt, delayMs}`),
 * `fatal` (`detail.error`: no more retries, e.g. the session expired).
 */
export class SignalingChannel extends EventTarget {
  /**
   * @param {{
   *   url: (ctx: UrlContext) => Promise<string>,
   *   pingIntervalMs?: number,
   *   pongTimeoutMs?: number,
   *   connectTimeoutMs?: number,
   *   backoffInitialMs?: number,
   *   backoffMaxMs?: number,
   *   WebSocket?: typeof WebSocket,
   * }} options
   */
  constructor(options) {
    super();
    this.urlFor = options.url;
    this.pingIntervalMs = options.pingIntervalMs ?? 60_000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 15_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.backoffInitialMs = options.backoffInitialMs ?? 500;
    this.backoffMaxMs = options.backoffMaxMs ?? 10_000;
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    /** @type {ChannelState} */
    this.state = 'idle';
    /** @type {WebSocket | null} */
    this.ws = null;
    this.attempt = 0;
    this.everOpened = false;
    this.lastFailedBeforeOpen = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.pingTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.pongTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.connectTimer = undefined;
  }

  /** Connects, and keeps reconnecting until `stop()`. */
  start() {
    if (this.state !== 'idle' && this.state !== 'closed') return;
    this.attempt = 0;
    this.everOpened = false;
    this.#connect();
  }

  /** Closes the socket for good (a user's leave or sign-out). */
  stop() {
    clearTimeout(this.retryTimer);
    this.#teardown(1000, 'client leaving');
    this.#setState('closed');
  }

  /**
   * Sends one client message; false if the socket is not open.
   * @param {{action: string} & Record<string, unknown>} message
   */
  send(message) {
    if (this.ws?.readyState !== 1) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Drops the current socket and reconnects now (e.g. no pong came back). */
  reconnectNow() {
    this.#onDrop(4000, 'client-initiated reconnect');
  }

  async #connect() {
    const reconnect = this.everOpened || this.attempt > 0;
    this.#setState(reconnect ? 'reconnecting' : 'connecting');
    let url;
    try {
      url = await this.urlFor({ reconnect, failedBeforeOpen: this.lastFailedBeforeOpen });
    } catch (error) {
      if (this.state === 'closed') return;
      if (/** @type {any} */ (error)?.code === 'network') {
        this.#scheduleRetry(0, 'network');
        return;
      }
      this.#setState('closed');
      this.dispatchEvent(new CustomEvent('fatal', { detail: { error } }));
      return;
    }
    if (this.state === 'closed') return;
    const ws = new this.WebSocketImpl(url);
    this.ws = ws;
    let opened = false;
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && !opened) this.#onDrop(4001, 'connect timeout');
    }, this.connectTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      clearTimeout(this.connectTimer);
      this.attempt = 0;
      this.lastFailedBeforeOpen = false;
      const wasReconnect = this.everOpened;
      this.everOpened = true;
      this.#setState('open');
      this.#startKeepalive();
      this.dispatchEvent(new CustomEvent('open', { detail: { reconnect: wasReconnect } }));
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message?.type === 'pong') {
        clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
      }
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.lastFailedBeforeOpen = !opened;
      this.#onDrop(event.code, event.reason);
    };
    // `error` is always followed by `close`; nothing to do here.
    ws.onerror = () => {};
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #onDrop(code, reason) {
    if (this.state === 'closed') return;
    this.#teardown(4000, reason);
    this.#scheduleRetry(code, reason);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #scheduleRetry(code, reason) {
    const base = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** this.attempt);
    // Full jitter on the upper half keeps a crowd from reconnecting in step.
    const delayMs = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    this.#setState('reconnecting');
    this.dispatchEvent(new CustomEvent('drop', { detail: { code, reason, attempt: this.attempt, delayMs } }));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#connect(), delayMs);
  }

  #startKeepalive() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.send({ action: 'ping' })) return;
      if (this.pongTimer === undefined) {
        this.pongTimer = setTimeout(() => {
          this.pongTimer = undefined;
          this.reconnectNow();
        }, this.pongTimeoutMs);
      }
    }, this.pingIntervalMs);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #teardown(code, reason) {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.connectTimer);
    this.pongTimer = undefined;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason.slice(0, 100));
      } catch {
        ws.close();
      }
    }
  }

  /** @param {ChannelState} state */
  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }
}
