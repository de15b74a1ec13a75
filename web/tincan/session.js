// Accounts against the Tincan HTTP API (the README's "HTTP API"):
// register, login, refresh, logout, and authenticated JSON requests that
// refresh an expired access token once and retry.

/**
 * @typedef {{id: string, username: string, displayName: string}} User
 * @typedef {{accessToken: string, refreshToken: string, expiresAt: number, user: User}} StoredSession
 */

/** An error with the stable kebab-case `code` the server (or this library) gave. */
export class TincanError extends Error {
  /**
   * @param {import('./events.js').ErrorCode} code  e.g. `invalid-credentials`, `room-full`, `session-expired`, `network`
   * @param {string} message
   * @param {{status?: number, cause?: unknown, retryAfterMs?: number | null}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'TincanError';
    this.code = code;
    this.status = extra.status ?? 0;
    /**
     * How long the server asked us to wait before trying again, in ms
     * (`rate-limited`, `busy`, `store-unavailable`); null when it said nothing.
     * @type {number | null}
     */
    this.retryAfterMs = extra.retryAfterMs ?? null;
  }
}

/**
 * Milliseconds from a `Retry-After` header (seconds, or an HTTP date); null
 * if it is not one.
 * @param {string | null} value
 * @param {number} [now]
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Refresh this long before the access token's expiry, in milliseconds. */
const EXPIRY_MARGIN_MS = 30_000;

/**
 * Reads `exp` (seconds) from a JWT without checking it; null if it is not one.
 * @param {string} token
 * @returns {number | null} expiry in ms since the epoch
 */
export function jwtExpiry(token) {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * Events: `change` (signed in, refreshed or signed out; `detail.user` or null),
 * `expired` (the refresh token was refused: the user must sign in again).
 */
export class AuthSession extends EventTarget {
  /**
   * @param {{baseUrl?: string, storage?: Storage | null, storageKey?: string, fetch?: typeof fetch}} [options]
   *   `storage` keeps the session across page loads (default `localStorage`; null keeps it in memory only).
   */
  constructor(options = {}) {
    super();
    this.baseUrl = (options.baseUrl ?? '').replace(/\/$/, '');
    this.storage = options.storage === undefined ? globalThis.localStorage ?? null : options.storage;
    this.storageKey = options.storageKey ?? 'tincan.session';
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    /** @type {StoredSession | null} */
    this.current = this.#load();
    /** @type {Promise<StoredSession> | null} */
    this.refreshing = null;
    // Follow sign-in, refresh and sign-out in other tabs.
    globalThis.addEventListener?.('storage', (event) => {
      if (event.key !== this.storageKey || event.storageArea !== this.storage) return;
      const before = this.current?.user?.id ?? null;
      this.current = this.#load();
      const after = this.current?.user?.id ?? null;
      if (before !== after) this.dispatchEvent(new CustomEvent('change', { detail: { user: this.current?.user ?? null } }));
    });
  }

  /** @returns {User | null} */
  get user() {
    return this.current?.user ?? null;
  }

  /**
   * Creates an account (does not sign in).
   * @param {{username: string, password: string, displayName: string}} account
   * @returns {Promise<User>}
   */
  async register(account) {
    const reply = await this.#call('POST', '/auth/register', account);
    return reply.user;
  }

  /**
   * @param {string} username
   * @param {string} password
   * @returns {Promise<User>}
   */
  async login(username, password) {
    const reply = await this.#call('POST', '/auth/login', { username, password });
    this.#store(reply);
    return reply.user;
  }

  /** Revokes the refresh token on the server (best effort) and forgets the session. */
  async logout() {
    const session = this.current;
    this.#clear();
    if (session) {
      await this.#call('POST', '/auth/logout', { refreshToken: session.refreshToken }).catch(() => {});
    }
  }

  /**
   * Trades the refresh token for a new pair. Concurrent callers share one
   * request: the server rotates refresh tokens and treats reuse as theft.
   * @returns {Promise<StoredSession>}
   */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.#doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /**
   * A usable access token, refreshed first if it expires within 30 s.
   * @param {{force?: boolean}} [options] `force` refreshes even if it looks valid.
   * @returns {Promise<string>}
   */
  async accessToken(options = {}) {
    if (!this.current) throw new TincanError('unauthorized', 'Not signed in.');
    if (options.force || this.current.expiresAt - Date.now() < EXPIRY_MARGIN_MS) {
      await this.refresh();
    }
    return /** @type {StoredSession} */ (this.current).accessToken;
  }

  /**
   * Changes the password (the server signs out the user's other sessions).
   * Rejects with `invalid-credentials` (wrong current password) or
   * `invalid-request` (a new password the server refuses).
   * @param {string} currentPassword
   * @param {string} newPassword
   */
  async changePassword(currentPassword, newPassword) {
    await this.request('POST', '/me/password', { currentPassword, newPassword });
  }

  /**
   * Deletes the account (with its preferences and call history) and forgets
   * the session. Rejects with `invalid-credentials` on a wrong password.
   * @param {string} password
   */
  async deleteAccount(password) {
    await this.request('DELETE', '/me', { password });
    this.#clear();
  }

  /**
   * An authenticated JSON request; a 401 about the token refreshes it once
   * and retries (a 401 about a password the user typed does not).
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async request(method, path, body) {
    let token = await this.accessToken();
    try {
      return await this.#call(method, path, body, token);
    } catch (error) {
      if (!(error instanceof TincanError) || error.status !== 401 || error.code === 'invalid-credentials') throw error;
    }
    token = await this.accessToken({ force: true });
    return this.#call(method, path, body, token);
  }

  /**
   * Refresh under a lock shared by every tab of this origin: tokens rotate,
   * and a second tab presenting the same refresh token would look like
   * theft to the server and revoke the session.
   */
  async #doRefresh() {
    const locks = globalThis.navigator?.locks;
    if (this.storage && locks) {
      return locks.request(`${this.storageKey}.refresh`, () => this.#refreshNow());
    }
    return this.#refreshNow();
  }

  async #refreshNow() {
    // Another tab may have refreshed already: adopt its pair.
    const stored = this.#load();
    if (
      stored &&
      this.current &&
      stored.refreshToken !== this.current.refreshToken &&
      stored.expiresAt - Date.now() > EXPIRY_MARGIN_MS
    ) {
      this.current = stored;
      return stored;
    }
    const session = this.current;
    if (!session) throw new TincanError('unauthorized', 'Not signed in.');
    let reply;
    try {
      reply = await this.#call('POST', '/auth/refresh', { refreshToken: session.refreshToken });
    } catch (error) {
      if (error instanceof TincanError && error.status >= 400 && error.status < 500) {
        this.#clear();
        this.dispatchEvent(new CustomEvent('expired', { detail: { code: error.code } }));
        throw new TincanError('session-expired', 'Your session has expired. Please sign in again.', {
          status: error.status,
          cause: error,
        });
      }
      throw error;
    }
    // Some servers omit `user` on refresh; keep the one we know.
    return this.#store({ ...reply, user: reply.user ?? session.user });
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {string} [token]
   */
  async #call(method, path, body, token) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (error) {
      throw new TincanError('network', 'Cannot reach the Tincan server.', { cause: error });
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const err = json?.error;
      // The body's retryAfterMs, else the header (same wait, in seconds).
      const retryAfterMs = Number.isFinite(err?.retryAfterMs)
        ? Number(err.retryAfterMs)
        : parseRetryAfter(response.headers.get('retry-after'));
      throw new TincanError(
        /** @type {import('./events.js').ErrorCode} */ (err?.code ?? `http-${response.status}`),
        err?.message ?? `The server answered ${response.status}.`,
        { status: response.status, retryAfterMs },
      );
    }
    return json;
  }

  /** @param {{accessToken: string, refreshToken: string, expiresIn?: number, user: User}} reply */
  #store(reply) {
    const fromTtl = Date.now() + (reply.expiresIn ?? 900) * 1000;
    const fromJwt = jwtExpiry(reply.accessToken);
    /** @type {StoredSession} */
    const session = {
      accessToken: reply.accessToken,
      refreshToken: reply.refreshToken,
      expiresAt: fromJwt === null ? fromTtl : Math.min(fromTtl, fromJwt),
      user: reply.user,
    };
    this.current = session;
    try {
      this.storage?.setItem(this.storageKey, JSON.stringify(session));
    } catch {
      // Private mode or quota: keep it in memory.
    }
    this.dispatchEvent(new CustomEvent('change', { detail: { user: session.user } }));
    return session;
  }

  #clear() {
    this.current = null;
    try {
      this.storage?.removeItem(this.storageKey);
    } catch {
      // ignore
    }
    this.dispatchEvent(new CustomEvent('change', { detail: { user: null } }));
  }

  /** @returns {StoredSession | null} */
  #load() {
    try {
      const raw = this.storage?.getItem(this.storageKey);
      const session = raw ? JSON.parse(raw) : null;
      if (!session?.accessToken || !session.refreshToken || !session.user) return null;
      // Trust the token's own expiry over what was stored.
      const exp = jwtExpiry(session.accessToken);
      if (exp !== null) session.expiresAt = Math.min(session.expiresAt ?? exp, exp);
      return session;
    } catch {
      return null;
    }
  }
}
