"""ntkdepth.models.NetworkSpec: one description gives the finite network, its analytic kernels and its stax layers."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.empirical import mlp_ntk
from ntkdepth.kernels import relu_kernel_fn, stax_mlp
from ntkdepth.models import MLP, NetworkSpec

SPECS = [
    NetworkSpec(depth=3, W_std=1.3, b_std=0.2, out_std=0.7),
    NetworkSpec(depth=4),
]


def _relative(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("spec", SPECS, ids=["bias-out_std", "paper"])
def test_empirical_ntk_at_init_approaches_the_spec_kernel_as_1_over_sqrt_width(rng, spec):
    """Monte Carlo over seeds of the finite network's NTK against the analytic kernel.

    The empirical NTK fluctuates by O(width^-1/2) around its limit; the mean of
    eight seeds at width 2048 lies within 3.5 / sqrt(width) of it (about
    1 / sqrt(width) is typical). A network one
    layer deeper or shallower, or with the output scale off by 20%, lies
    further away than that, so a wrong depth convention or a wrong out_std
    in any of model / kernel_fn fails the test.
    """
    width, seeds = 2048, 8
    x = rng.normal(size=(6, 8))
    with jax.enable_x64(True):
        exact = np.asarray(spec.kernel_fn()(x, get="ntk"))
        wrong = [np.asarray(spec.replace(**change).kernel_fn()(x, get="ntk"))
                 for change in ({"depth": spec.depth - 1}, {"depth": spec.depth + 1},
                                {"out_std": 1.2 * spec.out_std})]
    x32 = jnp.asarray(x, jnp.float32)
    nets = [spec.model(8, width, 1, rngs=seed) for seed in range(seeds)]
    assert all(net.depth == spec.depth and net.hidden == (width,) * (spec.depth - 1) for net in nets)
    mean = np.mean([np.asarray(mlp_ntk(net, x32), np.float64) for net in nets], axis=0)
    tol = 3.5 / math.sqrt(width)
    assert _relative(mean, exact) < tol
    for other in wrong:
        assert _relative(mean, other) > tol


@pytest.mark.parametrize("spec", [*SPECS, NetworkSpec(depth=1, W_std=0.9, b_std=0.3, out_std=1.7),
                                  NetworkSpec(depth=5, W_std=1.1, out_std=2.0)])
def test_stax_kernels_equal_the_spec_kernels_to_float64_rounding(x64, rng, spec):
    x1, x2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    ours = spec.kernel_fn()(x1, x2, ("nngp", "ntk"))
    theirs = spec.stax(width=16)[2](x1, x2, ("nngp", "ntk"))
    for a, b in ((ours.nngp, theirs.nngp), (ours.ntk, theirs.ntk)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=0)


def test_output_scale_maps_the_last_layer_kernels(x64, rng):
    """``out_std`` against a network whose W_std is out_std: equal kernels at depth 1."""
    x = rng.normal(size=(4, 3))
    ours = NetworkSpec(depth=1, W_std=0.5, b_std=0.3, out_std=1.4).kernel_fn()(x, get=("nngp", "ntk"))
    ref = relu_kernel_fn(1, W_std=1.4, b_std=0.3)(x, get=("nngp", "ntk"))
    np.testing.assert_allclose(ours.nngp, ref.nngp, rtol=1e-14)
    np.testing.assert_allclose(ours.ntk, ref.ntk, rtol=1e-14)
    # Without bias the normalized kernels do not see the output scale.
    a = NetworkSpec(depth=3, out_std=0.3).kernel_fn()(x, get=("rho", "ntk_normalized"))
    b = NetworkSpec(depth=3).kernel_fn()(x, get=("rho", "ntk_normalized"))
    np.testing.assert_allclose(a.ntk_normalized, b.ntk_normalized, rtol=1e-14)
    np.testing.assert_allclose(a.rho, b.rho, rtol=1e-14)


def test_model_builds_the_mlp_of_the_spec():
    spec = NetworkSpec(depth=4, W_std=1.1, b_std=0.1, out_std=0.6, parameterization="mup")
    net = spec.model(5, 32, 2, rngs=3, base_width=16)
    ref = MLP(5, [32, 32, 32], 2, W_std=1.1, b_std=0.1, out_std=0.6, parameterization="mup",
              base_width=16, rngs=3)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(net(x)[0]), np.asarray(ref(x)[0]))
    assert net.depth == 4 and net.learning_rate_multiplier() == 2.0
    tokens = NetworkSpec(depth=2).model(7, 8, 7, rngs=0, tokens=True)
    assert tokens(jnp.asarray([0, 6]))[0].shape == (2, 7)


def test_spec_is_a_frozen_value():
    spec = NetworkSpec(depth=np.int64(3), W_std=1, b_std=0)
    assert spec == NetworkSpec(depth=3, W_std=1.0, out_std=1.0)
    assert type(spec.depth) is int and type(spec.W_std) is float and spec.out_std == 1.0
    assert hash(spec) == hash(NetworkSpec(depth=3, W_std=1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.depth = 4
    assert spec.replace(W_std=2.0).out_std == 2.0  # an output scale equal to W_std follows it
    assert spec.replace(out_std=0.5).replace(W_std=2.0).out_std == 0.5
    assert dataclasses.asdict(spec) == {"depth": 3, "W_std": 1.0, "b_std": 0.0, "out_std": 1.0,
                                        "parameterization": "ntk", "activation": "relu", "residual": None}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"depth": 0}, "depth must be an integer >= 1; got 0"),
        ({"depth": 2.0}, "depth must be an integer >= 1; got 2.0"),
        ({"depth": True}, "depth must be an integer >= 1; got True"),
        ({"depth": 3, "W_std": 0.0}, "W_std must be a finite number > 0; got 0.0"),
        ({"depth": 3, "W_std": float("nan")}, "W_std must be a finite number > 0; got nan"),
        ({"depth": 3, "W_std": "big"}, "W_std must be a finite number > 0; got 'big'"),
        ({"depth": 3, "b_std": -0.1}, "b_std must be a finite number >= 0; got -0.1"),
        ({"depth": 3, "b_std": float("nan")}, "b_std must be a finite number >= 0; got nan"),
        ({"depth": 3, "out_std": -1.0}, "out_std must be a finite number > 0; got -1.0"),
        ({"depth": 3, "out_std": float("inf")}, "out_std must be a finite number > 0; got inf"),
        ({"depth": 3, "parameterization": "NTK"}, "unknown parameterization 'NTK'; choose one of"),
        ({"depth": 3, "activation": "gelo"}, "unknown activation 'gelo' .did you mean 'gelu'..; choose one of"),
    ],
)
def test_bad_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        NetworkSpec(**fields)
    if fields.get("depth") == 3:  # replace checks as the constructor does
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            NetworkSpec(depth=3).replace(**{k: v for k, v in fields.items() if k != "depth"})


def test_settings_a_part_cannot_represent_raise(x64):
    x = np.eye(3)
    with pytest.raises(ValueError, match="depth >= 2 .*kernel_fn"):
        NetworkSpec(depth=1).model(3, 8, rngs=0)
    with pytest.raises(ValueError, match="width must be an integer >= 1; got 0"):
        NetworkSpec(depth=2).model(3, 0, rngs=0)
    with pytest.raises(TypeError, match=r"\['W_std'\] belong to the spec.*spec.replace"):
        NetworkSpec(depth=2).model(3, 8, rngs=0, W_std=2.0)
    with pytest.raises(ValueError, match="neural-tangents has no closed-form layer for tanh.*kernel_fn"):
        NetworkSpec(depth=2, activation="tanh").stax(8)
    with pytest.raises(ValueError, match="muP network has no infinite-width kernel.*parameterization='ntk'"):
        NetworkSpec(depth=2, parameterization="mup").kernel_fn()
    with pytest.raises(ValueError, match="stax has no muP"):
        NetworkSpec(depth=2, parameterization="mup").stax(8)
    standard = NetworkSpec(depth=3, parameterization="standard").kernel_fn()
    with pytest.raises(ValueError, match="standard parameterization the NTK grows with the width.*stax"):
        standard(x)
    ntk = NetworkSpec(depth=3).kernel_fn()
    np.testing.assert_array_equal(standard(x, get="nngp"), ntk(x, get="nngp"))
    with pytest.raises(ValueError, match=r"\['ntk_normalized'\] of a network with out_std != W_std and a bias"):
        NetworkSpec(depth=3, b_std=0.1, out_std=0.5).kernel_fn()(x, get=("ntk", "ntk_normalized"))
    with pytest.raises(ValueError, match="out_std must be a finite number > 0 .*got -1"):
        relu_kernel_fn(3, out_std=-1.0)
    with pytest.raises(ValueError, match="out_std must be a finite number > 0; got nan"):
        stax_mlp(3, 8, out_std=float("nan"))


def test_standard_parameterization_stax_is_the_finite_width_ntk(rng):
    """At standard parameterization spec.stax(width) gives the NTK of spec.model at that width.

    Monte Carlo as in the NTK test: the mean of four seeds at width 1024 lies
    within 4 / sqrt(width) of stax's width-dependent kernel, which is about
    width / W_std^2 times the NTK-parameterization limit.
    """
    spec = NetworkSpec(depth=3, W_std=1.2, b_std=0.3, out_std=0.8, parameterization="standard")
    width = 1024
    x = rng.normal(size=(5, 6))
    with jax.enable_x64(True):
        exact = np.asarray(spec.stax(width)[2](x, None, "ntk"))
    x32 = jnp.asarray(x, jnp.float32)
    mean = np.mean([np.asarray(mlp_ntk(spec.model(6, width, 1, rngs=s), x32), np.float64)
                    for s in range(4)], axis=0)
    assert _relative(mean, exact) < 4.0 / math.sqrt(width)


def test_float64_kernels_stay_float64_outside_x64_mode(rng):
    """The output scale is applied in the kernel's own precision, with or without x64 mode."""
    x = rng.normal(size=(4, 3))
    spec = NetworkSpec(depth=3, b_std=0.1, out_std=0.5)
    outside = spec.kernel_fn(dtype="float64")(x, get="ntk")
    with jax.enable_x64(True):
        inside = spec.kernel_fn(dtype="float64")(x, get="ntk")
    assert outside.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(outside), np.asarray(inside))
