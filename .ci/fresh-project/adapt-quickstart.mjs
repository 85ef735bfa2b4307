/**
 * Prints the README's Quick start, adapted to run to an end: the broker and cache dir from the
 * environment, a readSensor(), then publish for two seconds, drain, close and print the counts.
 * Every adaptation must match exactly once, so a README change that breaks one fails loudly.
 * Usage: node adapt-quickstart.mjs README.md
 */
import { readFileSync } from 'node:fs';

const readme = readFileSync(process.argv[2], 'utf8');
const section = readme.split(/^## Quick start$/m)[1];
const block = section && /```ts\n([\s\S]*?)```/.exec(section)?.[1];
if (!block) throw new Error(`no \`\`\`ts block under "## Quick start" in ${process.argv[2]}`);

let code = block;
for (const [from, to] of [
  ["'mqtt://broker.local:1883'", 'process.env.BROKER_URL!'],
  ["'/var/lib/holdfast'", 'process.env.CACHE_DIR!'],
  ['setInterval(', 'const timer = setInterval('],
]) {
  const count = code.split(from).length - 1;
  if (count !== 1) throw new Error(`the Quick start must contain ${from} exactly once (found ${count}): update .ci/fresh-project/adapt-quickstart.mjs with the README`);
  code = code.replace(from, to);
}
process.stdout.write(`${code}
// Added by the fresh-project check: a sensor, and an end.
function readSensor(): number {
  return 20 + Math.random() * 5;
}
await new Promise((resolve) => setTimeout(resolve, 2000));
clearInterval(timer);
await client.drained();
const { accepted, delivered } = client.stats();
await client.close();
console.log(JSON.stringify({ accepted, delivered }));
`);
