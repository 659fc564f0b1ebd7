/**
 * @module
 * Server-side evaluation on a held-out set (never given to devices) and the publish gate: a candidate whose accuracy
 * drops by more than `maxAccuracyDrop` (absolute) below the serving version is refused, with the reason recorded.
 *
 * Like with like: both accuracies must be measured on the same set with the same kind of weights. The edge runner
 * compares the candidate's exported int8 bytes (what would be served) with the served int8 bytes; `fedge simulate`
 * compares float32 with float32. Tie rule: a drop of at most `maxAccuracyDrop` publishes, so with 0 a candidate
 * exactly as accurate as the serving version (a tie) IS published: it is not worse, and it carries the latest rounds.
 * Accuracies are k/n fractions; the comparison allows 1e-12 of float rounding so that an exact tie or an exact
 * allowed drop is never refused by the last bit.
 */
import type { MlpParams } from "@fedge/ml";
import { accuracy, crossEntropyLoss } from "@fedge/ml";

/** A labelled held-out set: `n` row-major samples and their labels. */
export interface EvalSet {
  x: Float32Array;
  y: Uint8Array | Int32Array;
  n: number;
}

export interface Evaluation {
  /** Fraction correct in [0, 1]. */
  accuracy: number;
  /** Mean softmax cross-entropy (nats). */
  loss: number;
  /** Samples evaluated. */
  n: number;
}

/** Accuracy and loss of `model` on `data`. Throws `RangeError` on an empty or mis-shaped set. */
export function evaluateModel(model: MlpParams, data: EvalSet): Evaluation {
  if (!data || !(data.n > 0) || data.y.length !== data.n) {
    throw new RangeError("evaluation set must hold n > 0 samples with one label each");
  }
  try {
    return { accuracy: accuracy(model, data.x, data.y), loss: crossEntropyLoss(model, data.x, data.y), n: data.n };
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError)
      throw new RangeError(`cannot evaluate: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Float rounding allowed when comparing two k/n accuracies (far below any 1/n of a real held-out set). */
const FLOAT_SLACK = 1e-12;

/** Options of {@link publishGate}. */
export interface PublishGateOptions {
  /** The candidate's evaluation (absent: not evaluated, e.g. no held-out set; it is then published). */
  candidate?: Evaluation;
  /** Accuracy of the serving version (absent: nothing served yet, the candidate is published). */
  servingAccuracy?: number;
  /** Largest allowed absolute accuracy drop, in [0, 1]; a drop of exactly this much (0: a tie) still publishes. */
  maxAccuracyDrop: number;
  /** The weights both accuracies were measured with, named in the reason (e.g. `int8`). */
  weights?: "int8" | "float32";
}

export interface PublishDecision {
  publish: boolean;
  /** Human-readable reason, recorded in the checkpoint's publish log. */
  reason: string;
  /** candidate − serving accuracy, when both are known. */
  accuracyChange?: number;
}

/** Decides whether a candidate may replace the serving version (see the module header). Pure. */
export function publishGate(options: PublishGateOptions): PublishDecision {
  const { candidate, servingAccuracy, maxAccuracyDrop } = options;
  const what = options.weights ? `${options.weights} accuracy` : "accuracy";
  if (!(maxAccuracyDrop >= 0 && maxAccuracyDrop <= 1)) {
    throw new RangeError(`maxAccuracyDrop must be in [0, 1], got ${String(maxAccuracyDrop)}`);
  }
  if (!candidate) return { publish: true, reason: "no held-out evaluation configured" };
  if (!Number.isFinite(candidate.loss) || !Number.isFinite(candidate.accuracy)) {
    return {
      publish: false,
      reason: `candidate evaluation is not finite (accuracy ${candidate.accuracy}, loss ${candidate.loss})`,
    };
  }
  if (servingAccuracy === undefined) {
    return { publish: true, reason: `first version (${what} ${candidate.accuracy.toFixed(4)})` };
  }
  const change = candidate.accuracy - servingAccuracy;
  if (change < -maxAccuracyDrop - FLOAT_SLACK) {
    return {
      publish: false,
      reason: `${what} would drop from ${servingAccuracy.toFixed(4)} to ${candidate.accuracy.toFixed(4)} (${change.toFixed(4)}), more than the allowed ${maxAccuracyDrop}`,
      accuracyChange: change,
    };
  }
  if (Math.abs(change) <= FLOAT_SLACK) {
    return {
      publish: true,
      reason: `${what} ${candidate.accuracy.toFixed(4)} ties the serving version: published (a tie is not worse)`,
      accuracyChange: change,
    };
  }
  return {
    publish: true,
    reason: `${what} ${candidate.accuracy.toFixed(4)} vs serving ${servingAccuracy.toFixed(4)} (${change >= 0 ? "+" : ""}${change.toFixed(4)}), within the allowed drop ${maxAccuracyDrop}`,
    accuracyChange: change,
  };
}
