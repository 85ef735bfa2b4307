/**
 * Runs in the fresh project, against the installed tarballs only: starts Mosquitto with the packed
 * testkit, an auditor on the Quick start's topic, then the Quick start itself, and checks that every
 * reading it accepted reached the broker once, in order.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAuditor, startBroker } from '@holdfast/testkit';

const broker = await startBroker({ requireMosquitto: true });
const auditor = await startAuditor({ url: broker.url, topics: 'sensors/#' });
const cacheDir = mkdtempSync(join(tmpdir(), 'holdfast-quickstart-'));
try {
  const child = spawn(process.execPath, ['out/quickstart.js'], { env: { ...process.env, BROKER_URL: broker.url, CACHE_DIR: cacheDir }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`the Quick start exited with ${code}; stdout:\n${stdout}`);
  const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { accepted?: number; delivered?: number };
  if (!result.accepted || result.accepted < 5 || result.delivered !== result.accepted) throw new Error(`the Quick start did not deliver what it accepted: ${stdout}`);
  await auditor.waitForCount(result.accepted, 10_000);
  const report = auditor.report();
  if (report.unique !== result.accepted || report.lost !== 0 || report.duplicates !== 0 || report.outOfOrder !== 0) {
    throw new Error(`the broker saw ${JSON.stringify(report)} for ${result.accepted} accepted`);
  }
  console.log(`Quick start from the packed README: ${result.accepted} readings accepted, all at the broker once and in order`);
} finally {
  await auditor.close();
  await broker.close();
  rmSync(cacheDir, { recursive: true, force: true });
}
