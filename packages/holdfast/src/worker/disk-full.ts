import type { Ballast } from './ballast.js';
import type { Cache } from './cache.js';
import { monotonicMs } from './clock.js';
import type { Rec } from './record.js';
import { count, noEviction, type DoneRecords, type Eviction } from './records-table.js';

/** How long to wait before trying a full disk again. */
const DISK_FULL_RETRY_MS = 1000;
/**
 * Records waiting for space go back to the cache in transactions of about this size: a backlog bigger
 * than the free space must not be all-or-nothing, or it could never be written again.
 */
const OVERFLOW_CHUNK_BYTES = 64 * 1024;

/** A delivered exchange whose removal the full disk refused: removed, with its extra writes, once there is room. */
interface Unremoved {
  recs: readonly Rec[];
  alsoInTxn: (() => void) | undefined;
}

export interface DiskFullHooks {
  /** Seqs that must never be evicted (in flight, or delivered and waiting to be removed). */
  isProtected(seq: number): boolean;
  evicted(eviction: Eviction): void;
  /** The cache refused a write (disk or map full). `first` is true once per episode. */
  failed(err: unknown, first: boolean): void;
  recovered(): void;
  /** Writes records back into the cache (one transaction); `then` runs after it commits. */
  append(recs: Rec[], then: () => void): void;
  /** Removes delivered records again, with the writes that belong with their removal. */
  remove(recs: readonly Rec[], alsoInTxn: (() => void) | undefined): void;
  /** Whether appends are still waiting for their commit (recovery waits for them to settle). */
  appendsPending(): boolean;
  /** The records of appends on their way into the cache: as evictable as the cached ones, once they land. */
  pendingRecords(): readonly Rec[];
  /** Input waiting for its windowed append (memory, not yet issued): evictable like the overflow. */
  windowed(): readonly Rec[];
  /** Takes evicted records out of the window before its append is issued. */
  dropWindowed(seqs: ReadonlySet<number>): void;
  /** Delivered records still cached: freed before anything pending is evicted. */
  done(): DoneRecords | undefined;
  /** One of its own writes settled: the sender may move on (a drained() may be waiting for it). */
  settled(): void;
}

/**
 * What happens when the cache cannot write (disk or map full): records the cache refused wait here in
 * memory, oldest first (newer input joins them behind, so order holds), bounded by priority eviction;
 * delivered records whose removal failed are remembered so they are never sent again; every second the
 * cache evicts by priority to make room and the waiting writes are tried again. The client degrades
 * (unhealthy, evicting) instead of crashing, losing order or corrupting the cache.
 */
export class DiskFullRecovery {
  readonly #overflow: Rec[] = [];
  readonly #unremoved = new Map<number, Unremoved>();
  #failing = false;
  /** Retries in a row that found records waiting for space (a retry follows a refused write). */
  #retriesWaiting = 0;
  #pendingEvictions = 0;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #cache: Cache;
  readonly #ballast: Ballast;
  readonly #maxOverflow: number;
  readonly #hooks: DiskFullHooks;

  constructor(cache: Cache, ballast: Ballast, maxOverflow: number, hooks: DiskFullHooks) {
    this.#cache = cache;
    this.#ballast = ballast;
    this.#maxOverflow = maxOverflow;
    this.#hooks = hooks;
  }

  /** Records are waiting for space: new appends must queue behind them. */
  get holding(): boolean {
    return this.#overflow.length > 0;
  }

  get failing(): boolean {
    return this.#failing;
  }

  get overflowLength(): number {
    return this.#overflow.length;
  }

  get overflowHead(): Rec | undefined {
    return this.#overflow[0];
  }

  get evicting(): boolean {
    return this.#pendingEvictions > 0;
  }

  get idle(): boolean {
    return this.#overflow.length === 0 && this.#unremoved.size === 0 && this.#pendingEvictions === 0;
  }

  /** Delivered, but still in the cache because the disk refused the removal: never read them again. */
  isUnremoved(seq: number): boolean {
    return this.#unremoved.has(seq);
  }

  get unremovedSeqs(): ReadonlySet<number> | undefined {
    return this.#unremoved.size > 0 ? new Set(this.#unremoved.keys()) : undefined;
  }

  /**
   * Records to write while others wait for space: they wait with them, in seq order (new input goes
   * at the end; an exchange spilled back from the overflow goes back to its place).
   */
  hold(recs: readonly Rec[]): void {
    for (const rec of recs) insertBySeq(this.#overflow, rec);
    this.#bound();
  }

  /** An append the cache refused. */
  refusedAppend(recs: readonly Rec[], err: unknown): void {
    for (const rec of recs) insertBySeq(this.#overflow, rec);
    this.#bound();
    this.fail(err);
  }

  /** A removal the cache refused: kept with its extra writes (dead letter, outgoing store) for the retry. */
  refusedRemoval(recs: readonly Rec[], alsoInTxn: (() => void) | undefined, err: unknown): void {
    const entry: Unremoved = { recs, alsoInTxn };
    for (const rec of recs) this.#unremoved.set(rec.seq, entry);
    // A removal with nothing to remove but its extra writes is keyed by nothing: keep it too.
    if (recs.length === 0 && alsoInTxn) this.#unremoved.set(-this.#unremoved.size - 1, entry);
    this.fail(err);
  }

  /** Delivered or refused while waiting for space: they leave the overflow, or they would be sent again. */
  forget(recs: readonly Rec[]): void {
    if (this.#overflow.length === 0) return;
    const done = new Set(recs.map((r) => r.seq));
    for (let i = this.#overflow.length - 1; i >= 0; i--) if (done.has(this.#overflow[i]!.seq)) this.#overflow.splice(i, 1);
  }

  /** The oldest record waiting for space, taken out to be sent from memory. */
  takeHead(): Rec | undefined {
    return this.#overflow.shift();
  }

  /** A write succeeded: healthy again once nothing waits for space. */
  maybeRecovered(): void {
    if (!this.#failing || this.#overflow.length > 0 || this.#unremoved.size > 0 || this.#hooks.appendsPending()) return;
    this.#failing = false;
    this.#ballast.restore();
    this.#hooks.recovered();
  }

  fail(err: unknown): void {
    const first = !this.#failing;
    this.#failing = true;
    // Give LMDB room to delete and evict; an empty disk partition would otherwise stay stuck.
    if (first) this.#ballast.release();
    this.#hooks.failed(err, first);
    // After stop() (close), a failed write stays failed: the cache is about to close under a retry.
    if (this.#retryTimer === undefined && !this.#stopped) this.#retryTimer = setTimeout(() => this.#retry(), DISK_FULL_RETRY_MS);
  }

  /**
   * close(): tries again, at once and as often as the budget allows, to write what waits for space.
   * Resolves with what is still waiting (and so lost) at the deadline.
   */
  async saveWaiting(deadlineMs: number): Promise<Rec[]> {
    while (this.#overflow.length > 0 && monotonicMs() < deadlineMs) {
      if (this.#retryTimer !== undefined) {
        clearTimeout(this.#retryTimer);
        this.#retry();
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return [...this.#overflow];
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  /**
   * Bounded memory while the disk is full: the overflow may hold maxOverflow records. Beyond that the
   * victims are chosen by the cache's own rule (lowest priority first, oldest first within it) across
   * the cache and the overflow together: the overflow holds the newest readings, so evicting only from
   * it would drop new readings while older ones of the same priority stay cached.
   */
  #bound(): void {
    const excess = this.#overflow.length - this.#maxOverflow;
    if (excess <= 0) return;
    const protect = this.#hooks.isProtected;
    // In memory: the overflow, and the input in the window (it would join the overflow behind it).
    const windowed = this.#hooks.windowed();
    const waiting = this.#memoryCandidates(windowed);
    // The cache's candidates, and the records on their way into it (a transaction ordered after their
    // append evicts them): missing those, a newer alarm could go while older routine readings stay.
    const landing = this.#hooks.pendingRecords().filter((r) => !protect(r.seq)).map((r) => ({ priority: r.priority, seq: r.seq }));
    const cached = [...this.#cache.records.evictionCandidates(excess, protect), ...landing].sort((a, b) => a.priority - b.priority || a.seq - b.seq);
    const fromMemory = new Set<number>();
    const fromCache: Array<{ priority: number; seq: number }> = [];
    let w = 0;
    let c = 0;
    while (fromMemory.size + fromCache.length < excess && (w < waiting.length || c < cached.length)) {
      const a = waiting[w];
      const b = cached[c];
      if (a && (!b || a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq))) {
        fromMemory.add(a.seq);
        w++;
      } else {
        fromCache.push(b!);
        c++;
      }
    }
    this.#evictFromMemory(fromMemory, windowed);
    // Deleting needs free pages too; the ballast released at the failure gives LMDB room. If the
    // commit fails anyway, the cap is exceeded until the next retry evicts again.
    if (fromCache.length > 0) {
      this.#pendingEvictions++;
      this.#cache.evictRecords(fromCache, protect).then(
        (fromDisk) => {
          this.#pendingEvictions--;
          if (fromDisk.messages > 0) this.#hooks.evicted(fromDisk);
          this.#hooks.settled();
        },
        () => {
          this.#pendingEvictions--;
          this.#hooks.settled();
        },
      );
    }
  }

  /** Unprotected records in memory (the overflow and the window), in eviction order. */
  #memoryCandidates(windowed: readonly Rec[]): Rec[] {
    const protect = this.#hooks.isProtected;
    return [...this.#overflow, ...windowed].filter((r) => !protect(r.seq)).sort((a, b) => a.priority - b.priority || a.seq - b.seq);
  }

  /** Evicts these seqs from the overflow and the window, and reports them. */
  #evictFromMemory(seqs: ReadonlySet<number>, windowed: readonly Rec[]): void {
    if (seqs.size === 0) return;
    const eviction = noEviction();
    for (const rec of [...this.#overflow, ...windowed]) {
      if (!seqs.has(rec.seq)) continue;
      count(eviction, rec.priority, rec.size, 1);
      eviction.seqs.push(rec.seq);
    }
    for (let i = this.#overflow.length - 1; i >= 0; i--) if (seqs.has(this.#overflow[i]!.seq)) this.#overflow.splice(i, 1);
    if (windowed.some((r) => seqs.has(r.seq))) this.#hooks.dropWindowed(seqs);
    if (eviction.messages > 0) this.#hooks.evicted(eviction);
  }

  /**
   * The cache had nothing left to evict, and what waits still did not fit the last time: the space is
   * held by something eviction in the cache cannot free (journal mode's intake log holds these very
   * readings, and its segment goes only once none of them is waiting). Waiting forever would refuse
   * every new reading, alarms too, until the link returns; so a quarter of what waits is evicted by
   * the same rule, and the rest is tried again.
   */
  #evictWaiting(): void {
    const windowed = this.#hooks.windowed();
    const candidates = this.#memoryCandidates(windowed);
    const take = Math.ceil(candidates.length / 4);
    this.#evictFromMemory(new Set(candidates.slice(0, take).map((r) => r.seq)), windowed);
  }

  /** Frees space by priority eviction, then writes the waiting records again, in order. */
  #retry(): void {
    this.#retryTimer = undefined;
    const waiting = this.#overflow.length;
    // A second retry in a row with records waiting: writing them did not get through the last time.
    const stuck = waiting > 0 && ++this.#retriesWaiting >= 2;
    // Room for what waits, plus headroom (a tenth of the cache) for the writes that must follow it:
    // the in-flight packet's commit and removals. Evicting only what waits would let the re-append
    // take all the freed space every time and nothing else ever commit.
    const room = waiting + Math.max(16, Math.ceil(this.#cache.messages / 10));
    this.#pendingEvictions++;
    this.#cache.evict(room, this.#hooks.isProtected, this.#hooks.done()).then(
      (eviction) => {
        this.#pendingEvictions--;
        if (eviction.messages > 0) this.#hooks.evicted(eviction);
        if (stuck && eviction.messages < room) this.#evictWaiting();
        const unremoved = new Set(this.#unremoved.values());
        this.#unremoved.clear();
        for (const entry of unremoved) this.#hooks.remove(entry.recs, entry.alsoInTxn);
        this.#writeOverflow();
      },
      (err: unknown) => {
        this.#pendingEvictions--;
        this.fail(err);
        this.#hooks.settled();
      },
    );
  }

  /** Writes the records waiting for space, oldest first, one chunk per transaction. */
  #writeOverflow(): void {
    if (this.#overflow.length === 0) {
      this.#retriesWaiting = 0;
      this.maybeRecovered();
      return this.#hooks.settled();
    }
    let bytes = 0;
    let count = 0;
    while (count < this.#overflow.length && (count === 0 || bytes + this.#overflow[count]!.size <= OVERFLOW_CHUNK_BYTES)) bytes += this.#overflow[count++]!.size;
    // Newer appends keep joining the overflow behind these until it is empty, so order holds.
    this.#hooks.append(this.#overflow.splice(0, count), () => this.#writeOverflow());
  }
}

/** Inserts keeping `recs` sorted by seq; appending past the end, the usual case, costs nothing more. */
function insertBySeq(recs: Rec[], rec: Rec): void {
  if (recs.length === 0 || recs[recs.length - 1]!.seq < rec.seq) {
    recs.push(rec);
    return;
  }
  let lo = 0;
  let hi = recs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (recs[mid]!.seq < rec.seq) lo = mid + 1;
    else hi = mid;
  }
  recs.splice(lo, 0, rec);
}
