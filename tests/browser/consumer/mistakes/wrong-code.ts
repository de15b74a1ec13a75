// Must NOT compile (package.test.js checks that tsc --strict fails here):
// 'room-ful' is not an error code.
import { TincanClient, TincanError } from 'tincan-client';

export async function join(client: TincanClient): Promise<void> {
  try {
    await client.join('standup');
  } catch (err) {
    if (err instanceof TincanError && err.code === 'room-ful') console.warn('full');
  }
}
