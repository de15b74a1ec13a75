// Readable random room names for the lobby's "New room" button, such as
// `brave-otter-42`: an adjective, an animal and a number, valid under the
// room-name rules of docs/protocol.md (1-64 of `[A-Za-z0-9_-]`). 48 × 48 ×
// 90 ≈ 207,000 names: enough that two people pressing the button at once do
// not meet by chance; a room is private only as far as its name is unguessed.

const ADJECTIVES = [
  'amber', 'bold', 'brave', 'bright', 'calm', 'clever', 'cosy', 'crisp', 'curious', 'daring', 'eager', 'fair',
  'fancy', 'gentle', 'glad', 'golden', 'happy', 'hazy', 'humble', 'jolly', 'keen', 'kind', 'lively', 'lucky',
  'mellow', 'merry', 'mighty', 'misty', 'noble', 'plucky', 'polite', 'proud', 'quick', 'quiet', 'rapid', 'rosy',
  'shiny', 'silver', 'snowy', 'sunny', 'swift', 'tidy', 'vivid', 'warm', 'wise', 'witty', 'young', 'zesty',
];
const ANIMALS = [
  'badger', 'beaver', 'bison', 'crane', 'dingo', 'dolphin', 'eagle', 'falcon', 'ferret', 'finch', 'fox', 'gecko',
  'heron', 'ibis', 'koala', 'lark', 'lemur', 'lynx', 'magpie', 'marten', 'mole', 'moose', 'newt', 'ocelot',
  'orca', 'osprey', 'otter', 'owl', 'panda', 'parrot', 'pelican', 'puffin', 'quail', 'rabbit', 'raven', 'robin',
  'salmon', 'seal', 'sparrow', 'stoat', 'swan', 'tapir', 'tiger', 'toucan', 'walrus', 'whale', 'wombat', 'yak',
];

/**
 * A uniformly random integer in [0, n), from the browser's CSPRNG.
 * @param {number} n
 */
function randomBelow(n) {
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const buf = new Uint32Array(1);
  do crypto.getRandomValues(buf);
  while (buf[0] >= limit);
  return buf[0] % n;
}

/** A new room name, e.g. `brave-otter-42`. */
export function randomRoomName() {
  return `${ADJECTIVES[randomBelow(ADJECTIVES.length)]}-${ANIMALS[randomBelow(ANIMALS.length)]}-${10 + randomBelow(90)}`;
}
