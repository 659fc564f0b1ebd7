/**
 * @module
 * SecAgg+'s communication graph: a Harary graph H(k, n) under a random labelling (Bell et al. CCS 2020, §3.1). The
 * positions 0 … n−1 sit on a cycle and each is joined to the k/2 positions on either side; a permutation drawn from a
 * seed places the devices on the cycle. Every party derives the same graph from the same seed and roster.
 */
import nacl from "tweetnacl";

export class NeighbourGraph {
  readonly #neighbours: number[][];

  /** The graph of `devices` roster indices, each with `neighbours` neighbours (n − 1: complete), placed by `seed`. */
  constructor(devices: number, neighbours: number, seed: Uint8Array) {
    if (neighbours >= devices - 1) {
      this.#neighbours = Array.from({ length: devices }, (_, u) =>
        Array.from({ length: devices }, (_, v) => v).filter((v) => v !== u),
      );
      return;
    }
    if (neighbours < 2 || neighbours % 2 !== 0) throw new RangeError(`a Harary graph here has an even k ≥ 2`);
    const place = seededPermutation(devices, seed); // place[position] = roster index
    const position = new Array<number>(devices);
    for (let p = 0; p < devices; p++) position[place[p]!] = p;
    this.#neighbours = Array.from({ length: devices }, (_, u) => {
      const p = position[u]!;
      const out: number[] = [];
      for (let j = 1; j <= neighbours / 2; j++) {
        out.push(place[(p + j) % devices]!, place[(p - j + devices) % devices]!);
      }
      return out.sort((a, b) => a - b);
    });
  }

  /** The roster indices joined to `u`, ascending. */
  neighboursOf(u: number): readonly number[] {
    const n = this.#neighbours[u];
    if (!n) throw new RangeError(`no device ${u} in the graph`);
    return n;
  }

  areNeighbours(u: number, v: number): boolean {
    return this.neighboursOf(u).includes(v);
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
