/** Randomness for the simulator. Math.random is fine here: the readings only need to look real. */

/** A standard normal sample (Box–Muller); `1 - random()` keeps log() away from 0. */
export function gaussian(random: () => number = Math.random): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** True with probability `p`. */
export function chance(p: number, random: () => number = Math.random): boolean {
  return random() < p;
}
