"""Accuracy and speed of the output-ce Gram quadrature (issue 18).

For every (C, m) of the grid: the value and error estimate at tol = 1e-6, the actual error
against a reference two resolution levels finer, the wall time (one BLAS thread), and the
wall time of the nested Monte Carlo at its default sizes on the same point (where C <=
MC_MAX_C), measured in the same run. Writes a CSV and prints a table.

    python validation/output_ce_quadrature.py [--quick] [--out FILE.csv]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from threadpoolctl import threadpool_limits

from rmthess.theory.ce_quadrature import LEVELS, _output_ce_once, output_ce_quadrature
from rmthess.theory.frobenius import MC_MAX_C
from rmthess.theory.hidden_integrals import default_sizes, output_ce_mc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="m = 8 only, no Monte Carlo")
    ap.add_argument("--out", default="output_ce_quadrature.csv")
    args = ap.parse_args()
    ms = (8,) if args.quick else (3, 8, 32)
    Cs = (2, 5, 10, 100, 1000, 10_000, 10**7)
    rows = []
    with threadpool_limits(1, "blas"):
        for m in ms:
            for C in Cs:
                t0 = time.perf_counter()
                q = output_ce_quadrature(C, m, tol=1e-6)
                tq = time.perf_counter() - t0
                ref = _output_ce_once(C, m, 1.0, LEVELS[min(q.level + 2, len(LEVELS) - 1)])
                row = dict(
                    m=m, C=C, F_diag=q.F_diag, F_off=q.F_off,
                    est_rel_diag=q.F_diag_err / q.F_diag, est_rel_off=q.F_off_err / q.F_off,
                    err_rel_diag=abs(q.F_diag / ref[0] - 1), err_rel_off=abs(q.F_off / ref[1] - 1),
                    level=q.level, quad_s=tq,
                )  # fmt: skip
                if not args.quick and C <= MC_MAX_C:
                    n_V, n_g = default_sizes("output-ce", C, m)
                    t0 = time.perf_counter()
                    est = output_ce_mc(C, m, n_V, n_g, seed=0)
                    row["mc_s"] = time.perf_counter() - t0
                    Fd, Fo, sd, so, _ = est.summary(0.5)
                    row["mc_rel_se_off"] = so / Fo
                    row["mc_z_off"] = (Fo - q.F_off) / so
                rows.append(row)
                print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()})
    df = pd.DataFrame(rows)
    df.to_csv(args.out, index=False)
    print(df.to_string(float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
