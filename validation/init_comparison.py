"""Other initialisations: theory vs simulation for LeCun and PyTorch's default init.

Claim (docs/theory.md section 9.1.5, rmthess.inits): with weight entries of variance
``sigma^2/fan_in`` (``lecun``: normal, ``sigma = 1``; ``torch-default``: nn.Linear's
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``sigma^2 = 1/3``) the limits of
``rmthess.theory.frobenius_limits(..., init=...)`` are the ones the simulation
(``rmthess.simulate.block_frobenius(..., init=...)``) converges to: the linear logits are
``N(0, sigma^2 I_C)``, the hidden pre-activations ``N(0, sigma^2 I_m)`` and ``V`` keeps its
entry law (hidden-mse's ratio depends on the kurtosis of that law:
``r^2 = (gamma/4 + 1/16) / ((gamma/2 + 1/4)(C + kappa - 1))``, kappa = 3 normal, 9/5
uniform).

Table, per case, C and init: the exact (or Monte-Carlo, with SE) theory ratio
``r = sqrt(F_off/F_diag)``, the simulated ratio (mean over trials, delta-method SE) and
their z-score; for torch-default rows also the "mismatch" of the simulation against the
LeCun theory (what one sees comparing a torch-default network with the paper's formulas).

Checks: ``|sim - theory| <= 4 SE + (8/d + 2/N) theory`` for the matching init (finite-size
allowance as in tests/simulate/test_sim_vs_theory.py). The mismatch column is reported, not checked.
``--out FILE.csv`` writes the table.
"""

from __future__ import annotations

import math
import sys
import time

from _common import entry, finish, parser

from rmthess.report.checks import check_close

INITS = ("lecun", "torch-default")


def _row(case, C, d, N, m, trials, seed, samples, init, lecun_theory):
    from rmthess.simulate.frobenius import block_frobenius
    from rmthess.theory import frobenius_limits

    kw = {"samples": samples, "seed": seed + 1} if case == "hidden-ce" else {}
    th = frobenius_limits(case, C, d / N, m, init=init, **kw)
    sim = block_frobenius(case, C, d, N, m, trials=trials, seed=seed, device="cpu", init=init)
    se = math.hypot(sim.ratio_se, th.ratio_se)
    row = dict(case=case, C=C, gamma=d / N, m=m, init=init, d=d, N=N, trials=trials,
               theory_ratio=th.ratio, theory_se=th.ratio_se, sim_ratio=sim.ratio,
               sim_se=sim.ratio_se, z=(sim.ratio - th.ratio) / se if se > 0 else math.nan,
               lecun_theory=math.nan, mismatch=math.nan, z_mismatch=math.nan)  # fmt: skip
    if init != "lecun":
        lt = lecun_theory
        se_l = math.hypot(sim.ratio_se, lt.ratio_se)
        row.update(lecun_theory=lt.ratio, mismatch=sim.ratio / lt.ratio - 1,
                   z_mismatch=(sim.ratio - lt.ratio) / se_l)  # fmt: skip
    return row, th


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="write the table to this CSV file")
    args = p.parse_args(argv)
    if args.out:
        from rmthess._outputs import check_out_file

        check_out_file(args.out, "--out")  # before any work
    if args.device not in ("auto", "cpu"):
        raise ValueError("init_comparison runs on the CPU only (--device auto or cpu)")
    t0 = time.perf_counter()
    if args.quick:
        Cs = (2, 5, 10)
        sizes = {"linear-ce": (128, 256, None, 12), "hidden-ce": (96, 192, 4, 24),
                 "hidden-mse": (96, 192, 4, 48)}  # fmt: skip
        samples = 100
    else:
        Cs = (2, 5, 10, 20, 50)
        sizes = {"linear-ce": (512, 1024, None, 24), "hidden-ce": (200, 400, 4, 256),
                 "hidden-mse": (200, 400, 4, 384)}  # fmt: skip
        samples = 1000
    rows, checks = [], []
    for case, (d, N, m, trials) in sizes.items():
        for C in Cs:
            lecun = None
            for init in INITS:
                row, th = _row(case, C, d, N, m, trials, args.seed, samples, init, lecun)
                if init == "lecun":
                    lecun = th
                rows.append(row)
                checks.append(
                    check_close(
                        "inits",
                        f"{case} C={C} init={init} ratio",
                        row["sim_ratio"],
                        row["theory_ratio"],
                        row["sim_se"],
                        row["theory_se"],
                        k=4.0,
                        rel_allowance=8 / d + 2 / N,
                        detail=f"d={d}, N={N}, trials={trials}",
                    )
                )
    _print(rows)
    if args.out:
        import pandas as pd

        from rmthess._outputs import write_file_atomic

        write_file_atomic(args.out, pd.DataFrame(rows).to_csv(index=False))
        print(f"wrote {args.out}")
    return finish(checks, t0)


def _print(rows):
    hdr = (f"{'case':<10} {'C':>3} {'gamma':>5} {'m':>2} {'init':<13} {'theory':>9} "
           f"{'+-':>7} {'sim':>9} {'+-':>7} {'z':>6} {'LeCun th':>9} {'mismatch':>8} "
           f"{'z_mis':>6}")  # fmt: skip
    print(hdr)
    for r in rows:
        m = "-" if r["m"] is None else str(r["m"])
        mis = (
            ""
            if math.isnan(r["mismatch"])
            else (f"{r['lecun_theory']:>9.5f} {100 * r['mismatch']:>7.1f}% {r['z_mismatch']:>6.1f}")
        )
        print(f"{r['case']:<10} {r['C']:>3} {r['gamma']:>5.2g} {m:>2} {r['init']:<13} "
              f"{r['theory_ratio']:>9.5f} {r['theory_se']:>7.1g} {r['sim_ratio']:>9.5f} "
              f"{r['sim_se']:>7.1g} {r['z']:>6.2f} {mis}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(entry(main))
