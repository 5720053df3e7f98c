"""``rmthess curvature``: Hessian / GGN diagnostics of an MLP on a data set.

Examples::

    rmthess curvature --data digits --hidden 16 --train-steps 300
    rmthess curvature --data digits --hidden 16 --kind ggn --blocks output-rows --json
    rmthess curvature --data clustered --C 10 --d 64 --N 500 --hidden 8 --out curv/
    rmthess curvature --data digits --layers 0 --theory --networks 50
    rmthess curvature --data digits --classes 5 --standardize --hidden 16 --theory --networks 50

Builds ``mlp(d, C, hidden x layers)`` (LeCun init, seed ``--seed``), optionally trains it
(Adam, full batch), then prints what :func:`rmthess.curvature.curvature_summary` measures:
the top eigenvalues (Lanczos, with residuals), the trace (Hutch++, to ``--trace-rtol``
relative standard error) and the block map's off/diag ratio. ``--json`` prints its
``to_dict()`` (scalars) with the arrays under the key ``"arrays"``: ``eigenvalues`` and
``eigen_residuals`` (top-k), ``blocks`` (block names). ``--out DIR`` writes ``summary.json``
(the scalars), ``blocks.csv``, ``eigenvalues.csv`` (the arrays, tidy) and
figures (block map; SLQ density with ``--density``; the dense |H| heatmap when the model has at
most 4000 parameters). Every argument is checked before any work starts.

``--theory`` (``--layers 0``: the linear model ``z = W x``; ``--layers 1``: the hidden layer
of ``V relu(W x)``, width ``--hidden``; no bias either way) prints instead the measured block
norms ``F_diag``, ``F_off``, ``r`` of ``--networks`` LeCun networks next to each level of the
theory, with relative errors (:func:`rmthess.curvature.theory_on_data`);
``--json`` prints its ``to_dict()`` with the table's rows under ``"levels"``, ``--out DIR``
writes ``theory.json`` and ``theory.csv``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

from rmthess._cli import add_json, add_out, add_progress


def add_arguments(parser) -> None:
    from rmthess._checks import int_arg, number_arg
    from rmthess.data.loaders import add_data_arguments

    add_data_arguments(parser, default="digits", n_min=2)
    parser.add_argument("--hidden", default=16, type=int_arg("hidden", 1), help="hidden width")
    parser.add_argument("--layers", default=1, type=int_arg("layers", 0), help="hidden layers")
    parser.add_argument("--activation", default="relu", help="relu | tanh | gelu | sigmoid")
    parser.add_argument("--no-bias", action="store_true", help="linear layers without bias")
    parser.add_argument("--loss", default="ce", help="ce | mse")
    parser.add_argument(
        "--train-steps",
        default=0,
        type=int_arg("train-steps", 0),
        help="full-batch Adam steps before measuring (default 0: at initialisation)",
    )
    parser.add_argument(
        "--lr",
        default=1e-2,
        type=number_arg("float", name="lr", minimum=0),
        help="Adam learning rate of the training steps (default 0.01)",
    )
    parser.add_argument("--kind", default="hessian", help="hessian | ggn | residual")
    parser.add_argument("--blocks", default="layers", help="layers | params | output-rows | ...")
    parser.add_argument("--k", default=10, type=int_arg("k", 0), help="top eigenvalues")
    parser.add_argument(
        "--probes",
        default=20,
        type=number_arg("int", name="probes", minimum=2, maximum=10**6),
        help="per block, 2 ... 1e6 (default 20)",
    )
    parser.add_argument(
        "--trace-rtol", default=0.05, type=number_arg("float", name="trace-rtol", minimum=0)
    )
    parser.add_argument("--density", action="store_true", help="also the SLQ density")
    parser.add_argument(
        "--seed",
        default=0,
        type=int_arg("seed", 0),
        help="seeds the data, the weights, the minibatches and every probe (default 0)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="float64", help="float64 | float32")
    parser.add_argument(
        "--theory",
        action="store_true",
        help="linear model (--layers 0, no bias) at init: measured block norms next to every "
        "level of the theory on this data set",
    )
    parser.add_argument(
        "--networks",
        default=20,
        type=int_arg("networks", 2, 10**6),
        help="--theory: LeCun networks measured (and of the exact theory routes; default 20)",
    )
    parser.add_argument(
        "--per-class",
        default=4,
        type=int_arg("per-class", 1, 64),
        help="--theory: k-means components per class of the 'clusters' level (default 4)",
    )
    add_json(parser, "the summary")
    add_out(parser, "the JSON/CSV/PNG outputs (a directory)")
    add_progress(parser, "when it is a terminal")


# Vectors of P numbers held at once by the largest step (ARPACK's ncv, Hutch++'s Q and
# probes, 8 SLQ probes x 81 Lanczos vectors) and by the model, its optimiser and curvlinops'
# 32 columns of products (with their forward-mode tangents).
_VECTORS_DENSITY, _VECTORS_TRACE, _VECTORS_MODEL = 8 * 81, 2 * 33 + 2 + 99, 4 + 3 * 32


def _n_params(d: int, C: int, args) -> int:
    widths = (d, *(args.hidden,) * args.layers, C)
    bias = 0 if args.no_bias else 1
    return sum(a * b + bias * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _check_cost(ds, args, itemsize: int) -> None:
    """Refuse, before building the model, a run whose vectors would not fit in memory."""
    from rmthess._checks import check_memory

    P = _n_params(ds.d, ds.n_classes, args)
    vectors = max(
        max(2 * args.k + 1, 20) if args.k else 0,
        _VECTORS_TRACE if args.trace_rtol else 0,
        _VECTORS_DENSITY if args.density else 0,
    )
    check_memory(
        8.0 * P * vectors + itemsize * P * _VECTORS_MODEL,
        f"an MLP of P={P} parameters (d={ds.d}, C={ds.n_classes}, --hidden {args.hidden} x "
        f"--layers {args.layers}) and its curvature vectors",
        "lower --hidden, --layers, --C or --d (or --k, --density)",
    )


def _dataset(args):
    from rmthess.data.loaders import load_from_args

    return load_from_args(args)


def _check_out(path):
    if path is None:
        return None
    from rmthess._outputs import prepare_out_dir

    prepare_out_dir(path, marker="curvature")  # before any work
    return path


def _write_outputs(out, summary, op, model, loss, data, args):
    """Every output through a staging directory (:mod:`rmthess._outputs`): an error half-way
    leaves nothing behind; an earlier ``curvature --out`` there is replaced as a whole."""
    from rmthess._outputs import Staging

    with Staging(out, marker="curvature") as staging:
        _write_files(str(staging.path), summary, op, model, loss, data, args)
        staging.commit()


def _write_files(out, summary, op, model, loss, data, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rmthess.curvature.plots import plot_block_map, plot_hessian

    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary.to_dict(), f, indent=1)
    summary.to_frame().to_csv(os.path.join(out, "eigenvalues.csv"), index=False)
    if summary.blocks is not None:
        summary.blocks.to_frame().to_csv(os.path.join(out, "blocks.csv"), index=False)
        ax = plot_block_map(summary.blocks)
        ax.figure.savefig(os.path.join(out, "block_map.png"), dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
    if summary.density is not None:
        from rmthess.curvature.density import plot_density

        ax = plot_density(summary.density, eigenvalues=summary.eigenvalues)
        ax.figure.savefig(os.path.join(out, "density.png"), dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
    if op.shape[0] <= 4000:
        from rmthess.curvature.operators import dense_hessian

        M = dense_hessian(model, loss, data, args.kind)
        ax = plot_hessian(M, op)
        ax.figure.savefig(os.path.join(out, "hessian.png"), dpi=120, bbox_inches="tight")
        plt.close(ax.figure)


def _json_record(summary) -> dict:
    """``--json``: the scalar record plus the arrays, as lists, under ``"arrays"``."""
    arrays = {}
    if summary.eigen is not None:
        arrays["eigenvalues"] = [float(x) for x in summary.eigen.eigenvalues]
        arrays["eigen_residuals"] = [float(x) for x in summary.eigen.residuals]
    if summary.blocks is not None:
        arrays["blocks"] = list(summary.blocks.names)
    return {**summary.to_dict(), "arrays": arrays}


def run(args) -> int:
    from rmthess._checks import check_choice
    from rmthess._device import resolve_device, resolve_dtype
    from rmthess.curvature.block_specs import resolve_blocks
    from rmthess.curvature.models import ACTIVATIONS, mlp, train
    from rmthess.curvature.operators import KINDS, curvature_operator
    from rmthess.curvature.summary import curvature_summary

    check_choice("--kind", args.kind, KINDS)
    check_choice("--loss", args.loss, ("ce", "mse"))
    if args.theory:
        return _run_theory(args)
    check_choice("--activation", args.activation, tuple(ACTIVATIONS))
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    out = _check_out(args.out)
    ds = _dataset(args)
    _check_cost(ds, args, dtype.itemsize)
    progress = args.progress
    model = mlp(
        ds.d,
        ds.n_classes,
        (args.hidden,) * args.layers,
        activation=args.activation,
        bias=not args.no_bias,
        seed=args.seed,
        dtype=dtype,
        device=device,
    )
    data = ds.tensors(dtype=dtype, device=device)
    op = curvature_operator(model, args.loss, data, args.kind)
    resolve_blocks(op, args.blocks)  # a bad --blocks fails before training
    log = None
    if args.train_steps:
        log = train(
            model,
            args.loss,
            data,
            steps=args.train_steps,
            lr=args.lr,
            seed=args.seed,
            progress=progress,
        )
    summary = curvature_summary(
        op=op,
        k=args.k,
        trace_rtol=args.trace_rtol or None,
        blocks=args.blocks,
        probes=args.probes,
        density=args.density,
        seed=args.seed,
        progress=progress,
    )
    if out is not None:
        _write_outputs(out, summary, op, model, args.loss, data, args)
    if args.json:
        print(json.dumps(_json_record(summary), indent=1))
        return 0
    print(f"{args.kind} of {ds.name} (N={ds.n}, d={ds.d}, C={ds.n_classes}) on an MLP with")
    print(f"  hidden={(args.hidden,) * args.layers}, P={op.shape[0]} parameters, {args.loss} loss")
    if log is not None:
        last = log.iloc[-1]
        print(f"  trained {args.train_steps} steps: loss {last.loss:.4g}, acc {last.accuracy:.3f}")
    if summary.eigen is not None:
        lams = ", ".join(f"{x:.5g}" for x in summary.eigen.eigenvalues)
        print(f"top-{len(summary.eigen.eigenvalues)} eigenvalues: {lams}")
        print(f"  max relative residual {max(summary.eigen.residuals):.1e}")
    if summary.trace is not None:
        t = summary.trace
        print(f"trace: {t.trace:.6g} +- {t.trace_se:.2g} ({t.n_matvecs} products)")
    if summary.blocks is not None:
        b = summary.blocks
        what = f"{len(b.names)} blocks ({args.blocks})"
        print(f"{what}: off/diag ratio {b.ratio:.4g} +- {b.ratio_se:.2g}")
    print(f"{summary.n_matvecs} matrix-vector products in {sum(summary.seconds.values()):.1f} s")
    if out is not None:
        print(f"wrote {out}/")
    return 0


def _check_theory_args(args) -> None:
    if args.layers > 1:
        raise ValueError(
            f"--theory needs --layers 0 (the linear model z = W x) or 1 (one hidden ReLU "
            f"layer), got --layers {args.layers}: deeper nets have no theory on data yet"
        )
    if args.layers == 1 and args.activation != "relu":
        raise ValueError(
            f"--theory with --layers 1 is for ReLU (--activation relu), got {args.activation}"
        )
    if args.train_steps:
        raise ValueError("--theory is at initialisation: --train-steps must be 0")
    if args.kind != "hessian":
        raise ValueError(f"--theory compares the Hessian: --kind must be hessian, got {args.kind}")


def _run_theory(args) -> int:
    from rmthess.curvature.on_data import theory_on_data

    _check_theory_args(args)
    out = _check_out(args.out)
    ds = _dataset(args)
    with warnings.catch_warnings(record=True) as caught:  # one line each, after the work
        warnings.simplefilter("always", RuntimeWarning)
        res = theory_on_data(
            ds,
            args.loss,
            networks=args.networks,
            seed=args.seed,
            hidden=(args.hidden,) * args.layers,
            per_class=args.per_class,
            progress=args.progress,
        )
    for w in caught:
        if issubclass(w.category, RuntimeWarning):  # the theory's (d_eff small): one line
            print(f"note: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    frame = res.to_frame()
    if out is not None:
        from rmthess._outputs import Staging

        with Staging(out, marker="curvature") as staging:
            with open(os.path.join(str(staging.path), "theory.json"), "w") as f:
                json.dump(res.to_dict(), f, indent=1)
            frame.to_csv(os.path.join(str(staging.path), "theory.csv"), index=False)
            staging.commit()
    if args.json:
        from rmthess._stats import json_safe

        rows = [json_safe(r) for r in frame.to_dict(orient="records")]
        print(json.dumps({**res.to_dict(), "levels": rows}, indent=1))
        return 0
    print(_theory_text(res, frame))
    if out is not None:
        print(f"wrote {out}/")
    return 0


def _theory_text(res, frame) -> str:

    lines = [
        f"{res.case} on {res.name} (N={res.N}, d={res.d}, C={res.C}, d_eff={res.d_eff:.3g}): "
        f"{'linear model z = W x' if res.m is None else f'hidden layer of V relu(W x), m={res.m}'}"
        f", {res.networks} LeCun networks, (1/d)||H_kl||_F^2",
        f"{'level':14s}{'F_diag':>24s}{'F_off':>24s}{'r':>22s}"
        f"{'err F_diag':>16s}{'err F_off':>16s}{'err r':>15s}",
    ]
    for row in frame.itertuples(index=False):
        vals = "".join(
            f"{_estimate(getattr(row, q), getattr(row, q + '_se')):>{w}s}"
            for q, w in (("F_diag", 24), ("F_off", 24), ("ratio", 22))
        )
        errs = ""
        if row.level != "measured":
            errs = "".join(
                f"{_percent(getattr(row, 'err_' + q), getattr(row, 'err_' + q + '_se')):>{w}s}"
                for q, w in (("F_diag", 16), ("F_off", 16), ("ratio", 15))
            )
        lines.append(f"{row.level:14s}{vals}{errs}")
    return "\n".join(lines)


def _estimate(x: float, se: float) -> str:
    """An estimate and its SE for the table; a quadrature's error (SE below 1e-6 of the
    value) is not shown: 5 significant digits."""
    from rmthess._stats import format_estimate

    if se <= 1e-6 * abs(x):
        return format_estimate(x, None, 5)
    return format_estimate(x, se, 5)


def _percent(err: float, se: float) -> str:
    """A relative error in percent, with its SE when it has one (paired levels)."""
    if se > 0 and se == se:
        return f"{100 * err:+.1f}+-{100 * se:.1f}%"
    return f"{100 * err:+.1f}%"
