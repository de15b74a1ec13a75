// The signaling WebSocket: JSON frames per docs/protocol.md, a keepalive `ping`
// well under API Gateway's 10-minute idle timeout, and reconnection whenever
// the socket drops (API Gateway also cuts every connection after 2 hours):
// the first retry after 100-250 ms, so a call resumes before anyone notices,
// then exponential backoff with jitter. A socket counts as healthy again
// only after it stayed open for a few seconds, so a server that accepts and
// closes at once is not hammered; close codes 1008 (policy) and 1013 (try
// again later) wait at least a second.

/**
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ChannelState
 * @typedef {{reconnect?: boolean, failedBeforeOpen?: boolean}} UrlContext
 */

/** A socket open this long resets the backoff. */
const HEALTHY_AFTER_MS = 5_000;
/** Close codes from a gateway that asks us to slow down. */
const SLOW_DOWN_CODES = new Set([1008, 1013]);

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
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.healthyTimer = undefined;
  }

  /** Connects, and keeps reconnecting until `stop()`. */
  start() {
    if (this.state !== 'idle' && this.state !== 'closed') return;
    this.attempt = 0;
    this.everOpened = false;
    this.lastFailedBeforeOpen = false;
    this.#connect();
  }

  /**
   * Closes the socket for good (a user's leave or sign-out).
   * @param {{lingerMs?: number}} [options] keep an open socket this long
   *   before closing it (unread), so that a `leave` sent just before is
   *   handled first. Either ends the participant at once: the server counts
   *   a close with 1000 as a leave (only drops keep the resume grace).
   */
  stop(options = {}) {
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (ws && ws.readyState === 1 && (options.lingerMs ?? 0) > 0) {
      this.ws = null;
      this.#teardown(1000, 'client leaving');
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      setTimeout(() => ws.close(1000, 'client leaving'), options.lingerMs);
    } else {
      this.#teardown(1000, 'client leaving');
    }
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
      this.healthyTimer = setTimeout(() => {
        if (this.ws === ws) this.attempt = 0;
      }, HEALTHY_AFTER_MS);
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
    let delayMs;
    if (this.attempt === 0) {
      delayMs = 100 + Math.random() * 150;
    } else {
      const base = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** (this.attempt - 1));
      // Jitter over the upper half keeps a crowd from reconnecting in step.
      delayMs = base / 2 + Math.random() * (base / 2);
    }
    if (SLOW_DOWN_CODES.has(code)) delayMs = Math.max(delayMs, 1000 + Math.random() * 1000);
    delayMs = Math.round(delayMs);
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
    clearTimeout(this.healthyTimer);
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
