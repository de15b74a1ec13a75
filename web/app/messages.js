// What the page tells a person for each error code the server, the browser
// or the client library can produce. One place, so every path says the same.

/** @type {Record<string, string>} */
const BY_CODE = {
  'invalid-credentials': 'Wrong username or password.',
  'username-taken': 'That username is already taken. Pick another one.',
  'invalid-request': 'The server refused that input.',
  unauthorized: 'Your session has expired. Please sign in again.',
  'session-expired': 'Your session has expired. Please sign in again.',
  'room-full': 'This room is full. Try again later, or pick another room.',
  'bad-request': 'Room names are 1–64 letters, digits, “-” or “_”.',
  'not-in-room': 'That person has already left the room.',
  'too-large': 'A message was too large for the server.',
  'unknown-action': 'The server did not understand this client. Reload the page.',
  'store-unavailable': 'The service is busy right now. Try again in a moment.',
  busy: 'The server is busy right now. Try again in a moment.',
  internal: 'Something went wrong on the server. Try again.',
  network: 'Cannot reach the Tincan server. Check your connection.',
  timeout: 'The server did not answer in time. Try again.',
  'mic-denied': 'Microphone access was denied. Allow the microphone for this site in your browser settings, then join again.',
  'mic-missing': 'No microphone was found. Plug one in, then join again.',
  'mic-busy': 'Your microphone is in use by another app or could not be started.',
  'mic-unsupported': 'This browser cannot capture audio here (a secure https:// page is needed).',
  webrtc: 'The audio connection hit a problem; retrying.',
  'rate-limited': 'Too many attempts right now. Wait a moment and try again.',
  'retry-now': 'You can try again now.',
  'password-too-short': 'Use at least 8 characters.',
  'resume-failed': 'The connection could not be resumed; joining the room again.',
  'join-token-room': 'This invitation is for another room.',
  'listen-only': 'You joined to listen only, so your microphone stays off.',
  'join-token-invalid': 'This invitation link is not valid.',
  'join-token-expired': 'This invitation has expired. Ask for a new one.',
  'join-token-refused': 'The server did not accept this invitation (it may have expired). Ask for a new one.',
};

/**
 * A sentence for a person. The server's own message is added for codes
 * where it carries the detail (e.g. which field was invalid).
 * @param {string} code
 * @param {string} [serverMessage]
 */
export function messageFor(code, serverMessage) {
  const text = BY_CODE[code];
  if (!text) return serverMessage ? `${serverMessage} (${code})` : `Something went wrong (${code}).`;
  if (code === 'invalid-request' && serverMessage) return `${text} ${serverMessage}`;
  return text;
}

/**
 * The start of the rate-limit alert; the page adds the seconds left and
 * counts them down ("Too many attempts: try again in 28 s").
 */
export function retryMessage() {
  return 'Too many attempts: try again in';
}

/**
 * Maps a getUserMedia failure to one of our codes.
 * @param {unknown} error
 */
export function micErrorCode(error) {
  const name = /** @type {any} */ (error)?.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'mic-denied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'mic-missing';
  if (name === 'TypeError') return 'mic-unsupported';
  return 'mic-busy';
}
