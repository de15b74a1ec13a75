// The Tincan page: sign in, pick a room, talk. All protocol work is in
// tincan-client.js; this file wires it to the DOM.

import { TincanClient, TincanError, ROOM_ID, precallCheck } from './tincan-client.js';
import { messageFor, micErrorCode } from './app/messages.js';
import { Participants } from './app/participants.js';
import { loadSettings } from './app/settings.js';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

const DEFAULT_PREFS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, startMuted: false };
/** Checkbox preferences, as `/me/preferences` names them; each has an `#pref-NAME` checkbox. */
const PREF_KEYS = /** @type {const} */ (['echoCancellation', 'noiseSuppression', 'autoGainControl', 'startMuted']);
/** The ones that default to on. */
const ON_BY_DEFAULT = new Set(['echoCancellation', 'noiseSuppression', 'autoGainControl']);

// `?relay=1` forces audio through the TURN relay (to try the relayed path);
// `?resume=0` rejoins from scratch after a socket drop instead of resuming
// (the old behaviour, for comparison in tests/bench/socket-cut-resume.sh).
// Opus: `?dtx=1` turns DTX on, `?red=0` RED off, `?maxbitrate=KBPS` caps it.
const params = new URLSearchParams(location.search);
const forceRelay = params.get('relay') === '1';
// Where the HTTP API and the WebSocket are (/settings.json; this origin by default).
const settings = await loadSettings();
const client = new TincanClient({
  baseUrl: settings.httpApiUrl,
  wsPath: settings.webSocketUrl,
  rtcConfig: forceRelay ? { iceTransportPolicy: 'relay' } : {},
  resume: params.get('resume') !== '0',
  // The client plays remote audio itself; its elements live in the hidden sink.
  audioContainer: $('audio-sink'),
  opus: {
    dtx: params.get('dtx') === '1',
    red: params.get('red') !== '0',
    maxBitrateKbps: Number(params.get('maxbitrate')) || null,
  },
});
const participants = new Participants($('participants'), $('audio-sink'), client);
const app = {
  client,
  settings,
  participants,
  /** @type {Record<string, unknown>} */
  prefs: { ...DEFAULT_PREFS },
  /** @type {MediaStream | null} */
  mic: null,
  /** @type {import('./tincan/precall.js').PrecallReport | null} the last pre-call check */
  precall: null,
  /** @type {number | null} ms from the click on Join to the first audio packet */
  firstPacketMs: null,
  joinClickedAt: 0,
};
// For debugging from the console and for the browser tests.
Object.assign(globalThis, { tincanApp: app });

// ---- messages ------------------------------------------------------------

/** @param {string} text */
function showAlert(text) {
  $('alert-text').textContent = text;
  $('alert').hidden = false;
}
function clearAlert() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}
/** @param {unknown} error */
function showError(error) {
  if (error instanceof TincanError) showAlert(messageFor(error.code, error.message));
  else showAlert(messageFor('internal', String(/** @type {any} */ (error)?.message ?? error)));
}
/** @param {string} text */
function showBanner(text) {
  $('banner').textContent = text;
  $('banner').hidden = !text;
}
$('alert-close').addEventListener('click', clearAlert);

// ---- views ---------------------------------------------------------------

/** @param {'auth' | 'lobby' | 'call'} view */
function showView(view) {
  $('auth-view').hidden = view !== 'auth';
  $('lobby-view').hidden = view !== 'lobby';
  $('call-view').hidden = view !== 'call';
  $('settings-view').hidden = view === 'auth';
  $('history-view').hidden = view !== 'lobby';
  $('account-view').hidden = view !== 'lobby';
  const user = client.session.user;
  $('account').hidden = !user;
  $('account-name').textContent = user ? `${user.displayName} (@${user.username})` : '';
  document.body.dataset.view = view;
  if (view === 'auth') input('login-username').focus();
  if (view === 'lobby') input('room-input').focus();
}

/**
 * Disables a form's button while `work` runs.
 * @param {HTMLFormElement} form
 * @param {() => Promise<void>} work
 */
async function busy(form, work) {
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'));
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

// ---- accounts --------------------------------------------------------------

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    clearAlert();
    const username = input('login-username').value.trim();
    const password = input('login-password').value;
    if (!username || !password) return showAlert('Enter your username and password.');
    try {
      await client.session.login(username, password);
      input('login-password').value = '';
      showBanner('');
      await enterLobby();
    } catch (error) {
      showError(error);
      input('login-password').select();
    }
  });
});

$('register-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    clearAlert();
    const username = input('register-username').value.trim();
    const displayName = input('register-display-name').value.trim() || username;
    const password = input('register-password').value;
    if (!username || !password) return showAlert('Choose a username and a password.');
    try {
      await client.session.register({ username, password, displayName });
      await client.session.login(username, password);
      input('register-password').value = '';
      await enterLobby();
    } catch (error) {
      showError(error);
    }
  });
});

$('sign-out').addEventListener('click', async () => {
  if (client.state !== 'idle' && client.state !== 'left') leaveCall();
  await client.session.logout();
  showView('auth');
});

client.session.addEventListener('expired', () => {
  if (client.state === 'joined' || client.state === 'reconnecting') leaveCall();
  showBanner('');
  showAlert(messageFor('session-expired'));
  showView('auth');
});

// ---- password change and account deletion ---------------------------------------

/**
 * Shows a result under a form.
 * @param {string} id
 * @param {string} text
 * @param {'ok' | 'error' | ''} kind
 */
function formStatus(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('ok', kind === 'ok');
  el.classList.toggle('error', kind === 'error');
}

/**
 * What to say when the server refused a password form.
 * @param {unknown} error
 * @param {string} wrongPassword  the sentence for `invalid-credentials`
 */
function passwordFormError(error, wrongPassword) {
  if (!(error instanceof TincanError)) return messageFor('internal', String(/** @type {any} */ (error)?.message ?? error));
  if (error.code === 'invalid-credentials') return wrongPassword;
  if (error.code === 'invalid-request') return `The server refused the new password: ${error.message}`;
  if (error.code === 'rate-limited' || error.code === 'busy') return `${messageFor('rate-limited')} (${error.message})`;
  return messageFor(error.code, error.message);
}

$('password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    const current = input('current-password').value;
    const next = input('new-password').value;
    const again = input('confirm-password').value;
    if (!current) return formStatus('password-status', 'Enter your current password.', 'error');
    if ([...next].length < 8) return formStatus('password-status', 'The new password needs at least 8 characters.', 'error');
    if (next !== again) return formStatus('password-status', 'The two new passwords are not the same.', 'error');
    if (next === current) return formStatus('password-status', 'Choose a new password different from the current one.', 'error');
    formStatus('password-status', 'Changing…', '');
    try {
      await client.session.changePassword(current, next);
      for (const id of ['current-password', 'new-password', 'confirm-password']) input(id).value = '';
      formStatus('password-status', 'Password changed. Your other devices were signed out.', 'ok');
    } catch (error) {
      if (error instanceof TincanError && error.code === 'session-expired') return;
      formStatus('password-status', passwordFormError(error, 'Your current password is wrong.'), 'error');
      input('current-password').select();
    }
  });
});

$('delete-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    const password = input('delete-password').value;
    if (!password) return formStatus('delete-status', 'Enter your password to delete your account.', 'error');
    if (!input('delete-confirm').checked) {
      return formStatus('delete-status', 'Tick the box to confirm that you want your account deleted.', 'error');
    }
    formStatus('delete-status', 'Deleting…', '');
    try {
      await client.session.deleteAccount(password);
    } catch (error) {
      if (error instanceof TincanError && error.code === 'session-expired') return;
      formStatus('delete-status', passwordFormError(error, 'That password is wrong; your account was not deleted.'), 'error');
      input('delete-password').select();
      return;
    }
    input('delete-password').value = '';
    input('delete-confirm').checked = false;
    formStatus('delete-status', '', '');
    showView('auth');
    showBanner('Your account was deleted.');
  });
});

async function enterLobby() {
  showView('lobby');
  formStatus('password-status', '', '');
  formStatus('delete-status', '', '');
  await Promise.all([loadPreferences(), loadHistory()]);
}

// ---- preferences and devices ---------------------------------------------

async function loadPreferences() {
  // Until the saved values are in, a change could be overwritten by them.
  for (const key of PREF_KEYS) input(`pref-${key}`).disabled = true;
  try {
    const reply = await client.session.request('GET', '/me/preferences');
    const prefs = reply?.preferences ?? reply ?? {};
    app.prefs = { ...DEFAULT_PREFS, ...prefs };
  } catch (error) {
    if (error instanceof TincanError && error.code === 'session-expired') return;
    $('prefs-status').textContent = 'Could not load your saved settings; using defaults.';
  }
  for (const key of PREF_KEYS) {
    input(`pref-${key}`).checked = ON_BY_DEFAULT.has(key) ? app.prefs[key] !== false : app.prefs[key] === true;
    input(`pref-${key}`).disabled = false;
  }
  await listMicrophones();
}

/**
 * Saves a change to `/me/preferences` (a partial update).
 * @param {Record<string, unknown>} patch
 */
async function savePreferences(patch) {
  app.prefs = { ...app.prefs, ...patch };
  $('prefs-status').textContent = 'Saving…';
  try {
    const saved = await client.session.request('PUT', '/me/preferences', patch);
    if (saved && typeof saved === 'object') app.prefs = { ...app.prefs, ...(saved.preferences ?? saved) };
    $('prefs-status').textContent = 'Saved.';
  } catch (error) {
    $('prefs-status').textContent =
      'Not saved: ' + (error instanceof TincanError ? messageFor(error.code, error.message) : String(error));
  }
}

for (const key of PREF_KEYS) {
  input(`pref-${key}`).addEventListener('change', async () => {
    await savePreferences({ [key]: input(`pref-${key}`).checked });
    if (app.mic && key !== 'startMuted') await switchMicrophone();
  });
}

/** @returns {MediaTrackConstraints} */
function audioConstraints() {
  const deviceId = /** @type {HTMLSelectElement} */ ($('mic-select')).value;
  return {
    echoCancellation: app.prefs.echoCancellation !== false,
    noiseSuppression: app.prefs.noiseSuppression !== false,
    autoGainControl: app.prefs.autoGainControl !== false,
    ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
  };
}

async function listMicrophones() {
  const select = /** @type {HTMLSelectElement} */ ($('mic-select'));
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput');
  const preferred = typeof app.prefs.inputDeviceId === 'string' ? app.prefs.inputDeviceId : '';
  const current = app.mic?.getAudioTracks()[0]?.getSettings().deviceId ?? (select.value || preferred);
  select.replaceChildren();
  const fallback = new Option('Default microphone', '');
  select.append(fallback);
  devices.forEach((device, i) => {
    if (!device.deviceId || device.deviceId === 'default') return;
    select.append(new Option(device.label || `Microphone ${i + 1}`, device.deviceId));
  });
  select.value = [...select.options].some((o) => o.value === current) ? current : '';
}
navigator.mediaDevices?.addEventListener?.('devicechange', () => {
  listMicrophones();
  listSpeakers();
});

/** Speakers (`audiooutput`), where the browser can choose one (`setSinkId`). */
async function listSpeakers() {
  const select = /** @type {HTMLSelectElement} */ ($('speaker-select'));
  const supported = typeof HTMLMediaElement.prototype.setSinkId === 'function' && navigator.mediaDevices?.enumerateDevices;
  select.disabled = !supported;
  if (!supported) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audiooutput');
  const current = client.outputDeviceId || (typeof app.prefs.outputDeviceId === 'string' ? app.prefs.outputDeviceId : '');
  select.replaceChildren(new Option('Default speaker', ''));
  devices.forEach((device, i) => {
    if (!device.deviceId || device.deviceId === 'default') return;
    select.append(new Option(device.label || `Speaker ${i + 1}`, device.deviceId));
  });
  select.value = [...select.options].some((o) => o.value === current) ? current : '';
  if (select.value !== client.outputDeviceId) await client.setOutputDevice(select.value).catch(() => {});
}

$('speaker-select').addEventListener('change', async () => {
  const deviceId = /** @type {HTMLSelectElement} */ ($('speaker-select')).value;
  savePreferences({ outputDeviceId: deviceId || null });
  try {
    await client.setOutputDevice(deviceId);
  } catch (error) {
    showError(error);
  }
});

// The client replaces a microphone that ended or was unplugged: follow it.
client.addEventListener('microphone-changed', (e) => {
  const { stream, label, reason } = /** @type {CustomEvent} */ (e).detail;
  if (stream === app.mic) return;
  app.mic = stream;
  participants.setLocalStream(stream);
  if (reason === 'recovered') $('call-status').textContent = `Microphone lost; switched to ${label || 'another microphone'}.`;
  listMicrophones();
});

$('mic-select').addEventListener('change', () => {
  const deviceId = /** @type {HTMLSelectElement} */ ($('mic-select')).value;
  savePreferences({ inputDeviceId: deviceId || null });
  if (app.mic) switchMicrophone();
});

async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error('no getUserMedia'), { name: 'TypeError' });
  return navigator.mediaDevices.getUserMedia({ audio: audioConstraints(), video: false });
}

async function switchMicrophone() {
  try {
    const stream = await openMicrophone();
    const old = app.mic;
    app.mic = stream;
    await client.setLocalStream(stream);
    participants.setLocalStream(stream);
    old?.getTracks().forEach((t) => t.stop());
    await listMicrophones();
  } catch (error) {
    showAlert(messageFor(micErrorCode(error)));
  }
}

// ---- call history ------------------------------------------------------------

async function loadHistory() {
  const list = $('history');
  try {
    const reply = await client.session.request('GET', '/me/calls');
    const calls = Array.isArray(reply) ? reply : reply?.calls ?? [];
    list.replaceChildren();
    if (calls.length === 0) list.append(Object.assign(document.createElement('li'), { textContent: 'No calls yet.' }));
    for (const call of calls.slice(0, 10)) {
      const li = document.createElement('li');
      // startedAt / endedAt: ms since the epoch; endedAt null while in the room.
      const started = new Date(call.startedAt);
      const when = Number.isNaN(started.getTime()) ? '' : started.toLocaleString();
      const seconds = call.endedAt ? (new Date(call.endedAt).getTime() - started.getTime()) / 1000 : null;
      const duration =
        call.endedAt === null ? ' · in progress' : seconds === null || !Number.isFinite(seconds) ? '' : ` · ${formatDuration(seconds)}`;
      const path = call.mediaPath ? ` · ${call.mediaPath}` : '';
      li.textContent = `${call.room} · ${when}${duration}${path}`;
      list.append(li);
    }
  } catch {
    list.replaceChildren(Object.assign(document.createElement('li'), { textContent: 'Call history is unavailable.' }));
  }
}

/** @param {number} seconds */
function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ---- joining and leaving -------------------------------------------------------

/** The room named by the link: `#room=NAME` or `?room=NAME`. */
function roomFromUrl() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  return hash.get('room') ?? new URLSearchParams(location.search).get('room') ?? '';
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, () => joinRoom(input('room-input').value.trim()));
});

/** @param {string} room */
async function joinRoom(room) {
  clearAlert();
  app.joinClickedAt = performance.now();
  app.firstPacketMs = null;
  if (!ROOM_ID.test(room)) {
    showAlert(messageFor('bad-request'));
    input('room-input').focus();
    return;
  }
  try {
    app.mic = await openMicrophone();
  } catch (error) {
    showAlert(messageFor(micErrorCode(error)));
    return;
  }
  participants.start(app.mic);
  listMicrophones();
  listSpeakers();
  $('call-status').textContent = 'Connecting…';
  try {
    await client.join(room, { stream: app.mic, muted: app.prefs.startMuted === true });
  } catch (error) {
    stopMicrophone();
    participants.stop();
    showError(error);
    if (error instanceof TincanError && error.code === 'session-expired') showView('auth');
    return;
  }
  history.replaceState(null, '', `#room=${encodeURIComponent(room)}`);
  $('call-room').textContent = room;
  $('call-status').textContent = '';
  setMuteButton(client.muted);
  showView('call');
  $('mute-button').focus();
}

function stopMicrophone() {
  app.mic?.getTracks().forEach((t) => t.stop());
  app.mic = null;
}

function leaveCall() {
  client.leave();
  stopMicrophone();
  participants.stop();
  showBanner('');
}

$('leave-button').addEventListener('click', async () => {
  leaveCall();
  await enterLobby();
});

/** @param {boolean} muted */
function setMuteButton(muted) {
  const button = $('mute-button');
  button.setAttribute('aria-pressed', String(muted));
  button.textContent = muted ? 'Unmute' : 'Mute';
}

$('mute-button').addEventListener('click', () => toggleMute());

function toggleMute() {
  pushToTalk = false;
  const muted = !client.muted;
  client.setMuted(muted);
  setMuteButton(muted);
}

// ---- keyboard: M toggles mute; while muted, Space held talks -------------------

/** Keys typed here are text, not shortcuts. */
const TYPING = 'input, select, textarea, [contenteditable]';
/** Space activates these: push-to-talk leaves them alone. */
const ACTIVATES_ON_SPACE = 'button, a, summary, [role=button]';
let pushToTalk = false;

document.addEventListener('keydown', (e) => {
  if (client.state !== 'joined' && client.state !== 'reconnecting') return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const target = e.target instanceof Element ? e.target : null;
  if (target?.closest(TYPING)) return;
  if ((e.key === 'm' || e.key === 'M') && !e.repeat) {
    e.preventDefault();
    toggleMute();
  } else if (e.code === 'Space' && !target?.closest(ACTIVATES_ON_SPACE)) {
    e.preventDefault();
    if (e.repeat || !client.muted || pushToTalk) return;
    pushToTalk = true;
    client.setMuted(false);
    setMuteButton(false);
    $('call-status').textContent = 'Talking (push-to-talk)…';
  }
});
function releasePushToTalk() {
  if (!pushToTalk) return;
  pushToTalk = false;
  client.setMuted(true);
  setMuteButton(true);
  $('call-status').textContent = '';
}
document.addEventListener('keyup', (e) => {
  if (e.code === 'Space') releasePushToTalk();
});
window.addEventListener('blur', releasePushToTalk);

// ---- pre-call check (lobby) --------------------------------------------------

const VERDICTS = {
  ready: 'Ready: we hear your microphone and the relay server is reachable.',
  warning: 'You can join, but check the notes below.',
  blocked: 'Not ready: no microphone is available.',
};

$('precall-button').addEventListener('click', async () => {
  const button = /** @type {HTMLButtonElement} */ ($('precall-button'));
  const verdict = $('precall-verdict');
  const details = $('precall-details');
  const meter = $('precall-meter');
  button.disabled = true;
  verdict.textContent = 'Checking… say something.';
  delete verdict.dataset.verdict;
  details.replaceChildren();
  /** @type {MediaStream | null} */
  let stream = null;
  try {
    stream = await openMicrophone().catch(() => null);
    const result = await precallCheck({
      session: client.session,
      stream,
      onLevel: (level) => {
        const shown = Math.round(Math.min(1, Math.sqrt(level)) * 100);
        meter.setAttribute('aria-valuenow', String(shown));
        /** @type {HTMLElement} */ (meter.firstElementChild).style.width = `${shown}%`;
      },
    });
    app.precall = result;
    verdict.dataset.verdict = result.verdict;
    verdict.textContent = VERDICTS[result.verdict];
    const mic = result.microphone;
    const turn = result.turn;
    const items = [
      mic.error
        ? `Microphone: ${mic.error}.`
        : `Microphone${mic.label ? ` (${mic.label})` : ''}: ${mic.ok ? 'we hear you' : 'no sound'} (peak level ${Math.round(mic.peakLevel * 100)} %).`,
      turn.ok
        ? `Relay server: reachable over ${turn.protocols.join(', ').toUpperCase()} in ${Math.round(turn.ms ?? 0)} ms.`
        : `Relay server: unreachable (${turn.error}). Calls work where a direct path exists.`,
    ];
    details.replaceChildren(...items.map((text) => Object.assign(document.createElement('li'), { textContent: text })));
  } catch (error) {
    verdict.textContent = `The check failed: ${/** @type {Error} */ (error)?.message ?? error}`;
  } finally {
    stream?.getTracks().forEach((t) => t.stop());
    meter.setAttribute('aria-valuenow', '0');
    /** @type {HTMLElement} */ (meter.firstElementChild).style.width = '0%';
    button.disabled = false;
  }
});

$('copy-link').addEventListener('click', async () => {
  const link = `${location.origin}/#room=${encodeURIComponent(client.room ?? '')}`;
  try {
    await navigator.clipboard.writeText(link);
    $('call-status').textContent = 'Invite link copied.';
  } catch {
    $('call-status').textContent = link;
  }
});

// ---- client events -----------------------------------------------------------

// A dropped signaling socket usually comes back within a fraction of a
// second and the call goes on (audio never stops), so the banner waits a
// moment before alarming anyone; the status line says what happened.
const BANNER_DELAY_MS = 1000;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let bannerTimer;
client.addEventListener('reconnecting', (e) => {
  const { attempt } = /** @type {CustomEvent} */ (e).detail;
  const text = `Connection to the server lost — reconnecting… (attempt ${attempt})`;
  clearTimeout(bannerTimer);
  if (!$('banner').hidden) showBanner(text);
  else bannerTimer = setTimeout(() => showBanner(text), BANNER_DELAY_MS);
});
client.addEventListener('joined', (e) => {
  clearTimeout(bannerTimer);
  if ($('banner').textContent) showBanner('');
  $('call-status').textContent = /** @type {CustomEvent} */ (e).detail.rejoin ? 'Reconnected; the call was set up again.' : '';
});
client.addEventListener('resumed', () => {
  clearTimeout(bannerTimer);
  showBanner('');
  $('call-status').textContent = 'Reconnected to the server; the call went on.';
});
client.addEventListener('resume-failed', () => {
  $('call-status').textContent = 'Reconnected; setting the call up again…';
});
// Announced through the polite live region next to the controls.
client.addEventListener('peer-joined', (e) => {
  $('call-status').textContent = `${/** @type {CustomEvent} */ (e).detail.peer.displayName} joined.`;
});
client.addEventListener('peer-left', (e) => {
  const peer = /** @type {CustomEvent} */ (e).detail.peer;
  if (peer) $('call-status').textContent = `${peer.displayName} left.`;
});
client.addEventListener('first-packet', (e) => {
  const { ms } = /** @type {CustomEvent} */ (e).detail;
  if (app.firstPacketMs === null && ms !== null) {
    app.firstPacketMs = performance.now() - app.joinClickedAt;
  }
});
client.addEventListener('error', (e) => {
  const { code, message, fatal } = /** @type {CustomEvent} */ (e).detail;
  if (code === 'not-in-room' || code === 'webrtc') {
    console.warn('tincan:', code, message);
    return;
  }
  if (!fatal) {
    console.warn('tincan:', code, message);
    return;
  }
  showBanner('');
  showAlert(messageFor(code, message));
  stopMicrophone();
  participants.stop();
  if (code === 'session-expired' || code === 'unauthorized') showView('auth');
  else if (client.session.user) enterLobby();
});

// Tell the room right away instead of waiting for the socket to time out.
window.addEventListener('pagehide', () => {
  if (client.state === 'joined' || client.state === 'reconnecting') client.leave();
});

// ---- start -------------------------------------------------------------------

async function start() {
  input('room-input').value = roomFromUrl();
  window.addEventListener('hashchange', () => {
    if (client.state !== 'joined') input('room-input').value = roomFromUrl();
  });
  if (!client.session.user) {
    showView('auth');
    return;
  }
  try {
    // Checks the stored session (refreshing it if the access token expired).
    const reply = await client.session.request('GET', '/me');
    if (reply?.user && client.session.current) client.session.current.user = reply.user;
    await enterLobby();
  } catch (error) {
    showError(error);
    showView(client.session.user ? 'lobby' : 'auth');
  }
}

start();
