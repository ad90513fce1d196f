// Preloaded with `node --import` to give a process a skewed clock: Date and Date.now run
// CLOCK_SKEW_MS ahead (or behind). Used to show that instances agree because time is the database's.
const skew = Number(process.env.CLOCK_SKEW_MS ?? 0);
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + skew);
    else super(...args);
  }
  static now() {
    return RealDate.now() + skew;
  }
}
globalThis.Date = SkewedDate;
