"""``rmthess curvature``: Hessian / GGN diagnostics of an MLP on a data set.

Examples::

    rmthess curvature --data digits --hidden 16 --train-steps 300
    rmthess curvature --data digits --hidden 16 --kind ggn --blocks output-rows --json
    rmthess curvature --data clustered --C 10 --d 64 --N 500 --hidden 8 --out curv/

Builds ``mlp(d, C, hidden x layers)`` (LeCun init, seed ``--seed``), optionally trains it
(Adam, full batch), then prints what :func:`rmthess.curvature.curvature_summary` measures:
the top eigenvalues (Lanczos, with residuals), the trace (Hutch++, to ``--trace-rtol``
relative standard error) and the block map's off/diag ratio. ``--json`` prints its
``to_dict()``. ``--out DIR`` writes ``summary.json``, ``blocks.csv``, ``eigenvalues.csv`` and
figures (block map; SLQ density with ``--density``; the dense |H| heatmap when the model has at
most 4000 parameters). Every argument is checked before any work starts.
"""

from __future__ import annotations

import json
import os

DATASETS = ("digits", "gaussian", "clustered")


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    def int_arg(name, minimum):
        return number_arg("int", name=name, minimum=minimum)

    parser.add_argument("--data", default="digits", help="digits | gaussian | clustered | a .npz")
    parser.add_argument("--C", default=10, type=int_arg("C", 2), help="classes (synthetic)")
    parser.add_argument("--d", default=64, type=int_arg("d", 1), help="input dim (synthetic)")
    parser.add_argument("--N", default=500, type=int_arg("N", 1), help="samples (synthetic)")
    parser.add_argument("--clusters", default=2, type=int_arg("clusters", 1), help="per class")
    parser.add_argument(
        "--n", default=None, type=int_arg("n", 2), metavar="SUBSET", help="use n samples"
    )
    parser.add_argument("--hidden", default=16, type=int_arg("hidden", 1), help="hidden width")
    parser.add_argument("--layers", default=1, type=int_arg("layers", 0), help="hidden layers")
    parser.add_argument("--activation", default="relu", help="relu | tanh | gelu | sigmoid")
    parser.add_argument("--no-bias", action="store_true", help="linear layers without bias")
    parser.add_argument("--loss", default="ce", help="ce | mse")
    parser.add_argument("--train-steps", default=0, type=int_arg("train-steps", 0))
    parser.add_argument("--lr", default=1e-2, type=number_arg("float", name="lr", minimum=0))
    parser.add_argument("--kind", default="hessian", help="hessian | ggn | residual")
    parser.add_argument("--blocks", default="layers", help="layers | params | output-rows | ...")
    parser.add_argument("--k", default=10, type=int_arg("k", 0), help="top eigenvalues")
    parser.add_argument("--probes", default=20, type=int_arg("probes", 1), help="per block")
    parser.add_argument(
        "--trace-rtol", default=0.05, type=number_arg("float", name="trace-rtol", minimum=0)
    )
    parser.add_argument("--density", action="store_true", help="also the SLQ density")
    parser.add_argument("--seed", default=0, type=int_arg("seed", 0))
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="float64", help="float64 | float32")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--out", default=None, help="directory for JSON/CSV/PNG outputs")


def _dataset(args):
    from rmthess import data as rd

    if args.data.endswith(".npz"):
        ds = rd.load_npz(args.data)
    elif args.data == "digits":
        ds = rd.digits()
    elif args.data == "gaussian":
        ds = rd.gaussian(args.C, args.d, args.N, seed=args.seed)
    elif args.data == "clustered":
        ds = rd.clustered(args.C, args.d, args.N, clusters=args.clusters, seed=args.seed)
    else:
        raise ValueError(f"--data must be one of {DATASETS} or a path to a .npz, got {args.data!r}")
    if args.n is not None:
        if args.n > ds.n:
            raise ValueError(f"--n must be at most the data set's {ds.n} samples, got {args.n}")
        ds = ds.subset(args.n, seed=args.seed)
    return ds


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


def run(args) -> int:
    from rmthess._checks import check_choice
    from rmthess._device import resolve_device, resolve_dtype
    from rmthess.curvature.block_specs import resolve_blocks
    from rmthess.curvature.models import ACTIVATIONS, mlp, train
    from rmthess.curvature.operators import KINDS, curvature_operator
    from rmthess.curvature.summary import curvature_summary

    check_choice("--kind", args.kind, KINDS)
    check_choice("--loss", args.loss, ("ce", "mse"))
    check_choice("--activation", args.activation, tuple(ACTIVATIONS))
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    out = _check_out(args.out)
    ds = _dataset(args)
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
        log = train(model, args.loss, data, steps=args.train_steps, lr=args.lr, seed=args.seed)
    summary = curvature_summary(
        op=op,
        k=args.k,
        trace_rtol=args.trace_rtol or None,
        blocks=args.blocks,
        probes=args.probes,
        density=args.density,
        seed=args.seed,
    )
    if out is not None:
        _write_outputs(out, summary, op, model, args.loss, data, args)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
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
