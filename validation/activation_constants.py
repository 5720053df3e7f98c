"""Large-C constants for any activation against the fixed-C limits at growing C (issue 20).

Claim tested: ``asymptotic_constants(case, gamma, m, activation=...)``
(:mod:`rmthess.theory.activation_asymptotics`: the exponential tilt of a row of V, 1-D and 2-D
quadratures) gives the C -> inf behaviour ``F ~ A C^-p`` of the fixed-C limits
``frobenius_limits(case, C, gamma, m, activation=...)`` (Monte Carlo over networks with SEs,
independent of the tilt argument).

Cells: tanh and GELU; hidden-ce, hidden-mse and output-ce; m = 16, gamma = 0.5, LeCun init;
C = 100, 1000, 10000 (``--quick``: tanh, m = 8, C = 100, 1000, fewer networks). Printed:
``F C^p / A`` with its SE per C (-> 1). Checks at the largest C: within 3 SE + 5 % of 1 (the
approach is ``O(C^-1/2)``: ReLU's hidden-ce ``F_off C / A`` is 0.94 at C = 10^3, 0.99 at 10^4,
docs/theory.md 9.4).
"""

from __future__ import annotations

import sys
import time

from _common import check_out_csv, entry, finish, parser, write_rows_csv

from rmthess.report.checks import check_close

SECTION = "activation-constants"


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="write the table to this CSV file")
    args = p.parse_args(argv)
    check_out_csv(args.out)
    from rmthess.theory import asymptotic_constants, frobenius_limits

    t0 = time.perf_counter()
    q = args.quick
    m, gamma = (8, 0.5) if q else (16, 0.5)
    Cs = (100, 1000) if q else (100, 1000, 10_000)
    samples, inner = (100, 64) if q else (400, 256)
    acts = ("tanh",) if q else ("tanh", "gelu")
    checks, rows = [], []
    for act in acts:
        for case in ("hidden-ce", "hidden-mse", "output-ce"):
            c = asymptotic_constants(case, gamma, m, activation=act)
            for C in Cs:
                lim = frobenius_limits(case, C, gamma, m, activation=act, samples=samples,
                                       inner=inner, seed=args.seed)  # fmt: skip
                for qty, A, pw in (("F_diag", c.A_diag, c.p_diag), ("F_off", c.A_off, c.p_off)):
                    scale = C**pw / A
                    val, se = getattr(lim, qty) * scale, getattr(lim, qty + "_se") * scale
                    rows.append(dict(activation=act, case=case, C=C, quantity=qty, A=A, p=pw,
                                     normalised=val, normalised_se=se))  # fmt: skip
                    print(f"{act:<5} {case:<10} {qty:<6} C={C:<6} F C^p / A = {val:.4f} +- "
                          f"{se:.4f}")  # fmt: skip
                    if C == Cs[-1]:
                        checks.append(check_close(
                            SECTION, f"{act} {case} {qty}: F C^p / A at C={C}", val, 1.0, se,
                            k=3.0, rel_allowance=0.05, detail=f"A={A:.6g}, p={pw:g}",
                        ))  # fmt: skip
    write_rows_csv(args.out, rows)
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
