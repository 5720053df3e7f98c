"""Report section ``theory-on-data`` (issue 19 item 5): runs at small sizes with every kind
of row (closeness, one-sided, N/A for the known gap and the isotropic ratio), each check
fails on a wrong value, the table and figure are written, the settings are validated."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from rmthess.report import runner
from rmthess.report.config import MODES, get_config
from rmthess.report.config_data import OnDataConfig
from rmthess.report.sections import NAMES
from rmthess.report.sections import theory_on_data as sec_mod
from rmthess.report.sections._base import Output

SMALL = dict(
    ondata_Cs=(3, 10),
    ondata_n=300,
    ondata_networks=4,
    ondata_draws=256,
    ondata_cluster_C=5,
    ondata_cluster_per_class=20,
    ondata_hidden_m=0,
)
HIDDEN = dict(
    ondata_Cs=(3,),
    ondata_n=300,
    ondata_networks=2,
    ondata_draws=256,
    ondata_cluster_C=3,
    ondata_cluster_per_class=10,
    ondata_hidden_m=6,
    ondata_hidden_Cs=(3, 5),
    ondata_hidden_networks=4,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cfg = get_config("quick", **SMALL)
    res = sec_mod.compute(cfg, device="cpu")
    out = tmp_path_factory.mktemp("ondata")
    sec = sec_mod.render(res, Output(out))
    return res, sec, out


def _by_name(checks, text):
    hits = [c for c in checks if text in c.name]
    assert hits, [c.name for c in checks]
    return hits


def test_section_checks(small):
    res, _, _ = small
    cs = sec_mod.checks(res)
    close = [c for c in cs if c.kind == "close"]
    # raw: 3 quantities over C = 3, 10; standardised: the class mixture at C = 3 only (C = 10
    # >= gap_C) and the k-means sub-clusters at C = 10; clustered
    assert len(close) == 12
    assert len(_by_name(close, "raw pixels")) == 3
    assert len(_by_name(close, "standardised: class mixture")) == 3
    assert len(_by_name(close, "standardised: k-means sub-clusters")) == 3
    assert [c.verdict for c in cs if c.kind == "upper"] == ["PASS"]
    na = [c for c in cs if c.kind == "na"]
    assert len(_by_name(na, "standardised digits C=10")) == 1  # the known gap
    assert len(_by_name(na, "isotropic r")) == 3  # one per data set
    assert all(c.detail for c in na)
    # 4 networks: loose SE, and the mixture is within a few % of measured (fixed seeds)
    failed = [(c.name, c.measured, c.expected, c.detail) for c in cs if not c.passed]
    assert failed == []


def test_table_numbers(small):
    from sklearn.datasets import load_digits

    res, _, _ = small
    df = res.table
    assert list(dict.fromkeys(df["data"])) == list(sec_mod.DATA)
    assert list(df.loc[df["data"] == "raw", "C"].unique()) == [3, 10]
    levels = [
        "measured",
        "isotropic",
        "gaussian",
        "mixture-limit",
        "mixture",
        "clusters",
        "mixture+norms",
    ]
    for _, g in df.groupby(["data", "C"]):
        assert list(g["level"]) == levels
        m = g.iloc[0]
        for q in ("F_diag", "F_off", "ratio"):  # err = level / measured - 1
            assert np.allclose(g[f"err_{q}"], g[q] / m[q] - 1, rtol=0, atol=1e-12)
        assert np.allclose(g["ratio"].iloc[0] ** 2, m["F_off"] / m["F_diag"], rtol=1e-12)
    y = load_digits().target
    raw3 = df[(df["data"] == "raw") & (df["C"] == 3)]
    assert (raw3["N"] == min(300, int((y < 3).sum()))).all() and (raw3["d"] == 64).all()
    clu = df[df["data"] == "clustered"]
    assert (clu["N"] == 5 * 20).all() and (clu["d"] == 64).all()
    # the isotropic level ignores the data: identical for raw and standardised digits
    iso = df[(df["level"] == "isotropic") & (df["C"] == 3) & (df["data"] != "clustered")]
    assert len(iso) == 2 and np.allclose(iso["F_diag"], iso["F_diag"].iloc[0], rtol=1e-12)


def test_writes_figure_and_table(small):
    import pandas as pd

    _, sec, out = small
    assert {p.name for p in (out / "figures").iterdir()} == {"theory_on_data.png"}
    assert (out / "figures" / "theory_on_data.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tab = pd.read_csv(out / "tables" / "theory_on_data.csv")
    assert {"data", "C", "N", "d_eff", "level", "F_off", "F_off_se", "err_ratio"} <= set(tab)
    assert len(sec.figures) == 1 and len(sec.tables) == 1


def _wrong(res, data, level, **scale):
    bad = copy.copy(res)
    bad.table = t = res.table.copy()
    rows = (t["data"] == data) & (t["level"] == level)
    for q, f in scale.items():
        t.loc[rows, q] = t.loc[rows, q] * f
    for q in ("F_diag", "F_off", "ratio"):  # keep the errors consistent
        for _, g in t.groupby(["data", "C"]):
            t.loc[g.index, f"err_{q}"] = g[q] / g[q].iloc[0] - 1
    return bad


@pytest.mark.parametrize(
    ("data", "q", "text"),
    [
        ("raw", "F_diag", "raw pixels: class mixture vs measured F_diag"),
        ("raw", "F_off", "raw pixels: class mixture vs measured F_off"),
        ("standardised", "ratio", "standardised: class mixture vs measured ratio"),
        ("clustered", "F_off", "clustered (synthetic): class mixture vs measured F_off"),
        ("standardised", "F_off", "standardised: k-means sub-clusters vs measured F_off"),
    ],
)
def test_each_closeness_check_fails_on_a_wrong_value(small, data, q, text):
    res, _, _ = small
    level = "clusters" if "sub-clusters" in text else "mixture"
    bad = sec_mod.checks(_wrong(res, data, level, **{q: 1.5}))
    assert not _by_name(bad, text)[0].passed


def test_removal_check_fails_when_the_mixture_is_no_better(small):
    res, _, _ = small
    bad = copy.copy(res)
    bad.table = t = res.table.copy()
    std = t["data"] == "standardised"
    for C in (3, 10):  # the mixture's F_off error as large as the isotropic one's
        rows = std & (t["C"] == C)
        iso = t.loc[rows & (t["level"] == "isotropic"), "err_F_off"].iloc[0]
        t.loc[rows & (t["level"] == "mixture"), "err_F_off"] = iso
    check = _by_name(sec_mod.checks(bad), "/ isotropic")[0]
    assert not check.passed and check.measured == pytest.approx(1.0)
    assert _by_name(sec_mod.checks(res), "/ isotropic")[0].measured < 0.5


def test_config_modes_and_validation():
    assert NAMES.index("theory-on-data") == NAMES.index("clusters") + 1
    for mode in MODES:
        o = get_config(mode).ondata
        assert min(o.Cs) >= 3 and o.networks >= 2 and o.draws % 2 == 0
    q, d = get_config("quick").ondata, get_config("default").ondata
    assert len(q.Cs) < len(d.Cs) and q.networks < d.networks
    assert get_config("quick", ondata_Cs=(5, 3)).ondata.Cs == (3, 5)
    for bad, match in (
        (dict(Cs=(2, 5)), "ondata.Cs must be an integer >= 3"),
        (dict(Cs=()), "non-empty tuple"),
        (dict(Cs=[3, 5]), "non-empty tuple"),
        (dict(Cs=(5, 5)), "distinct"),
        (dict(Cs=(11,)), "<= 10"),
        (dict(networks=1), "ondata.networks"),
        (dict(draws=101), "even"),
        (dict(draws=8), "ondata.draws"),
        (dict(n=5), "ondata.n"),
        (dict(cluster_per_class=1), "ondata.cluster_per_class"),
        (dict(rel_allowance=-0.1), "ondata.rel_allowance"),
        (dict(gap_C=2), "ondata.gap_C"),
        (dict(hidden_m=1), "ondata.hidden_m"),
        (dict(hidden_m=1000), "ondata.hidden_m"),
        (dict(hidden_Cs=()), "ondata.hidden_Cs"),
        (dict(hidden_Cs=(5, 5)), "distinct"),
        (dict(hidden_Cs=(2,)), "ondata.hidden_Cs"),
        (dict(hidden_networks=1), "ondata.hidden_networks"),
    ):
        with pytest.raises(ValueError, match=match):
            OnDataConfig(**bad)
    with pytest.raises(TypeError, match="ondata.networks"):
        OnDataConfig(networks=2.5j)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ondata.n"):
        get_config("quick", ondata_n=3)


def test_section_alone_in_a_tiny_report(tmp_path):
    out = tmp_path / "rep"
    res = runner.run_report(
        get_config("tiny"), out, device="cpu", progress=False, sections=["theory-on-data"]
    )
    assert [c for c in res.checks if c.kind == "error"] == []
    assert {c.section for c in res.checks} == {"theory-on-data"}
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["ondata.Cs"] == [3]
    assert math.isfinite(meta["settings"]["time theory-on-data (s)"])
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # linear and hidden-layer figures


# ------------------------------------------------------------------ the hidden layer
@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    cfg = get_config("quick", **HIDDEN)
    res = sec_mod.compute(cfg, device="cpu")
    out = tmp_path_factory.mktemp("ondata-hidden")
    sec = sec_mod.render(res, Output(out))
    return res, sec, out


def test_hidden_rows_checks_and_figure(hidden):
    res, sec, out = hidden
    df = res.table
    hid = df[df["model"] == "hidden m=6"]
    assert list(dict.fromkeys(hid["data"])) == ["raw", "standardised"]
    assert sorted(hid["C"].unique()) == [3, 5]
    for _, g in hid.groupby(["data", "C"]):
        assert list(g["level"]) == ["measured", "isotropic", "gaussian", "mixture", "clusters"]
        paired = g[g["level"].isin(["gaussian", "mixture", "clusters"])]
        assert (paired[["err_F_diag_se", "err_F_off_se", "err_ratio_se"]] > 0).all().all()
    cs = [c for c in sec_mod.checks(res) if c.name.startswith("hidden layer")]
    assert sorted(c.kind for c in cs) == ["close"] * 6 + ["na"] * 2 + ["upper"]
    assert all(c.passed for c in cs), [(c.name, c.measured, c.detail) for c in cs]
    names = {p.name for p in (out / "figures").iterdir()}
    assert names == {"theory_on_data.png", "theory_on_data_hidden.png"}
    assert len(sec.figures) == 2


def test_hidden_closeness_fails_on_a_wrong_value(hidden):
    res, _, _ = hidden
    bad = copy.copy(res)
    bad.table = t = res.table.copy()
    rows = (t["model"] == "hidden m=6") & (t["data"] == "raw") & (t["level"] == "mixture")
    t.loc[rows, "err_F_off"] = 0.5
    check = _by_name(
        sec_mod.checks(bad), "hidden layer, digits, raw pixels: class mixture / measured F_off"
    )[0]
    assert not check.passed
    rows = (t["model"] == "hidden m=6") & (t["data"] == "standardised") & (t["level"] == "clusters")
    t.loc[rows, "err_ratio"] = 0.5
    text = "hidden layer, digits, standardised: k-means sub-clusters / measured ratio"
    assert not _by_name(sec_mod.checks(bad), text)[0].passed
