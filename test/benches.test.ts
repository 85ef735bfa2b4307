/**
 * Every benchmark runs in quick mode in CI, so none of them rots: `--quick --json` must exit 0 and
 * print exactly one JSON summary line on stdout with the documented fields. Speed is not asserted
 * here; the figures live in bench/README.md.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { tempDir } from './helpers.js';

const benchDir = fileURLToPath(new URL('../bench/', import.meta.url));

const expectations: Record<string, string[]> = {
  throughput: ['bench', 'holdfastPerSecond', 'mqttjsPerSecond', 'ratio'],
  publish: ['bench', 'callsPerSecond', 'p50Us', 'p99Us', 'maxUs', 'mqttjsCallsPerSecond', 'ratio'],
  'catch-up': ['bench', 'rttMs', 'backlog', 'bulk', 'drainSeconds', 'bulkReadingsPerSecond', 'oneAtATimePerSecond'],
  spill: ['bench'],
  'power-cut': ['bench', 'mode', 'accepted', 'delivered', 'lost', 'duplicates', 'outOfOrder', 'kills', 'bytesWrittenPerMessage'],
};

/** Runs a bench with a temp dir of its own (the quick power-cut writes its SVG there), kept only if it fails. */
function runBench(name: string, tmp: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `${benchDir}${name}.bench.ts`, '--quick', '--json'], { cwd: benchDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('benchmarks in quick mode', () => {
  for (const [name, fields] of Object.entries(expectations)) {
    it(`${name} --quick --json prints one summary line`, async () => {
      const tmp = tempDir(`bench-${name}`);
      const { code, stdout, stderr } = await runBench(name, tmp.path);
      assert.equal(code, 0, `exit code (what it wrote is kept in ${tmp.path}); stderr tail:\n${stderr.split('\n').slice(-15).join('\n')}`);
      tmp.remove();
      const lines = stdout.split('\n').filter((l) => l.trim().length > 0);
      assert.equal(lines.length, 1, `exactly one line on stdout, got:\n${stdout.slice(0, 2000)}`);
      const summary = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(summary.bench, name);
      for (const field of fields) assert.ok(field in summary, `field '${field}' in ${lines[0]}`);
    });
  }
});
