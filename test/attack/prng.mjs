// A small seeded PRNG for the attack suite: mulberry32 over a 32-bit state,
// seeded from (seed, case number) so any case can be regenerated alone.

/** A 32-bit hash of a string (FNV-1a), to turn "seed/case" into a PRNG state. */
export function hash32(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The generator of one case: every random choice of the case comes from it, in order. */
export class Rng {
  constructor(seed, caseNo) {
    this.state = hash32(`${seed}/${caseNo}`) || 1;
  }

  /** A float in [0, 1) (mulberry32). */
  next() {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p) {
    return this.next() < p;
  }

  pick(xs) {
    return xs[Math.floor(this.next() * xs.length)];
  }

  /** Picks by weight: `items` is a list of [weight, value]. */
  weighted(items) {
    const total = items.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of items) {
      if ((r -= w) < 0) return v;
    }
    return items[items.length - 1][1];
  }

  shuffle(xs) {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  /** `n` distinct elements of `xs`, in random order. */
  some(xs, n) {
    return this.shuffle(xs).slice(0, Math.min(n, xs.length));
  }
}
