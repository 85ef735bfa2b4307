/**
 * A process's I/O counters from /proc/<pid>/io (Linux). write_bytes is what the process sent towards
 * the block device (page-cache dirtying included), i.e. flash wear; wchar also counts pipes and sockets,
 * so it is only a fallback where write_bytes is not accounted (some containers, tmpfs).
 */
import { readFileSync } from 'node:fs';

export interface ProcIo {
  writeBytes: number;
  wchar: number;
  rchar: number;
}

/** undefined when the file is missing or unreadable (not Linux, or the process is gone). */
export function readProcIo(pid: number | 'self'): ProcIo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { writeBytes: field('write_bytes'), wchar: field('wchar'), rchar: field('rchar') };
}
