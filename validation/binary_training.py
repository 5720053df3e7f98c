"""Binary CE during training (the paper's Appendix B.1, after Collobert 2004): is the hidden
layer of a binary classifier near-block-diagonal, and when?

Claim tested (issue 20 item 4): the paper reports near-block-diagonal structure for binary
classification with CE despite C = 2, where the large-C theory does not apply. At init,
rmthess predicts ``r`` of the hidden layer for one sigmoid output as that of two-class softmax at
init ``2^(-1/4)`` (docs/theory.md 9.6; the same ``r``), on data through the sub-cluster input
statistics (``frobenius_limits("hidden-ce", 2, d/N, m, inputs=input_stats(X, y,
per_class=4), init=2**-0.25)``, Monte Carlo over the pre-activation offsets).

Data: scikit-learn's digits, standardised, two binary tasks: 3 vs 8 (two classes) and even vs
odd (each label a union of five digits). Model: ``Linear(64, m) -> ReLU -> Linear(m, k)``
without biases, LeCun init, m = 16; heads: one sigmoid output with ``BCEWithLogitsLoss``,
two-class softmax with CE, two outputs with MSE on one-hot targets. Full-batch Adam (lr 1e-2).
Measured: the hidden layer's exact row-block map (``rmthess.curvature.layer_block_maps``) at
steps 0, 10, 30, 100, 300, ``r = sqrt(mean off / mean diag)`` per network; mean and SE over
``--seeds`` networks.

Checks: at init, the measured ``r`` of the sigmoid head within 10 % + 3 SE of the data-aware
theory at init ``2^(-1/4)``, and of the softmax head (LeCun) of the theory at LeCun init. After
training the numbers are printed (no claim is checked there: the theory is at init).
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np
from _common import entry, finish, parser

from rmthess.report.checks import check_close

SECTION = "binary-training"
STEPS = (0, 10, 30, 100, 300)


def _task(name):
    import torch

    from rmthess.data import digits

    ds = digits().standardize()
    X, y = torch.tensor(ds.X, dtype=torch.float64), torch.tensor(ds.y, dtype=torch.long)
    if name == "3 vs 8":
        keep = (y == 3) | (y == 8)
        return X[keep], (y[keep] == 8).long()
    return X, (y % 2).long()


def _net(d, m, out, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    V = torch.randn(out, m, generator=g, dtype=torch.float64) / math.sqrt(m)
    net = torch.nn.Sequential(
        torch.nn.Linear(d, m, bias=False), torch.nn.ReLU(), torch.nn.Linear(m, out, bias=False)
    ).double()
    with torch.no_grad():
        net[0].weight.copy_(W)
        net[2].weight.copy_(V)
    return net


def _run(head, X, y, m, seed, steps):
    """Hidden-layer r at each step of ``steps`` (and the final accuracy)."""
    import torch

    from rmthess.curvature import layer_block_maps

    if head == "sigmoid":
        net, loss, target = _net(X.shape[1], m, 1, seed), torch.nn.BCEWithLogitsLoss(), y[:, None]
        target = target.double()
    elif head == "softmax":
        net, loss, target = _net(X.shape[1], m, 2, seed), torch.nn.CrossEntropyLoss(), y
    else:
        net, loss = _net(X.shape[1], m, 2, seed), torch.nn.MSELoss()
        target = torch.nn.functional.one_hot(y, 2).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    out, step = [], 0
    for stop in steps:
        while step < stop:
            opt.zero_grad()
            loss(net(X), target).backward()
            opt.step()
            step += 1
        out.append(layer_block_maps(net, loss, (X, target), progress=False)["0"].ratio)
    with torch.no_grad():
        z = net(X)
        pred = (z[:, 0] > 0).long() if head == "sigmoid" else z.argmax(1)
    return out, float((pred == y).double().mean())


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=None, help="networks per head (default 8)")
    p.add_argument("--out", default=None, help="write the table to this CSV file")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.theory import frobenius_limits, input_stats

    seeds = args.seeds or (3 if args.quick else 8)
    steps = STEPS[:3] if args.quick else STEPS
    m = 16
    checks, rows = [], []
    for task in ("3 vs 8",) if args.quick else ("3 vs 8", "even vs odd"):
        X, y = _task(task)
        N, d = X.shape
        stats = input_stats(X.numpy(), y.numpy(), per_class=4, seed=args.seed)
        th = {}
        for head, init in (("sigmoid", 2**-0.25), ("softmax", "lecun")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                th[head] = frobenius_limits("hidden-ce", 2, d / N, m, inputs=stats, init=init,
                                            samples=300 if args.quick else 1500,
                                            seed=args.seed)  # fmt: skip
        print(
            f"{task}: N = {N}, d = {d}; theory at init (sub-clusters): r = "
            f"{th['sigmoid'].ratio:.4f} +- {th['sigmoid'].ratio_se:.4f} (sigmoid head), "
            f"{th['softmax'].ratio:.4f} +- {th['softmax'].ratio_se:.4f} (softmax head)"
        )
        at_init = {}
        for head in ("sigmoid", "softmax", "mse"):
            runs = [_run(head, X, y, m, args.seed * 100 + s, steps) for s in range(seeds)]
            r = np.array([u[0] for u in runs])
            acc = np.mean([u[1] for u in runs])
            mean, se = r.mean(0), r.std(0, ddof=1) / math.sqrt(seeds)
            at_init[head] = (mean[0], se[0])
            print(f"  {head:8s} r at steps {steps}: "
                  + ", ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mean, se, strict=True))
                  + f"; final accuracy {acc:.3f}")  # fmt: skip
            for k, st in enumerate(steps):
                ref = th[head].ratio if head in th else math.nan
                rows.append(dict(task=task, head=head, step=st, r=mean[k], r_se=se[k],
                                 accuracy=acc, theory_init=ref))  # fmt: skip
        for head in ("sigmoid", "softmax"):
            checks.append(check_close(
                SECTION, f"{task}: {head} head, hidden r at init vs theory", at_init[head][0],
                th[head].ratio, at_init[head][1], th[head].ratio_se, k=3.0, rel_allowance=0.10,
                detail=f"m={m}, {seeds} networks; theory: two-class softmax (at init 2^-1/4 "
                "for the sigmoid head), sub-cluster inputs"))  # fmt: skip
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
