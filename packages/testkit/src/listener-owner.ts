import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/*
 * Does process `pid` own the socket listening on 127.0.0.1:`port`? A TCP connect alone
 * cannot tell: if another process grabbed the port between freePort() and our bind, the
 * connect reaches that thief while our broker is busy failing with EADDRINUSE.
 * Linux only (/proc); elsewhere the answer is "unknown".
 */

// /proc/net/tcp prints the IPv4 address as a host-endian hex word.
const LOOPBACK_HEX = new Set(['0100007F', '7F000001']);
const TCP_LISTEN = '0A';

function listeningInode(port: number): string | undefined {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const local = cols[1];
    if (local === undefined || cols[3] !== TCP_LISTEN) continue;
    const [addr, p] = local.split(':');
    if (p === portHex && addr !== undefined && LOOPBACK_HEX.has(addr)) return cols[9];
  }
  return undefined;
}

/** true / false when /proc can tell, undefined when it cannot (not Linux, no access). */
export function listensOn(pid: number, port: number): boolean | undefined {
  let inode: string | undefined;
  let fds: string[];
  try {
    inode = listeningInode(port);
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  if (inode === undefined) return false;
  const target = `socket:[${inode}]`;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return true;
    } catch {
      // fd closed while we looked
    }
  }
  return false;
}
