/**
 * @module
 * Reads several async sources at once and yields each item as soon as its source produces it: the updates of a
 * sharded round come from S independent listings, and reading them one after another would leave S − 1 idle.
 * At most one item per source is read ahead, so memory stays S items whatever the sources hold.
 */

/** Every item of every source, in the order they arrive; a source's failure is thrown at once. */
export async function* interleave<T>(sources: readonly AsyncIterator<T>[]): AsyncGenerator<T> {
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<T> }>>();
  const pull = (index: number) =>
    pending.set(
      index,
      sources[index]!.next().then((result) => ({ index, result })),
    );
  sources.forEach((_, index) => pull(index));
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(index);
        continue;
      }
      pull(index);
      yield result.value;
    }
  } finally {
    // A consumer that stops early (or a failure) releases every source still open.
    for (const p of pending.values()) p.catch(() => undefined);
    await Promise.allSettled(sources.map((s) => s.return?.()));
  }
}
