import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { CheckinReceipt, CheckinResponse } from "./checkin.ts";
import { toBase64Url } from "../common.ts";
import {
  checkinReceiptSigningBytes,
  devicePrivacySigningBytes,
  signCheckinReceipt,
  verifyCheckinReceipt,
  type CheckinReceiptBody,
} from "./receipt.ts";

const body: CheckinReceiptBody = {
  model: "mnist",
  round_id: "mnist-r000001",
  device_id: "dev_abcdefghijkl",
  sampling_rate: 0.5,
  noise_multiplier: 1.1,
  count_noise_std: null,
  privacy_mode: "central",
  clip_rule: "fixed",
  delta: 1e-5,
  checked_in_at: "2026-01-02T03:04:05.006Z",
};
const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));

describe("check-in receipt signing bytes", () => {
  it("are the fixed, domain-separated lines", () => {
    expect(new TextDecoder().decode(checkinReceiptSigningBytes(body))).toBe(
      "fedge-checkin-receipt-v1\nmnist\nmnist-r000001\ndev_abcdefghijkl\n0.5\n1.1\n-\ncentral\nfixed\n0.00001\n" +
        "2026-01-02T03:04:05.006Z",
    );
    const adaptive = { ...body, clip_rule: "adaptive" as const, count_noise_std: 2.5 };
    expect(new TextDecoder().decode(checkinReceiptSigningBytes(adaptive))).toContain("\n1.1\n2.5\ncentral\nadaptive\n");
  });

  it("ignore fields outside the body and refuse ambiguous ones", () => {
    const extra = { ...body, signature: "x", alg: "Ed25519" } as CheckinReceiptBody;
    expect(checkinReceiptSigningBytes(extra)).toEqual(checkinReceiptSigningBytes(body));
    expect(() => checkinReceiptSigningBytes({ ...body, model: "a\nb" })).toThrow(TypeError);
    expect(() => checkinReceiptSigningBytes({ ...body, sampling_rate: Number.NaN })).toThrow(TypeError);
  });
});

describe("a distributed round's receipt", () => {
  const noise = { dimension: 8192, noise_shares: 80, share_variance: 28049514, sensitivity_bound: 1402515226 };
  const distributed: CheckinReceiptBody = { ...body, privacy_mode: "distributed", distributed_noise: noise };

  it("signs its discrete noise on one more line; the other modes' bytes are unchanged", () => {
    const text = new TextDecoder().decode(checkinReceiptSigningBytes(distributed));
    expect(text.split("\n").at(-1)).toBe("8192 80 28049514 1402515226");
    expect(text.split("\n").at(-2)).toBe("2026-01-02T03:04:05.006Z");
    expect(() => checkinReceiptSigningBytes({ ...distributed, distributed_noise: undefined })).toThrow(TypeError);
    expect(() => checkinReceiptSigningBytes({ ...body, distributed_noise: noise })).toThrow(TypeError);
  });

  it("signs the colluding-device count when the round states one; without it the bytes are the old ones", async () => {
    const colluding = { ...distributed, distributed_noise: { ...noise, corrupt_devices: 8 } };
    const text = new TextDecoder().decode(checkinReceiptSigningBytes(colluding));
    expect(text.split("\n").at(-1)).toBe("8192 80 28049514 1402515226 8");
    const sig = signCheckinReceipt(colluding, keys.secretKey);
    expect(await verifyCheckinReceipt(colluding, sig, keys.publicKey)).toBe(true);
    // dropping or changing it (a cheaper charge on the device) breaks the signature
    expect(await verifyCheckinReceipt(distributed, sig, keys.publicKey)).toBe(false);
    const fewer = { ...distributed, distributed_noise: { ...noise, corrupt_devices: 7 } };
    expect(await verifyCheckinReceipt(fewer, sig, keys.publicKey)).toBe(false);
    const wire = { ...colluding, alg: "Ed25519", signature: toBase64Url(sig) };
    expect(CheckinReceipt.parse(wire)).toEqual(wire);
  });

  it("signs a checked-in cohort as a word after the numbers; dropping it (an add/remove charge) breaks the signature", async () => {
    const covered = { ...distributed, distributed_noise: { ...noise, cohort: "checked-in" as const } };
    const text = new TextDecoder().decode(checkinReceiptSigningBytes(covered));
    expect(text.split("\n").at(-1)).toBe("8192 80 28049514 1402515226 checked-in");
    const sig = signCheckinReceipt(covered, keys.secretKey);
    expect(await verifyCheckinReceipt(covered, sig, keys.publicKey)).toBe(true);
    expect(await verifyCheckinReceipt(distributed, sig, keys.publicKey)).toBe(false);
    const sampled = { ...distributed, distributed_noise: { ...noise, cohort: "sampled" as const } };
    expect(await verifyCheckinReceipt(sampled, sig, keys.publicKey)).toBe(false);
    const wire = { ...covered, alg: "Ed25519", signature: toBase64Url(sig) };
    expect(CheckinReceipt.parse(wire)).toEqual(wire);
    const odd = { ...distributed, distributed_noise: { ...noise, cohort: "everyone" as never } };
    expect(() => checkinReceiptSigningBytes(odd)).toThrow(TypeError);
  });

  it("verifies, parses as the wire schema, and fails once its noise is altered", async () => {
    const sig = signCheckinReceipt(distributed, keys.secretKey);
    expect(await verifyCheckinReceipt(distributed, sig, keys.publicKey)).toBe(true);
    const wire = { ...distributed, alg: "Ed25519", signature: toBase64Url(sig) };
    expect(CheckinReceipt.parse(wire)).toEqual(wire);
    for (const altered of [
      { ...noise, noise_shares: 81 },
      { ...noise, share_variance: 1 },
      { ...noise, sensitivity_bound: 1 },
    ]) {
      expect(await verifyCheckinReceipt({ ...distributed, distributed_noise: altered }, sig, keys.publicKey)).toBe(
        false,
      );
    }
    expect(await verifyCheckinReceipt({ ...distributed, distributed_noise: undefined }, sig, keys.publicKey)).toBe(
      false,
    );
  });
});

describe("signCheckinReceipt / verifyCheckinReceipt", () => {
  const sig = signCheckinReceipt(body, keys.secretKey);

  it("verifies under the edge key and parses as the wire schema", async () => {
    expect(await verifyCheckinReceipt(body, sig, keys.publicKey)).toBe(true);
    const wire = { ...body, alg: "Ed25519", signature: toBase64Url(sig) };
    expect(CheckinReceipt.parse(wire)).toEqual(wire);
    const answer = { selected: false, reason: "not_sampled", round_id: body.round_id, retry_after_s: 5, receipt: wire };
    expect(CheckinResponse.parse(answer)).toEqual(answer);
  });

  it("detects every altered field, another key and a bad signature", async () => {
    const altered: Partial<CheckinReceiptBody>[] = [
      { model: "other" },
      { round_id: "mnist-r000002" },
      { device_id: "dev_mnopqrstuvwx" },
      { sampling_rate: 0.05 },
      { noise_multiplier: 11 },
      { count_noise_std: 3 },
      { privacy_mode: "local" },
      { clip_rule: "adaptive" },
      { delta: 1e-3 },
      { checked_in_at: "2026-01-02T03:04:05.007Z" },
    ];
    for (const change of altered)
      expect(await verifyCheckinReceipt({ ...body, ...change }, sig, keys.publicKey)).toBe(false);
    const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
    expect(await verifyCheckinReceipt(body, sig, other.publicKey)).toBe(false);
    const flipped = sig.slice();
    flipped[0]! ^= 1;
    expect(await verifyCheckinReceipt(body, flipped, keys.publicKey)).toBe(false);
    expect(await verifyCheckinReceipt(body, sig.slice(1), keys.publicKey)).toBe(false);
    expect(await verifyCheckinReceipt({ ...body, model: "a\nb" }, sig, keys.publicKey)).toBe(false);
  });
});

describe("devicePrivacySigningBytes", () => {
  it("is domain-separated from the check-in", () => {
    expect(new TextDecoder().decode(devicePrivacySigningBytes("dev_abcdefghijkl", "2026-01-02T03:04:05.006Z"))).toBe(
      "fedge-device-privacy-v1\ndev_abcdefghijkl\n2026-01-02T03:04:05.006Z",
    );
  });
});
