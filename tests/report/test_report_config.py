"""ReportConfig: one settings block per section (``cfg.layer.Cs``), same numbers as before.

:data:`OLD_FLAT` is the flat ``ReportConfig`` of every mode as the code before the
per-section layout (commit 83e2628) produced it, printed once by a one-off script and pasted
here. This is a refactor-equivalence check: the literal is the old code's output by design,
not an independent value; it pins that moving the settings into sections changed no number.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from rmthess.report.config import MODES, SECTIONS, LayerConfig, ReportConfig, get_config

# fmt: off
OLD_FLAT = {
    'tiny': {
        'mode': 'tiny',
        'd': 24,
        'N': 48,
        'm': 4,
        'd_output': 24,
        'N_output': 96,
        'Cs': (4, 8, 16),
        'trials': 4,
        'trials_hidden': 8,
        'theory_C_points': 12,
        'theory_samples': 30,
        'spectra_C': 5,
        'spectra_d': 60,
        'spectra_N': 120,
        'heatmap_Cs': (10, 100),
        'heatmap_d': 5,
        'heatmap_N': 20,
        'heatmap_m': 3,
        'heatmap_full_C': 4,
        'heatmap_train_steps': 5,
        'train_C': 8,
        'train_d': 8,
        'train_N': 32,
        'train_steps': 20,
        'train_lr': 0.01,
        'train_record_every': 5,
        'n_boot': 50,
        'k_se': 4.0,
        'rel_allowance': 0.5,
        'slope_tol': 0.5,
        'ks_tol': 0.3,
        'real_n': 40,
        'real_hidden': 4,
        'real_train_steps': 20,
        'real_probes': 10,
        'spectrum_hidden': 8,
        'spectrum_k': 12,
        'cluster_Cs': (2, 6),
        'cluster_counts': (1, 2),
        'cluster_d': 16,
        'cluster_m': 4,
        'cluster_per_class': 5,
        'landscape_hidden': (4,),
        'landscape_layers': (1,),
        'landscape_orders': 10,
        'landscape_epochs': 1,
        'landscape_audit_samples': 5,
        'layer_Cs': (2, 5, 20),
        'layer_d': (30, 30, 20),
        'layer_trials': (2, 2, 1),
        'layer_gamma': 0.5,
        'layer_n_atoms': 256,
        'layer_gap_Cs': (2, 4, 8),
        'layer_gap_n_atoms': 256,
        'layer_solver_n_base': 8,
        'layer_hidden_cases': (),
        'layer_hidden_m': 4,
        'layer_hidden_Cs': (2, 4, 8, 16),
        'layer_hidden_n_atoms': 256,
        'layer_ks_tol': 0.3,
        'layer_edge_C_max': 5,
        'seed': 0,
        'store': None,
        'cases': ('linear-mse', 'linear-ce', 'hidden-mse', 'hidden-ce', 'output-mse', 'output-ce'),
    },
    'quick': {
        'mode': 'quick',
        'd': 64,
        'N': 128,
        'm': 8,
        'd_output': 128,
        'N_output': 1024,
        'Cs': (4, 8, 16, 32, 64),
        'trials': 16,
        'trials_hidden': 64,
        'theory_C_points': 24,
        'theory_samples': 60,
        'spectra_C': 5,
        'spectra_d': 200,
        'spectra_N': 400,
        'heatmap_Cs': (10, 100, 1000),
        'heatmap_d': 8,
        'heatmap_N': 64,
        'heatmap_m': 4,
        'heatmap_full_C': 10,
        'heatmap_train_steps': 50,
        'train_C': 32,
        'train_d': 32,
        'train_N': 320,
        'train_steps': 150,
        'train_lr': 0.02,
        'train_record_every': 25,
        'n_boot': 200,
        'k_se': 4.0,
        'rel_allowance': 0.1,
        'slope_tol': 0.1,
        'ks_tol': 0.06,
        'real_n': 128,
        'real_hidden': 8,
        'real_train_steps': 150,
        'real_probes': 20,
        'spectrum_hidden': 32,
        'spectrum_k': 20,
        'cluster_Cs': (2, 4, 8, 16),
        'cluster_counts': (1, 2),
        'cluster_d': 64,
        'cluster_m': 8,
        'cluster_per_class': 20,
        'landscape_hidden': (4, 16, 64),
        'landscape_layers': (1, 3),
        'landscape_orders': 100,
        'landscape_epochs': 3,
        'landscape_audit_samples': 50,
        'layer_Cs': (2, 5, 20),
        'layer_d': (120, 120, 100),
        'layer_trials': (4, 4, 1),
        'layer_gamma': 0.5,
        'layer_n_atoms': 1024,
        'layer_gap_Cs': (2, 3, 5, 8, 12, 20),
        'layer_gap_n_atoms': 512,
        'layer_solver_n_base': 16,
        'layer_hidden_cases': (),
        'layer_hidden_m': 4,
        'layer_hidden_Cs': (2, 4, 8, 16),
        'layer_hidden_n_atoms': 256,
        'layer_ks_tol': 0.05,
        'layer_edge_C_max': 5,
        'seed': 0,
        'store': None,
        'cases': ('linear-mse', 'linear-ce', 'hidden-mse', 'hidden-ce', 'output-mse', 'output-ce'),
    },
    'default': {
        'mode': 'default',
        'd': 256,
        'N': 512,
        'm': 8,
        'd_output': 256,
        'N_output': 2048,
        'Cs': (8, 16, 32, 64, 128, 256, 512, 1024),
        'trials': 16,
        'trials_hidden': 96,
        'theory_C_points': 32,
        'theory_samples': None,
        'spectra_C': 10,
        'spectra_d': 800,
        'spectra_N': 1600,
        'heatmap_Cs': (10, 100, 1000),
        'heatmap_d': 16,
        'heatmap_N': 160,
        'heatmap_m': 8,
        'heatmap_full_C': 10,
        'heatmap_train_steps': 300,
        'train_C': 20,
        'train_d': 50,
        'train_N': 200,
        'train_steps': 500,
        'train_lr': 0.01,
        'train_record_every': 25,
        'n_boot': 1000,
        'k_se': 4.0,
        'rel_allowance': 0.05,
        'slope_tol': 0.1,
        'ks_tol': 0.05,
        'real_n': 128,
        'real_hidden': 8,
        'real_train_steps': 300,
        'real_probes': 20,
        'spectrum_hidden': 32,
        'spectrum_k': 20,
        'cluster_Cs': (2, 4, 8, 16, 32),
        'cluster_counts': (1, 2, 4),
        'cluster_d': 64,
        'cluster_m': 8,
        'cluster_per_class': 20,
        'landscape_hidden': (4, 8, 16, 32, 64),
        'landscape_layers': (1, 3, 5),
        'landscape_orders': 100,
        'landscape_epochs': 10,
        'landscape_audit_samples': 200,
        'layer_Cs': (2, 5, 20),
        'layer_d': (400, 400, 200),
        'layer_trials': (8, 4, 1),
        'layer_gamma': 0.5,
        'layer_n_atoms': 4096,
        'layer_gap_Cs': (2, 3, 4, 5, 7, 10, 14, 20, 28, 35, 50),
        'layer_gap_n_atoms': 1024,
        'layer_solver_n_base': 64,
        'layer_hidden_cases': ('hidden-ce',),
        'layer_hidden_m': 4,
        'layer_hidden_Cs': (2, 4, 8, 16),
        'layer_hidden_n_atoms': 256,
        'layer_ks_tol': 0.03,
        'layer_edge_C_max': 5,
        'seed': 0,
        'store': None,
        'cases': ('linear-mse', 'linear-ce', 'hidden-mse', 'hidden-ce', 'output-mse', 'output-ce'),
    },
    'full': {
        'mode': 'full',
        'd': 1024,
        'N': 2048,
        'm': 8,
        'd_output': 1024,
        'N_output': 8192,
        'Cs': (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        'trials': 64,
        'trials_hidden': 256,
        'theory_C_points': 48,
        'theory_samples': None,
        'spectra_C': 10,
        'spectra_d': 2000,
        'spectra_N': 4000,
        'heatmap_Cs': (10, 100, 1000),
        'heatmap_d': 20,
        'heatmap_N': 200,
        'heatmap_m': 8,
        'heatmap_full_C': 20,
        'heatmap_train_steps': 1000,
        'train_C': 50,
        'train_d': 100,
        'train_N': 500,
        'train_steps': 1000,
        'train_lr': 0.01,
        'train_record_every': 50,
        'n_boot': 2000,
        'k_se': 4.0,
        'rel_allowance': 0.03,
        'slope_tol': 0.1,
        'ks_tol': 0.03,
        'real_n': 128,
        'real_hidden': 8,
        'real_train_steps': 300,
        'real_probes': 20,
        'spectrum_hidden': 32,
        'spectrum_k': 20,
        'cluster_Cs': (2, 4, 8, 16, 32),
        'cluster_counts': (1, 2, 4),
        'cluster_d': 64,
        'cluster_m': 8,
        'cluster_per_class': 20,
        'landscape_hidden': (4, 8, 16, 32, 64),
        'landscape_layers': (1, 3, 5),
        'landscape_orders': 100,
        'landscape_epochs': 10,
        'landscape_audit_samples': 200,
        'layer_Cs': (2, 5, 20),
        'layer_d': (400, 400, 200),
        'layer_trials': (8, 4, 1),
        'layer_gamma': 0.5,
        'layer_n_atoms': 4096,
        'layer_gap_Cs': (2, 3, 4, 5, 7, 10, 14, 20, 28, 35, 50),
        'layer_gap_n_atoms': 1024,
        'layer_solver_n_base': 64,
        'layer_hidden_cases': ('hidden-ce',),
        'layer_hidden_m': 4,
        'layer_hidden_Cs': (2, 4, 8, 16),
        'layer_hidden_n_atoms': 256,
        'layer_ks_tol': 0.03,
        'layer_edge_C_max': 5,
        'seed': 0,
        'store': None,
        'cases': ('linear-mse', 'linear-ce', 'hidden-mse', 'hidden-ce', 'output-mse', 'output-ce'),
    },
}
# fmt: on


NEW_SECTIONS = ("ondata", "depth")
"""Settings blocks added after the refactor (sections ``theory-on-data`` and ``depth``): not
in :data:`OLD_FLAT`, left out of the equivalence check (their own tests:
tests/report/test_report_on_data.py, tests/report/test_report_depth.py)."""


def _flatten(cfg: ReportConfig) -> dict:
    """The nested config back in the old flat names (``layer.Cs`` -> ``layer_Cs``)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.name in NEW_SECTIONS:
            continue
        if f.name in SECTIONS:
            out.update({f"{f.name}_{k}": u for k, u in dataclasses.asdict(v).items()})
        else:
            out[f.name] = v
    return out


def _typed(d: dict) -> dict:
    return {k: (type(v).__name__, v) for k, v in d.items()}


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_keeps_its_numbers(mode):
    cfg = get_config(mode)
    assert _typed(_flatten(cfg)) == _typed(OLD_FLAT[mode])
    # the sections hold exactly the old prefixed settings, the rest stays at the top
    for sec in SECTIONS:
        assert dataclasses.is_dataclass(getattr(cfg, sec))
    assert cfg.layer.Cs == OLD_FLAT[mode]["layer_Cs"]
    assert cfg.real.train_steps == OLD_FLAT[mode]["real_train_steps"]
    assert cfg.seed == OLD_FLAT[mode]["seed"] and cfg.k_se == OLD_FLAT[mode]["k_se"]


@pytest.mark.parametrize("mode", MODES)
def test_flat_prefixed_overrides_reach_their_section(mode):
    old = {k: v for k, v in OLD_FLAT[mode].items() if k != "mode"}
    assert get_config(mode, **old) == get_config(mode)
    cfg = get_config(mode, layer_Cs=(2,), layer_d=(10,), real_n=7, theory_samples=None, seed=5)
    assert (cfg.layer.Cs, cfg.layer.d, cfg.real.n, cfg.theory.samples) == ((2,), (10,), 7, None)
    assert cfg.seed == 5
    flat = _flatten(cfg)
    changed = {"layer_Cs", "layer_d", "real_n", "theory_samples", "seed"}
    assert {k: v for k, v in flat.items() if k not in changed} == {
        k: v for k, v in OLD_FLAT[mode].items() if k not in changed
    }


def test_section_override_and_errors():
    cfg = get_config("quick", layer=LayerConfig(Cs=(2,), d=(10,), trials=(2,)))
    assert cfg.layer == LayerConfig(Cs=(2,), d=(10,), trials=(2,))
    # a flat name and its section object together: the flat name wins over the object
    cfg = get_config("quick", layer=LayerConfig(Cs=(2,)), layer_gamma=0.25)
    assert (cfg.layer.Cs, cfg.layer.gamma) == ((2,), 0.25)
    for bad in ({"dd": 3}, {"layer_foo": 1}, {"layer_real_n": 1}):
        with pytest.raises(ValueError, match="unknown report setting"):
            get_config("quick", **bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.layer.Cs = (3,)


@pytest.mark.parametrize("mode", MODES)
def test_to_dict_is_flat_json_safe_and_complete(mode):
    cfg = get_config(mode)
    rec = cfg.to_dict()
    json.dumps(rec, allow_nan=False)
    assert rec["gamma"] == cfg.d / cfg.N
    dotted = {}
    for k, v in OLD_FLAT[mode].items():
        sec = next((s for s in SECTIONS if k.startswith(s + "_") and k != s), None)
        dotted[f"{sec}.{k[len(sec) + 1 :]}" if sec else k] = v
    new = tuple(f"{s}." for s in NEW_SECTIONS)
    assert {k: v for k, v in rec.items() if k != "gamma" and not k.startswith(new)} == dotted
    assert {k.split(".")[0] for k in rec if k.startswith(new)} == set(NEW_SECTIONS)
    assert not any(dataclasses.is_dataclass(v) or isinstance(v, dict) for v in rec.values())
