"""Report section ``depth`` (issue 20): every layer's measured ratio next to depth_frobenius.
The measurement is checked against torch's dense Hessian in tests/curvature/test_layer_maps.py
and the theory against simulation in tests/theory/test_depth.py; here the section's own
wiring: the first layer's norms divided by d, the layers in order, the checks failing on a
wrong theory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rmthess.report.config import get_config
from rmthess.report.sections import NAMES
from rmthess.report.sections import depth as sec


@pytest.fixture(scope="module")
def small():
    cfg = get_config("tiny")
    cfg = dataclasses.replace(
        cfg, depth=dataclasses.replace(cfg.depth, cells=(((6, 5), 3, "relu"),), networks=2)
    )
    return sec.compute(cfg)


def test_rows_are_the_layers_in_order(small):
    df = small.table
    assert list(df["layer"]) == ["hidden1", "hidden2", "output"]
    assert list(df["fan_out"][:2]) == [5, 3]
    assert np.all(df["r"] > 0) and np.all(df["r_se"] > 0)
    assert len(sec.checks(small)) == 3


def test_measurement_matches_an_independent_dense_hessian():
    """Per network: the first layer's F_diag / F_off (divided by d) from torch.func.hessian
    of the loss in all parameters, cut into row blocks by hand."""
    import torch

    from rmthess.curvature import mlp

    cfg = get_config("tiny")
    d, N, C = cfg.depth.d, cfg.depth.N, 3
    per = sec.measure_layers((4, 3), C, "relu", d, N, cfg.depth.networks, 7)
    gen = torch.Generator().manual_seed(7)
    net = mlp(d, C, (4, 3), activation="relu", bias=False, seed=8).double()
    X = torch.randn(N, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=gen)
    W1 = net.hidden1.weight.detach().clone()

    def loss(w):
        h = torch.relu(X @ w.T)
        h = torch.relu(h @ net.hidden2.weight.T)
        return torch.nn.functional.cross_entropy(h @ net.output.weight.T, y)

    H = torch.func.hessian(loss)(W1).reshape(4, d, 4, d)  # (j, ., l, .)
    sq = (H**2).sum(dim=(1, 3)).detach().numpy() / d
    off = ~np.eye(4, dtype=bool)
    assert per[0, 0, 0] == pytest.approx(np.mean(np.diag(sq)), rel=1e-9)
    assert per[0, 0, 1] == pytest.approx(np.mean(sq[off]), rel=1e-9)


def test_checks_fail_on_a_wrong_theory(small):
    # tiny mode: tol 50 %, two networks; a theory 3x off with exact SEs must fail every row
    t = small.table.assign(r_theory=small.table["r"] * 3, r_se=0.0, r_theory_se=0.0)
    bad = dataclasses.replace(small, table=t)
    assert not any(c.passed for c in sec.checks(bad))


def test_order():
    assert NAMES.index("depth") == NAMES.index("theory-on-data") + 1
