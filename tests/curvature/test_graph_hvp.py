"""The kept-graph Hessian-vector route (rmthess.curvature.graph_hvp, issue 21) against the
dense reference (torch.func reverse-over-reverse, :func:`dense_hessian`) and curvlinops'
forward-over-reverse route, over the loss variants users pass; staleness after an in-place
parameter change; the rebuild-per-product path.
"""

import numpy as np
import pytest
import torch
from torch import nn

from rmthess.curvature import curvature_operator, dense_hessian
from rmthess.curvature.graph_hvp import GraphHessian


def _net(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def _data(n=23, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


LOSSES = {
    "ce": lambda: nn.CrossEntropyLoss(),
    "ce-weighted": lambda: nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 2.5])),
    "ce-ignore": lambda: nn.CrossEntropyLoss(ignore_index=1),
    "ce-smooth": lambda: nn.CrossEntropyLoss(label_smoothing=0.1),
    "ce-sum": lambda: nn.CrossEntropyLoss(reduction="sum"),
}


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize("kind", ["hessian", "residual"])
def test_graph_route_is_the_dense_hessian(loss, batch_size, kind):
    net, (X, y) = _net(), _data()
    lf = LOSSES[loss]()
    if hasattr(lf, "weight") and lf.weight is not None:
        lf.weight = lf.weight.double()
    H = curvature_operator(net, lf, (X, y), kind, batch_size=batch_size)
    ref = curvature_operator(net, lf, (X, y), kind, batch_size=batch_size, route="curvlinops")
    P = H.shape[0]
    M, R = H @ np.eye(P), ref @ np.eye(P)
    np.testing.assert_allclose(M, R, rtol=1e-11, atol=1e-13)
    if kind == "hessian":
        np.testing.assert_allclose(M, dense_hessian(net, lf, (X, y)), rtol=1e-10, atol=1e-12)


def test_mse_float32_and_several_columns():
    net, (X, _) = _net(torch.float32), _data(dtype=torch.float32)
    Y = torch.randn(X.shape[0], 3)
    H = curvature_operator(net, nn.MSELoss(), (X, Y), batch_size=8)
    D = dense_hessian(net, nn.MSELoss(), (X, Y))
    V = np.random.default_rng(0).standard_normal((H.shape[0], 5)).astype(np.float32)
    np.testing.assert_allclose(H @ V, D @ V, rtol=2e-4, atol=2e-5)  # float32 round-off


def test_a_changed_parameter_rebuilds_the_graph():
    """A product after an in-place parameter update (an optimizer step, or an assignment
    through ``.data``, which torch's version counters miss) is the new Hessian's."""
    net, data = _net(), _data()
    H = curvature_operator(net, "ce", data)
    v = np.random.default_rng(2).standard_normal(H.shape[0])
    before = H @ v
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    nn.CrossEntropyLoss()(net(data[0]), data[1]).backward()
    opt.step()
    after = H @ v
    fresh = curvature_operator(net, "ce", data, route="curvlinops") @ v
    np.testing.assert_allclose(after, fresh, rtol=1e-11, atol=1e-13)
    assert np.abs(after - before).max() > 1e-3
    for p in net.parameters():  # an old-style update through .data: no version bump
        p.data.mul_(0.7)
    fresh = curvature_operator(net, "ce", data, route="curvlinops") @ v
    np.testing.assert_allclose(H @ v, fresh, rtol=1e-11, atol=1e-13)


def test_rebuild_per_product_path_and_unused_parameters():
    """keep=False (graphs too large) gives the same products; a parameter the loss does not
    use has zero rows."""
    from rmthess.curvature._inputs import check_problem

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.unused = nn.Linear(4, 3).double(), nn.Linear(2, 2).double()

        def forward(self, x):
            return torch.tanh(self.a(x))

    net, data = Net(), _data()
    prob = check_problem(net, "ce", data, batch_size=9)
    V = torch.randn(prob.n_params, 3, dtype=torch.float64)
    kept, rebuilt = GraphHessian(prob, keep=True) @ V, GraphHessian(prob, keep=False) @ V
    torch.testing.assert_close(kept, rebuilt, rtol=1e-12, atol=1e-14)
    assert torch.all(kept[-6:] == 0)
    ref = torch.as_tensor(dense_hessian(net, "ce", data)) @ V  # curvlinops' vmap fails here
    torch.testing.assert_close(kept, ref, rtol=1e-11, atol=1e-13)
    with pytest.raises(ValueError, match="route"):
        curvature_operator(net, "ce", data, route="pyhessian")
