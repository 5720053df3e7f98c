"""``rmthess landscape``: Delta_k = |L_{k+1} - L_k| against the sample count k (seed 000).

Examples::

    rmthess landscape --data digits --hidden 4,8,16,32,64 --depths 1,3,5 --orders 100
    rmthess landscape --data digits --hidden 8,16 --depths 3 --epochs 2 --json
    rmthess landscape --idx-images train-images.gz --idx-labels train-labels.gz --out land/
    rmthess landscape --data mnist.npz --x-key x_train --y-key y_train --n 5000

Trains the paper's bias-free ReLU MLPs (Adam, batch 64, --epochs) for each width in
--hidden at --fixed-depth weight matrices and each depth in --depths (the paper's L, the
number of weight matrices = hidden layers + 1; the authors' code's num_layers is L - 2) at
--fixed-hidden; for each, the Monte-Carlo curve over --orders random orders, its exact
expectation and the fitted slope with a bootstrap CI; then the Hessian-bound audit
(--audit-samples samples at initialization, after training, and with a 0.1-scaled
initialization). Pixels are mapped to [-1, 1] as in the paper (0..1 and 0..255 inputs are
recognised; --raw-inputs keeps the inputs as they are). Prints the fits and the audit
summary (--json: one JSON record), and with --out DIR writes fits.csv, audit.csv,
delta.png. rmthess.landscape.landscape_experiment is the same in Python.
"""

from __future__ import annotations

import json
import os

from rmthess._cli import add_json, add_out, add_progress

K_MIN = 10
"""First k of the slope fit (landscape_experiment's default); the fit runs to k = n/10."""
N_MIN = 10 * (K_MIN + 2)
"""Fewest samples: the fit needs at least 3 points k_min..n/10."""


def _renamed(new: str, what: str):
    def refuse(text):
        import argparse

        raise argparse.ArgumentTypeError(f"is not a landscape option; use {new} ({what})")

    return refuse


def add_arguments(parser) -> None:
    import argparse

    from rmthess._checks import int_arg, int_list_arg
    from rmthess.data.loaders import add_data_arguments

    add_data_arguments(parser, default="digits", n_min=N_MIN)
    parser.add_argument(
        "--raw-inputs",
        action="store_true",
        help="use the inputs as they are (default: pixels mapped to [-1, 1] as in the paper; "
        "synthetic data is never scaled)",
    )
    net = parser.add_argument_group("networks")
    net.add_argument(
        "--hidden",
        default=[4, 8, 16, 32, 64],
        type=int_list_arg(name="hidden"),
        metavar="H,H,...",
        help="hidden widths of the width panel, at --fixed-depth (default 4,8,16,32,64)",
    )
    net.add_argument(
        "--depths",
        default=[1, 3, 5],
        type=int_list_arg(name="depths"),
        metavar="L,L,...",
        help="depths of the depth panel: the paper's L = number of weight matrices = hidden "
        "layers + 1 (1 = logistic regression), at --fixed-hidden (default 1,3,5)",
    )
    net.add_argument(
        "--fixed-hidden",
        default=16,
        type=int_arg("fixed-hidden", 1),
        help="width of the depth panel (default 16)",
    )
    net.add_argument(
        "--fixed-depth",
        default=3,
        type=int_arg("fixed-depth", 1),
        help="depth L (weight matrices) of the width panel and the audit (default 3)",
    )
    for old, new, what in (
        ("--layers", "--depths", "the paper's L, weight matrices = hidden layers + 1"),
        ("--fixed-layers", "--fixed-depth", "weight matrices"),
        ("--limit", "--n", "a stratified random subset of N samples"),
    ):
        parser.add_argument(old, type=_renamed(new, what), help=argparse.SUPPRESS)
    parser.add_argument(
        "--orders",
        default=100,
        type=int_arg("orders", 2),
        help="random orders of the samples per network (default 100, as the paper)",
    )
    parser.add_argument(
        "--epochs",
        default=10,
        type=int_arg("epochs", 0),
        help="training epochs (Adam, lr 1e-3, batch 64; default 10, as the paper)",
    )
    parser.add_argument(
        "--audit-samples",
        default=200,
        type=int_arg("audit-samples", 0),
        help="samples of the Hessian-bound audit per state (0 skips it; default 200)",
    )
    parser.add_argument(
        "--seed", default=0, type=int_arg("seed", 0), help="weights, orders, subset (default 0)"
    )
    add_json(parser, "one record")
    add_out(parser, "the CSV/PNG outputs (a directory)")
    add_progress(parser, "when it is a terminal")


def _dataset(args):
    from rmthess.data.loaders import LOADERS, data_source, load_from_args

    pixels = LOADERS[data_source(args)].pixels
    ds = load_from_args(args)
    if args.raw_inputs or not pixels:
        return ds
    from rmthess.landscape.experiment import paper_pixels

    return paper_pixels(ds)  # the paper scales pixels to [-1, 1]


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
        layers=args.depths,
        fixed_hidden=args.fixed_hidden,
        fixed_layers=args.fixed_depth,
        k_min=K_MIN,
        orders=args.orders,
        epochs=args.epochs,
        audit_samples=args.audit_samples,
        seed=args.seed,
        progress=False if args.json else args.progress,
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
        table = fits[[*cols, "slope_ci_high", "mc_vs_exact_z"]]
        print(table.rename(columns={"layers": "L"}).to_string(index=False))
        if len(audit):
            print("\nHessian-bound audit (bound / exact ||H_i||_2):")
            cols = ["state", "bound", "target", "holds_fraction", "ratio_min", "ratio_median"]
            print(audit[cols].to_string(index=False))
    if out is not None:
        print(f"wrote {out}/")
    return 0
