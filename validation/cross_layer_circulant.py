"""Block-circulant cross-layer Hessian at initialization, and its decay along training.

Claim (paper Section 3.1 Finding 2 and Section 4, eq. 18-21): for a one-hidden-layer net
``V relu(W x)`` under CE loss, the cross-layer block ``H_wv`` (m x C blocks of size d x m)
is, at random initialization, dominated by its residual term
``(1/N) sum_i 1[g_ij > 0] r_ik x_i e_j^T`` (``r_i = p_i - e_{y_i}``): block (j, k) has one
non-zero column, column j, so ``H_wv`` looks block-circulant ("periodic stripes"). Training
drives the residuals to zero ("dynamic force") and the pattern fades, while the
within-layer blocks stay near block diagonal.

Measure: ``circulant_fraction = ||S(H_wv)||_F^2 / ||H_wv||_F^2`` where ``S`` keeps column
j of every block (j, k) (1/m if there were no pattern).

Checks:
- the closed-form cross block equals ``torch.func.hessian`` of the real model (1e-10);
- at init the residual part occupies exactly the stripes, and circulant_fraction >= 0.7
  for C >= 20 (averaged over instances);
- along Adam training: circulant_fraction at least halves, the residual part shrinks
  (last / first <= 0.8), and the loss falls.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from _common import entry, finish, parser

from rmthess.report.checks import check_abs, check_lower, check_upper


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.simulate.device import resolve_device
    from rmthess.simulate.hessian import autograd_hessian, hessian_parts, random_labels
    from rmthess.simulate.sampling import sample_instance
    from rmthess.simulate.training import hessian_block_norms, train_dynamics

    dev = resolve_device(args.device)
    checks = []
    # closed form vs autograd on a small instance (independent route)
    C, d, N, m = 5, 6, 13, 4
    inst = sample_instance("hidden", C, d, N, m, seed=args.seed, device=dev)
    Y = random_labels(C, N, args.seed, dev)
    parts = hessian_parts("ce", inst, Y)
    ref = autograd_hessian("hidden", "ce", inst, Y)
    err = float((parts.full() - ref).abs().max() / ref.abs().max())
    checks.append(
        check_abs(
            "circulant",
            "closed-form H vs torch.func.hessian",
            err,
            0.0,
            1e-10,
            f"C={C}, d={d}, N={N}, m={m}; float64",
        )
    )
    res = parts.wv_residual.reshape(m, d, C, m)
    off_stripe = res.clone()
    off_stripe[range(m), :, :, range(m)] = 0
    checks.append(
        check_abs(
            "circulant",
            "residual part lives on the stripes (col j of (j,k))",
            float(off_stripe.abs().max()),
            0.0,
            0.0,
            "exact zeros elsewhere",
        )
    )
    # the pattern at initialization, several C
    Cs = (20, 100) if args.quick else (20, 100, 500)
    reps = 2 if args.quick else 8
    for C in Cs:
        fr = []
        for s in range(reps):
            inst = sample_instance("hidden", C, 20, 200, 8, seed=args.seed + s, device=dev)
            fr.append(
                float(hessian_block_norms(hessian_parts("ce", inst, seed=s))["circulant_fraction"])
            )
        checks.append(
            check_lower(
                "circulant",
                f"circulant fraction at init, C={C} (mean)",
                float(np.mean(fr)),
                0.7,
                f"{reps} instances, d=20, N=200, m=8; no pattern: 1/m = 0.125",
            )
        )
    # along training
    kw = (
        dict(C=20, d=20, N=160, steps=150, lr=2e-2, record_every=50)
        if args.quick
        else dict(C=20, d=50, N=200, steps=500, lr=1e-2, record_every=50)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        df = train_dynamics(m=8, seed=args.seed, device=dev, **kw)
    first, last = df.iloc[0], df.iloc[-1]
    print(
        df[
            ["step", "loss", "cross", "cross_residual", "circulant_fraction", "hidden_ratio"]
        ].to_string(index=False)
    )
    checks.append(
        check_upper(
            "dynamics",
            "circulant fraction: last / first",
            last["circulant_fraction"] / first["circulant_fraction"],
            0.5,
            f"{kw}",
        )
    )
    checks.append(
        check_upper(
            "dynamics",
            "residual part of H_wv: last / first",
            last["cross_residual"] / first["cross_residual"],
            0.8,
            "residuals p - e_y shrink",
        )
    )
    checks.append(
        check_upper(
            "dynamics",
            "training loss: last / first",
            last["loss"] / first["loss"],
            0.9,
            "Adam makes progress",
        )
    )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
