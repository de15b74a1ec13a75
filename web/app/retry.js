// How long the server asked us to wait. The signaling socket says it in
// `retryAfterMs` on a `rate-limited` error; the HTTP API in a `Retry-After`
// header (seconds, or an HTTP date) on 429 and 503. The SDK's `TincanError`
// does not carry the header yet, so the page hands the session a fetch that
// notes it (`RetryAfterLog`), and reads the server's message ("try again in
// 28 s") where the header is out of reach (another origin that does not
// expose it).

/**
 * Milliseconds from a `Retry-After` value; null if it is not one.
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

/** Remembers the `Retry-After` of the last 429/503 answer seen through `fetch`. */
export class RetryAfterLog {
  /** @param {typeof fetch} [inner] */
  constructor(inner = globalThis.fetch.bind(globalThis)) {
    /** @type {{ms: number, at: number} | null} */
    this.last = null;
    /** @type {typeof fetch} */
    this.fetch = async (resource, init) => {
      const response = await inner(resource, init);
      if (response.status === 429 || response.status === 503) {
        const ms = parseRetryAfter(response.headers.get('retry-after'));
        this.last = ms === null ? null : { ms, at: Date.now() };
      }
      return response;
    };
  }

  /**
   * What is left of the wait the server asked for with `error`, in ms; null
   * when the error is not a "wait" or says nothing of how long.
   * @param {unknown} error a `TincanError` (or an `error` event's detail)
   */
  remainingMs(error) {
    const e = /** @type {{code?: string, message?: string, retryAfterMs?: unknown, status?: number}} */ (error ?? {});
    if (e.code !== 'rate-limited' && e.code !== 'busy') return null;
    if (typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs)) return e.retryAfterMs;
    // The header of the answer that made this error (just now).
    if (this.last && Date.now() - this.last.at < 5_000) return Math.max(0, this.last.ms - (Date.now() - this.last.at));
    const said = /try again in (\d+) s/.exec(e.message ?? '');
    return said ? Number(said[1]) * 1000 : null;
  }
}
