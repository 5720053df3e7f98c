"""rmthess.simulate with any activation and any depth against the theory (issue 20).

Claims tested: the package's own simulation route, ``block_frobenius(..., activation=)`` and
``depth_block_frobenius`` (closed-form blocks in torch, Gram route; equal to
``torch.func.hessian`` in the tests), agrees with the theory's limits,
``frobenius_limits(..., activation=)`` and ``depth_frobenius(..., N=N)``, and the simulated
block spectra follow ``limiting_law(..., activation=)`` / ``depth_limiting_law``.

Cells (default; ``--quick``: smaller and fewer): Gaussian inputs, random labels, LeCun init,
d = 500, N = 1000 (gamma = 0.5), m = 16, 30 trials; theory with 2000 networks.

- hidden-ce with tanh and GELU at C = 10, 100; output-ce with tanh at C = 10, 100
  (``unbiased``: the i = j terms dropped);
- every layer of a (16, 16) MLP, ReLU and tanh, CE, C = 10, 100;
- spectra: a hidden-ce diagonal block (tanh) and a first-layer off-diagonal block of the
  (16, 16) ReLU MLP (given the sampled deeper weights), Kolmogorov distance per trial.

Checks: ``|sim - theory| <= 3 SE + 5 %`` (the issue's rule; 5 % covers the O(1/d) finite-size
terms: docs/theory.md 9.5 measures +3.9 % for tanh output-ce at d = 400); the Kolmogorov
distance below 0.06 (O(d^-1/2) edge and sampling effects at d = 500), first rows of ``W``
normalised for the spectra (the limit has unit rows).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _common import check_out_csv, entry, finish, parser, write_rows_csv

from rmthess.report.checks import check_abs, check_close

SECTION = "simulate-activations"


def _close(checks, rows, name, s, s_se, t, t_se):
    checks.append(check_close(SECTION, name, s, t, s_se, t_se, k=3.0, rel_allowance=0.05))
    rows.append(dict(name=name, sim=s, sim_se=s_se, theory=t, theory_se=t_se,
                     rel=(s - t) / t if t else float("nan")))  # fmt: skip


def _one_layer(checks, rows, d, N, m, trials, samples, Cs, seed, device):
    from rmthess.simulate import block_frobenius
    from rmthess.theory import frobenius_limits

    for case, act in (("hidden-ce", "tanh"), ("hidden-ce", "gelu"), ("output-ce", "tanh")):
        for C in Cs:
            sim = block_frobenius(case, C, d, N, m, trials=trials, seed=seed, device=device,
                                  activation=act, unbiased=case.startswith("output"))  # fmt: skip
            th = frobenius_limits(case, C, d / N, m, activation=act, samples=samples, seed=seed)
            for q in ("F_diag", "F_off"):
                _close(checks, rows, f"{case} {act} C={C} {q}", getattr(sim, q),
                       getattr(sim, q + "_se"), getattr(th, q), getattr(th, q + "_se"))  # fmt: skip


def _deep(checks, rows, d, N, widths, trials, samples, Cs, seed, device, acts):
    from rmthess.simulate import depth_block_frobenius
    from rmthess.theory import depth_frobenius

    for act in acts:
        for C in Cs:
            sim = depth_block_frobenius("ce", C, d, N, widths, act, trials=trials, seed=seed,
                                        device=device)  # fmt: skip
            th = depth_frobenius("ce", C, d / N, widths, act, N=N, samples=samples, seed=seed)
            for i, layer in enumerate(sim.layers):
                for q in ("F_diag", "F_off"):
                    _close(checks, rows, f"{act} {widths} C={C} {layer} {q}",
                           getattr(sim, q)[i], getattr(sim, q + "_se")[i],
                           getattr(th, q)[i], getattr(th, q + "_se")[i])  # fmt: skip


def _ks(ev, law) -> float:
    ev = np.sort(np.where(np.abs(ev) < 1e-10 * np.abs(ev).max(), 0.0, ev))
    x = np.linspace(ev[0] - 1e-3, ev[-1] + 1e-3, 4001)
    return float(np.max(np.abs(np.searchsorted(ev, x, side="right") / len(ev) - law.cdf(x))))


def _spectra(checks, d, N, m, trials, seed):
    import torch

    from rmthess.simulate.sampling import sample_instance
    from rmthess.simulate.spectra import block_matrix
    from rmthess.theory import depth_limiting_law, limiting_law, sample_network

    C = 10
    inst = sample_instance("hidden", C, d, N, m, trials=trials, seed=seed, device="cpu",
                           activation="tanh")  # fmt: skip
    inst.W /= inst.W.norm(dim=2, keepdim=True)
    for t in range(trials):
        ev = torch.linalg.eigvalsh(block_matrix("hidden-ce", inst, 0, 0, trial=t)).numpy()
        law = limiting_law("hidden-ce", "diag", C, d / N, m, V=inst.V[t].numpy(),
                           activation="tanh", seed=t)  # fmt: skip
        checks.append(check_abs(SECTION, f"hidden-ce tanh diag spectrum, trial {t}: KS",
                                _ks(ev, law), 0.0, 0.06))  # fmt: skip
    from rmthess.simulate.deep import pre_activation_hessians
    from rmthess.simulate.torch_activations import torch_activation

    widths = (m, m)
    Ws, V = sample_network(C, widths, seed=seed)
    law = depth_limiting_law("ce", "off", C, d / N, widths, "relu", net=(Ws, V), n_atoms=8192)
    gen = torch.Generator().manual_seed(seed)
    for t in range(trials):
        Q, _ = torch.linalg.qr(torch.randn(d, m, generator=gen, dtype=torch.float64))
        X = torch.randn(N, d, generator=gen, dtype=torch.float64)
        y = torch.randint(0, C, (N,), generator=gen)
        H, _, _ = pre_activation_hessians(X @ Q, y, [torch.tensor(Ws[0])], torch.tensor(V),
                                          "ce", torch_activation("relu"))  # fmt: skip
        B = (X.T * H[0][:, 0, 1]) @ X / N
        ev = torch.linalg.eigvalsh(0.5 * (B + B.T)).numpy()
        checks.append(check_abs(SECTION, f"relu {widths} first-layer off spectrum, trial {t}: KS",
                                _ks(ev, law), 0.0, 0.06))  # fmt: skip


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="write the table to this CSV file")
    args = p.parse_args(argv)
    check_out_csv(args.out)
    t0 = time.perf_counter()
    q = args.quick
    d, N = (200, 400) if q else (500, 1000)
    m, trials, samples = (8, 12, 300) if q else (16, 30, 2000)
    Cs = (10,) if q else (10, 100)
    checks: list = []
    rows: list = []
    _one_layer(checks, rows, d, N, m, trials, samples, Cs, args.seed, args.device)
    # --quick: tanh only (ReLU's output rows at m = 8 are heavy-tailed over networks: a dozen
    # trials do not pin them; docs/theory.md 9.6)
    _deep(checks, rows, d, N, (m, m), trials, samples // 2, Cs, args.seed, args.device,
          ("tanh",) if q else ("relu", "tanh"))  # fmt: skip
    _spectra(checks, d, N, m, 2 if q else 4, args.seed)
    for r in rows:
        print(f"{r['name']:<45} sim {r['sim']:.5g} +- {r['sim_se']:.2g}  theory "
              f"{r['theory']:.5g} +- {r['theory_se']:.2g}  ({100 * r['rel']:+.1f} %)")  # fmt: skip
    write_rows_csv(args.out, rows)
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
