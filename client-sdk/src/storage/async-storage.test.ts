import { afterEach, describe, expect, it, vi } from "vitest";
import { FedgeClient } from "../client.ts";
import { InvalidInputError } from "../core/errors.ts";
import { asyncStorage } from "./async-storage.ts";
import { fakeAsyncStorage } from "./async-storage.test-helpers.ts";

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

/** A stand-in edge for registration: answers POST /v1/devices with a new id and counts the calls. */
function edge() {
  const registrations: unknown[] = [];
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    if (url.pathname === "/v1/devices" && init?.method === "POST") {
      registrations.push(JSON.parse(String(init.body)));
      return new Response(JSON.stringify({ device_id: `dev_${registrations.length}` }), {
        status: 201,
        headers: { "content-type": "application/json" },
      });
    }
    return new Response(JSON.stringify({ error: { code: "not_found", message: "no route" } }), { status: 404 });
  }) as typeof globalThis.fetch;
  return { fetch, registrations };
}

describe("asyncStorage (React Native)", () => {
  it("keeps fedge's keys under a prefix, values as base64url strings, and leaves the app's keys alone", async () => {
    const store = fakeAsyncStorage(new Map([["app:theme", "dark"]]));
    const s = asyncStorage({ store });
    await s.set("queue/r_1", new Uint8Array([0, 1, 254, 255]));
    expect(store.entries.get("fedge:queue/r_1")).toBe("AAH-_w");
    expect(await s.keys("")).toEqual(["queue/r_1"]);
    expect([...(await s.get("queue/r_1"))!]).toEqual([0, 1, 254, 255]);
    const other = asyncStorage({ store, prefix: "other/" });
    expect(await other.keys("")).toEqual([]);
    expect(store.entries.get("app:theme")).toBe("dark");
  });

  it("refuses a store without the AsyncStorage methods, naming the option", () => {
    expect(() => asyncStorage({ store: {} as never })).toThrow(/options\.store/);
    expect(() => asyncStorage(undefined as never)).toThrow(TypeError);
  });

  it("persists the device identity and the offline queue across app restarts", async () => {
    vi.stubGlobal("navigator", { product: "ReactNative" });
    const store = fakeAsyncStorage();
    const { fetch, registrations } = edge();
    const first = new FedgeClient({
      baseUrl: "https://edge.test",
      apiKey: "k",
      fetch,
      storage: asyncStorage({ store }),
    });
    const identity = await first.register();
    expect(identity.deviceId).toBe("dev_1");
    expect(registrations).toMatchObject([{ platform: "react-native" }]);
    await first.queue.enqueue({
      roundId: "r_1",
      deviceId: identity.deviceId,
      model: "m",
      modelVersion: 1,
      deadline: new Date(Date.now() + 60_000).toISOString(),
      bytes: new Uint8Array([1, 2, 3]),
    });

    // The app restarts: a new client over the same store is the same device with the same queue.
    const second = new FedgeClient({
      baseUrl: "https://edge.test",
      apiKey: "k",
      fetch,
      storage: asyncStorage({ store }),
    });
    expect(await second.register()).toEqual(identity);
    expect(registrations).toHaveLength(1);
    const queued = await second.queue.list();
    expect(queued.map((q) => [q.roundId, [...q.bytes]])).toEqual([["r_1", [1, 2, 3]]]);
  });

  it("without storage on React Native, warns once that the identity lives in memory", () => {
    vi.stubGlobal("navigator", { product: "ReactNative" });
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    new FedgeClient({ baseUrl: "https://edge.test", apiKey: "k" });
    new FedgeClient({ baseUrl: "https://edge.test", apiKey: "k" });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(
      /lost on restart; pass `storage: asyncStorage\(\{ store: AsyncStorage \}\)`/,
    );
  });

  it("requires crypto.getRandomValues or a `random` option", () => {
    vi.stubGlobal("crypto", undefined);
    const make = (random?: (b: Uint8Array) => void) =>
      new FedgeClient({
        baseUrl: "https://edge.test",
        apiKey: "k",
        storage: asyncStorage({ store: fakeAsyncStorage() }),
        ...(random ? { random } : {}),
      });
    const err = (() => {
      try {
        make();
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err).toMatchObject({ param: "random" });
    expect((err as Error).message).toMatch(/react-native-get-random-values/);
    expect(() => make((b) => b.fill(7))).not.toThrow();
  });
});
