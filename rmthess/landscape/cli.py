"""``rmthess landscape``: Delta_k = |L_{k+1} - L_k| against the sample count k (seed 000).

Examples::

    rmthess landscape --data digits --hidden 4,8,16,32,64 --layers 1,3,5 --orders 100
    rmthess landscape --data digits --hidden 8,16 --layers 3 --epochs 2 --json
    rmthess landscape --idx-images train-images.gz --idx-labels train-labels.gz --out land/

Trains the paper's bias-free ReLU MLPs (Adam, batch 64, ``--epochs``) for each width in
``--hidden`` at ``--fixed-layers`` weight matrices and each depth in ``--layers`` (the
paper's L = number of weight matrices; the authors' code's ``num_layers`` is L - 2) at
``--fixed-hidden``; for each, the Monte-Carlo curve over ``--orders`` random orders, its
exact expectation and the fitted slope with a bootstrap CI; then the Hessian-bound audit
(``--audit-samples`` samples at initialization, after training, and with a 0.1-scaled
initialization). Prints the fits and the audit summary (``--json``: one JSON record), and
with ``--out DIR`` writes ``fits.csv``, ``audit.csv``, ``delta.png``.
:func:`rmthess.landscape.landscape_experiment` is the same in Python.
"""

from __future__ import annotations

import json
import os


def add_arguments(parser) -> None:
    from rmthess._checks import int_list_arg, number_arg

    def int_arg(name, minimum):
        return number_arg("int", name=name, minimum=minimum)

    parser.add_argument("--data", default="digits", help="digits | a .npz path")
    parser.add_argument("--idx-images", default=None, help="MNIST-format images (IDX)")
    parser.add_argument("--idx-labels", default=None, help="MNIST-format labels (IDX)")
    parser.add_argument("--limit", default=None, type=int_arg("limit", 2), help="first n samples")
    parser.add_argument("--hidden", default=[4, 8, 16, 32, 64], type=int_list_arg(name="hidden"))
    parser.add_argument("--layers", default=[1, 3, 5], type=int_list_arg(name="layers"))
    parser.add_argument("--fixed-hidden", default=16, type=int_arg("fixed-hidden", 1))
    parser.add_argument("--fixed-layers", default=3, type=int_arg("fixed-layers", 1))
    parser.add_argument("--orders", default=100, type=int_arg("orders", 2))
    parser.add_argument("--epochs", default=10, type=int_arg("epochs", 0))
    parser.add_argument("--audit-samples", default=200, type=int_arg("audit-samples", 0))
    parser.add_argument("--seed", default=0, type=int_arg("seed", 0))
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    parser.add_argument("--out", default=None, help="directory for CSV/PNG outputs")
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def _dataset(args):
    from rmthess import data as rd

    if (args.idx_images is None) != (args.idx_labels is None):
        raise ValueError("--idx-images and --idx-labels go together")
    if args.idx_images is not None:
        ds = rd.load_idx(args.idx_images, args.idx_labels, limit=args.limit)
    elif args.data.endswith(".npz"):
        ds = rd.load_npz(args.data)
    elif args.data == "digits":
        ds = rd.digits()
    else:
        raise ValueError(f"--data must be 'digits' or a .npz path, got {args.data!r}")
    if args.limit is not None and args.idx_images is None:
        if args.limit > ds.n:
            raise ValueError(f"--limit must be at most {ds.n}, got {args.limit}")
        ds = ds.subset(args.limit, seed=args.seed)
    from rmthess.landscape.experiment import paper_pixels

    return paper_pixels(ds)  # the paper scales pixels to [-1, 1]; ours arrive in [0, 1]


def _write_files(tmp, res, fits, audit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rmthess.landscape.experiment import plot_delta_panels

    fits.to_csv(os.path.join(tmp, "fits.csv"), index=False)
    audit.to_csv(os.path.join(tmp, "audit.csv"), index=False)
    axes = plot_delta_panels(res)
    axes[0].figure.savefig(os.path.join(tmp, "delta.png"), dpi=120, bbox_inches="tight")
    plt.close(axes[0].figure)


def run(args) -> int:
    from rmthess.landscape.experiment import landscape_experiment

    out = args.out
    if out is not None:
        from rmthess._outputs import prepare_out_dir

        prepare_out_dir(out, marker="landscape")  # before any work
    ds = _dataset(args)
    res = landscape_experiment(
        ds,
        hidden=args.hidden,
        layers=args.layers,
        fixed_hidden=args.fixed_hidden,
        fixed_layers=args.fixed_layers,
        orders=args.orders,
        epochs=args.epochs,
        audit_samples=args.audit_samples,
        seed=args.seed,
        progress=args.progress and not args.json,
    )
    fits, audit = res.to_frame(), res.audit_frame()
    if out is not None:
        from rmthess._outputs import Staging

        with Staging(out, marker="landscape") as staging:
            _write_files(str(staging.path), res, fits, audit)
            staging.commit()
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(f"Delta_k on {ds.name} (N={ds.n}), {args.orders} random orders")
        cols = ["panel", "hidden", "layers", "train_loss", "slope", "slope_ci_low"]
        print(fits[[*cols, "slope_ci_high", "mc_vs_exact_z"]].to_string(index=False))
        if len(audit):
            print("\nHessian-bound audit (bound / exact ||H_i||_2):")
            cols = ["state", "bound", "target", "holds_fraction", "ratio_min", "ratio_median"]
            print(audit[cols].to_string(index=False))
    if out is not None:
        print(f"wrote {out}/")
    return 0
