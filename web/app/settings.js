// The page's runtime settings: where the HTTP API and the WebSocket are.
// Read once at start-up from /settings.json, which every host of the page
// serves: tincan-local derives it from its own address, a deployed stack
// writes it into the app's bucket from its outputs. Nobody edits code to
// deploy. A value that is absent (or a file that is missing) means the
// page's own origin: the API at its root, the socket at /ws.

/** Where the settings are, on every host of the page. */
export const SETTINGS_PATH = '/settings.json';

/**
 * @typedef {object} Settings
 * @property {string} httpApiUrl base URL of the HTTP API (no trailing slash)
 * @property {string} webSocketUrl the signaling WebSocket (ws: or wss:)
 */

/**
 * The URL `value` names, resolved against the page, if it is one of
 * `protocols`; else null.
 * @param {unknown} value
 * @param {string[]} protocols
 * @param {string} base
 */
function urlOrNull(value, protocols, base) {
  if (typeof value !== 'string' || value.trim() === '') return null;
  try {
    const url = new URL(value.trim(), base);
    return protocols.includes(url.protocol) ? url : null;
  } catch {
    return null;
  }
}

/**
 * Settings from the parsed file `raw` (anything), for a page at `pageUrl`.
 * Unusable values fall back to the page's origin, with a warning.
 * @param {unknown} raw
 * @param {string} pageUrl
 * @returns {Settings}
 */
export function settingsFrom(raw, pageUrl) {
  const page = new URL(pageUrl);
  const data = raw && typeof raw === 'object' ? /** @type {Record<string, unknown>} */ (raw) : {};
  const api = urlOrNull(data.httpApiUrl, ['https:', 'http:'], page.href);
  const socket = urlOrNull(data.webSocketUrl, ['wss:', 'ws:', 'https:', 'http:'], page.href);
  for (const [key, parsed] of /** @type {const} */ ([['httpApiUrl', api], ['webSocketUrl', socket]])) {
    if (data[key] !== undefined && data[key] !== '' && !parsed) {
      console.warn(`${SETTINGS_PATH}: ${key} is not a usable URL; using this page's origin`);
    }
  }
  const sameOriginSocket = new URL('/ws', page.origin);
  sameOriginSocket.protocol = page.protocol === 'https:' ? 'wss:' : 'ws:';
  const socketUrl = socket ?? sameOriginSocket;
  if (socketUrl.protocol === 'https:') socketUrl.protocol = 'wss:';
  else if (socketUrl.protocol === 'http:') socketUrl.protocol = 'ws:';
  return {
    httpApiUrl: (api ? api.href : page.origin).replace(/\/+$/, ''),
    webSocketUrl: socketUrl.href,
  };
}

/**
 * Fetches and reads the settings file; a missing or unreadable file means
 * the defaults (the page's origin).
 * @param {{fetch?: typeof fetch, pageUrl?: string}} [options]
 * @returns {Promise<Settings>}
 */
export async function loadSettings(options = {}) {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const pageUrl = options.pageUrl ?? globalThis.location.href;
  /** @type {unknown} */
  let raw = null;
  try {
    // Never a stale copy: a redeploy may have moved the API.
    const response = await fetchImpl(new URL(SETTINGS_PATH, pageUrl).href, { cache: 'no-store' });
    if (response.ok) raw = await response.json();
    else if (response.status !== 404) console.warn(`${SETTINGS_PATH}: HTTP ${response.status}; using this page's origin`);
  } catch (error) {
    console.warn(`${SETTINGS_PATH} unreadable (${error}); using this page's origin`);
  }
  return settingsFrom(raw, pageUrl);
}
