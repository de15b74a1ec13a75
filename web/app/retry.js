// How long the server asked us to wait after a rate limit or a busy
// answer: a `TincanError` from the HTTP API carries it as `retryAfterMs`
// (the body's field, or its `Retry-After` header), and so does the
// signaling socket's `rate-limited` error. The server's message ("try again
// in 28 s") is read only when neither says it (an older server).

/**
 * The wait in ms the server asked for with `error`; null when the error is
 * not a "wait" or says nothing of how long.
 * @param {unknown} error a `TincanError`, or an `error` event's detail
 */
export function retryWaitMs(error) {
  const e = /** @type {{code?: string, message?: string, retryAfterMs?: unknown}} */ (error ?? {});
  if (e.code !== 'rate-limited' && e.code !== 'busy') return null;
  if (typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs)) return e.retryAfterMs;
  const said = /try again in (\d+) s/.exec(e.message ?? '');
  return said ? Number(said[1]) * 1000 : null;
}
