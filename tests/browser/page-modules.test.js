// The page's small modules that need no browser: room names for "New room"
// and the wait read from a rate-limited answer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomRoomName } from '../../web/app/room-names.js';
import { retryWaitMs } from '../../web/app/retry.js';
import { TincanError, parseRetryAfter } from '../../web/tincan/session.js';

test('New room names are readable, valid room names, and rarely repeat', () => {
  const names = new Set();
  for (let i = 0; i < 2000; i++) {
    const name = randomRoomName();
    assert.match(name, /^[a-z]+-[a-z]+-[1-9]\d$/);
    assert.match(name, /^[A-Za-z0-9_-]{1,64}$/, 'docs/protocol.md: 1-64 of [A-Za-z0-9_-]');
    names.add(name);
  }
  assert.ok(names.size > 1950, `${names.size} distinct of 2000`);
});

test('Retry-After: seconds or an HTTP date; the wait from retryAfterMs, else the message', () => {
  assert.equal(parseRetryAfter('28'), 28_000);
  assert.equal(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1)), 30_000);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(parseRetryAfter(null), null);

  const http = new TincanError('rate-limited', 'too many attempts; try again in 99 s', { status: 429, retryAfterMs: 28_000 });
  assert.equal(retryWaitMs(http), 28_000, 'the TincanError says it');
  assert.equal(retryWaitMs({ code: 'rate-limited', message: '', retryAfterMs: 1500 }), 1500, 'a socket error says it');
  assert.equal(retryWaitMs({ code: 'invalid-credentials', message: 'try again in 5 s' }), null, 'not a wait');
  assert.equal(retryWaitMs({ code: 'rate-limited', message: 'too many attempts; try again in 12 s' }), 12_000);
  assert.equal(retryWaitMs({ code: 'rate-limited', message: 'slow down' }), null);
});
