"""Theorem 2, output layer: one-hidden-layer ReLU net, CE and MSE loss.

Claim (paper Theorem 2, docs/theory.md section 4), m x m blocks of the output-layer Hessian
(rows ``v_k`` of ``V``; no 1/d normalization: the blocks converge to fixed matrices):

- MSE: exactly block diagonal, ``F_diag = ||E[h h^T]||_F^2 = m/4 + m(m-1)/(4 pi^2)``;
- CE:  ``C^2 F_diag -> K3(m)``, ``C^4 F_off -> K4(m)``, so ``r(C) ~ 1/C``.

Checks:
- simulated F_diag (and F_off for CE) vs the fixed-C limits within k = 4 combined SE +
  a finite-size allowance;
- output-mse F_diag against the closed form written out here;
- the fitted slope of log r(C) for output-ce against the exact theory's slope over the
  same C (4 SE + 5%), and (full run, C = 8..256) within 0.1 of the large-C rate -1.

The output blocks are m x m: gamma plays no role, and their finite-size bias is
O(m^2/N + m^2/d) (a (1/N) variance term and the fluctuation of W W^T around I_m; about
13% at d = 64, N = 128), so this script uses N = 1024 to 2048.
"""

from __future__ import annotations

import math
import sys
import time

from _common import entry, finish, parser, sim_vs_theory, slope_checks

from rmthess.report.checks import check_abs, check_close


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.simulate.fits import fit_decay
    from rmthess.simulate.frobenius import block_frobenius
    from rmthess.theory import frobenius_limits

    m = 8
    if args.quick:
        Cs, d, N, trials, rel = (4, 32), 128, 1024, 16, 0.10
        fit_Cs, fit_d, fit_N, fit_trials, tol = (8, 16, 32, 64), 128, 1024, 8, 0.15
    else:
        Cs, d, N, trials, rel = (8, 32, 128, 512), 256, 2048, 32, 0.05
        fit_Cs, fit_d, fit_N, fit_trials, tol = (8, 16, 32, 64, 128, 256), 256, 2048, 16, 0.1
    gamma = d / N
    tkw: dict = {}  # the exact Gram quadrature (about 1 s per C at m = 8)
    checks, _ = sim_vs_theory(
        "output-ce",
        Cs,
        d,
        N,
        m,
        trials,
        args.seed,
        args.device,
        k=4.0,
        rel_allowance=rel,
        section="theorem2-o",
        theory_kwargs=tkw,
    )
    exact = m / 4 + m * (m - 1) / (4 * math.pi**2)
    lim = frobenius_limits("output-mse", Cs[0], gamma, m=m)
    checks.append(
        check_close(
            "theorem2-o",
            "output-mse F_diag: theory vs m/4+m(m-1)/(4pi^2)",
            lim.F_diag,
            exact,
            rel_allowance=1e-12,
            detail="closed form",
        )
    )
    sim = block_frobenius(
        "output-mse", Cs[0], d, N, m=m, trials=trials, seed=args.seed + 50, device=args.device
    )
    checks.append(
        check_close(
            "theorem2-o",
            f"output-mse C={Cs[0]} F_diag: simulated",
            sim.F_diag,
            exact,
            sim.F_diag_se,
            k=4.0,
            rel_allowance=rel,
            detail=f"d={d}, N={N}, trials={trials}",
        )
    )
    checks.append(
        check_abs(
            "theorem2-o",
            "output-mse F_off: simulated (exact zero)",
            float(abs(sim.F_off_trials).max()),
            0.0,
            1e-12,
            "block diagonal",
        )
    )
    fit = fit_decay(
        "output-ce",
        fit_Cs,
        fit_d,
        fit_N,
        m=m,
        trials=fit_trials,
        seed=args.seed + 100,
        n_boot=300,
        device=args.device,
    )
    checks += slope_checks(
        "output-ce",
        fit,
        m,
        args.seed,
        "theorem2-o",
        asymptotic_tol=None if args.quick else tol,
        theory_kwargs=tkw,
    )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
