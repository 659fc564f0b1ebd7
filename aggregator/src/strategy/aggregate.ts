/**
 * @module
 * The streaming sum shared by the streaming strategies: pull client updates from an async iterable, hand them to a
 * Backend accumulator `batchSize` at a time, release each buffer once added, and finish with noise and a divisor.
 * Memory: at most `batchSize` updates are referenced at once (plus the accumulator), whatever the client count.
 */
import {
  UpdateRejectedError,
  type ClientUpdate,
  type RoundContext,
  type StreamPlan,
  type StreamResult,
} from "./strategy.ts";

function weightOf(u: ClientUpdate, weighting: StreamPlan["weighting"], k: number): number {
  if (weighting === "uniform") return 1;
  const w = u.numExamples ?? 1;
  if (typeof w !== "number" || !Number.isFinite(w) || w < 0) {
    throw new UpdateRejectedError(
      "invalid_weight",
      `update ${k}: numExamples must be a finite number >= 0, got ${String(w)}`,
    );
  }
  return w;
}

/** Streams `updates` into a fresh accumulator and finishes it per `plan` (see {@link StreamPlan}). */
export async function streamAggregate(
  ctx: RoundContext,
  updates: AsyncIterable<ClientUpdate>,
  plan: StreamPlan,
): Promise<StreamResult> {
  const batchSize = ctx.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  // With the default CSPRNG the backend draws the round's noise (σ is known now) in the background while updates
  // stream in; an injected source must be drawn in order at finish so results stay reproducible.
  const acc = await ctx.backend.createAccumulator({
    length: ctx.length,
    clipNorm: plan.clipNorm,
    ...(ctx.random ? {} : { noiseStd: plan.noiseStd }),
  });
  const batch: ClientUpdate[] = [];
  let seen = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    try {
      await acc.add(
        batch.map((u) => u.delta),
        batch.map((u, i) => weightOf(u, plan.weighting, seen - batch.length + i)),
      );
    } finally {
      for (const u of batch) u.release?.();
      batch.length = 0;
    }
  };
  try {
    for await (const u of updates) {
      batch.push(u);
      seen++;
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    const s = acc.stats();
    const denominator = plan.denominator === "weightSum" ? s.weightSum : plan.denominator;
    if (!plan.alwaysFinish && (s.count === 0 || !(denominator > 0))) {
      acc.dispose();
      return { delta: null, count: s.count, unclippedCount: s.unclippedCount, weightSum: s.weightSum, denominator };
    }
    const delta = await acc.finish({
      noiseStd: plan.noiseStd,
      denominator,
      ...(ctx.random ? { random: ctx.random } : {}),
    });
    return { delta, count: s.count, unclippedCount: s.unclippedCount, weightSum: s.weightSum, denominator };
  } catch (e) {
    acc.dispose();
    for (const u of batch) u.release?.();
    throw e;
  }
}
