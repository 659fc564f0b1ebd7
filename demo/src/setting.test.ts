import { describe, expect, it } from "vitest";
import { loadMnist, type Dataset } from "fedge/data";
import { demoData, populationConfig, RECIPE, tuningData } from "./setting.ts";

/** A row's bytes as a key (exact identity of a digit's pixels). */
function rows(d: Dataset): string[] {
  const out: string[] = [];
  for (let i = 0; i < d.n; i++)
    out.push(Buffer.from(d.x.buffer, d.x.byteOffset + i * 784 * 4, 784 * 4).toString("base64"));
  return out;
}
const all = (ds: Dataset[]) => ds.flatMap(rows);

describe("the demo's data", () => {
  const { train, test } = loadMnist();
  const testRows = new Set(rows(test));

  it("public slice first, every other train digit on a device once, no test digit anywhere", () => {
    const d = demoData({ clients: 1000, publicSamples: 500, seed: 1 });
    expect(d.public.n).toBe(500);
    expect(d.devices).toHaveLength(1000);
    expect(d.privateSamples).toBe(train.n - 500);
    const device = all(d.devices);
    expect(device).toHaveLength(train.n - 500);
    const pub = new Set(rows(d.public));
    for (const r of device) {
      expect(pub.has(r)).toBe(false);
      expect(testRows.has(r)).toBe(false);
    }
    expect(rows(d.public).some((r) => testRows.has(r))).toBe(false);
    expect(d.test.n).toBe(test.n);
    // non-IID: two digits per device
    for (const s of d.devices.slice(0, 50)) expect(new Set(s.y).size).toBe(2);
  });

  it("the tuning split holds no test digit, and its validation pool is on no tuning device", () => {
    const t = tuningData({ clients: 1000, publicSamples: 500, seed: 1 });
    const validation = rows(t.validation);
    const devices = new Set(all(t.devices));
    expect(validation).toHaveLength(1600);
    expect(devices.size + validation.length).toBe(train.n - 500);
    for (const r of validation) {
      expect(devices.has(r)).toBe(false);
      expect(testRows.has(r)).toBe(false);
    }
    for (const r of devices) expect(testRows.has(r)).toBe(false);
    // its classes follow the train split's (a uniform draw)
    const counts = new Array(10).fill(0);
    for (const y of t.validation.y) counts[y]++;
    for (let k = 0; k < 10; k++) {
      const share = train.y.filter((y, i) => i >= 500 && y === k).length / (train.n - 500);
      expect(Math.abs(counts[k] / 1600 - share)).toBeLessThan(0.02);
    }
  });

  it("refuses a public slice that leaves a device without data", () => {
    expect(() => demoData({ clients: 1000, publicSamples: 8000 })).toThrow(/publicSamples/);
  });
});

describe("populationConfig", () => {
  it("solves z for the target ε over the recipe's rounds, and gives a non-private run none", () => {
    const dp = populationConfig({ name: "p", clients: 1000, epsilon: 1, delta: 1e-5, recipe: RECIPE });
    expect(dp.noiseMultiplier).toBeGreaterThan(0);
    expect(dp.config.privacy).toMatchObject({ mode: "central", budget: { epsilon: 1, delta: 1e-5 } });
    expect(dp.config.expectedClients).toBeCloseTo(RECIPE.samplingRate * 1000, 9);
    expect(dp.config.trainable).toBe(RECIPE.trainable);
    const none = populationConfig({ name: "p", clients: 1000, epsilon: null, delta: 1e-5, recipe: RECIPE });
    expect(none.noiseMultiplier).toBeNull();
    expect(none.config.privacy.mode).toBe("none");
    expect(none.config.clipping.adaptive).toBeUndefined();
  });
});
