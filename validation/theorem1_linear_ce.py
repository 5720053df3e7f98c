"""Theorem 1: linear model, CE loss: Frobenius norms of the Hessian blocks.

Claim (paper Theorem 1, docs/theory.md section 4): for ``W`` with LeCun init and Gaussian
data, ``d, N -> inf`` with ``gamma = d/N`` fixed,

    (1/d)||H_kk||_F^2 -> F_diag(C) = gamma E[(p_1(1-p_1))^2] + (E[p_1(1-p_1)])^2,
    (1/d)||H_kl||_F^2 -> F_off(C)  = gamma E[(p_1 p_2)^2]     + (E[p_1 p_2])^2,

``p = softmax(z)``, ``z ~ N(0, I_C)``; as ``C -> inf``: ``C^2 F_diag -> 1 + e gamma``,
``C^4 F_off -> 1 + e^2 gamma``, so ``r(C) = sqrt(F_off/F_diag) ~ 1/C``.

Checks:
- simulated F_diag, F_off (Gram route, mean +- SE over trials) vs the exact fixed-C limit
  (quadrature), within k = 4 SE + a finite-size allowance (O(1/d + 1/N) bias);
- the exact limit at C = 1e6 against the closed-form large-C constants (two routes);
- the fitted slope of log r(C) on log C against the exact theory's slope over the same C
  (4 SE + 5%), and (full run, C = 8..256) within 0.1 of the large-C rate -1.
"""

from __future__ import annotations

import math
import sys
import time

from _common import entry, finish, parser, sim_vs_theory, slope_checks

from rmthess.report.checks import check_close


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.simulate.fits import fit_decay
    from rmthess.theory import frobenius_limits

    if args.quick:
        Cs, d, N, trials, rel = (4, 16, 64), 64, 128, 12, 0.10
        fit_Cs, fit_d, fit_N, fit_trials, tol = (8, 16, 32, 64), 64, 128, 8, 0.15
    else:
        Cs, d, N, trials, rel = (2, 8, 32, 128, 512), 256, 512, 32, 0.05
        fit_Cs, fit_d, fit_N, fit_trials, tol = (8, 16, 32, 64, 128, 256), 256, 512, 16, 0.1
    gamma = d / N
    checks, rows = sim_vs_theory(
        "linear-ce",
        Cs,
        d,
        N,
        None,
        trials,
        args.seed,
        args.device,
        k=4.0,
        rel_allowance=rel,
        section="theorem1",
    )
    # the exact quadrature at huge C against the closed-form asymptote
    Cbig = 10**6
    lim = frobenius_limits("linear-ce", Cbig, gamma)
    checks.append(
        check_close(
            "theorem1",
            "C^2 F_diag at C=1e6 vs 1+e*gamma",
            Cbig**2 * lim.F_diag,
            1 + math.e * gamma,
            rel_allowance=1e-3,
            detail="corrections O(log C / C) at C = 1e6",
        )
    )
    checks.append(
        check_close(
            "theorem1",
            "C^4 F_off at C=1e6 vs 1+e^2*gamma",
            Cbig**4 * lim.F_off,
            1 + math.e**2 * gamma,
            rel_allowance=1e-3,
            detail="corrections O(log C / C) at C = 1e6",
        )
    )
    fit = fit_decay(
        "linear-ce",
        fit_Cs,
        fit_d,
        fit_N,
        trials=fit_trials,
        seed=args.seed + 100,
        n_boot=300,
        device=args.device,
    )
    checks += slope_checks(
        "linear-ce", fit, None, args.seed, "theorem1", asymptotic_tol=None if args.quick else tol
    )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
