/**
 * @module
 * Bounded concurrency: run an async function over items with at most `limit` in flight (the demo keeps 16–32 HTTP
 * requests open at once, reusing keep-alive connections, instead of 1,000 at a time).
 */

/** Calls `fn` on every item with at most `limit` calls pending; resolves with the results in input order. */
export async function mapPool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer >= 1, got ${limit}`);
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
