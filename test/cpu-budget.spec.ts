import { describe, expect, it } from '@jest/globals';
import { cpuParts, targetBudget } from '../bench/cpu-budget.js';

// Medians of a full bench run (bench/README.md, round 10's Results), fetch client.
const bare = { rps: 1893.9, serverMs: 0.199, postgresMs: 0.265, clientPct: 79 };
const floor = { rps: 1699.9, serverMs: 0.352, postgresMs: 0.268, clientPct: 72 };
const verify = { rps: 1356.7, serverMs: 0.489, postgresMs: 0.291, clientPct: 62 };

describe('the CPU budget of a target against the bare service (bench)', () => {
  it("spreads the client's share of a core over the run's requests", () => {
    const parts = cpuParts(bare);
    expect(parts.clientMs).toBeCloseTo(790 / 1893.9, 6);
    expect(parts.totalMs).toBeCloseTo(0.199 + 0.265 + 790 / 1893.9, 6);
  });

  it('caps the sum at the bare one over the target and takes the floor off it', () => {
    const budget = targetBudget(verify, bare, floor, 0.8);
    expect(budget.allowedMs).toBeCloseTo(0.88113 / 0.8, 4);
    expect(budget.floorMs).toBeCloseTo(1.04355, 4);
    expect(budget.leftMs).toBeCloseTo(0.05786, 4);
    expect(budget.overFloor.serverMs).toBeCloseTo(0.137, 6);
    expect(budget.overFloor.postgresMs).toBeCloseTo(0.023, 6);
    expect(budget.overFloor.clientMs).toBeCloseTo(620 / 1356.7 - 720 / 1699.9, 6);
    expect(budget.overFloor.totalMs).toBeCloseTo(0.19344, 4);
  });

  it('predicts the ratio from the sums, next to the measured one', () => {
    const budget = targetBudget(verify, bare, floor, 0.8);
    expect(budget.measured).toBeCloseTo(1356.7 / 1893.9, 6);
    expect(budget.predicted).toBeCloseTo(0.71232, 4);
    // A path as cheap as the floor would leave the whole budget unspent.
    expect(targetBudget(floor, bare, floor, 0.8).overFloor.totalMs).toBe(0);
  });
});
