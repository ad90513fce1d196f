import { describe, expect, it } from '@jest/globals';
import { SentDestinations } from './sent-destinations.js';

describe('SentDestinations', () => {
  it('knows the destinations added, and no other', () => {
    const sent = new SentDestinations(10);
    sent.add('a@x.test');
    sent.add('+14155550100');
    expect(sent.has('a@x.test')).toBe(true);
    expect(sent.has('+14155550100')).toBe(true);
    expect(sent.has('b@x.test')).toBe(false);
  });

  it('keeps one entry a destination, however often it is added', () => {
    const sent = new SentDestinations(10);
    for (let i = 0; i < 5; i += 1) sent.add('a@x.test');
    expect(sent.size).toBe(1);
  });

  it('holds at most its capacity, the oldest going first', () => {
    const sent = new SentDestinations(3);
    for (const d of ['a', 'b', 'c', 'd']) sent.add(`${d}@x.test`);
    expect(sent.size).toBe(3);
    expect(sent.has('a@x.test')).toBe(false);
    expect(['b', 'c', 'd'].every((d) => sent.has(`${d}@x.test`))).toBe(true);
  });

  it('with a capacity of 0, knows nothing', () => {
    const sent = new SentDestinations(0);
    sent.add('a@x.test');
    expect(sent.has('a@x.test')).toBe(false);
    expect(sent.size).toBe(0);
  });
});
