import type { MessagePort } from 'node:worker_threads';
import { deserializeError, type HoldfastError } from './errors.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { SeqRanges } from './seq-ranges.js';

/** The messages the worker answers with a reply (a subscribe's id is its MQTT 5 subscription id). */
export type Request = Extract<ToWorker, { type: 'flush' | 'drained' | 'deadLetters' | 'requeue' | 'close' }>;
const REQUESTS = new Set<ToWorker['type']>(['flush', 'drained', 'deadLetters', 'requeue', 'close']);
const isRequest = (msg: ToWorker): msg is Request => REQUESTS.has(msg.type);

interface Pending {
  msg: Request;
  resolve: (value: unknown) => void;
  reject: (err: HoldfastError) => void;
  /** Posted to the current worker (false: waiting for one, or posted to one that died). */
  sent: boolean;
}

/**
 * Everything the facade sends to the worker, through whichever worker is alive. While none is (a
 * restart), posts wait here; the next worker gets the app's subscriptions, the requests the dead one
 * never answered, then what waited, in order. It also keeps the seqs posted to the current worker
 * that may not be safe yet: what a crash of that worker can take.
 */
export class Outbox {
  #port: MessagePort | undefined;
  readonly #waiting: Array<{ msg: ToWorker; transfer: ArrayBuffer[] | undefined }> = [];
  #waitingReadings = 0;
  readonly #pending = new Map<number, Pending>();
  #nextRequestId = 1;
  /** The app's subscriptions by filter, sent again to every new worker. */
  readonly #subscriptions = new Map<string, ToWorker>();
  /** Seqs posted to the current worker, from the lowest one that may not be safe yet. */
  readonly posted = new SeqRanges();
  /** The last seq posted to any worker. */
  lastPosted = 0;
  readonly #safeBelow: () => number;

  /** `safeBelow`: the worker's Stat.safeBelow (seqs below it need no tracking). */
  constructor(safeBelow: () => number) {
    this.#safeBelow = safeBelow;
  }

  /** Readings waiting for a worker. */
  get waitingReadings(): number {
    return this.#waitingReadings;
  }

  /** Posts to the worker, or keeps the message for the next one. */
  post(msg: ToWorker, transfer?: ArrayBuffer[]): void {
    if (msg.type === 'subscribe') this.#subscriptions.set(msg.filter, msg);
    else if (msg.type === 'unsubscribe') this.#subscriptions.delete(msg.filter);
    if (this.#port) return this.#send(msg, transfer);
    // A new worker gets every subscription anyway.
    if (msg.type === 'subscribe' || msg.type === 'unsubscribe') return;
    if (msg.type === 'publish') {
      this.#waitingReadings += msg.topics.length;
      // The facade reuses a batch's arrays once it is posted; a kept batch needs its own.
      const { topics, payloads, priorities, flags, timestamps } = msg;
      msg = { ...msg, topics: [...topics], payloads: [...payloads], priorities: [...priorities], flags: [...flags], timestamps: [...timestamps] };
    }
    this.#waiting.push({ msg, transfer: transfer && [...transfer] });
  }

  #send(msg: ToWorker, transfer?: ArrayBuffer[]): void {
    if (msg.type === 'publish') {
      const last = msg.firstSeq + msg.topics.length - 1;
      this.posted.dropBelow(this.#safeBelow());
      this.posted.add(msg.firstSeq, last);
      this.lastPosted = last;
    } else if (isRequest(msg)) {
      const pending = this.#pending.get(msg.id);
      if (!pending) return;
      pending.sent = true;
    }
    this.#port!.postMessage(msg, transfer);
  }

  /** Sends a request; resolves with the worker's reply (sent again to a replacement worker). */
  request<T>(build: (id: number) => Request): Promise<T> {
    const msg = build(this.#nextRequestId++);
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(msg.id, { msg, resolve: resolve as (value: unknown) => void, reject, sent: false });
      this.post(msg);
    });
  }

  /** A worker's reply. */
  settle(reply: Extract<FromWorker, { type: 'reply' }>): void {
    const pending = this.#pending.get(reply.id);
    this.#pending.delete(reply.id);
    if (!pending) return;
    if (reply.error) pending.reject(deserializeError(reply.error));
    else pending.resolve(reply.value);
  }

  /** A worker is ready: it gets the subscriptions, the requests the last one never answered, then what waited. */
  open(port: MessagePort): void {
    this.#port = port;
    this.posted.clear();
    for (const msg of this.#subscriptions.values()) this.#send(msg);
    for (const pending of this.#pending.values()) if (pending.sent) this.#send(pending.msg);
    for (const { msg, transfer } of this.#waiting.splice(0)) this.#send(msg, transfer);
    this.#waitingReadings = 0;
  }

  /** The worker is gone: posts wait from now on. */
  detach(): void {
    this.#port = undefined;
  }

  /** Drops what waits for a worker; returns the seqs of its readings. */
  discardWaiting(): SeqRanges {
    const seqs = this.waitingSeqs();
    this.#waiting.length = 0;
    this.#waitingReadings = 0;
    return seqs;
  }

  waitingSeqs(): SeqRanges {
    const seqs = new SeqRanges();
    for (const { msg } of this.#waiting) if (msg.type === 'publish') seqs.add(msg.firstSeq, msg.firstSeq + msg.topics.length - 1);
    return seqs;
  }

  /** Rejects the flush() requests that wait for any seq from `seq` on. */
  rejectFlushes(seq: number, err: HoldfastError): void {
    for (const [id, pending] of this.#pending) {
      if (pending.msg.type !== 'flush' || pending.msg.upTo < seq) continue;
      this.#pending.delete(id);
      pending.reject(err);
    }
  }

  rejectAll(err: HoldfastError): void {
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }
}
