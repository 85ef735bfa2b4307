import { Stat } from '../protocol.js';

/**
 * Marks the seq the worker is about to decode or hand to MQTT.js, in shared memory, and clears the
 * mark (0) once that synchronous step returned. A worker that dies with a mark set died handling that
 * record: the facade counts such crashes per seq and has the record dead-lettered after a few in a
 * row (supervisor.ts), so one bad record cannot crash every restart. Only synchronous steps are
 * marked, so a crash from anything else is never blamed on a record that merely waits in flight.
 */
let slots: Float64Array | undefined;
/** Test builds: called as a record is about to be sent (see test-faults.ts). */
let onSend: ((seq: number) => void) | undefined;

export function initWorkingMark(stats: Float64Array, beforeSend?: (seq: number) => void): void {
  slots = stats;
  onSend = beforeSend;
}

/** `sending`: the record is about to be handed to MQTT.js (otherwise: about to be decoded). */
export function markWorking(seq: number, sending = false): void {
  if (slots) slots[Stat.workingSeq] = seq;
  if (sending) onSend?.(seq);
}
