import { describe, expect, it } from '@jest/globals';
import { StatementBatcher } from './statement-batcher.js';

/** A batch run the test finishes by hand, so what is in flight is known at every step. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A batcher whose batches the test sees (`batches`) and finishes by hand (`runs`). */
function heldBatcher<Result>(limits: { maxInFlight: number; maxBatch: number }) {
  const batches: number[][] = [];
  const runs: ReturnType<typeof deferred<Result[]>>[] = [];
  const batcher = new StatementBatcher<number, Result>(
    (items) => {
      batches.push(items);
      const run = deferred<Result[]>();
      runs.push(run);
      return run.promise;
    },
    () => Promise.reject(new Error('not expected')),
    limits,
  );
  return { batcher, batches, runs };
}

describe('StatementBatcher', () => {
  it('runs a lone call at once, and the calls made meanwhile together in the next batch', async () => {
    const { batcher, batches, runs } = heldBatcher<string>({ maxInFlight: 1, maxBatch: 64 });
    const first = batcher.submit(1);
    expect(batches).toEqual([[1]]);
    const rest = [2, 3, 4].map((n) => batcher.submit(n));
    expect(batches).toEqual([[1]]);
    runs[0]?.resolve(['one']);
    await expect(first).resolves.toBe('one');
    await tick();
    expect(batches).toEqual([[1], [2, 3, 4]]);
    runs[1]?.resolve(['two', 'three', 'four']);
    await expect(Promise.all(rest)).resolves.toEqual(['two', 'three', 'four']);
  });

  it('puts at most maxBatch items in a batch, and runs up to maxInFlight batches at once', async () => {
    const { batcher, batches, runs } = heldBatcher<number>({ maxInFlight: 2, maxBatch: 2 });
    const calls = [1, 2, 3, 4, 5, 6, 7].map((n) => batcher.submit(n));
    // Two alone (two may be in flight), then the waiting ones two by two.
    expect(batches).toEqual([[1], [2]]);
    runs[0]?.resolve([10]);
    await tick();
    expect(batches).toEqual([[1], [2], [3, 4]]);
    runs[1]?.resolve([20]);
    runs[2]?.resolve([30, 40]);
    await tick();
    expect(batches).toEqual([[1], [2], [3, 4], [5, 6], [7]]);
    runs[3]?.resolve([50, 60]);
    runs[4]?.resolve([70]);
    await expect(Promise.all(calls)).resolves.toEqual([10, 20, 30, 40, 50, 60, 70]);
  });

  it('runs the items of a failed batch one by one, so only the refused one fails', async () => {
    const alone: number[] = [];
    const gate = deferred<number[]>();
    let batchesRun = 0;
    const batcher = new StatementBatcher<number, number>(
      (items) => {
        batchesRun += 1;
        // The first (lone) call passes; the batch after it holds the item the database refuses.
        return batchesRun === 1 ? gate.promise : Promise.reject(new Error(`batch ${items.join()}`));
      },
      (item) => {
        alone.push(item);
        return item === 3 ? Promise.reject(new Error('refused 3')) : Promise.resolve(item * 10);
      },
      { maxInFlight: 1, maxBatch: 64 },
    );
    const first = batcher.submit(1);
    const others = [2, 3, 4].map((n) => batcher.submit(n));
    gate.resolve([10]);
    await expect(first).resolves.toBe(10);
    const settled = await Promise.allSettled(others);
    expect(alone).toEqual([2, 3, 4]);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : String(s.reason)))).toEqual([
      20,
      'Error: refused 3',
      40,
    ]);
  });

  it('fails a lone call with its own error, without running it again', async () => {
    let alone = 0;
    const batcher = new StatementBatcher<number, number>(
      () => Promise.reject(new Error('database gone')),
      () => {
        alone += 1;
        return Promise.resolve(0);
      },
      { maxInFlight: 1, maxBatch: 64 },
    );
    await expect(batcher.submit(1)).rejects.toThrow('database gone');
    expect(alone).toBe(0);
    // The failure freed its slot: the next call runs.
    await expect(batcher.submit(2)).rejects.toThrow('database gone');
  });
});
