/**
 * Draws the timeline as a self-contained SVG (no dependency, no script, no external font): memory and
 * cache depth as lines, faults as shaded bands, link resets and kills as vertical lines.
 */
import type { DepthSample, SpanKind, Timeline } from './timeline.js';

const W = 960;
const H = 420;
const M = { left: 64, right: 24, top: 58, bottom: 96 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;
// A gap this long between samples is the device being off: break the line there.
const GAP_MS = 400;

const SPAN_STYLE: Record<SpanKind, { fill: string; label: string }> = {
  outage: { fill: '#f3b0b0', label: 'link outage (reset + refuse)' },
  stall: { fill: '#f7dc9c', label: 'link stall' },
  'broker-restart': { fill: '#cdb8ea', label: 'broker restart' },
  // Hatched, so a power cut during a network fault still shows both.
  'power-off': { fill: 'url(#off)', label: 'device off (killed → open again)' },
};
const MEMORY = '#e8710a';
const CACHE = '#1a62b8';
const KILL = '#c5221f';

export interface SvgTitle {
  heading: string;
  subheading: string;
}

export function renderTimeline(timeline: Timeline, title: SvgTitle): string {
  const endMs = Math.max(1000, timeline.endMs);
  const maxDepth = niceCeil(Math.max(10, ...timeline.samples.map((s) => Math.max(s.memory, s.cached))));
  const x = (t: number): number => M.left + (Math.min(Math.max(t, 0), endMs) / endMs) * PW;
  const y = (v: number): number => M.top + PH - (v / maxDepth) * PH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(
    '<defs><pattern id="off" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<rect width="8" height="8" fill="#e2e2e2"/><rect width="3" height="8" fill="#9a9a9a"/></pattern></defs>',
  );
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(title.heading)}</text>`);
  out.push(`<text x="${M.left}" y="40" fill="#444">${esc(title.subheading)}</text>`);

  const spans = [...timeline.spans].sort((a, b) => Number(a.kind === 'power-off') - Number(b.kind === 'power-off'));
  for (const span of spans) {
    const to = Number.isNaN(span.to) ? endMs : span.to;
    const width = Math.max(1.5, x(to) - x(span.from));
    const opacity = span.kind === 'power-off' ? 0.55 : 0.75;
    out.push(`<rect x="${f(x(span.from))}" y="${M.top}" width="${f(width)}" height="${PH}" fill="${SPAN_STYLE[span.kind].fill}" opacity="${opacity}"/>`);
  }

  // Grid and axes.
  for (let i = 0; i <= 4; i++) {
    const v = (maxDepth / 4) * i;
    out.push(`<line x1="${M.left}" x2="${M.left + PW}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${M.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" fill="#555">${Math.round(v)}</text>`);
  }
  const step = niceStep(endMs / 1000 / 10);
  for (let s = 0; s <= endMs / 1000 + 1e-9; s += step) {
    out.push(`<line x1="${f(x(s * 1000))}" x2="${f(x(s * 1000))}" y1="${M.top + PH}" y2="${M.top + PH + 4}" stroke="#555"/>`);
    out.push(`<text x="${f(x(s * 1000))}" y="${M.top + PH + 17}" text-anchor="middle" fill="#555">${s}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${M.left + PW / 2}" y="${M.top + PH + 34}" text-anchor="middle" fill="#333">seconds since start</text>`);
  out.push(`<text transform="translate(16 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle" fill="#333">readings queued</text>`);

  for (const mark of timeline.marks) {
    const mx = f(x(mark.t));
    if (mark.kind === 'reset') {
      out.push(`<line x1="${mx}" x2="${mx}" y1="${M.top}" y2="${M.top + PH}" stroke="#555" stroke-dasharray="4 3"/>`);
    } else {
      out.push(`<line x1="${mx}" x2="${mx}" y1="${M.top - 4}" y2="${M.top + PH}" stroke="${KILL}" stroke-width="2"/>`);
      out.push(`<text x="${mx}" y="${M.top - 7}" text-anchor="middle" fill="${KILL}" font-weight="bold">✕${mark.label === undefined ? '' : ` ${esc(mark.label)}`}</text>`);
    }
  }

  out.push(polyline(timeline.samples, (s) => s.cached, x, y, CACHE, 2));
  out.push(polyline(timeline.samples, (s) => s.memory, x, y, MEMORY, 1.5));

  out.push(legend());
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function polyline(samples: readonly DepthSample[], value: (s: DepthSample) => number, x: (t: number) => number, y: (v: number) => number, color: string, width: number): string {
  const runs: string[][] = [];
  let previous: DepthSample | undefined;
  for (const s of samples) {
    if (!previous || s.t - previous.t > GAP_MS || s.t < previous.t) runs.push([]);
    runs.at(-1)!.push(`${f(x(s.t))},${f(y(value(s)))}`);
    previous = s;
  }
  return runs.map((points) => `<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="${width}" stroke-linejoin="round"/>`).join('\n');
}

function legend(): string {
  const items: string[] = [];
  const row1 = H - 40;
  const row2 = H - 18;
  let cx = M.left;
  const line = (color: string, label: string, dash = '', width = 2): void => {
    items.push(`<line x1="${cx}" x2="${cx + 22}" y1="${row1 - 4}" y2="${row1 - 4}" stroke="${color}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    items.push(`<text x="${cx + 28}" y="${row1}">${esc(label)}</text>`);
    cx += 36 + label.length * 6.4;
  };
  line(MEMORY, 'in memory (lost by a power cut in spill mode)');
  line(CACHE, 'in the LMDB cache');
  line(KILL, 'SIGKILL (✕ n = readings it lost)');
  line('#555', 'link reset', '4 3', 1);
  cx = M.left;
  for (const kind of Object.keys(SPAN_STYLE) as SpanKind[]) {
    const { fill, label } = SPAN_STYLE[kind];
    items.push(`<rect x="${cx}" y="${row2 - 11}" width="22" height="13" fill="${fill}"/>`);
    items.push(`<text x="${cx + 28}" y="${row2}">${esc(label)}</text>`);
    cx += 40 + label.length * 6.4;
  }
  return items.join('\n');
}

/** The next 1, 2 or 5 × 10^k at or above v. */
function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function niceStep(v: number): number {
  return niceCeil(Math.max(1, v));
}

function f(n: number): string {
  return n.toFixed(1);
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
