/**
 * @module
 * SecAgg+'s communication graph: a Harary graph H(k, n) under a random labelling (Bell et al. CCS 2020, §3.1). The
 * positions 0 … n−1 sit on a cycle and each is joined to the k/2 positions on either side; a permutation drawn from a
 * seed places the devices on the cycle. Every party derives the same graph from the same seed and roster.
 */
import nacl from "tweetnacl";

export class NeighbourGraph {
  readonly #devices: number;
  readonly #half: number;
  /** place[cycle position] = roster index; position[roster index] = cycle position (absent: complete graph). */
  readonly #place: number[] | undefined;
  readonly #position: number[] | undefined;
  /** Neighbour lists built on first use: a device needs its own, the server each in turn. */
  readonly #neighbours = new Map<number, readonly number[]>();

  /** The graph of `devices` roster indices, each with `neighbours` neighbours (n − 1: complete), placed by `seed`. */
  constructor(devices: number, neighbours: number, seed: Uint8Array) {
    this.#devices = devices;
    this.#half = neighbours / 2;
    if (neighbours >= devices - 1) return;
    if (neighbours < 2 || neighbours % 2 !== 0) throw new RangeError(`a Harary graph here has an even k ≥ 2`);
    const place = seededPermutation(devices, seed); // place[position] = roster index
    const position = new Array<number>(devices);
    for (let p = 0; p < devices; p++) position[place[p]!] = p;
    this.#place = place;
    this.#position = position;
  }

  /** The roster indices joined to `u`, ascending. */
  neighboursOf(u: number): readonly number[] {
    this.#check(u);
    let out = this.#neighbours.get(u);
    if (out) return out;
    const n = this.#devices;
    if (!this.#place) {
      out = Array.from({ length: n - 1 }, (_, i) => (i < u ? i : i + 1));
    } else {
      const p = this.#position![u]!;
      const list: number[] = [];
      for (let j = 1; j <= this.#half; j++) list.push(this.#place[(p + j) % n]!, this.#place[(p - j + n) % n]!);
      out = list.sort((a, b) => a - b);
    }
    this.#neighbours.set(u, out);
    return out;
  }

  /** Whether u and v are joined: their distance on the cycle is at most k/2 (any two distinct, when complete). */
  areNeighbours(u: number, v: number): boolean {
    this.#check(u);
    this.#check(v);
    if (u === v) return false;
    if (!this.#position) return true;
    const d = Math.abs(this.#position[u]! - this.#position[v]!);
    return Math.min(d, this.#devices - d) <= this.#half;
  }

  #check(u: number): void {
    if (!Number.isInteger(u) || u < 0 || u >= this.#devices) throw new RangeError(`no device ${u} in the graph`);
  }
}

/** A uniform permutation of 0 … n−1 (Fisher–Yates), its randomness SHA-512(seed ‖ counter) read 32 bits at a time. */
function seededPermutation(n: number, seed: Uint8Array): number[] {
  let block: Uint8Array = new Uint8Array(0);
  let offset = 0;
  let counter = 0;
  const next32 = (): number => {
    if (offset + 4 > block.length) {
      const input = new Uint8Array(seed.length + 4);
      input.set(seed);
      new DataView(input.buffer).setUint32(seed.length, counter++);
      block = nacl.hash(input);
      offset = 0;
    }
    const v = new DataView(block.buffer, block.byteOffset).getUint32(offset);
    offset += 4;
    return v;
  };
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    // Rejection keeps j uniform in [0, i].
    const bound = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % bound);
    let r = next32();
    while (r >= limit) r = next32();
    const j = r % bound;
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
