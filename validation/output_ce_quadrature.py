"""Exact output-ce limits by the Gram quadrature: accuracy and speed (issue 18).

Claim (docs/theory.md section 4, "Deterministic Gram quadrature"): the quadrature gives
``F_diag`` and ``F_off`` of output-ce to a relative tolerance of 1e-6, with an error
estimate that covers the actual error, at every C (2 .. 1e7) and hidden width m.

Checks, for every (m, C) of the grid:
- the reported relative error estimate is at most 1e-6 (both quantities);
- the actual error against a reference two resolution levels finer is at most the
  estimate (where the ladder has a finer level);
- full run: nested Monte Carlo at its default sizes (C <= MC_MAX_C, m >= 8, where its
  standard error is honest; at m = 3 it is not, see MonteCarloTailWarning) within 4 SE;
- full run: the large-C constants, ``C^2 F_diag -> K3`` and ``C^4 F_off -> K4`` at m = 8
  within 1e-5 at C = 1e7 (the O(1/C) correction is ~2e-6).
The table (value, estimate, actual error, seconds of the quadrature and of the Monte Carlo
on the same point) goes to --out (CSV). --quick: m = 8, C = 2, 10, 1e4, no Monte Carlo.
"""

from __future__ import annotations

import sys
import time

from _common import entry, finish, parser

from rmthess.report.checks import check_abs, check_close, check_upper


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="CSV of the grid (default: none)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    import pandas as pd

    from rmthess.theory.asymptotics import output_ce_K
    from rmthess.theory.ce_quadrature import LEVELS, _output_ce_once, output_ce_quadrature
    from rmthess.theory.frobenius import MC_MAX_C
    from rmthess.theory.hidden_integrals import default_sizes, output_ce_mc

    ms = (8,) if args.quick else (3, 8, 32)
    Cs = (2, 10, 10_000) if args.quick else (2, 5, 10, 100, 1000, 10_000, 10**7)
    rows, checks = [], []
    for m in ms:
        for C in Cs:
            t = time.perf_counter()
            q = output_ce_quadrature(C, m, tol=1e-6)
            tq = time.perf_counter() - t
            finer = min(q.level + (1 if args.quick else 2), len(LEVELS) - 1)
            ref = _output_ce_once(C, m, 1.0, LEVELS[finer]) if finer > q.level else None
            row = dict(m=m, C=C, F_diag=q.F_diag, F_off=q.F_off, level=q.level, quad_s=tq)
            for k, (val, err) in enumerate(((q.F_diag, q.F_diag_err), (q.F_off, q.F_off_err))):
                name = ("diag", "off")[k]
                row[f"est_rel_{name}"] = err / val
                checks.append(
                    check_upper(
                        "gram-quadrature", f"m={m} C={C:g} F_{name}: relative error estimate",
                        err / val, 1e-6, f"ladder level {q.level}",
                    )
                )  # fmt: skip
                if ref is not None:
                    row[f"err_rel_{name}"] = abs(val / ref[k] - 1)
                    checks.append(
                        check_upper(
                            "gram-quadrature",
                            f"m={m} C={C:g} F_{name}: actual error <= estimate",
                            abs(val - ref[k]), err, f"reference: level {finer}",
                        )
                    )  # fmt: skip
            if not args.quick and C <= MC_MAX_C and m >= 8:
                n_V, n_g = default_sizes("output-ce", C, m)
                t = time.perf_counter()
                est = output_ce_mc(C, m, n_V, n_g, seed=args.seed)
                row["mc_s"] = time.perf_counter() - t
                Fd, Fo, sd, so, _ = est.summary(0.5)
                row["mc_rel_se_off"] = so / Fo
                for name, mc, se, val in (("diag", Fd, sd, q.F_diag), ("off", Fo, so, q.F_off)):
                    checks.append(
                        check_close(
                            "gram-quadrature", f"m={m} C={C:g} F_{name}: Monte Carlo vs quadrature",
                            mc, val, se, 0.0, k=4.0, detail=f"{n_V} V draws",
                        )
                    )  # fmt: skip
            rows.append(row)
            print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()})
    if not args.quick:
        K3, K4 = output_ce_K(8)
        q = output_ce_quadrature(1e7, 8)
        checks.append(
            check_abs(
                "gram-quadrature", "m=8 C=1e7: C^2 F_diag / K3", q.F_diag * 1e14 / K3, 1, 1e-5
            )
        )
        checks.append(
            check_abs("gram-quadrature", "m=8 C=1e7: C^4 F_off / K4", q.F_off * 1e28 / K4, 1, 1e-5)
        )
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    print(df.to_string(float_format=lambda x: f"{x:.3g}"))
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
