/**
 * @module
 * Robust aggregation for populations trained WITHOUT differential privacy: coordinate-wise median and trimmed mean
 * (Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning", ICML 2018, arXiv 1803.01498, §3).
 * They need every update at once (O(K × d) memory), unlike the streaming clip-and-sum of DP-FedAvg, and their
 * sensitivity is not bounded by clipping, so they are refused for DP populations by the strategy layer.
 */

function assertSameLength(updates: readonly Float32Array[]): number {
  const first = updates[0];
  if (!first) throw new RangeError("robust aggregation needs at least one update");
  for (const u of updates) {
    if (u.length !== first.length) throw new RangeError(`update lengths differ: ${u.length} vs ${first.length}`);
  }
  return first.length;
}

/** Coordinate-wise median; the mean of the two middle values for an even count. */
export function coordinateMedian(updates: readonly Float32Array[]): Float32Array {
  const d = assertSameLength(updates);
  const k = updates.length;
  const column = new Float64Array(k);
  const out = new Float32Array(d);
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < k; i++) column[i] = updates[i]![j]!;
    column.sort();
    out[j] = k % 2 === 1 ? column[(k - 1) / 2]! : (column[k / 2 - 1]! + column[k / 2]!) / 2;
  }
  return out;
}

/**
 * Coordinate-wise β-trimmed mean: per coordinate, drop the ⌊βK⌋ smallest and ⌊βK⌋ largest values, average the rest.
 * @param trimFraction β in [0, 0.5).
 */
export function trimmedMean(updates: readonly Float32Array[], trimFraction: number): Float32Array {
  if (!(trimFraction >= 0 && trimFraction < 0.5)) {
    throw new RangeError(`trimFraction must be in [0, 0.5), got ${trimFraction}`);
  }
  const d = assertSameLength(updates);
  const k = updates.length;
  const cut = Math.floor(trimFraction * k);
  const kept = k - 2 * cut;
  const column = new Float64Array(k);
  const out = new Float32Array(d);
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < k; i++) column[i] = updates[i]![j]!;
    column.sort();
    let sum = 0;
    for (let i = cut; i < k - cut; i++) sum += column[i]!;
    out[j] = sum / kept;
  }
  return out;
}
