/**
 * What happened when, for the picture: the device's queue depths over time, and the faults as
 * intervals (outages, stalls, broker restarts, power off) or instants (link resets, kills).
 * Times are milliseconds since the run started.
 */

export interface DepthSample {
  t: number;
  /** Readings held in memory (the facade's batch, the worker's queue). */
  memory: number;
  /** Readings in the LMDB cache. */
  cached: number;
  connected: boolean;
}

export type SpanKind = 'outage' | 'stall' | 'broker-restart' | 'power-off';
export type MarkKind = 'reset' | 'kill';

export interface Span {
  kind: SpanKind;
  from: number;
  to: number;
}

export interface Mark {
  kind: MarkKind;
  t: number;
  /** Short label drawn next to the mark, e.g. the readings a kill lost. */
  label?: string;
}

export class Timeline {
  readonly samples: DepthSample[] = [];
  readonly spans: Span[] = [];
  readonly marks: Mark[] = [];
  readonly #t0: number;

  constructor(t0 = Date.now()) {
    this.#t0 = t0;
  }

  /** Milliseconds since the start, for a wall-clock stamp (Date.now()) or now. */
  at(wallMs = Date.now()): number {
    return wallMs - this.#t0;
  }

  sample(wallMs: number, memory: number, cached: number, connected: boolean): void {
    this.samples.push({ t: this.at(wallMs), memory, cached, connected });
  }

  /** Opens a span now; call the returned function when it ends. */
  begin(kind: SpanKind): () => void {
    const span: Span = { kind, from: this.at(), to: Number.NaN };
    this.spans.push(span);
    return () => {
      span.to = this.at();
    };
  }

  mark(kind: MarkKind, label?: string): Mark {
    const mark: Mark = label === undefined ? { kind, t: this.at() } : { kind, t: this.at(), label };
    this.marks.push(mark);
    return mark;
  }

  get endMs(): number {
    const last = this.samples.at(-1)?.t ?? 0;
    return Math.max(last, ...this.spans.map((s) => (Number.isNaN(s.to) ? s.from : s.to)), ...this.marks.map((m) => m.t));
  }
}
