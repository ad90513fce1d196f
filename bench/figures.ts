import { round } from './stats.js';

/** A ratio the bench checks against its target (never a timed test: it only reports). */
export interface Target {
  figure: string;
  mine: number;
  reference: string;
  theirs: number;
  /** The ratio must be at least this. */
  atLeast: number;
}

/** The figures of a run, printed one a line at the end (`name: value`), and the targets. */
export class Figures {
  private readonly lines: [string, string][] = [];
  private readonly targets: Target[] = [];

  add(name: string, value: number | string, digits = 2): void {
    this.lines.push([name, typeof value === 'number' ? String(round(value, digits)) : value]);
  }

  /** Records a target; its ratio is also a figure line (`ratio-<name>`). */
  target(name: string, target: Target): void {
    this.targets.push(target);
    this.add(`ratio-${name}`, target.mine / target.theirs, 3);
  }

  printTargets(): void {
    if (this.targets.length === 0) return;
    console.log('\n== targets (medians of the repeats, one run) ==');
    console.table(
      this.targets.map((t) => {
        const ratio = t.mine / t.theirs;
        return {
          figure: t.figure,
          'nest-otp': round(t.mine, 1),
          reference: t.reference,
          'reference value': round(t.theirs, 1),
          // Three digits: at two, a miss by a hair (0.398 against 0.4) would print as met.
          ratio: round(ratio, 3),
          target: `>= ${t.atLeast}`,
          met: ratio >= t.atLeast ? 'yes' : 'NO',
        };
      }),
    );
    const missed = this.targets.filter((t) => t.mine / t.theirs < t.atLeast).length;
    this.add('targets-met', `${this.targets.length - missed}/${this.targets.length}`);
  }

  print(): void {
    console.log('\n== figures (medians) ==');
    for (const [name, value] of this.lines) console.log(`${name}: ${value}`);
  }
}
