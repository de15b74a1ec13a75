// The Tincan page: sign in, pick a room, talk. All protocol work is in
// tincan-client.js; this file wires it to the DOM.

import { TincanClient, TincanError, ROOM_ID, precallCheck } from './tincan-client.js';
import { messageFor, micErrorCode, retryMessage } from './app/messages.js';
import { Participants } from './app/participants.js';
import { loadSettings } from './app/settings.js';
import { randomRoomName } from './app/room-names.js';
import { retryWaitMs } from './app/retry.js';

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
  adaptProtection: params.get('adapt') !== '0',
  opus: {
    dtx: params.get('dtx') === '1',
    red: params.get('red') === 'auto' ? 'auto' : params.get('red') !== '0',
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
  /** joined without a microphone (none, or no permission) */
  listenOnly: false,
  /** @type {string} the room the pre-join view is about */
  prejoinRoom: '',
  /** @type {number | null} `Date.now()` when we joined the call (the call timer) */
  joinedAt: null,
  /** @type {View | null} where the account view's Back goes */
  accountFrom: null,
  /** @type {import('./tincan/precall.js').PrecallReport | null} the last pre-call check */
  precall: null,
  /** @type {number | null} ms from the click on Join to the first audio packet */
  firstPacketMs: null,
  joinClickedAt: 0,
};
// For debugging from the console and for the browser tests.
Object.assign(globalThis, { tincanApp: app });

// ---- messages ------------------------------------------------------------
// Errors that belong to a field show next to it (`fieldError`); the alert
// is for the rest. Escape dismisses the alert.

/** @type {ReturnType<typeof setInterval> | undefined} */
let countdownTimer;

/** @param {string} text */
function showAlert(text) {
  clearInterval(countdownTimer);
  $('alert-text').textContent = text;
  $('alert').hidden = false;
}
function clearAlert() {
  clearInterval(countdownTimer);
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}
/**
 * "Too many attempts: try again in 28 s", counting down to "You can try
 * again now." The seconds are not re-announced every tick (aria-live off on
 * the number): the alert is read once.
 * @param {number} ms
 */
function showRetryCountdown(ms) {
  const until = Date.now() + ms;
  const seconds = document.createElement('span');
  seconds.id = 'retry-seconds';
  seconds.setAttribute('aria-live', 'off');
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      showAlert(messageFor('retry-now'));
      return;
    }
    seconds.textContent = `${left} s`;
  };
  showAlert('');
  $('alert-text').append(retryMessage(), ' ', seconds);
  tick();
  countdownTimer = setInterval(tick, 1000);
}
/**
 * The alert for an error that belongs to no field; a rate limit counts down
 * the wait the server asked for.
 * @param {unknown} error
 */
function showError(error) {
  const wait = retryWaitMs(error);
  if (wait !== null) showRetryCountdown(wait);
  else if (error instanceof TincanError) showAlert(messageFor(error.code, error.message));
  else showAlert(messageFor('internal', String(/** @type {any} */ (error)?.message ?? error)));
}
/** @param {string} text */
function showBanner(text) {
  $('banner').textContent = text;
  $('banner').hidden = !text;
}
$('alert-close').addEventListener('click', clearAlert);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !$('alert').hidden) {
    e.preventDefault();
    clearAlert();
  }
});

/**
 * Shows `text` under the field `id` (`#ID-error`), marks it invalid and
 * points its `aria-describedby` at the message; '' clears it.
 * @param {string} id
 * @param {string} text
 */
function fieldError(id, text) {
  const field = $(id);
  const note = $(`${id}-error`);
  note.textContent = text;
  note.hidden = !text;
  const described = (field.getAttribute('aria-describedby') ?? '').split(/\s+/).filter((d) => d && d !== note.id);
  if (text) {
    field.setAttribute('aria-invalid', 'true');
    described.unshift(note.id);
  } else {
    field.removeAttribute('aria-invalid');
  }
  if (described.length) field.setAttribute('aria-describedby', described.join(' '));
  else field.removeAttribute('aria-describedby');
}
/**
 * Shows the first error and focuses its field.
 * @param {string} id
 * @param {string} text
 */
function fieldProblem(id, text) {
  fieldError(id, text);
  $(id).focus();
}
/** @param {HTMLElement} container clears every field error inside */
function clearFieldErrors(container) {
  for (const note of container.querySelectorAll('.field-error')) fieldError(note.id.replace(/-error$/, ''), '');
}
// Typing in a field clears its error.
for (const note of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.field-error'))) {
  const id = note.id.replace(/-error$/, '');
  const clear = () => {
    if (!note.hidden) fieldError(id, '');
  };
  $(id).addEventListener('input', clear);
  $(id).addEventListener('change', clear);
}

// ---- views ---------------------------------------------------------------

/** @typedef {'auth' | 'lobby' | 'prejoin' | 'call' | 'account'} View */

/** @param {View} view */
function showView(view) {
  $('auth-view').hidden = view !== 'auth';
  $('lobby-view').hidden = view !== 'lobby';
  $('prejoin-view').hidden = view !== 'prejoin';
  $('call-view').hidden = view !== 'call';
  $('settings-view').hidden = view !== 'prejoin' && view !== 'call';
  $('account-view').hidden = view !== 'account';
  const user = client.session.user;
  $('account').hidden = !user;
  const name = user ? `${user.displayName} (@${user.username})` : '';
  $('account-name').textContent = name;
  $('account-view-name').textContent = name;
  $('account-button').setAttribute('aria-expanded', String(view === 'account'));
  document.body.dataset.view = view;
  if (view === 'auth') {
    const room = invitedRoom();
    $('invite-note').hidden = !room;
    $('invite-room').textContent = room;
    input('login-username').focus();
  }
  if (view === 'lobby') input('room-input').focus();
  if (view === 'account') input('current-password').focus();
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
    clearFieldErrors(form);
    const username = input('login-username').value.trim();
    const password = input('login-password').value;
    if (!username) return fieldProblem('login-username', 'Enter your username.');
    if (!password) return fieldProblem('login-password', 'Enter your password.');
    try {
      await client.session.login(username, password);
      input('login-password').value = '';
      showBanner('');
      await afterSignIn();
    } catch (error) {
      if (error instanceof TincanError && error.code === 'invalid-credentials') {
        fieldError('login-password', messageFor(error.code));
      } else {
        showError(error);
      }
      input('login-password').select();
    }
  });
});

$('register-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    clearAlert();
    clearFieldErrors(form);
    const username = input('register-username').value.trim();
    const displayName = input('register-display-name').value.trim() || username;
    const password = input('register-password').value;
    if (!username) return fieldProblem('register-username', 'Choose a username.');
    if ([...password].length < 8) return fieldProblem('register-password', messageFor('password-too-short'));
    try {
      await client.session.register({ username, password, displayName });
      await client.session.login(username, password);
      input('register-password').value = '';
      await afterSignIn();
    } catch (error) {
      const field = error instanceof TincanError ? registerField(error) : null;
      if (field && error instanceof TincanError) fieldProblem(field, messageFor(error.code, error.message));
      else showError(error);
    }
  });
});

/**
 * The registration field a refusal is about, or null (then the alert says it).
 * @param {TincanError} error
 */
function registerField(error) {
  if (error.code === 'username-taken') return 'register-username';
  if (error.code !== 'invalid-request') return null;
  const text = error.message.toLowerCase();
  if (text.includes('display')) return 'register-display-name';
  if (text.includes('password')) return 'register-password';
  if (text.includes('username')) return 'register-username';
  return null;
}

/** After signing in or registering: the invited room's pre-join view, else the lobby. */
async function afterSignIn() {
  const room = invitedRoom();
  if (room) await enterPrejoin(room);
  else await enterLobby();
}

$('sign-out').addEventListener('click', async () => {
  if (client.state !== 'idle' && client.state !== 'left') leaveCall();
  await client.session.logout();
  showView('auth');
});

$('account-button').addEventListener('click', () => {
  if (!$('account-view').hidden) return returnFromAccount();
  // In a call, the call goes on: Back returns to it.
  app.accountFrom = /** @type {View} */ (document.body.dataset.view ?? 'lobby');
  clearFieldErrors($('account-view'));
  formStatus('password-status', '', '');
  formStatus('delete-status', '', '');
  showView('account');
});
$('account-back').addEventListener('click', () => returnFromAccount());
function returnFromAccount() {
  const back = app.accountFrom ?? 'lobby';
  if (back === 'call' && client.state !== 'joined' && client.state !== 'reconnecting') enterLobby();
  else if (back === 'prejoin' && app.prejoinRoom) enterPrejoin(app.prejoinRoom);
  else if (back === 'call') showView('call');
  else enterLobby();
}

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


$('password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    clearAlert();
    clearFieldErrors(form);
    formStatus('password-status', '', '');
    const current = input('current-password').value;
    const next = input('new-password').value;
    const again = input('confirm-password').value;
    if (!current) return fieldProblem('current-password', 'Enter your current password.');
    if ([...next].length < 8) return fieldProblem('new-password', messageFor('password-too-short'));
    if (next !== again) return fieldProblem('confirm-password', 'The two new passwords are not the same.');
    if (next === current) return fieldProblem('new-password', 'Choose a new password different from the current one.');
    formStatus('password-status', 'Changing…', '');
    try {
      await client.session.changePassword(current, next);
      for (const id of ['current-password', 'new-password', 'confirm-password']) input(id).value = '';
      formStatus('password-status', 'Password changed. Your other devices were signed out.', 'ok');
    } catch (error) {
      formStatus('password-status', '', '');
      if (error instanceof TincanError && error.code === 'session-expired') return;
      if (error instanceof TincanError && error.code === 'invalid-credentials') {
        fieldError('current-password', 'Your current password is wrong.');
        input('current-password').select();
      } else if (error instanceof TincanError && error.code === 'invalid-request') {
        fieldProblem('new-password', `The server refused the new password: ${error.message}`);
      } else {
        showError(error);
      }
    }
  });
});

$('delete-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  busy(form, async () => {
    clearAlert();
    clearFieldErrors(form);
    const password = input('delete-password').value;
    if (!password) return fieldProblem('delete-password', 'Enter your password to delete your account.');
    if (!input('delete-confirm').checked) {
      return fieldProblem('delete-confirm', 'Tick the box to confirm that you want your account deleted.');
    }
    formStatus('delete-status', 'Deleting…', '');
    try {
      await client.session.deleteAccount(password);
    } catch (error) {
      formStatus('delete-status', '', '');
      if (error instanceof TincanError && error.code === 'session-expired') return;
      if (error instanceof TincanError && error.code === 'invalid-credentials') {
        fieldError('delete-password', 'That password is wrong; your account was not deleted.');
        input('delete-password').select();
      } else {
        showError(error);
      }
      return;
    }
    input('delete-password').value = '';
    input('delete-confirm').checked = false;
    formStatus('delete-status', '', '');
    if (client.state === 'joined' || client.state === 'reconnecting') leaveCall();
    showView('auth');
    showBanner('Your account was deleted.');
  });
});

async function enterLobby() {
  // The address names a room only on the way into one.
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  app.prejoinRoom = '';
  showView('lobby');
  updateInvite();
  await loadHistory();
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

// ---- lobby: a room name, a new room, an invite link ------------------------------

/** The room named by the link: `#room=NAME` or `?room=NAME`. */
function roomFromUrl() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  return hash.get('room') ?? new URLSearchParams(location.search).get('room') ?? '';
}
/** The room an invite link names, if it is a valid name; else ''. */
function invitedRoom() {
  const room = roomFromUrl().trim();
  return ROOM_ID.test(room) ? room : '';
}
/** @param {string} room */
function inviteLink(room) {
  return `${location.origin}${location.pathname}#room=${encodeURIComponent(room)}`;
}

/** The lobby's invite link follows the room name; none until the name is valid. */
function updateInvite() {
  const room = input('room-input').value.trim();
  const valid = ROOM_ID.test(room);
  $('invite').hidden = !valid;
  input('invite-link').value = valid ? inviteLink(room) : '';
  $('copy-invite-status').textContent = '';
}
input('room-input').addEventListener('input', updateInvite);

$('new-room-button').addEventListener('click', () => {
  input('room-input').value = randomRoomName();
  fieldError('room-input', '');
  updateInvite();
  input('room-input').focus();
});

/** @type {Map<string, ReturnType<typeof setTimeout>>} */
const copiedTimers = new Map();
/**
 * Copies `text` with the Clipboard API and says "Copied" in `statusId`;
 * where the browser refuses, selects `fallback` for a manual copy.
 * @param {string} text
 * @param {string} statusId
 * @param {HTMLInputElement | null} fallback
 */
async function copyText(text, statusId, fallback) {
  const status = $(statusId);
  clearTimeout(copiedTimers.get(statusId));
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = 'Copied';
  } catch {
    fallback?.select();
    status.textContent = fallback ? 'Press Ctrl+C (⌘C) to copy.' : text;
  }
  copiedTimers.set(statusId, setTimeout(() => (status.textContent = ''), 4000));
}
$('copy-invite').addEventListener('click', () =>
  copyText(input('invite-link').value, 'copy-invite-status', input('invite-link')),
);
$('copy-link').addEventListener('click', () => copyText(inviteLink(client.room ?? ''), 'copy-link-status', null));

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  clearAlert();
  const room = input('room-input').value.trim();
  if (!ROOM_ID.test(room)) return fieldProblem('room-input', messageFor('bad-request'));
  fieldError('room-input', '');
  enterPrejoin(room);
});

// ---- pre-join: the check, the devices, then join (or listen only) -----------------

/** @param {string} room */
async function enterPrejoin(room) {
  app.prejoinRoom = room;
  history.replaceState(null, '', `#room=${encodeURIComponent(room)}`);
  input('room-input').value = room;
  $('prejoin-room').textContent = room;
  $('prejoin-title').setAttribute('aria-label', `Join room ${room}`);
  hideMicProblem();
  showView('prejoin');
  $('join-now').focus();
  await loadPreferences();
  listSpeakers();
  // Permission already refused: say so before the click.
  const state = await navigator.permissions
    ?.query({ name: /** @type {PermissionName} */ ('microphone') })
    .then((p) => p.state)
    .catch(() => null);
  if (state === 'denied' && app.prejoinRoom === room && !$('prejoin-view').hidden) showMicProblem('mic-denied');
}

/** @param {string} code `mic-denied`, `mic-missing`, ... */
function showMicProblem(code) {
  $('mic-problem-text').textContent = messageFor(code);
  $('mic-problem').hidden = false;
}
function hideMicProblem() {
  $('mic-problem').hidden = true;
  $('mic-problem-text').textContent = '';
}

$('prejoin-back').addEventListener('click', () => enterLobby());
$('join-now').addEventListener('click', () => joinWithButton('join-now', false));
$('listen-only-button').addEventListener('click', () => joinWithButton('listen-only-button', true));

/**
 * @param {string} buttonId disabled while joining
 * @param {boolean} listenOnly
 */
async function joinWithButton(buttonId, listenOnly) {
  const button = /** @type {HTMLButtonElement} */ ($(buttonId));
  button.disabled = true;
  try {
    await joinRoom(app.prejoinRoom, listenOnly);
  } finally {
    button.disabled = false;
  }
}

/**
 * The join options for our microphone; listen only (no microphone is opened
 * and nothing is sent) when asked, or when there is no microphone.
 * @param {MediaStream | null} mic
 * @param {boolean} listenOnly
 */
function joinOptions(mic, listenOnly) {
  if (listenOnly || !mic) return { listenOnly: true };
  return { stream: mic, muted: app.prefs.startMuted === true };
}

/**
 * Joins `room`. Without a microphone (none, or no permission) the pre-join
 * view says so and offers to listen only, rather than failing.
 * @param {string} room
 * @param {boolean} listenOnly
 */
async function joinRoom(room, listenOnly) {
  clearAlert();
  app.joinClickedAt = performance.now();
  app.firstPacketMs = null;
  if (!ROOM_ID.test(room)) {
    await enterLobby();
    fieldProblem('room-input', messageFor('bad-request'));
    return;
  }
  app.listenOnly = listenOnly;
  if (!listenOnly) {
    try {
      app.mic = await openMicrophone();
    } catch (error) {
      const code = micErrorCode(error);
      if (code === 'mic-denied' || code === 'mic-missing') showMicProblem(code);
      else showAlert(messageFor(code));
      return;
    }
  }
  hideMicProblem();
  participants.start(app.mic ?? silence());
  listMicrophones();
  listSpeakers();
  $('call-status').textContent = 'Connecting…';
  try {
    await client.join(room, joinOptions(app.mic, listenOnly));
  } catch (error) {
    stopMicrophone();
    participants.stop();
    showError(error);
    if (error instanceof TincanError && error.code === 'session-expired') showView('auth');
    return;
  }
  clearAlert(); // a wait the server asked for is over
  history.replaceState(null, '', `#room=${encodeURIComponent(room)}`);
  $('call-room').textContent = room;
  $('call-status').textContent = listenOnly ? 'You are listening only: nobody hears you.' : '';
  $('mute-button').hidden = listenOnly;
  $('listen-only-badge').hidden = !listenOnly;
  setMuteButton(client.muted);
  startTimer();
  showView('call');
  (listenOnly ? $('leave-button') : $('mute-button')).focus();
}

/** @type {AudioContext | null} */
let silenceContext = null;
/**
 * A silent stream for the participant list's own-level meter when there is
 * no microphone (it needs a stream; no permission is asked for this one).
 */
function silence() {
  silenceContext ??= new AudioContext();
  return silenceContext.createMediaStreamDestination().stream;
}

function stopMicrophone() {
  app.mic?.getTracks().forEach((t) => t.stop());
  app.mic = null;
  silenceContext?.close().catch(() => {});
  silenceContext = null;
}

function leaveCall() {
  client.leave();
  stopMicrophone();
  participants.stop();
  stopTimer();
  showBanner('');
  app.listenOnly = false;
}

$('leave-button').addEventListener('click', async () => {
  leaveCall();
  await enterLobby();
});

// ---- call timer: mm:ss since we joined (not announced) -----------------------------

/** @type {ReturnType<typeof setInterval> | undefined} */
let timerTick;
function startTimer() {
  app.joinedAt = Date.now();
  clearInterval(timerTick);
  const show = () => ($('call-timer').textContent = formatClock((Date.now() - (app.joinedAt ?? Date.now())) / 1000));
  show();
  timerTick = setInterval(show, 1000);
}
function stopTimer() {
  clearInterval(timerTick);
  app.joinedAt = null;
  $('call-timer').textContent = formatClock(0);
}
/**
 * `mm:ss`, or `h:mm:ss` past an hour.
 * @param {number} seconds
 */
function formatClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  return h > 0 ? `${h}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}` : `${two(Math.floor(s / 60))}:${two(s % 60)}`;
}

/** @param {boolean} muted */
function setMuteButton(muted) {
  const button = $('mute-button');
  button.setAttribute('aria-pressed', String(muted));
  button.textContent = muted ? 'Unmute' : 'Mute';
}

$('mute-button').addEventListener('click', () => toggleMute());

function toggleMute() {
  if (app.listenOnly) return;
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
    if (e.repeat || !client.muted || pushToTalk || app.listenOnly) return;
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

// ---- pre-call check (pre-join view) --------------------------------------------------

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
  const detail = /** @type {CustomEvent} */ (e).detail;
  const { code, message, fatal } = detail;
  // The client sends a refused join again after the wait: show the wait.
  if (code === 'rate-limited' && !fatal && client.state === 'joining') {
    showError(detail);
    return;
  }
  if (code === 'not-in-room' || code === 'webrtc') {
    console.warn('tincan:', code, message);
    return;
  }
  if (!fatal) {
    console.warn('tincan:', code, message);
    return;
  }
  showBanner('');
  // A refused join: joinRoom() says why, and the pre-join view stays.
  if (app.joinedAt === null) return;
  showAlert(messageFor(code, message));
  stopMicrophone();
  participants.stop();
  stopTimer();
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
  updateInvite();
  window.addEventListener('hashchange', () => {
    if (client.state === 'joined' || client.state === 'joining' || client.state === 'reconnecting') return;
    const room = invitedRoom();
    if (!client.session.user) showView('auth');
    else if (room && room !== app.prejoinRoom) enterPrejoin(room);
  });
  if (!client.session.user) {
    showView('auth');
    return;
  }
  try {
    // Checks the stored session (refreshing it if the access token expired).
    const reply = await client.session.request('GET', '/me');
    if (reply?.user && client.session.current) client.session.current.user = reply.user;
    await afterSignIn();
  } catch (error) {
    showError(error);
    if (client.session.user) await enterLobby();
    else showView('auth');
  }
}

start();
