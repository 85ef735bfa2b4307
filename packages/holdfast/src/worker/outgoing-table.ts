import type { Database } from 'lmdb';
import type { CacheCipher } from './cipher.js';
import type { OutgoingEntry } from './outgoing-store.js';
import { openValue, sealValue } from './record.js';

type StoredOutgoing = Omit<OutgoingEntry, 'packet' | 'refusal'> & { packet?: OutgoingEntry['packet']; sealed?: Uint8Array };

/**
 * The `outgoing` table: MQTT.js's persisted in-flight packets (PUBLISH or PUBREL, with the packet id
 * and the seqs it carries), sealed with a cacheKey because a PUBLISH holds topic and payload.
 */
export class OutgoingTable {
  readonly #db: Database<StoredOutgoing, number>;
  readonly #cipher: CacheCipher | undefined;

  constructor(db: Database<StoredOutgoing, number>, cipher: CacheCipher | undefined) {
    this.#db = db;
    this.#cipher = cipher;
  }

  putInTxn(entry: OutgoingEntry): void {
    const stored: StoredOutgoing = this.#cipher
      ? { messageId: entry.messageId, seqs: entry.seqs, sealed: sealValue(entry.packet, this.#cipher) }
      : { messageId: entry.messageId, seqs: entry.seqs, packet: entry.packet };
    this.#db.putSync(entry.messageId, stored);
  }

  removeInTxn(messageId: number): void {
    this.#db.removeSync(messageId);
  }

  clearInTxn(): void {
    for (const { key } of this.#db.getRange()) this.#db.removeSync(key);
  }

  /** The persisted packets; one that cannot be opened (damaged) is reported by its seqs and skipped. */
  list(): { entries: OutgoingEntry[]; unreadable: Array<{ messageId: number; seqs: number[]; reason: string }> } {
    const entries: OutgoingEntry[] = [];
    const unreadable: Array<{ messageId: number; seqs: number[]; reason: string }> = [];
    for (const { key, value } of this.#db.getRange()) {
      try {
        const packet = value.sealed ? (openValue(value.sealed, this.#cipher) as OutgoingEntry['packet']) : value.packet!;
        entries.push({ messageId: value.messageId, seqs: value.seqs, packet, refusal: undefined });
      } catch (err) {
        unreadable.push({ messageId: key, seqs: Array.isArray(value?.seqs) ? value.seqs : [], reason: (err as Error).message });
      }
    }
    return { entries, unreadable };
  }
}
