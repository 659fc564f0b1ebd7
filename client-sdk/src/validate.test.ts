import { describe, expect, it } from "vitest";
import { FedgeClient } from "./client.ts";
import { memoryStorage } from "./storage/storage.ts";

describe("FedgeClient baseUrl", () => {
  const make = (baseUrl: string) =>
    new FedgeClient({ baseUrl, apiKey: "fk_a_bbbbbbbbbbbbbbbbbbbb", storage: memoryStorage() });

  it("refuses plain http:// to anything but this machine", () => {
    for (const url of [
      "http://edge.example.com",
      "http://10.0.0.5:8787",
      "http://127.0.0.1.example.com",
      "http://[::2]",
    ]) {
      expect(() => make(url), url).toThrow(/baseUrl: must be https:\/\//);
    }
  });

  it("takes https:// anywhere and http:// to loopback addresses", () => {
    for (const url of [
      "https://edge.example.com",
      "http://127.0.0.1:8787",
      "http://127.1.2.3",
      "http://localhost:8787",
      "http://[::1]:8787",
    ]) {
      expect(() => make(url), url).not.toThrow();
    }
  });
});
