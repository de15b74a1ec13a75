// Must NOT compile (package.test.js checks that tsc --strict fails here):
// a `peer-muted` detail has no `participant`.
import { TincanClient } from 'tincan-client';

const client = new TincanClient();
client.on('peer-muted', (detail) => console.log(detail.participant));
