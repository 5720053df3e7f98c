"""Depth study: the block map of every layer of MLPs at init, theory vs measurement, and the
paper's fan-out conjecture.

Claim (issue 20, docs/theory.md section 9.6): for ``f(x) = V phi(W_L ... phi(W_1 x))`` at
LeCun init on ``x ~ N(0, I_d)``, CE, uniform labels, the ratio ``r_k = sqrt(F_off / F_diag)``
of layer ``k``'s row-block map (hidden layers ``1 .. L`` and the output rows) is predicted by
``rmthess.theory.depth_frobenius(..., N=N)`` within 10 % (the issue's target) + 3 combined
SE, for every (depth, widths, C, activation) cell of the grid.

Measured (independent of the theory's code): ``rmthess.curvature.mlp(d, C, widths,
activation, bias=False)`` networks; per sample, torch's exact Hessian of the loss in each
layer's pre-activations (``torch.func.vmap(torch.func.hessian)``); the blocks
``H_jl = (1/N) sum_i (H_k,i)_jl h_i h_i^T`` by the Gram route (``||H_jl||^2 = a^T (h h^T)^2 a /
N^2``, the off-diagonal sum from ``sum_{i,i'} (h_i . h_i')^2 <H_k,i, H_k,i'>_F``; the output
rows' ``A_i = diag p_i - p_i p_i^T`` in closed form; layer 1 divided by ``d``); once checked
against ``rmthess.curvature.block_norms`` (exact) on a small net (relative 1e-9). Mean over
networks, ``r`` by the delta method.

The fan-out conjecture ("the block-diagonal structure will be primarily driven by the number
of output neurons in each layer, the fan-out dimension"): per cell the printed table gives
each layer's ``r`` next to its fan-out (the next layer's width, or C for the last hidden
layer); ``--out FILE.csv`` writes the table. A least-squares fit of ``log r_k`` on ``log C``
and ``log`` of each later width (first layer of the depth-2 cells) gives the exponents with
95 % CIs (printed).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from _common import entry, finish, parser

from rmthess.report.checks import check_close, check_upper

SECTION = "depth-layers"


def _grid(quick: bool):
    """``(widths, C, activation)`` cells."""
    if quick:
        return [((8, 8), 4, "relu"), ((8, 6), 4, "tanh")]
    cells = []
    for act in ("relu", "tanh"):
        for depth in (1, 2, 3, 4):
            for C in (2, 10, 100):
                cells.append(((32,) * depth, C, act))
    cells += [((64, 8, 64), 10, "relu"), ((8, 32, 128), 10, "relu"), ((32, 8), 10, "gelu")]
    cells += [((16, m2), C, "relu") for m2 in (4, 64) for C in (2, 100)]
    return cells


def _measure(widths, C, act, d, N, nets, seed):
    """(nets, layers, 2) per-network (F_diag, F_off) of every layer, torch route."""
    import torch
    from torch.func import hessian, vmap

    from rmthess.curvature import mlp

    L = len(widths)
    gen = torch.Generator().manual_seed(seed)
    out = np.empty((nets, L + 1, 2))
    for t in range(nets):
        net = mlp(d, C, widths, activation=act, bias=False, seed=seed * 1000 + t)
        Ws = [getattr(net, f"hidden{k + 1}").weight.detach() for k in range(L)]
        V = net.output.weight.detach()
        phi = net.act1
        X = torch.randn(N, d, generator=gen, dtype=torch.float64)
        y = torch.randint(0, C, (N,), generator=gen)
        g, hs = [], [X]
        for W in Ws:
            g.append(hs[-1] @ W.T)
            hs.append(phi(g[-1]))

        def above(k, phi=phi, Ws=Ws, V=V):
            def f(gk, yi):
                h = phi(gk)
                for W in Ws[k + 1 :]:
                    h = phi(W @ h)
                z = V @ h
                return torch.nn.functional.cross_entropy(z[None], yi[None])

            return f

        hess = [vmap(hessian(above(k)))(g[k], y) for k in range(L)]
        z = hs[-1] @ V.T
        for k in range(L + 1):
            x = hs[k]
            K = (x @ x.T) ** 2
            if k < L:
                Hk = hess[k]
                m = Hk.shape[1]
                A = Hk.reshape(N, m * m)
                inner_ = A @ A.T  # <H_i, H_i'>_F
                diag = torch.diagonal(Hk, dim1=1, dim2=2)  # (N, m)
            else:  # output rows, CE: A_i = diag p_i - p_i p_i^T, <A_i, A_i'> in closed form
                m = C
                pr = torch.softmax(z, dim=1)
                pq = pr @ pr.T
                inner_ = pq - pr @ (pr**2).T - (pr**2) @ pr.T + pq**2
                diag = pr - pr**2
            sq_diag = ((diag * (K @ diag)).sum(0) / N**2).numpy()  # ||H_jj||^2, each j
            total = float((K * inner_).sum()) / N**2  # sum over all (j, l)
            scale = d if k == 0 else 1.0
            F_off = (total - sq_diag.sum()) / (m * (m - 1))
            out[t, k] = np.mean(sq_diag) / scale, F_off / scale
    return out


def _cross_check(seed) -> float:
    """Largest relative difference of the torch route against block_norms (exact) on a
    small two-layer net, every layer."""
    import torch

    from rmthess.curvature import block_norms, mlp

    d, N, ws, C = 6, 40, (4, 3), 3
    per = _measure(ws, C, "tanh", d, N, 1, seed)[0]
    net = mlp(d, C, ws, activation="tanh", bias=False, seed=seed * 1000)
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=gen)
    worst = 0.0
    for k, (name, rows) in enumerate([("hidden1", 4), ("hidden2", 3), ("output", 3)]):
        spec = {f"{name}[{j}]": (f"{name}.weight", j) for j in range(rows)}
        bm = block_norms(net, "ce", (X, y), blocks=spec, exact=True, progress=False)
        F = bm.sq_norm / (d if k == 0 else 1)
        off = ~np.eye(rows, dtype=bool)
        got = np.array([np.mean(np.diag(F)), np.mean(F[off])])
        worst = max(worst, float(np.max(np.abs(got / per[k] - 1))))
    return worst


def _cost(seed) -> tuple[float, int]:
    """Seconds for the block map of every layer of a depth-4 MLP (P ~ 100k) with the theory
    next to it: rmthess.curvature.layer_block_maps (exact) + depth_frobenius (issue 20's
    target: under 2 minutes on 2 cores)."""
    import torch

    from rmthess.curvature import layer_block_maps, mlp
    from rmthess.theory import depth_frobenius

    d, N, C, ws = 400, 800, 10, (128, 128, 128, 128)
    t0 = time.perf_counter()
    net = mlp(d, C, ws, bias=False, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=gen)
    maps = layer_block_maps(net, "ce", (X, y), progress=False)
    t1 = time.perf_counter()
    th = depth_frobenius("ce", C, d / N, ws, N=N, samples=200, seed=seed)
    t2 = time.perf_counter()
    P = sum(p.numel() for p in net.parameters())
    print(f"\ncost: depth 4, widths {ws}, d={d}, N={N}, P={P}: block maps of every layer "
          f"{t1 - t0:.1f} s, theory (200 networks) {t2 - t1:.1f} s")  # fmt: skip
    for k, (name, bm) in enumerate(maps.items()):
        F = bm.sq_norm
        off = ~np.eye(F.shape[0], dtype=bool)
        r = float(np.sqrt(F[off].mean() / np.diag(F).mean()))
        print(f"  {name:8s} r measured (one network) {r:.4f}, theory {th.ratio[k]:.4f}")
    return t2 - t0, P


def _fit(rows) -> None:
    """log r_1 on log C and log m_2 (depth-2 ReLU cells with m_1 = 16), OLS with 95 % CIs."""
    sel = [r for r in rows if r["depth"] == 2 and r["layer"] == "hidden1" and r["act"] == "relu"]
    sel = [r for r in sel if r["widths"].startswith("16x")]
    if len(sel) < 4:
        return
    y = np.log([r["r_meas"] for r in sel])
    Xd = np.column_stack(
        [np.ones(len(sel)), np.log([r["C"] for r in sel]), np.log([r["m2"] for r in sel])]
    )
    beta, res, *_ = np.linalg.lstsq(Xd, y, rcond=None)
    dof = len(sel) - 3
    if dof <= 0:
        print(f"  fit of log r_1 on log C, log m_2: {beta[1]:+.3f}, {beta[2]:+.3f} (exact fit)")
        return
    s2 = float(res[0]) / dof if res.size else 0.0
    cov = s2 * np.linalg.inv(Xd.T @ Xd)
    from scipy.stats import t as student

    q = student.ppf(0.975, dof)
    ci = q * np.sqrt(np.diag(cov))
    print(
        f"  first layer of depth 2 (m_1 = 16): r_1 ~ C^({beta[1]:+.3f} +- {ci[1]:.3f}) "
        f"m_2^({beta[2]:+.3f} +- {ci[2]:.3f}) (95 %, {len(sel)} cells)"
    )


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--networks", type=int, default=None, help="networks per cell (default 30)")
    p.add_argument("--out", default=None, help="write the table to this CSV file")
    p.add_argument(
        "--cost",
        action="store_true",
        help="only the cost check: every layer's block map of a depth-4 MLP (P ~ 100k) and "
        "its theory, timed (issue 20 target: under 2 minutes)",
    )
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.theory import depth_frobenius

    nets = args.networks or (6 if args.quick else 30)
    d, N = (120, 240) if args.quick else (400, 800)
    samples = 200 if args.quick else 600
    checks = [
        check_upper(SECTION, "torch route = block_norms (max rel diff)", _cross_check(1), 1e-9)
    ]
    if args.cost or not args.quick:
        secs, P = _cost(args.seed)
        checks.append(
            check_upper(SECTION, f"seconds: every layer's map + theory, depth 4, P={P}", secs, 120)
        )
    rows = []
    for widths, C, act in [] if args.cost else _grid(args.quick):
        t1 = time.perf_counter()
        per = _measure(widths, C, act, d, N, nets, args.seed)
        t2 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            th = depth_frobenius("ce", C, d / N, widths, act, N=N, samples=samples, seed=args.seed)
        t3 = time.perf_counter()
        from rmthess._stats import summarize_pairs

        tag = f"{act} widths={'x'.join(map(str, widths))} C={C}"
        print(f"\n{tag}: measured {t2 - t1:.1f} s, theory {t3 - t2:.1f} s")
        fanouts = (*widths[1:], C, None)
        for k, layer in enumerate(th.layers):
            meas = summarize_pairs(per[:, k])
            rel = th.ratio[k] / meas["ratio"] - 1
            print(
                f"  {layer:8s} fan-out {fanouts[k] or '-':>4} r measured {meas['ratio']:.4f} +- "
                f"{meas['ratio_se']:.4f}, theory {th.ratio[k]:.4f} +- {th.ratio_se[k]:.4f} "
                f"({100 * rel:+.1f} %)"
            )
            checks.append(
                check_close(
                    SECTION,
                    f"{tag} {layer} r",
                    meas["ratio"],
                    th.ratio[k],
                    meas["ratio_se"],
                    th.ratio_se[k],
                    k=3.0,
                    rel_allowance=0.10,
                    detail=f"d={d}, N={N}, {nets} networks; issue 20 target 10 %",
                )
            )
            rows.append(
                dict(
                    act=act,
                    widths="x".join(map(str, widths)),
                    depth=len(widths),
                    m2=widths[1] if len(widths) > 1 else C,
                    C=C,
                    layer=layer,
                    fan_out=fanouts[k],
                    r_meas=meas["ratio"],
                    r_meas_se=meas["ratio_se"],
                    r_theory=float(th.ratio[k]),
                    r_theory_se=float(th.ratio_se[k]),
                    F_diag_meas=meas["F_diag"],
                    F_diag_theory=float(th.F_diag[k]),
                    F_off_meas=meas["F_off"],
                    F_off_theory=float(th.F_off[k]),
                    rel_err=rel,
                )
            )
    print()
    _fit(rows)
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
