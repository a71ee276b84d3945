// Number formatting shared by the terminal output and the HTML pages.

/** An error or tolerance in exponent notation: `2.38e-7`, `0` for zero, `—` for null or NaN, `∞` for infinity. */
export function sci(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '−∞';
  return n === 0 ? '0' : n.toExponential(2);
}
