/** How far a `StatementBatcher` coalesces. */
export interface StatementBatcherLimits {
  /** Batches running at once; calls arriving meanwhile wait and go together in the next one. */
  maxInFlight: number;
  /** Items in one batch at most. */
  maxBatch: number;
}

interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

/**
 * Coalesces concurrent calls of one statement into one multi-row statement: a call goes at once
 * while fewer than `maxInFlight` batches run, so a lone call waits for nothing, and the calls that
 * arrive while they run go together in the next batch, one round trip and one commit for all of
 * them (group commit, done by the client). Under load that takes the statement's fixed cost
 * (protocol, executor start-up, commit) off most calls; at one call at a time nothing changes.
 *
 * A batch that fails runs its items again one by one (`runOne`), when it held more than one: a
 * failed statement changed nothing, and one item the database refuses must not fail the others.
 */
export class StatementBatcher<Item, Result> {
  private readonly waiting: Waiting<Item, Result>[] = [];
  private inFlight = 0;

  constructor(
    /** Runs a batch: one result an item, in the items' order. */
    private readonly runBatch: (items: Item[]) => Promise<Result[]>,
    /** Runs one item alone (after a batch failed). */
    private readonly runOne: (item: Item) => Promise<Result>,
    private readonly limits: StatementBatcherLimits,
  ) {}

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.inFlight < this.limits.maxInFlight) this.flush();
    });
  }

  private flush(): void {
    const batch = this.waiting.splice(0, this.limits.maxBatch);
    if (batch.length === 0) return;
    this.inFlight += 1;
    void this.run(batch).finally(() => {
      this.inFlight -= 1;
      if (this.waiting.length > 0) this.flush();
    });
  }

  private async run(batch: Waiting<Item, Result>[]): Promise<void> {
    let results: Result[];
    try {
      results = await this.runBatch(batch.map((w) => w.item));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      await Promise.all(
        batch.map((w) =>
          this.runOne(w.item).then(
            (result) => w.resolve(result),
            (oneError: unknown) => w.reject(oneError),
          ),
        ),
      );
      return;
    }
    batch.forEach((w, index) => w.resolve(results[index] as Result));
  }
}
