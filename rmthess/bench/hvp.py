"""Hessian-vector product rate against a gradient, and the largest MLP diagnosed in 60 s.

``rmthess bench hvp [--json] [--quick] [--device auto|cpu|cuda] [--dtype float64|float32]``

Two measurements on one-hidden-layer ReLU MLPs (``mlp(64, 10, (h,))``) on scikit-learn's
digits (N = 1797), all in one run:

1. **HVP rate.** For each width ``h``: seconds of one full-data gradient (forward + backward
   of the mean loss), of one Hessian-vector product through
   :class:`rmthess.curvature.CurvatureOperator` (one column; the default kept-graph route),
   of the same product by curvlinops' forward-over-reverse route and by a plain double
   backward (a fresh ``create_graph`` gradient per product), and the cost per column when 32
   columns are multiplied at once. Reported as ratios to the gradient and to the double
   backward (issue 21's target: at most 1.2x).
2. **Largest MLP in the time limit.** Width doubles (then grows by sqrt 2 near the limit)
   while :func:`rmthess.curvature.curvature_summary` (top-10 eigenvalues, trace to 5 %
   relative standard error, layer block map with 20 probes per block) finishes within
   ``--time-limit`` seconds; reported: the largest parameter count that finished, its time
   and the break-down of the time.

Times are minima over repeats (at least 3 for step 1); the machine and thread count are
printed with the results.
"""

from __future__ import annotations

import json
import math
import os
import time

from rmthess._cli import add_json, add_progress


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    add_json(parser)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="float64", help="float64 | float32")
    parser.add_argument(
        "--time-limit",
        default=60.0,
        type=number_arg("float", name="time-limit", minimum=0),
        help="seconds for the largest-MLP search",
    )
    add_progress(parser, "when it is a terminal")


def _timeit(fn, dev, reps: int = 3) -> float:
    import torch

    best = math.inf
    for _ in range(reps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - t)
    return best


def _one_width(h: int, dev, dt, X, y) -> dict:
    import torch

    from rmthess.curvature import curvature_operator, mlp

    model = mlp(X.shape[1], 10, (h,), dtype=dt, device=dev)
    loss = torch.nn.CrossEntropyLoss()
    op = curvature_operator(model, loss, (X, y))
    op_c = curvature_operator(model, loss, (X, y), route="curvlinops")
    P = op.shape[0]
    params = list(model.parameters())

    def grad():
        model.zero_grad()
        loss(model(X), y).backward()

    v1 = torch.randn(P, 1, dtype=dt, device=dev)
    v32 = torch.randn(P, 32, dtype=dt, device=dev)
    parts = [
        c.reshape(p.shape)
        for c, p in zip(torch.split(v1[:, 0], [p.numel() for p in params]), params, strict=True)
    ]

    def double_backward():  # the plain reference: a fresh graph for every product
        g = torch.autograd.grad(loss(model(X), y), params, create_graph=True)
        return torch.autograd.grad(g, params, grad_outputs=parts)

    grad()
    for f in (lambda: op.matmat_torch(v1), lambda: op_c.matmat_torch(v1), double_backward):
        f()  # warm-up: graphs, vmap/functional set-up
    tg = _timeit(grad, dev, reps=5)
    t1 = _timeit(lambda: op.matmat_torch(v1), dev, reps=5)
    tc = _timeit(lambda: op_c.matmat_torch(v1), dev, reps=5)
    td = _timeit(double_backward, dev, reps=5)
    t32 = _timeit(lambda: op.matmat_torch(v32), dev)
    return dict(
        hidden=h,
        P=P,
        grad_s=tg,
        hvp_s=t1,
        hvp_curvlinops_s=tc,
        double_backward_s=td,
        hvp32_per_col_s=t32 / 32,
        hvp_over_grad=t1 / tg,
        hvp_over_double_backward=t1 / td,
        curvlinops_over_double_backward=tc / td,
        hvp32_over_grad=t32 / 32 / tg,
    )


def hvp_rate(widths, dev, dt, data, progress: bool | None = False) -> list[dict]:
    """Step 1: gradient vs one HVP vs 32 batched HVPs, per width (``progress``: a bar of the
    widths; None: when stderr is a terminal)."""
    from rmthess._checks import progress_bar

    X, y = data
    out = []
    with progress_bar(progress, total=len(widths), desc="HVP rate", unit="width") as bar:
        for h in widths:
            out.append(_one_width(h, dev, dt, X, y))
            bar.update()
    return out


def largest_mlp(
    time_limit: float, dev, dt, data, start: int = 16, progress: bool | None = False
) -> dict:
    """Step 2: grow the width while the whole summary finishes within ``time_limit``
    (``progress``: a bar of the widths tried; the timed summaries run without bars)."""
    import torch

    from rmthess._checks import progress_bar
    from rmthess.curvature import curvature_summary, mlp

    X, y = data
    h, best, tried, why = start, None, [], "time limit"
    bar = progress_bar(progress, desc="largest MLP", unit="width")
    while True:
        model = mlp(X.shape[1], 10, (h,), dtype=dt, device=dev)
        t = time.perf_counter()
        s = curvature_summary(model, torch.nn.CrossEntropyLoss(), (X, y), seed=0, progress=False)
        secs = time.perf_counter() - t
        bar.update()
        rec = dict(hidden=h, P=s.n_params, seconds=secs, n_matvecs=s.n_matvecs)
        rec.update({f"seconds_{k}": v for k, v in s.seconds.items()})
        rec["trace_rel_se"] = s.trace.trace_se / abs(s.trace.trace)
        tried.append(rec)
        if secs > time_limit:
            break
        best = rec
        # next width: the cost is ~linear in P; stop before a size predicted to overrun
        nxt = 2 * h if 2 * secs < 0.5 * time_limit else int(h * math.sqrt(2))
        if secs * nxt / h > 1.3 * time_limit:
            why = "next size predicted over the limit"
            break
        h = nxt
    bar.close()
    return dict(largest=best, tried=tried, stopped_because=why, time_limit=time_limit)


def run(args) -> int:
    import torch

    from rmthess._device import resolve_device, resolve_dtype
    from rmthess.data import digits

    dev, dt = resolve_device(args.device), resolve_dtype(args.dtype)
    ds = digits()
    data = ds.tensors(dtype=dt, device=dev)
    widths = (8, 32) if args.quick else (16, 64, 256, 1024)
    limit = min(args.time_limit, 1.5) if args.quick else args.time_limit
    progress = args.progress
    res = dict(
        device=str(dev),
        dtype=str(dt),
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        hvp=hvp_rate(widths, dev, dt, data, progress),
        largest=largest_mlp(limit, dev, dt, data, 8 if args.quick else 16, progress),
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"device {res['device']}, {res['dtype']}, {res['threads']} threads; digits N={ds.n}")
    print(" hidden       P   grad ms    HVP ms  HVP/grad  HVP/dbl-bwd  curvlinops/dbl-bwd  "
          "(32 cols)/grad")  # fmt: skip
    for r in res["hvp"]:
        print(
            f"{r['hidden']:7d} {r['P']:7d} {1e3 * r['grad_s']:9.2f} {1e3 * r['hvp_s']:9.2f} "
            f"{r['hvp_over_grad']:9.2f} {r['hvp_over_double_backward']:12.2f} "
            f"{r['curvlinops_over_double_backward']:19.2f} {r['hvp32_over_grad']:15.2f}"
        )
    big = res["largest"]
    if big["largest"] is None:
        print(f"no width finished the summary within {limit:g} s")
    else:
        b = big["largest"]
        print(
            f"largest MLP within {limit:g} s: hidden={b['hidden']}, P={b['P']} parameters, "
            f"{b['seconds']:.1f} s ({b['n_matvecs']} products; trace rel. SE "
            f"{b['trace_rel_se']:.3f}); stopped: {big['stopped_because']}"
        )
    return 0
