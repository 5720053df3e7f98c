"""The loss-landscape paper's Hessian bounds against exact per-sample norms (seed 000).

Kiselev & Grabovoy state (Theorem 1) ``||H_i||_2 <= L sqrt2 M_x^2 M_W^{2L} +
sqrt2 M_W^2 (M_W^{2L} - 1)/(M_W^2 - 1)`` for a bias-free ReLU MLP with L weight matrices,
and (Lemma 1) the same with ``M_W = h M``. rmthess claims (docs/theory.md section 9.3):

1. Exact norms: batched Lanczos ``||H_i||`` agrees with dense ``eigvalsh`` to 1e-8, and the
   ``C x C`` kernel route for ``||G_i||`` with dense ``J^T A J`` to 1e-10 (moderate P).
2. Counterexamples: over tiny nets (one sample, K = 2 classes, L = 1..3 weight matrices,
   width h = 1..2, input n = 1..3, weights from torch's default law times 1, 1/2, 1/4,
   1/10, inputs ``N(0, I_n)`` times 1 or 10) Theorem 1 fails, both for ``H_i`` as stated
   and for its Gauss-Newton part ``G_i`` that the proof addresses; Lemma 1 fails too.
   The smallest failures (fewest parameters; overall and with L >= 2) are printed with
   their weights and input, ``||H||`` re-derived by ``torch.func.hessian`` through
   ``functional_call`` and ``||G||`` by autograd ``J^T A J`` (L = 1: ``||A|| |x|^2`` by hand).
3. The corrected bounds (``corrected``, ``corrected_i``, ``corrected_lemma1``,
   ``corrected_ggn_i``; rmthess.landscape.bounds) hold in EVERY case of the search and
   at every audited sample of the paper-sized nets below.
4. Paper-sized nets: ``784 -> 16 x (L-1) -> 10`` (L = 2, 3, 7; the authors' code
   ``num_layers = L - 2``), Gaussian inputs ``x ~ N(0, I_784)`` (``||x|| ~ 28``, the
   scale of MNIST pixels in [-1, 1]) with labels from a random linear teacher, audited at
   initialisation, after Adam training (lr 1e-3, batch 64) and at initialisation x 0.1.
   The table shows where each bound holds and how loose it is; the checks are that the
   corrected bounds hold and that Theorem 1 fails at L = 2 with small weights.

Timing (printed): per-sample GGN norms of 10^4 samples of ``784 -> 16 x 6 -> 10`` (kernel
route) and exact ``||H_i||`` (Lanczos) on a subset, extrapolated to 10^4.

Run: ``PYTHONPATH=. python validation/landscape_bounds.py [--quick] [--seed S]`` (about
90 s on one core; ``--quick``: smaller search and nets, about 30 s). CPU only
(``--device`` is accepted for uniformity and ignored).
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np
from _common import entry, finish, parser

from rmthess.report.checks import check_abs, check_lower, check_upper


def exact_norm_check(seed, checks):
    import torch

    from rmthess.landscape.models import relu_mlp
    from rmthess.landscape.per_sample import per_sample_curvature

    model = relu_mlp(40, 6, 24, 3, seed=seed, dtype=torch.float64)  # P = 960 + 576 + 144
    g = torch.Generator().manual_seed(seed)
    data = (torch.randn(12, 40, generator=g, dtype=torch.float64), torch.arange(12) % 6)
    dense = per_sample_curvature(model, data, method="dense")
    lz = per_sample_curvature(model, data, method="lanczos", seed=seed)
    err = float(np.max(np.abs(lz.norm - dense.norm) / dense.norm))
    detail = f"P={dense.n_params}, 12 samples, <= {lz.steps.max()} steps"
    checks.append(check_upper("exact", "Lanczos vs dense ||H_i|| (rel)", err, 1e-8, detail))
    gk = per_sample_curvature(model, data, kind="ggn", method="kernel")
    gd = per_sample_curvature(model, data, kind="ggn", method="dense")
    err = float(np.max(np.abs(gk.norm - gd.norm) / gd.norm))
    checks.append(check_upper("exact", "C x C kernel vs dense J^T A J (rel)", err, 1e-10, detail))


# ---------------------------------------------------------------------------- search
def search(seeds: int, seed0: int):
    """Audit every tiny net of the grid; return the list of records."""
    import torch

    from rmthess.landscape.bounds import hessian_bound_audit
    from rmthess.landscape.models import relu_mlp

    recs = []
    scales, xs = (1.0, 0.5, 0.25, 0.1), (1.0, 10.0)
    grid = itertools.product((1, 2, 3), (1, 2), (1, 2, 3), scales, xs, range(seeds))
    for L, h, n, scale, x_scale, s in grid:
        if L == 1 and h > 1:
            continue  # no hidden layer: h plays no role
        seed = seed0 + 1000 * s + 7 * n + h
        model = relu_mlp(n, 2, h, L, seed=seed, init_scale=scale, dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        x = x_scale * torch.randn(1, n, generator=g, dtype=torch.float64)
        y = torch.randint(0, 2, (1,), generator=g)
        a = hessian_bound_audit(model, (x, y), method="dense")
        P = sum(p.numel() for p in model.parameters())
        rec = dict(L=L, h=h if L > 1 else 0, n=n, scale=scale, P=P, model=model, x=x, y=y)
        rec["H"], rec["G"] = float(a.norm_H[0]), float(a.norm_G[0])
        for b, t in a.checks():
            rec[f"{b}/{t}"] = bool(a.holds(b, t)[0]) if np.isfinite(a.values[b][0]) else None
            rec[f"{b}/{t} ratio"] = float(a.ratio(b, t)[0])
        recs.append(rec)
    return recs


def rederive(rec) -> tuple[float, float]:
    """``(||H||, ||G||)`` of a search record by an independent route: ``torch.func.hessian``
    through ``functional_call`` and ``J^T A J`` with ``torch.autograd.functional.jacobian``
    (for L = 1 also by hand: ``H = A (x) x x^T``, ``||H|| = ||A|| |x|^2``)."""
    import torch
    from torch import nn

    model, x, y = rec["model"], rec["x"], rec["y"]
    names = [k for k, _ in model.named_parameters()]
    params = tuple(p.detach() for _, p in model.named_parameters())
    sizes = [p.numel() for p in params]

    def logits(*ps):
        return torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (x,))

    def loss(*ps):
        return nn.functional.cross_entropy(logits(*ps), y)

    blocks = torch.func.hessian(loss, argnums=tuple(range(len(params))))(*params)
    H = torch.cat(
        [
            torch.cat([blocks[a][b].reshape(sizes[a], sizes[b]) for b in range(len(sizes))], 1)
            for a in range(len(sizes))
        ]
    )
    J = torch.cat([j.reshape(2, -1) for j in torch.autograd.functional.jacobian(logits, params)], 1)
    p = torch.softmax(logits(*params)[0], 0).detach()
    G = J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
    h_val = float(torch.linalg.eigvalsh(H).abs().max())
    g_val = float(torch.linalg.eigvalsh(G).abs().max())
    if rec["L"] == 1:
        A = np.diag(p.numpy()) - np.outer(p.numpy(), p.numpy())
        by_hand = np.linalg.norm(A, 2) * float((x**2).sum())
        assert abs(by_hand - h_val) <= 1e-12 * h_val, (by_hand, h_val)
    return h_val, g_val


def search_section(quick: bool, seed: int, checks) -> None:
    recs = search(2 if quick else 10, seed)
    n = len(recs)
    print(f"Counterexample search: {n} tiny nets (one sample each, K = 2)")
    print(
        f"{'bound/target':24} {'fails':>6} {'min ratio':>10}  smallest failure (P; L, h, n, scale)"
    )
    keys = [k for k in recs[0] if "/" in k and not k.endswith("ratio")]
    for k in keys:
        fails = [r for r in recs if r[k] is False]
        ratios = [r[f"{k} ratio"] for r in recs if r[k] is not None]
        small = min(fails, key=lambda r: (r["P"], r[f"{k} ratio"])) if fails else None
        where = (
            f"P={small['P']}; L={small['L']}, h={small['h']}, n={small['n']}, "
            f"scale={small['scale']}"
            if small
            else "-"
        )
        print(f"{k:24} {len(fails):6d} {min(ratios):10.3g}  {where}")
        if k.startswith("corrected"):
            checks.append(check_abs("search", f"{k}: failures", len(fails), 0, 0, f"{n} nets"))
    for k in ("theorem1/H", "theorem1/G", "lemma1/H"):
        nf = sum(r[k] is False for r in recs)
        checks.append(check_lower("search", f"{k}: failures (a counterexample exists)", nf, 1))
    for k, L_min in (("theorem1/H", 1), ("theorem1/H", 2), ("theorem1/G", 2)):
        fails = [r for r in recs if r[k] is False and r["L"] >= L_min]
        if not fails:
            checks.append(check_lower("search", f"{k}, L >= {L_min}: failures", 0, 1))
            continue
        r = min(fails, key=lambda r: (r["P"], r[f"{k} ratio"]))
        H, G = rederive(r)
        target = k.split("/")[1]
        print(f"\nSmallest counterexample to Theorem 1 on {target}_i with L >= {L_min}: P={r['P']}")
        for name, p in r["model"].named_parameters():
            print(f"  {name} = {np.array2string(p.detach().numpy().ravel(), precision=6)}")
        print(f"  x = {r['x'].numpy()[0]}, y = {int(r['y'][0])}")
        print(
            f"  ||H|| = {r['H']:.6g} (torch.func: {H:.6g}), ||G|| = {r['G']:.6g} "
            f"(autograd J^T A J: {G:.6g}), Theorem 1 = {r[target] * r[f'{k} ratio']:.6g}"
        )
        rel = max(abs(H - r["H"]) / H, abs(G - r["G"]) / G)
        checks.append(
            check_upper("search", f"{k}, L >= {L_min} counterexample re-derived (rel)", rel, 1e-12)
        )
        checks.append(
            check_lower(
                "search",
                f"{k}, L >= {L_min} counterexample: exact / bound",
                1 / r[f"{k} ratio"],
                1.0,
            )
        )


# ---------------------------------------------------------------------------- paper nets
def teacher_data(N: int, seed: int):
    from rmthess.data import Dataset, gaussian

    base = gaussian(10, 784, N, seed=seed)
    T = np.random.default_rng([seed, 1]).standard_normal((784, 10))
    return Dataset(base.X, np.argmax(base.X @ T, axis=1), 10, "gaussian-teacher")


def paper_section(quick: bool, seed: int, checks) -> None:
    from rmthess.landscape.bounds import hessian_bound_audit
    from rmthess.landscape.models import relu_mlp, train_mlp

    N, epochs, n_audit = (2000, 3, 40) if quick else (10000, 10, 300)
    data = teacher_data(N, seed)
    Ls = (2, 7) if quick else (2, 3, 7)
    print(f"\nPaper nets 784 -> 16 x (L-1) -> 10, N = {N}, {n_audit} audited samples")
    print(f"{'L':>2} {'regime':8} {'bound/target':20} {'holds':>6} ", end="")
    print(f"{'min':>9} {'median':>9} {'max':>9}   (ratio bound / exact)")
    for L in Ls:
        trained = train_mlp(data, 16, L, epochs=epochs, seed=seed, progress=False)
        log = trained.train_log_
        regimes = {
            "init": relu_mlp(784, 10, 16, L, seed=seed),
            "trained": trained,
            "init/10": relu_mlp(784, 10, 16, L, seed=seed, init_scale=0.1),
        }
        for name, model in regimes.items():
            a = hessian_bound_audit(model, data, samples=n_audit, seed=seed)
            for row in a.summary().itertuples():
                print(
                    f"{L:2d} {name:8} {row.bound + '/' + row.target:20} {row.holds_fraction:6.3f} "
                    f"{row.ratio_min:9.3g} {row.ratio_median:9.3g} {row.ratio_max:9.3g}"
                )
                if row.bound.startswith("corrected"):
                    checks.append(
                        check_abs(
                            "paper-net",
                            f"L={L} {name}: {row.bound} holds (fraction)",
                            row.holds_fraction,
                            1.0,
                            0.0,
                            f"M_W={a.M_W:.3g}, M_x={a.M_x:.3g}",
                        )
                    )
            if L == 2 and name == "init/10":
                frac = float(np.mean(a.holds_theorem1))
                checks.append(
                    check_upper("paper-net", "L=2 init/10: Theorem 1 holds (fraction)", frac, 0.0)
                )
            print(
                f"   M_W={a.M_W:.3g} M_x={a.M_x:.3g} M={a.M:.3g}; median ||H||="
                f"{np.median(a.norm_H):.3g}, ||G||={np.median(a.norm_G):.3g}, "
                f"negative extreme eigenvalue in {np.mean(a.eig_H < 0):.0%}"
            )
        print(
            f"   training: loss {log['loss'].iloc[0]:.3f} -> {log['loss'].iloc[-1]:.3f}, "
            f"accuracy {log['accuracy'].iloc[-1]:.2f}"
        )


def timing_section(quick: bool, seed: int) -> None:
    from rmthess.data import gaussian
    from rmthess.landscape.models import relu_mlp
    from rmthess.landscape.per_sample import per_sample_curvature

    data = gaussian(10, 784, 10000, seed=seed)
    model = relu_mlp(784, 10, 16, 7, seed=seed)
    g = per_sample_curvature(model, data, kind="ggn", progress=False)
    n = 30 if quick else 300
    sub = (data.X[:n], data.y[:n])
    h = per_sample_curvature(model, sub, method="lanczos", progress=False)
    print(
        f"\nTiming 784 -> 16 x 6 -> 10 (P = {g.n_params}), float64, CPU: GGN norms of 10^4 "
        f"samples {g.seconds:.2f} s; exact ||H_i|| of {n} samples {h.seconds:.1f} s "
        f"(<= {h.steps.max()} Lanczos steps, residual <= {h.residual.max():.1e}) -> "
        f"~{h.seconds * 10000 / n:.0f} s for 10^4 (extrapolated)"
    )


def main(argv=None) -> int:
    import torch

    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    checks = []
    exact_norm_check(args.seed, checks)
    search_section(args.quick, args.seed, checks)
    paper_section(args.quick, args.seed, checks)
    timing_section(args.quick, args.seed)
    print()
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
