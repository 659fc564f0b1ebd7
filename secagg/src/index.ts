/**
 * @module
 * @fedge/secagg: secure aggregation for `distributed` rounds. SecAgg+ (Bell, Bonawitz, Gascón, Lepoint, Raykova,
 * CCS 2020) on a randomly labelled Harary graph — the original SecAgg (Bonawitz et al., CCS 2017) when the graph is
 * complete — with X25519 key agreement, Shamir shares over GF(2^16) (a 32-byte secret as 16 chunks), AES-256-CTR masks and arithmetic in Z_{2^b}.
 * A device's encoded update is a `Uint32Array` of d' values in Z_{2^b}, b ≤ 32; the edge learns only their sum mod 2^b.
 * Client and server are pure state machines over the messages of `@fedge/protocol`. Depends on protocol only.
 */
export * from "./errors.ts";
export * from "./modular.ts";
export * from "./prg.ts";
export * from "./shamir.ts";
export * from "./parameters.ts";
export * from "./graph.ts";
export * from "./key-agreement.ts";
export * from "./ed25519.ts";
export * from "./envelope.ts";
export * from "./transcript.ts";
export * from "./roster.ts";
export * from "./vector-codec.ts";
export * from "./client.ts";
export * from "./server.ts";
