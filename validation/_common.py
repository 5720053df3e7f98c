"""Shared helpers of the validation scripts (not a claim by itself).

Every script: ``python validation/NAME.py [--quick] [--seed S] [--device auto|cpu|cuda]``
prints measured vs predicted for each check and exits 1 if any check fails (2 on bad
usage). The checks and their tolerance rules are :mod:`rmthess.report.checks`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from rmthess.report.checks import Check, check_close, exit_code


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc,
    )
    p.add_argument("--quick", action="store_true", help="small sizes (seconds; used by the tests)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    return p


def sim_vs_theory(
    case: str,
    Cs,
    d: int,
    N: int,
    m,
    trials: int,
    seed: int,
    device,
    k: float,
    rel_allowance: float,
    section: str,
    theory_kwargs=None,
) -> tuple[list[Check], list[dict]]:
    """Simulated F_diag, F_off (mean +- SE over ``trials``) vs the exact limits at each C.

    Check rule (per C and quantity): ``|sim - theory| <= k SE + rel_allowance |theory|``;
    see :func:`rmthess.report.checks.check_close`.
    """
    from rmthess.simulate.frobenius import block_frobenius
    from rmthess.theory import frobenius_limits

    checks, rows = [], []
    for C in Cs:
        sim = block_frobenius(case, C, d, N, m=m, trials=trials, seed=seed, device=device)
        th = frobenius_limits(case, C, d / N, m=m, seed=seed, **(theory_kwargs or {}))
        for q in ("F_diag", "F_off"):
            s_mean = getattr(sim, q)
            s_se = getattr(sim, f"{q}_se")
            t_val = getattr(th, q)
            t_se = float(getattr(th, f"{q}_se", 0.0) or 0.0)
            checks.append(
                check_close(
                    section,
                    f"{case} C={C} {q}",
                    s_mean,
                    t_val,
                    s_se,
                    t_se,
                    k=k,
                    rel_allowance=rel_allowance,
                    detail=f"d={d}, N={N}, trials={trials}",
                )
            )
            rows.append(
                dict(
                    case=case,
                    C=C,
                    quantity=q,
                    sim=s_mean,
                    sim_se=s_se,
                    theory=t_val,
                    theory_se=t_se,
                )
            )
    return checks, rows


def finish(checks: list[Check], t0: float) -> int:
    """Print the table and the verdict; return the exit status (0 pass, 1 fail)."""
    code = exit_code(checks)
    print(f"({time.perf_counter() - t0:.1f} s)")
    sys.stdout.flush()
    return code


def entry(main) -> int:
    """Run ``main()``; bad usage (ValueError/TypeError, e.g. ``--device cuda`` without
    CUDA) prints one line and returns 2."""
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(
            limits=1, user_api="blas"
        ):  # numpy BLAS threads oversubscribe 2 loaded cores
            return main()
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def isclose(a: float, b: float, rel: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rel * max(abs(a), abs(b))


def slope_checks(
    case: str, fit, m, seed: int, section: str, asymptotic_tol=None, theory_kwargs=None
) -> list[Check]:
    """Checks of a :class:`rmthess.simulate.fits.DecayFit`.

    1. The fitted slope against the OLS slope of the exact fixed-C limits over the same C
       (Monte-Carlo theory: its SE propagated through the OLS weights), within 4 combined
       SE + 5% (finite-(d, N) tilt of the log-log line).
    2. If ``asymptotic_tol`` is given: against the large-C rate (-1 or -1/2) within it.

    ``theory_kwargs`` go to :func:`rmthess.theory.frobenius_limits` (e.g. ``samples`` of
    the Monte-Carlo cases; their standard error enters the tolerance).
    """
    import numpy as np

    from rmthess.report.checks import check_abs
    from rmthess.simulate.fits import ols_slope
    from rmthess.theory import frobenius_limits

    Cs = np.asarray(fit.Cs, dtype=float)
    kw = theory_kwargs or {}
    lims = [frobenius_limits(case, int(C), fit.d / fit.N, m=m, seed=seed, **kw) for C in Cs]
    r = np.array([lim.ratio for lim in lims])
    rse = np.array([lim.ratio_se for lim in lims])
    logC = np.log(Cs)
    th_slope = float(ols_slope(logC, np.log(r))[0])
    w = (logC - logC.mean()) / ((logC - logC.mean()) ** 2).sum()
    th_se = float(np.sqrt(np.sum((w * rse / r) ** 2)))
    ci = f"95% CI [{fit.slope_ci[0]:.3f}, {fit.slope_ci[1]:.3f}], d={fit.d}, N={fit.N}"
    out = [
        check_close(
            section,
            f"{case} slope vs exact theory, C={fit.Cs[0]}..{fit.Cs[-1]}",
            fit.slope,
            th_slope,
            fit.slope_se,
            th_se,
            k=4.0,
            rel_allowance=0.05,
            detail=ci,
        )
    ]
    if asymptotic_tol is not None:
        out.append(
            check_abs(
                section,
                f"{case} slope vs large-C rate {fit.predicted_slope:g}",
                fit.slope,
                fit.predicted_slope,
                asymptotic_tol,
                f"{ci}; exact theory over these C: {th_slope:.3f}",
            )
        )
    return out


def gram_means(X, a, diag) -> tuple[float, float]:
    """Mean ``(1/d)||H_b||_F^2`` over the diagonal and over the off-diagonal blocks ``b`` of
    ``H_b = (1/N) sum_i a_ib x_i x_i^T`` (``a`` (N, blocks), ``diag`` a boolean mask over the
    blocks), by the Gram route ``a_b^T (X X^T)^(o2) a_b / (d N^2)``: the simulations' block
    norms, without forming a ``d x d`` block."""
    import numpy as np

    N, d = X.shape
    vals = np.sum(a * (((X @ X.T) ** 2) @ a), 0) / (d * N * N)
    return float(vals[diag].mean()), float(vals[~diag].mean())


def check_out_csv(path) -> None:
    """``--out FILE.csv`` checked before any work (nothing to do when ``path`` is None)."""
    if path:
        from rmthess._outputs import check_out_file

        check_out_file(path, suffix=".csv")


def write_rows_csv(path, rows: list[dict]) -> None:
    """The records ``rows`` as a CSV table at ``path``, written atomically (None: nothing)."""
    if path:
        import pandas as pd

        from rmthess._outputs import write_file_atomic

        write_file_atomic(path, pd.DataFrame(rows).to_csv(index=False))
