import { describe, expect, it } from "vitest";
import { softwareAdapterReason, type AdapterIdentity } from "./software-adapter.ts";

describe("softwareAdapterReason", () => {
  const software: [string, AdapterIdentity, RegExp][] = [
    [
      "Mesa lavapipe through Dawn (as seen here)",
      {
        vendor: "mesa",
        architecture: "software",
        device: "llvmpipe-llvm-15-0-6-256-bits-",
        description: "llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1",
        isFallbackAdapter: true,
      },
      /^isFallbackAdapter; architecture "software"; device "llvmpipe-.*"; description "llvmpipe: Mesa/,
    ],
    [
      "lavapipe without the fallback flag",
      { vendor: "mesa", architecture: "", device: "", description: "llvmpipe (LLVM 17.0.6, 256 bits)" },
      /description "llvmpipe/,
    ],
    [
      "SwiftShader",
      { vendor: "google", architecture: "swiftshader", device: "", description: "SwiftShader Device (Subzero)" },
      /description "SwiftShader Device/,
    ],
    [
      "WARP on Windows",
      { vendor: "microsoft", architecture: "", device: "", description: "Microsoft Basic Render Driver" },
      /Microsoft Basic Render Driver/,
    ],
    [
      "only the fallback flag",
      { vendor: "", architecture: "", device: "", description: "", isFallbackAdapter: true },
      /^isFallbackAdapter$/,
    ],
  ];
  it.each(software)("%s is software", (_, info, reason) => {
    expect(softwareAdapterReason(info)).toMatch(reason);
  });

  it("reads the older GPUAdapter.isFallbackAdapter too", () => {
    expect(softwareAdapterReason({ vendor: "x" }, true)).toBe("isFallbackAdapter");
  });

  const hardware: [string, AdapterIdentity][] = [
    [
      "NVIDIA H100",
      {
        vendor: "nvidia",
        architecture: "hopper",
        device: "",
        description: "NVIDIA H100 80GB HBM3",
        isFallbackAdapter: false,
      },
    ],
    [
      "AMD RDNA 3",
      { vendor: "amd", architecture: "rdna-3", device: "", description: "AMD Radeon RX 7900 XTX (RADV NAVI31)" },
    ],
    ["Intel Xe", { vendor: "intel", architecture: "gen-12lp", device: "", description: "Intel(R) UHD Graphics 770" }],
    ["Apple M2", { vendor: "apple", architecture: "metal-3", device: "", description: "Apple M2" }],
    ["an adapter that reports nothing", { vendor: "", architecture: "", device: "", description: "" }],
    ["a word that only contains a renderer name", { vendor: "acme", description: "notllvmpipeish GPU" }],
  ];
  it.each(hardware)("%s is hardware", (_, info) => {
    expect(softwareAdapterReason(info)).toBeNull();
  });
});
