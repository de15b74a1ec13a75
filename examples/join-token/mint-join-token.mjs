// Mints a Tincan join token with nothing but Node's own `node:crypto`:
// what an app's backend runs to let one of its users into one room
// (docs/embedding.md). Use it as a module:
//
//   import { mintJoinToken } from './mint-join-token.mjs';
//   const token = mintJoinToken({
//     keyId: process.env.TINCAN_API_KEY_ID,
//     secret: process.env.TINCAN_API_KEY_SECRET,
//     room: 'standup', sub: 'user-42', name: 'Ada', speak: true,
//   });
//
// or from a shell (prints the token):
//
//   TINCAN_API_KEY_ID=myapp TINCAN_API_KEY_SECRET=... \
//     node mint-join-token.mjs standup user-42 Ada [--listen-only] [--ttl 300]
//
// The secret stays on the backend; only the token goes to the browser,
// which opens `wss://.../ws?token=<token>` and sends `join` for that room.

import { createHmac } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** Longest lifetime Tincan accepts, in seconds. */
export const MAX_TTL_SECONDS = 600;

/** @param {string | Buffer} data */
const base64url = (data) => Buffer.from(data).toString('base64url');

/**
 * A signed join token (HS256 JWT).
 * @param {{keyId: string, secret: string, room: string, sub: string,
 *          name: string, speak: boolean, ttlSeconds?: number, now?: number}} options
 *   `now` is seconds since the epoch (default: the clock); `ttlSeconds`
 *   defaults to 300 and may not exceed {@link MAX_TTL_SECONDS}.
 * @returns {string}
 */
export function mintJoinToken({ keyId, secret, room, sub, name, speak, ttlSeconds = 300, now }) {
  if (!keyId || !secret) throw new Error('an API key id and secret are needed');
  if (!(ttlSeconds > 0 && ttlSeconds <= MAX_TTL_SECONDS)) {
    throw new Error(`ttlSeconds must be 1-${MAX_TTL_SECONDS}`);
  }
  if (typeof speak !== 'boolean') throw new Error('speak must be true or false');
  const iat = now ?? Math.floor(Date.now() / 1000);
  const header = { alg: 'HS256', typ: 'JWT', kid: keyId };
  const claims = {
    aud: 'tincan-join',
    room,
    sub,
    name,
    grants: { speak },
    iat,
    exp: iat + ttlSeconds,
  };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

// Run as a script: mint one from the command line.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'listen-only': { type: 'boolean' }, ttl: { type: 'string' } },
  });
  const [room, sub, name] = positionals;
  if (!room || !sub || !name) {
    console.error('usage: node mint-join-token.mjs ROOM SUB NAME [--listen-only] [--ttl SECONDS]');
    process.exit(2);
  }
  console.log(
    mintJoinToken({
      keyId: process.env.TINCAN_API_KEY_ID ?? '',
      secret: process.env.TINCAN_API_KEY_SECRET ?? '',
      room,
      sub,
      name,
      speak: !values['listen-only'],
      ttlSeconds: values.ttl === undefined ? 300 : Number(values.ttl),
    }),
  );
}
