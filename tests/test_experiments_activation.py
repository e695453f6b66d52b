"""The ``activation`` setting of drift-theory and table1: ReLU runs keep their recorded config, its
hash and their cache keys; other activations are keyed by it, and refused where the drift's
prediction does not cover them."""

import json
import re

import pytest

from ntkdepth.cli import main
from ntkdepth.config import from_mapping, to_dict
from ntkdepth.experiments import get
from ntkdepth.runs import RunDir
from ntkdepth.storage import settings_hash

# The settings each experiment leaves out of its width sweeps' cache keys, and what it adds.
SWEEPS = {
    "drift-theory": (("depths", "widths", "seeds"), [{"depth": d} for d in (3, 4, 5)]),
    "table1": (("widths", "seeds", "seeds_by_width", "parameterizations", "fit_min_width"),
               [{"parameterization": p} for p in ("ntk", "mup")]),
}

# The config hash (which keys a run folder and its stages) and the sweeps' cache keys of every
# preset, as recorded before the activation setting existed.
RELU_KEYS = {
    "drift-theory/smoke": ("352b15233451ce63", ["5b17811f915af33c", "63169f707602b3ee", "bce577d47c9c1f1c"]),
    "drift-theory/cpu": ("69086e7c8a44ff9c", ["bbfe7271eb0a2f91", "29550941d581b1e0", "40010bdf0a2de2ba"]),
    "drift-theory/paper": ("f6e4e0186442ddf3", ["bbfe7271eb0a2f91", "29550941d581b1e0", "40010bdf0a2de2ba"]),
    "table1/smoke": ("3b0946e5e216c599", ["6cfe87e4fa176988", "3c1d5be9f65d79c1"]),
    "table1/cpu": ("3a67f3206dfb182b", ["f60909465938f951", "2c552c81ea4a218d"]),
    "table1/paper": ("0b94636de359d59a", ["4f3fabc26944fd4a", "a1fc5658aba603a4"]),
    "table1/paper-cpu": ("8d84a72fcd918f8b", ["4f3fabc26944fd4a", "a1fc5658aba603a4"]),
}


def keys(tmp_path, name, preset, overrides=None):
    exp = get(name)
    config = to_dict(exp.config(preset, overrides))
    run = RunDir(tmp_path / f"{name}-{preset}", experiment=name, preset=preset, config=config)
    exclude, extras = SWEEPS[name]
    return run.config_hash, [settings_hash(run.settings(exclude=exclude, **e)) for e in extras], config


@pytest.mark.parametrize("key", sorted(RELU_KEYS))
def test_relu_runs_keep_the_keys_they_had_before_the_activation_setting(tmp_path, key):
    name, preset = key.split("/")
    config_hash, sweeps, config = keys(tmp_path, name, preset)
    assert "activation" not in config
    assert (config_hash, sweeps) == RELU_KEYS[key]
    # Named explicitly, ReLU is the same run.
    assert keys(tmp_path, name, preset, {"activation": "relu"})[:2] == RELU_KEYS[key]
    # Another activation is recorded, and keys every run and cache apart.
    other_hash, other_sweeps, other = keys(tmp_path, name, preset, {"activation": "erf"})
    assert other["activation"] == "erf"
    assert other_hash != config_hash and not set(other_sweeps) & set(sweeps)
    # A record without the setting reads back as ReLU.
    assert from_mapping(get(name).module.Config, config).activation == "relu"


def test_drift_theory_refuses_an_activation_it_does_not_cover(capsys, tmp_path):
    assert main(["run", "drift-theory", "--preset", "smoke", "--set", "activation=tanh", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ("--set activation: the drift prediction covers the activations relu, leaky_relu, abrelu, abs, identity, "
            "erf, sin, cos; not tanh") in err, err
    assert "and tanh has none (docs/drift.md#activations)" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_table1_takes_any_activation_and_refuses_an_unknown_one(capsys, tmp_path):
    assert get("table1").config("smoke", {"activation": "tanh"}).activation == "tanh"
    assert main(["run", "table1", "--preset", "smoke", "--set", "activation=tanhh", "--out", str(tmp_path)]) == 2
    assert "unknown activation 'tanhh' (did you mean 'tanh'?)" in capsys.readouterr().err


def test_depth_activations_reports_an_overflowing_setting_to_its_last_finite_depth(tmp_path):
    # GELU above its edge of chaos grows its variance like 1.56^L, past float64 near depth 750: the
    # kernels there are not numbers, and the summary says how deep they are reported, without a NaN.
    out = tmp_path / "run"
    assert main(["run", "depth-activations", "--preset", "smoke", "--out", str(out), "--set", "activations=['gelu']",
                 "--set", "max_depth=2000", "--set", "n_depths=10", "--set", "grid=4"]) == 0
    summary = (out / "summary.md").read_text()
    assert not re.search(r"\bnan\b", summary, re.IGNORECASE)
    s = json.loads((out / "results.json").read_text())["settings"]["gelu"]["chaotic"]
    assert 300 < s["deepest_finite_depth"] < 2000, s
    assert abs(s["measured_at_max_depth"] - 0.25) < 0.02, s  # on its way to ReLU's 1/4
    assert f"overflows float64 past depth {s['deepest_finite_depth']:,}" in summary
    settings = json.loads((out / "results.json").read_text())["settings"]["gelu"]
    assert settings["ordered"]["deepest_finite_depth"] == settings["edge"]["deepest_finite_depth"] == 2000
