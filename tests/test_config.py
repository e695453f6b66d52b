"""Settings: every bad value is refused up front, naming the key and where it came from."""

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from ntkdepth.cli import main
from ntkdepth.config import ConfigError, from_mapping, load_preset, setting, with_defaults


@dataclass(frozen=True)
class Toy:
    rate: float = setting(0.5, help="a rate", min=0.0)
    depth: int = setting(3, help="a depth", min=1)
    widths: list[int] = setting([8, 16], help="widths", min=1, distinct="exponents are fitted over them")
    extras: list[int] = setting([1], help="may be empty", min_len=0)
    names: list[str] = setting(["a"], help="names", choices=["a", "b"])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"rate: expected a finite number, got (nan|inf|-inf)"):
        from_mapping(Toy, {"rate": value})


def test_empty_lists_are_refused_unless_the_field_allows_them():
    with pytest.raises(ConfigError, match=r"widths: the list is empty; give at least 1 value"):
        from_mapping(Toy, {"widths": []})
    with pytest.raises(ConfigError, match=r"names: the list is empty"):
        from_mapping(Toy, {"names": []})
    assert from_mapping(Toy, {"extras": []}).extras == []


def test_repeated_values_are_refused_with_the_declared_reason():
    with pytest.raises(
        ConfigError,
        match=r"widths: 64 appears more than once in \[64, 64\]; the values must be distinct "
        r"\(exponents are fitted over them\)",
    ):
        from_mapping(Toy, {"widths": [64, 64]})
    assert from_mapping(Toy, {"widths": [64]}).widths == [64]


def test_integers_stay_integers():
    with pytest.raises(ConfigError, match=r"depth: expected an integer, got 2.7"):
        from_mapping(Toy, {"depth": 2.7})
    with pytest.raises(ConfigError, match=r"widths\[1\]: expected an integer, got 2.7"):
        from_mapping(Toy, {"widths": [8, 2.7]})


def test_an_error_in_an_override_names_the_command_line_not_the_file(tmp_path):
    preset = tmp_path / "cpu.toml"
    preset.write_text("rate = 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_preset(Toy, preset, {"rate": float("nan")})
    message = str(info.value)
    assert message.startswith("--set rate=nan: rate: expected a finite number"), message
    assert str(preset) not in message
    with pytest.raises(ConfigError, match=r"^--set widht=3: unknown key\(s\) \['widht'\]"):
        load_preset(Toy, preset, {"widht": 3})
    # An error in the file itself names the file.
    preset.write_text("rate = -1.0\n")
    with pytest.raises(ConfigError, match=rf"^{preset}: rate: -1.0 is below the minimum 0.0"):
        load_preset(Toy, preset, {"depth": 4})
    preset.write_text("rate = [\n")
    with pytest.raises(ConfigError, match=rf"^{preset}: not valid TOML"):
        load_preset(Toy, preset)


@pytest.mark.parametrize(
    "setting_,message",
    [
        ("learning_rate=nan", "--set learning_rate=nan: learning_rate: expected a finite number, got nan"),
        ("W_std=inf", "--set W_std=inf: W_std: expected a finite number, got inf"),
        ("widths=[]", "--set widths=[]: widths: the list is empty"),
        ("parameterizations=[]", "parameterizations: the list is empty"),
        ("widths=[64, 64]", "widths: 64 appears more than once in [64, 64]; the values must be distinct"),
        ("steps=2.7", "--set steps=2.7: steps: expected an integer, got 2.7"),
    ],
)
def test_table1_settings_from_the_command_line(setting_, message, capsys, tmp_path):
    assert main(["run", "table1", "--preset", "smoke", "--set", setting_, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "smoke.toml" not in err.split(":")[1], err  # the file is not blamed
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("name", ["width-vs-kernel", "drift-theory"])
def test_every_width_sweep_refuses_a_repeated_width(name, capsys, tmp_path):
    assert main(["run", name, "--preset", "smoke", "--set", "widths=[64, 64]", "--out", str(tmp_path)]) == 2
    assert "widths: 64 appears more than once" in capsys.readouterr().err


def test_width_vs_kernel_needs_a_held_out_input(capsys, tmp_path):
    assert main(["run", "width-vs-kernel", "--preset", "smoke", "--set", "n_test=0", "--out", str(tmp_path)]) == 2
    assert "n_test: the outputs are compared on held-out inputs; give at least 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_shared_sweep_settings_with_new_defaults_give_the_gradient_flow_of_their_time():
    from ntkdepth.training import GradientFlowSettings

    schema = with_defaults(GradientFlowSettings, n_train=10, time=1.0, dt=0.3, seed=4, seeds=2)
    assert [f.name for f in dataclasses.fields(schema)] == [f.name for f in dataclasses.fields(GradientFlowSettings)]
    with pytest.raises(ConfigError, match="n_train: 1 is below the minimum 2"):  # the bounds are kept
        from_mapping(schema, {"n_train": 1})
    config = from_mapping(schema, {})
    spec = config.train_spec()
    # round(1.0 / 0.3) = 3 steps of learning rate N dt = 3 on the batch-mean loss.
    assert spec.steps == 3 and spec.learning_rate == pytest.approx(3.0) and spec.batch_size is None
    assert spec.records[0] == 0 and spec.records[-1] == 3
    np.testing.assert_allclose(config.record_times(spec), np.asarray(spec.records) * 0.3)
    x = config.sphere_inputs(np.random.default_rng(0))
    assert x.shape == (10 + 10, 8)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(8), rtol=1e-12)
    assert config.network_seeds() == [4, 5]
    with pytest.raises(ConfigError, match=r"GradientFlowSettings has no setting\(s\) \['tme'\]"):
        with_defaults(GradientFlowSettings, tme=1.0)


@pytest.mark.parametrize(
    "name,key",
    [("fig2", "correlations"), ("fig6", "ns"), ("fig6", "times"), ("prop7", "dims"), ("table2", "depths"),
     ("table2-networks", "widths")],
)
def test_empty_lists_fail_validation_in_every_experiment(name, key, capsys, tmp_path):
    assert main(["run", name, "--preset", "smoke", "--set", f"{key}=[]", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: the list is empty" in err or f"{key}" in err and "empty" in err, err


@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
def test_table2_networks_train_on_the_first_subsets_of_table2(preset):
    from ntkdepth.experiments import get

    kernel, networks = get("table2").config(preset), get("table2-networks").config(preset)
    shared = ("n_train", "n_val", "n_test", "depth", "times", "data_dir", "split", "seed")
    assert {k: getattr(networks, k) for k in shared} == {k: getattr(kernel, k) for k in shared}
    assert networks.subsets <= kernel.subsets
    assert not hasattr(kernel, "widths")


def test_a_setting_of_several_types_takes_the_first_that_fits(capsys, tmp_path):
    """residual: float | str | None takes a number as a number and a text as a text; a bad one is named."""
    from dataclasses import dataclass

    from ntkdepth.config import ConfigError, from_mapping, setting

    @dataclass(frozen=True)
    class Schema:
        residual: float | str | None = setting(None, help="a number or a text")

    assert from_mapping(Schema, {"residual": 0.5}).residual == 0.5
    assert from_mapping(Schema, {"residual": "1/sqrt(L)"}).residual == "1/sqrt(L)"
    assert from_mapping(Schema, {}).residual is None
    with pytest.raises(ConfigError, match=r"residual: expected one of float or str, got \[1\]"):
        from_mapping(Schema, {"residual": [1]})
    assert main(["run", "width-vs-kernel", "--preset", "smoke", "--set", "residual=sqrt(L)", "--out", str(tmp_path)]) == 2
    assert "residual must be a number alpha > 0, a text 'a/sqrt(L)'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_recorded_config_without_a_later_setting_reads_as_what_its_absence_meant():
    """A setting added with a new default names what older records meant by leaving it out."""
    from ntkdepth.config import recorded_config

    @dataclass(frozen=True)
    class Schema:
        center: bool = setting(True, help="new behaviour", absent=False)
        steps: int = setting(10, help="no absent value")

    assert from_mapping(Schema, recorded_config(Schema, {})) == Schema(center=False, steps=10)
    assert from_mapping(Schema, recorded_config(Schema, {"center": True, "steps": 3})) == Schema(True, 3)
    # New runs, which record every key, are read as written; from_mapping alone keeps the default.
    assert from_mapping(Schema, {}).center is True
