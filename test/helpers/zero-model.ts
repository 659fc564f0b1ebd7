import type { MlpParams } from "@fedge/ml";

/** A 784→10 softmax regression with all weights zero (it answers class 0 for every digit): a seed model for e2e tests. */
export function zeroMnistRegression(): MlpParams {
  return {
    layers: [
      {
        inFeatures: 784,
        outFeatures: 10,
        weight: new Float32Array(7840),
        bias: new Float32Array(10),
        activation: "none",
      },
    ],
  };
}
