"""Theorem 2, hidden layer: one-hidden-layer ReLU net, CE and MSE loss.

Claim (paper Theorem 2, docs/theory.md section 4), blocks of the hidden-layer Hessian
(rows ``w_j`` of ``W``, m fixed, ``d, N -> inf``, ``gamma = d/N``):

- MSE: ``F_diag = (C/m)^2 (1 + 2/C)(gamma/2 + 1/4)``, ``F_off = (C/m^2)(gamma/4 + 1/16)``;
- CE:  ``F_diag -> (gamma/2 + 1/4)/m^2`` and ``C F_off -> gamma K1(m) + K2(m)`` as C grows
  (``m >= 3``);
- in both cases ``r(C) = sqrt(F_off/F_diag) ~ 1/sqrt(C)``.

Checks:
- simulated F_diag, F_off vs the fixed-C limits (closed form for MSE, Monte-Carlo
  integral with its own standard error for CE), within k = 4 combined SE + a finite-size
  allowance; the averages over V are heavy-tailed, hence many trials;
- hidden-mse closed form recomputed here from docs/theory.md vs rmthess.theory;
- fitted slopes of log r(C) against the exact theory's slope over the same C (4 SE + 5%),
  and (full run, C = 8..256) within 0.1 of the large-C rate -1/2.
"""

from __future__ import annotations

import sys
import time

from _common import entry, finish, parser, sim_vs_theory, slope_checks

from rmthess.cases import get_case
from rmthess.report.checks import check_close


def hidden_mse_closed_form(C: int, gamma: float, m: int) -> tuple[float, float]:
    """docs/theory.md section 4, hidden-mse (written out again here, independently)."""
    return (C / m) ** 2 * (1 + 2 / C) * (gamma / 2 + 0.25), C / m**2 * (gamma / 4 + 1 / 16)


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.simulate.fits import fit_decay
    from rmthess.theory import frobenius_limits

    m = 8
    if args.quick:
        Cs, d, N, trials, rel = (4, 32), 64, 128, 48, 0.10
        fit_Cs, fit_d, fit_N, fit_trials, tol = (8, 16, 32, 64), 64, 128, 24, 0.15
    else:
        Cs, d, N, trials, rel = (8, 32, 128), 256, 512, 128, 0.05
        fit_Cs, fit_d, fit_N, fit_trials, tol = (8, 16, 32, 64, 128, 256), 256, 512, 64, 0.1
    gamma = d / N
    tkw = {"samples": 60} if args.quick else {}  # Monte-Carlo theory: fewer V draws
    checks = []
    for case in ("hidden-mse", "hidden-ce"):
        c, _ = sim_vs_theory(
            case,
            Cs,
            d,
            N,
            m,
            trials,
            args.seed,
            args.device,
            k=4.0,
            rel_allowance=rel,
            section="theorem2-h",
            theory_kwargs=tkw if get_case(case).monte_carlo_theory else {},
        )
        checks += c
    for C in (2, 10, 1000):
        fd, fo = hidden_mse_closed_form(C, gamma, m)
        lim = frobenius_limits("hidden-mse", C, gamma, m=m)
        checks.append(
            check_close(
                "theorem2-h",
                f"hidden-mse C={C} F_diag: closed form",
                lim.F_diag,
                fd,
                rel_allowance=1e-12,
                detail="docs/theory.md formula",
            )
        )
        checks.append(
            check_close(
                "theorem2-h",
                f"hidden-mse C={C} F_off: closed form",
                lim.F_off,
                fo,
                rel_allowance=1e-12,
                detail="docs/theory.md formula",
            )
        )
    for i, case in enumerate(("hidden-mse", "hidden-ce")):
        fit = fit_decay(
            case,
            fit_Cs,
            fit_d,
            fit_N,
            m=m,
            trials=fit_trials,
            seed=args.seed + 100 * (i + 1),
            n_boot=300,
            device=args.device,
        )
        checks += slope_checks(
            case,
            fit,
            m,
            args.seed,
            "theorem2-h",
            asymptotic_tol=None if args.quick else tol,
            theory_kwargs=tkw if get_case(case).monte_carlo_theory else {},
        )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
