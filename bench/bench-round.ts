/**
 * @module
 * The round the edge benchmarks open (`POST /v1/admin/rounds` body): a central-DP round over the demo's 650-value head
 * (64→10), int8 uploads, a fixed clip and z = 1, open for an hour. What is measured is the edge's path, not the privacy.
 */

/** The demo's head (64→10): the length of every bench update. */
export const BENCH_UPDATE_LENGTH = 650;

/** The body opening a bench round of `model` at sampling rate `q`; `extra` overrides fields. */
export function benchRoundBody(model: string, q: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model,
    model_version: 1,
    clip_norm: 1,
    learning_rate: 0.05,
    local_epochs: 1,
    batch_size: 32,
    privacy_mode: "central",
    mechanism: { noise_multiplier: 1, clip_rule: "fixed" },
    trainable: "all",
    update_length: BENCH_UPDATE_LENGTH,
    update_dtype: "int8",
    sampling_rate: q,
    min_reports: 1,
    duration_s: 3600,
    ...extra,
  });
}
