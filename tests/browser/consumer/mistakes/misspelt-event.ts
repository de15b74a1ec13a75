// Must NOT compile (package.test.js checks that tsc --strict fails here):
// 'peer-joind' is not an event of the client.
import { TincanClient } from 'tincan-client';

const client = new TincanClient();
client.addEventListener('peer-joind', (e) => console.log(e.detail));
