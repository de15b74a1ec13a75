// axe-core in the page, for the accessibility checks of every view.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const AXE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules', 'axe-core', 'axe.min.js');

/**
 * Runs axe-core on the page as it is; returns every violation, whatever
 * its impact, one line each.
 * @param {import('playwright-core').Page} page
 */
export async function axeProblems(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not
  // govern (a <script> tag would be refused: no inline scripts).
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(fs.readFileSync(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const result = await /** @type {any} */ (globalThis).axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((/** @type {any} */ v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((/** @type {any} */ n) => n.target.join(' ')).slice(0, 5),
    }));
  });
  for (const v of violations) console.log(`axe ${v.impact} ${v.id}: ${v.help} (${v.targets.join(', ')})`);
  return violations.map((/** @type {any} */ v) => `${v.id} (${v.impact}): ${v.help} at ${v.targets.join(', ')}`);
}
