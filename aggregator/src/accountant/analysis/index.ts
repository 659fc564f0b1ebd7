// The Gaussian mechanism math (special functions, analytic Gaussian) is shared with the SDK from @fedge/schemas.
export * from "@fedge/schemas/gaussian-mechanism";
export * from "./rdp.ts";
export * from "./fft.ts";
export * from "./pld.ts";
