"""Depth study at scale: every layer's block ratio over depth 1-4, widths 8-512 (uniform,
bottleneck, expanding, contracting), C = 2-1000, ReLU / tanh / GELU; the fitted dependence
on C and on each later layer's width, with 95 % CIs; theory against measurement on the
largest cells the 2-core machine measures.

Claim tested: the paper's fan-out conjecture ("the block-diagonal structure will be primarily
driven by the number of output neurons in each layer, the fan-out dimension"; issue 20,
docs/theory.md section 9.6).

Theory: :func:`rmthess.theory.depth_frobenius` (CE, gamma = 0.5, LeCun, Monte Carlo with
SEs) on three grids:

1. uniform widths ``(m,) * L``, L = 1-4, m in {8, 32, 128, 512}, C in {2, 10, 100, 1000}: per
   (L, layer) a weighted least-squares fit ``log r = a + b log C + c log m`` over C >= 10;
2. the first of three layers, widths ``(32, m2, m3)``, m2, m3 in {8, 32, 128}, C in {10, 100,
   1000}: ``log r_1 = a + b log C + c2 log m2 + c3 log m3`` (its fan-out is m2);
3. shapes and activations: bottleneck (128, 8, 128), expanding (8, 32, 128), contracting
   (128, 32, 8) with ReLU, and (32, 32) with tanh and GELU, at C in {2, 10, 100, 1000}.

Fits: weights from the Monte-Carlo SEs; 95 % intervals from the fit's covariance scaled by the
residual variance when it exceeds the Monte-Carlo noise (the log-linear model is not exact).

Measurement (independent of the theory's code): ``rmthess.curvature.layer_block_maps`` of
``mlp(d, C, widths, activation, bias=False)`` at LeCun init on Gaussian inputs, uniform labels,
the first layer's norms divided by d; checked per layer within 10 % + 3 SE (the issue's
target) on the measured cells. ``--out FILE.csv`` writes every theory cell (and the measured
ones, ``measured`` column).
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np
from _common import entry, finish, parser

from rmthess._stats import summarize_pairs
from rmthess.report.checks import check_close
from rmthess.report.sections.depth import measure_layers
from rmthess.theory import depth_frobenius

SECTION = "depth-study"


def _theory(widths, C, act, samples, seed):
    from rmthess.theory import depth_frobenius

    inner = 64 if C >= 1000 or max(widths) >= 512 else 128
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return depth_frobenius("ce", C, 0.5, widths, act, samples=samples, inner=inner, seed=seed)


def _fit(rows, names):
    """WLS of ``log ratio`` on ``[1, log <name> ...]``: coefficients, 95 % half-widths and the
    residual-to-noise variance ratio."""
    X = np.array([[1.0] + [math.log(r[n]) for n in names] for r in rows])
    y = np.array([math.log(r["ratio"]) for r in rows])
    w = np.array([(r["ratio"] / max(r["ratio_se"], 1e-12)) ** 2 for r in rows])
    Xw, yw = X * np.sqrt(w)[:, None], y * np.sqrt(w)
    beta, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
    resid = yw - Xw @ beta
    s2 = max(float(resid @ resid) / max(len(y) - X.shape[1], 1), 1.0)
    half = 1.96 * np.sqrt(np.diag(s2 * np.linalg.inv(Xw.T @ Xw)))
    return beta, half, s2


def _cells(quick):
    """``(grid, widths, C, activation)``."""
    Cs = (2, 10, 100) if quick else (2, 10, 100, 1000)
    ms = (8, 32) if quick else (8, 32, 128, 512)
    out = [("uniform", (m,) * L, C, "relu") for L in (1, 2, 3, 4) for m in ms for C in Cs]
    m23 = (8, 32) if quick else (8, 32, 128)
    out += [("first-of-three", (32, a, b), C, "relu") for a in m23 for b in m23 for C in Cs[1:]]
    shapes = ((128, 8, 128), (8, 32, 128), (128, 32, 8)) if not quick else ((32, 8, 32),)
    out += [("shape", w, C, "relu") for w in shapes for C in Cs]
    out += [("activation", (32, 32), C, a) for a in ("tanh", "gelu") for C in Cs]
    return out


MEASURED = [((128, 128), 100, "relu"), ((32, 32, 32), 1000, "relu"), ((8, 32, 128), 10, "relu"),
            ((128, 8, 128), 100, "relu"), ((32, 32), 100, "gelu")]  # fmt: skip
MEASURED_QUICK = [((32, 32), 10, "relu")]


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="write the theory (and measured) cells to CSV")
    p.add_argument("--samples", type=int, default=None, help="theory networks (default 150)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    samples = args.samples or (40 if args.quick else 150)
    rows = []
    for grid, widths, C, act in _cells(args.quick):
        t = time.perf_counter()
        th = _theory(widths, C, act, samples, args.seed)
        for k, layer in enumerate(th.layers):
            later = (*widths[k + 1 :], C)
            rows.append(dict(
                grid=grid, widths="x".join(map(str, widths)), depth=len(widths), C=C,
                activation=act, layer=layer, k=k + 1, m=widths[0], fan_out=later[0],
                narrowest_later=min(later), m2=widths[1] if len(widths) > 1 else None,
                m3=widths[2] if len(widths) > 2 else None, ratio=float(th.ratio[k]),
                ratio_se=float(th.ratio_se[k]), seconds=time.perf_counter() - t,
            ))  # fmt: skip
        print(f"{grid:15s} {act:5s} {rows[-1]['widths']:>12s} C={C:5d}: r by layer "
              + " ".join(f"{r:.4f}" for r in th.ratio)
              + f"  ({time.perf_counter() - t:.1f} s)", flush=True)  # fmt: skip
    print("\nFits over C >= 10 (95 % CI; s2 = residual / Monte-Carlo variance):")
    for L in (1, 2, 3, 4):
        for k in range(1, L + 2):
            sel = [r for r in rows if r["grid"] == "uniform" and r["depth"] == L and r["k"] == k
                   and r["C"] >= 10]  # fmt: skip
            if len(sel) < 4:
                continue
            beta, half, s2 = _fit(sel, ("C", "m"))
            name = "output" if k == L + 1 else f"hidden{k}"
            print(f"  uniform L={L} {name:7s}: r ~ C^({beta[1]:+.3f} +- {half[1]:.3f}) "
                  f"m^({beta[2]:+.3f} +- {half[2]:.3f})  s2={s2:.1f}")  # fmt: skip
    sel = [r for r in rows if r["grid"] == "first-of-three" and r["k"] == 1]
    beta, half, s2 = _fit(sel, ("C", "m2", "m3"))
    print(f"  first of (32, m2, m3): r_1 ~ C^({beta[1]:+.3f} +- {half[1]:.3f}) m2^({beta[2]:+.3f} "
          f"+- {half[2]:.3f}) m3^({beta[3]:+.3f} +- {half[3]:.3f})  s2={s2:.1f}")  # fmt: skip
    checks = []
    d, N, nets = (64, 128, 4) if args.quick else (128, 256, 8)
    for widths, C, act in MEASURED_QUICK if args.quick else MEASURED:
        t = time.perf_counter()
        per = measure_layers(widths, C, act, d, N, nets, args.seed + 7)
        meas = [summarize_pairs(per[:, k]) for k in range(len(widths) + 1)]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            th = depth_frobenius("ce", C, d / N, widths, act, N=N, samples=samples,
                                 inner=64 if C >= 1000 else 128, seed=args.seed + 1)  # fmt: skip
        tag = f"{act} {'x'.join(map(str, widths))} C={C}"
        for k, layer in enumerate(th.layers):
            m_, th_r = meas[k], float(th.ratio[k])
            print(
                f"measured {tag} {layer}: r {m_['ratio']:.4f} +- {m_['ratio_se']:.4f}, theory "
                f"{th_r:.4f} +- {th.ratio_se[k]:.4f} ({100 * (th_r / m_['ratio'] - 1):+.1f} %)"
            )
            rows.append(dict(grid="measured", widths="x".join(map(str, widths)),
                             depth=len(widths), C=C, activation=act, layer=layer, k=k + 1,
                             ratio=th_r, ratio_se=float(th.ratio_se[k]), measured=m_["ratio"],
                             measured_se=m_["ratio_se"]))  # fmt: skip
            checks.append(check_close(
                SECTION, f"{tag} {layer} r", m_["ratio"], th_r, m_["ratio_se"],
                float(th.ratio_se[k]), k=3.0, rel_allowance=0.10,
                detail=f"d={d}, N={N}, {nets} networks"))  # fmt: skip
        print(f"  ({time.perf_counter() - t:.1f} s)")
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
