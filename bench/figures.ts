import { round } from './stats.js';

/** The figures of a run, printed one a line at the end (`name: value`). */
export class Figures {
  private readonly lines: [string, string][] = [];

  add(name: string, value: number | string, digits = 2): void {
    this.lines.push([name, typeof value === 'number' ? String(round(value, digits)) : value]);
  }

  print(): void {
    console.log('\n== figures (medians) ==');
    for (const [name, value] of this.lines) console.log(`${name}: ${value}`);
  }
}
