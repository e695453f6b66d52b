"""Residual networks: the kernels against neural-tangents' FanOut/parallel/FanInSum construction and a
50-digit recursion, the tabulated path against the loop, the Flax model's empirical NTK against the
kernel, and the settings' errors."""

from __future__ import annotations

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mpmath import mp, mpf
from oracles import RESIDUAL_1E4_CASES, residual_1e4_pairs, residual_recursion

from ntkdepth.kernels import KERNEL_FIELDS, kernel_fn, kernel_trace, residual_alpha, stax_residual_mlp
from ntkdepth.models import NetworkSpec, ResidualMLP


def _stax_outputs(act, depths, alpha, W, b, out_std, x1, x2):
    """neural-tangents' kernels of the residual network with its readout at each depth in ``depths``,
    built here from its own layers: one pass through the blocks, the readout applied at each depth."""
    from ntkdepth.kernels import activation
    from ntkdepth.kernels.nt_bridge import stax

    bias = None if b == 0 else b
    block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(
        activation(act).stax(), stax.Dense(1, W_std=alpha * W, b_std=None if b == 0 else alpha * b))), stax.FanInSum())
    first, readout = stax.Dense(1, W_std=W, b_std=bias)[2], stax.Dense(1, W_std=out_std, b_std=bias)[2]
    k, out = first(x1, x2), {}
    for depth in range(1, max(depths) + 1):
        k = k if depth == 1 else block[2](k)
        if depth in depths:
            out[depth] = readout(k)
    return out


@pytest.mark.parametrize("act,alpha,b", [("relu", 0.7, 0.3), ("erf", 0.4, 0.2), ("gelu", 0.6, 0.2), ("relu", 1.5, 0.0)])
def test_stream_and_readout_agree_with_neural_tangents_at_depths_1_to_20(x64, rng, act, alpha, b):
    """Float64, depths 1..20: one kernel_trace gives every depth's stream; with the readout's kernels
    (Sigma_f = s_out^2 Sigma^L + b^2, Theta_f = s_out^2 (Theta^L + Sigma^L) + b^2) it is within 1e-12 of
    neural-tangents' network, and so are kernel_fn, NetworkSpec and stax_residual_mlp (at depths 1, 8, 20)."""
    x1, x2 = rng.normal(size=(5, 4)), 1.3 * rng.normal(size=(3, 4))
    W, out_std = 1.3, 0.8
    trace = kernel_trace(x1, x2, depth=20, activation=act, W_std=W, b_std=b, residual=alpha, get=("nngp", "ntk"))
    depths = (1, 2, 3, 5, 8, 13, 20)
    refs = _stax_outputs(act, depths, alpha, W, b, out_std, x1, x2)
    worst = 0.0
    for depth in depths:
        ref = refs[depth]
        sigma, theta = np.asarray(trace.nngp[depth - 1]), np.asarray(trace.ntk[depth - 1])
        ours = {"trace": (out_std**2 * sigma + b**2, out_std**2 * (theta + sigma) + b**2)}
        if depth in (1, 8, 20):
            spec = NetworkSpec(depth=depth, W_std=W, b_std=b, out_std=out_std, activation=act, residual=alpha)
            ours |= {
                "kernel_fn": tuple(kernel_fn(depth, act, W, b, out_std=out_std, residual=alpha)(x1, x2)),
                "spec": tuple(spec.kernel_fn()(x1, x2)),
                "stax_residual_mlp": tuple(spec.stax(8)[2](x1, x2, ("nngp", "ntk"))),
            }
        for name, (nngp, ntk) in ours.items():
            for got, want in ((nngp, ref.nngp), (ntk, ref.ntk)):
                err = np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want))
                worst = max(worst, err)
                assert err <= 1e-12, (name, depth, err)
    assert worst > 0 or act == "relu"  # the comparison ran on numbers


def test_alpha_over_sqrt_depth_follows_the_depth(x64, rng):
    """'a/sqrt(L)' is alpha = a / sqrt(L) of each network: the same kernels as that number."""
    x = rng.normal(size=(4, 3))
    assert residual_alpha("2/sqrt(L)", 16) == 0.5 and residual_alpha(" / sqrt( L )", 4) == 0.5
    assert residual_alpha(0.3, 100) == 0.3 and residual_alpha(None, 5) is None
    spec = NetworkSpec(depth=9, residual="1.5/sqrt(L)", b_std=0.1)
    assert spec.residual == "1.5/sqrt(L)" and spec.alpha == 0.5 and spec.replace(depth=25).alpha == 0.3
    a = np.asarray(spec.kernel_fn()(x, get="ntk"))
    b = np.asarray(NetworkSpec(depth=9, residual=0.5, b_std=0.1).kernel_fn()(x, get="ntk"))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("residual", [None, 0.5])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_a_single_field_name_is_accepted_everywhere(rng, residual, act):
    """get='ntk' (a name, not a tuple) gives that field alone, for plain and residual networks.

    ReLU asks for every field alone; tanh (whose loop compiles slowly) for half of them in the plain
    network and the other half in the residual one: each field is formed the same way for every
    activation. tanh's inputs have variances about 1/2: a shorter expansion, less to compile."""
    x = rng.normal(size=(5, 3)) / (2.0 if act == "tanh" else 1.0)
    both = kernel_trace(x, depth=4, activation=act, residual=residual, get=("nngp", "ntk"))
    fields = KERNEL_FIELDS if act == "relu" else KERNEL_FIELDS[int(residual is not None)::2]
    for f in fields:
        one = kernel_trace(x, depth=4, activation=act, residual=residual, get=f)
        assert getattr(one, f).shape == (4, 5, 5)
        assert [g for g in KERNEL_FIELDS if getattr(one, g) is not None] == [f]
    np.testing.assert_allclose(kernel_trace(x, depth=4, activation=act, residual=residual, get="ntk").ntk,
                               both.ntk, rtol=1e-6)
    fn = kernel_fn(4, act, residual=residual)
    k = fn(x, get="ntk")
    assert k.shape == (5, 5) and np.allclose(k, fn(x, get=("ntk",)).ntk)
    spec_k = NetworkSpec(depth=4, activation=act, residual=residual).kernel_fn()(x, get="ntk")
    np.testing.assert_allclose(spec_k, k, rtol=1e-6)


def _pairs(rng):
    x1 = rng.normal(size=(2, 3))
    x2 = np.vstack([x1[:1] + 3e-2 * rng.normal(size=(1, 3)), 1.5 * rng.normal(size=(1, 3))])
    return x1, x2


def _check_against_the_oracle(x1, x2, layers, act, alpha, b):
    ref = residual_recursion(x1, x2, layers=layers, W_std=1.3, b_std=b, alpha=alpha, activation=act)
    got = kernel_trace(x1, x2, depth=max(layers), layers=layers, activation=act, W_std=1.3, b_std=b,
                       residual=alpha, get=("rho", "ntk_normalized"), dtype="float64")
    for f in ("rho", "ntk_normalized"):
        err = np.abs(np.asarray(getattr(got, f)) - ref[f]).max(axis=(1, 2))  # [layers]
        # One rounding of the running value per layer: within 20 L eps at depth L, 1e-13 to depth 100.
        allowed = np.maximum(1e-13, 20 * np.asarray(layers) * np.finfo(np.float64).eps)
        assert np.all(err <= allowed), (act, alpha, b, f, err)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_requested_layers_in_any_order_equal_the_full_trace(x64, rng, act):
    """Layers asked for out of order and with gaps are the full trace's, each in its own place (the
    unrequested layers between them write nowhere)."""
    x = rng.normal(size=(5, 4))
    full = kernel_trace(x, depth=9, activation=act, residual=0.5, b_std=0.2, method="loop")
    part = kernel_trace(x, depth=9, layers=[7, 2, 9, 4], activation=act, residual=0.5, b_std=0.2, method="loop")
    for field in ("nngp", "ntk", "rho", "ntk_normalized", "ntk_diag1"):
        np.testing.assert_allclose(getattr(part, field), np.asarray(getattr(full, field))[[6, 1, 8, 3]],
                                   rtol=1e-13, err_msg=field)


def test_deep_recursion_matches_50_digits_to_depth_1000(x64, rng):
    x1, x2 = _pairs(rng)
    _check_against_the_oracle(x1, x2, [1, 2, 10, 100, 1000], "relu", 1 / math.sqrt(1000), 0.2)


RESIDUAL_1E4_ORACLE = pathlib.Path(__file__).parent / "data" / "residual_1e4_oracle.json"


@pytest.mark.parametrize("case", range(len(RESIDUAL_1E4_CASES)), ids=[f"{a}-{al}-{b}" for a, al, b in RESIDUAL_1E4_CASES])
def test_deep_recursion_matches_50_digits_to_depth_10000(x64, case):
    """Unequal norms and near pairs, alpha = 1/sqrt(L) at L = 1e4 and fixed alphas (stored 50-digit values)."""
    oracle = json.loads(RESIDUAL_1E4_ORACLE.read_text())
    act, alpha, b = oracle["cases"][case]
    x1, x2, layers = np.asarray(oracle["x1"]), np.asarray(oracle["x2"]), oracle["layers"]
    got = kernel_trace(x1, x2, depth=max(layers), layers=layers, activation=act, W_std=oracle["W_std"], b_std=b,
                       residual=alpha, get=("rho", "ntk_normalized"), dtype="float64")
    for f in ("rho", "ntk_normalized"):
        err = np.abs(np.asarray(getattr(got, f)) - np.asarray(oracle["values"][case][f])).max(axis=(1, 2))
        # One rounding of the running value per layer: within 20 L eps at depth L, 1e-13 to depth 100.
        allowed = np.maximum(1e-13, 20 * np.asarray(layers) * np.finfo(np.float64).eps)
        assert np.all(err <= allowed), (act, alpha, b, f, err)


def test_the_stored_depth_1e4_oracle_is_the_recursion(x64):
    """The stored 50-digit values are those of the recursion for the stored pairs (checked to depth 100)."""
    oracle = json.loads(RESIDUAL_1E4_ORACLE.read_text())
    x1, x2 = residual_1e4_pairs()
    assert np.array_equal(np.asarray(oracle["x1"]), x1) and np.array_equal(np.asarray(oracle["x2"]), x2)
    assert oracle["layers"][:4] == [1, 2, 10, 100] and [tuple(c) for c in oracle["cases"]] == RESIDUAL_1E4_CASES
    for (act, alpha, b), ref in zip(RESIDUAL_1E4_CASES, oracle["values"]):
        got = residual_recursion(x1, x2, layers=[1, 2, 10, 100], W_std=oracle["W_std"], b_std=b, alpha=alpha,
                                 activation=act)
        for f in ("rho", "one_minus_rho", "ntk_normalized"):
            np.testing.assert_allclose(got[f], np.asarray(ref[f])[:4], rtol=1e-15, atol=0, err_msg=(act, f))


@pytest.mark.parametrize("act,alpha,b", [("relu", 0.5, 0.0), ("relu", 0.02, 0.3), ("erf", 0.2, 0.1)])
def test_tabulated_path_agrees_with_the_loop(x64, rng, act, alpha, b):
    """Inputs of one norm (or ReLU without bias, any norms): the tables at Gram-matrix cost are the loop."""
    x = rng.normal(size=(30, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = np.vstack([x, x[:1], -x[1:2]])
    if b == 0.0:
        x = x * rng.uniform(0.5, 2.0, size=(len(x), 1))
    layers = [1, 2, 50, 2000]
    kw = dict(depth=2000, layers=layers, activation=act, W_std=1.2, b_std=b, residual=alpha)
    loop, tab = kernel_trace(x, method="loop", **kw), kernel_trace(x, method="interp", **kw)
    for f in ("rho", "ntk_normalized", "nngp", "ntk"):
        a, c = np.asarray(getattr(loop, f)), np.asarray(getattr(tab, f))
        scale = np.abs(a).max(axis=(1, 2), keepdims=True)
        assert np.max(np.abs(a - c) / np.maximum(scale, 1e-300)) <= 1e-11, f


def test_normalized_output_fields_stay_exact_where_raw_kernels_overflow(x64, rng):
    """alpha = 1 doubles the stream's variance per block: at depth 2000 Sigma^L overflows, while the
    output's correlation and normalized NTK equal those of depth 2000 from the stream's own."""
    x = rng.normal(size=(4, 3))
    fn = kernel_fn(2000, "relu", residual=1.0)
    k = fn(x, get=("nngp", "rho", "ntk_normalized"))
    assert np.all(np.isinf(np.asarray(k.nngp)[np.asarray(k.rho) > 0]))
    stream = kernel_trace(x, depth=2000, layers=[2000], residual=1.0, get=("rho", "ntk_normalized"))
    np.testing.assert_allclose(k.rho, stream.rho[0], atol=1e-14)
    # Theta_f = 2 (Theta^L + Sigma^L), and Theta^L / Sigma^L -> infinity: the readout barely moves Thetabar.
    assert np.max(np.abs(np.asarray(k.ntk_normalized) - np.asarray(stream.ntk_normalized[0]))) < 1e-2
    assert np.all(np.isfinite(k.ntk_normalized)) and np.allclose(np.diagonal(k.ntk_normalized), 1.0, atol=0)


def test_the_model_is_the_networks_structure(x64, rng):
    """ResidualMLP: the blocks carry alpha, the readout reads the stream, and the exact empirical NTK by
    layer structure (mlp_ntk) equals the Jacobian's."""
    from ntkdepth.empirical import empirical_ntk, mlp_ntk

    spec = NetworkSpec(depth=4, W_std=1.2, b_std=0.3, activation="tanh", residual=0.6)
    model = spec.model(3, 16, 2, rngs=0, param_dtype=jnp.float64)
    assert isinstance(model, ResidualMLP) and model.depth == 4 and len(model.layers) == 5
    x = rng.normal(size=(5, 3))
    f, stream = model(jnp.asarray(x))
    assert f.shape == (5, 2) and stream.shape == (5, 16)
    # By hand: h^1, three blocks, readout.
    p = [(np.asarray(l.kernel[...]), np.asarray(l.bias[...])) for l in model.layers]
    h = 1.2 / math.sqrt(3) * x @ p[0][0] + 0.3 * p[0][1]
    for w, b in p[1:-1]:
        h = h + 0.6 * (1.2 / 4.0 * np.tanh(h) @ w + 0.3 * b)
    np.testing.assert_allclose(stream, h, rtol=1e-12)
    np.testing.assert_allclose(f, 1.2 / 4.0 * h @ p[-1][0] + 0.3 * p[-1][1], rtol=1e-12)
    np.testing.assert_allclose(mlp_ntk(model, x), empirical_ntk(model, x), rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("act,residual", [("relu", 0.5), ("erf", "1/sqrt(L)")])
def test_finite_networks_empirical_ntk_converges_to_the_kernel(x64, rng, act, residual):
    """The empirical NTK of width-n residual networks at initialization, averaged over seeds, is the
    kernel; its spread over seeds shrinks like n^-1/2."""
    from ntkdepth.empirical import mlp_ntk

    spec = NetworkSpec(depth=5, W_std=1.3, b_std=0.2, activation=act, residual=residual)
    x = rng.normal(size=(4, 3))
    exact = np.asarray(spec.kernel_fn()(x, get="ntk"))
    errors = []
    for width in (256, 1024):
        ks = np.stack([np.asarray(mlp_ntk(spec.model(3, width, 1, rngs=s, param_dtype=jnp.float64), x))
                       for s in range(8)])
        errors.append(np.sqrt(np.mean((ks - exact) ** 2)))
        se = ks.std(0) / math.sqrt(len(ks))
        assert np.all(np.abs(ks.mean(0) - exact) <= 5 * se + 1e-9), act
    assert 1.4 <= errors[0] / errors[1] <= 2.9  # n^-1/2 over a factor 4 in width: 2


def test_bad_residual_settings_are_named():
    for bad in (0.0, -1.0, float("nan"), True, "sqrt(L)", "a/sqrt(L)", "0/sqrt(L)", [0.5]):
        with pytest.raises(ValueError, match="residual must be"):
            NetworkSpec(depth=3, residual=bad)
    with pytest.raises(ValueError, match="residual_alpha"):
        kernel_trace(np.ones((2, 3)), depth=3, residual="1/sqrt(L)")
    with pytest.raises(ValueError, match="ResidualMLP needs residual"):
        ResidualMLP(3, 8, 2, 1, residual=None)
    with pytest.raises(ValueError, match="stax_residual_mlp needs residual"):
        stax_residual_mlp(3, 8, None)
    with pytest.raises(ValueError, match="covers plain networks at NTK parameterization; got residual=0.5"):
        from ntkdepth.models.spec import network_arguments

        network_arguments(NetworkSpec(depth=3, residual=0.5), purpose="the drift theory")


@pytest.mark.slow
def test_width_vs_kernel_trains_residual_networks_at_a_stable_step(tmp_path):
    """--set residual=0.5: the smoke preset's dt = 0.1 is beyond 2 / lambda_max of this kernel, so the run
    takes half the stable step, and the finite networks approach the residual kernel."""
    import json

    from ntkdepth.cli import main

    out = tmp_path / "run"
    assert main(["run", "width-vs-kernel", "--preset", "smoke", "--set", "residual=0.5", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dt"] == pytest.approx(0.5 * results["stable_dt"]) and results["stable_dt"] < 0.1
    errors = results["relative_errors"]
    for key in ("ntk_init", "features_init", "outputs_test"):
        assert errors[key]["mean"][1] < errors[key]["mean"][0], key
    assert "the configured 0.1 is beyond this kernel's stable step" in (out / "summary.md").read_text()


RESIDUAL_DEEP_ORACLE = pathlib.Path(__file__).parent / "data" / "residual_deep_oracle.json"


def _first_layer(x1, x2, W, b):
    """``(rho1, 1 - rho1, log Sigma^1(x, x) of x1 and of x2)`` in 50 digits, rounded to float64."""
    with mp.workdps(50):
        def cov(a, c):
            return mpf(W) ** 2 * mp.fsum(mpf(float(u)) * mpf(float(v)) for u, v in zip(a, c)) / len(a) + mpf(b) ** 2

        corr = [[cov(a, c) / mp.sqrt(cov(a, a) * cov(c, c)) for c in x2] for a in x1]
        rho1 = np.array([[float(r) for r in row] for row in corr])
        omr1 = np.array([[float(1 - r) for r in row] for row in corr])
        lq1 = np.array([float(mp.log(cov(a, a))) for a in x1])
        lq2 = np.array([float(mp.log(cov(c, c))) for c in x2])
    return rho1, omr1, lq1, lq2


def test_alpha_one_stays_exact_far_past_depth_one_over_lambda(x64):
    """alpha = 1 to depth 1e5 (lambda = 1/2 and 0.46: 1e5 is 2e5 times 1/lambda) against the 50-digit
    recursion, for a near pair (1 - rho_1 = 5e-7), an obtuse pair of unequal norms and one at rho_1 = 1/2:
    1 - rho_l (down to 1e-8) within 1e-11 relative, Thetabar^l - 1/4 (down to 6e-5) within 3e-10 relative
    at 1e4 and 3e-8 at 1e5 (a recursion carrying rho itself was off by 0.18 of it at 1e5)."""
    from ntkdepth.kernels import activation
    from ntkdepth.kernels.residual import residual_loop
    from ntkdepth.kernels.scan import requested_layers, run_length

    oracle = json.loads(RESIDUAL_DEEP_ORACLE.read_text())
    layers = np.asarray(oracle["layers"])
    x1, x2 = np.asarray(oracle["x1"]), np.asarray(oracle["x2"])
    for case, ref in zip(oracle["cases"], oracle["values"]):
        rho1, omr1, lq1, lq2 = _first_layer(x1, x2, case["W_std"], case["b_std"])
        out = residual_loop(jnp.asarray(rho1), jnp.asarray(lq1), jnp.asarray(lq2), case["W_std"], case["b_std"],
                            case["alpha"], jnp.asarray(requested_layers(layers)), act=activation("relu"), plan=None,
                            length=run_length(layers), n_out=len(layers),
                            get=("ntk_normalized", "_omr"), bias=case["b_std"] > 0, every_layer=False,
                            omr1=jnp.asarray(omr1))
        gap, tbar = np.asarray(out["_omr"]), np.asarray(out["ntk_normalized"])
        want_gap, want_tbar = np.asarray(ref["one_minus_rho"]), np.asarray(ref["ntk_normalized"])
        deep = layers >= 10_000
        # 1 - rho: a few ulps of itself a layer. Thetabar ~ 0.25 takes roundings of order eps a layer, which
        # its distance from 1/4 (6e-5 at 1e5) feels: within 1.3e-10 of it at 1e4 and 1.1e-8 at 1e5 (measured).
        assert np.max(np.abs(gap / want_gap - 1.0)) < 1e-11, (case, gap / want_gap - 1.0)
        excess = (tbar - 0.25) / (want_tbar - 0.25) - 1.0
        assert np.max(np.abs(excess[layers == 10_000])) < 3e-10, (case, excess)
        assert np.max(np.abs(excess[layers == 100_000])) < 3e-8, (case, excess)
        assert np.max(np.abs(tbar - want_tbar)) < 1e-12, case
        # kernel_trace's first layer reads rho_1 off the Gram matrix (1e-16 absolute, 2e-10 of the near pair's
        # 1 - rho_1); from there on the same recursion.
        trace = kernel_trace(x1, x2, depth=int(layers.max()), layers=layers.tolist(), residual=case["alpha"],
                             W_std=case["W_std"], b_std=case["b_std"], get="ntk_normalized")
        np.testing.assert_allclose(np.asarray(trace.ntk_normalized), want_tbar, rtol=0, atol=5e-11)


def test_the_stored_deep_oracle_is_the_recursion(x64):
    """The stored 50-digit values are those of the recursion (checked to depth 100)."""
    oracle = json.loads(RESIDUAL_DEEP_ORACLE.read_text())
    assert oracle["layers"][:3] == [1, 10, 100]
    for case, ref in zip(oracle["cases"], oracle["values"]):
        got = residual_recursion(np.asarray(oracle["x1"]), np.asarray(oracle["x2"]), layers=[1, 10, 100], **case)
        for f in ("rho", "one_minus_rho", "ntk_normalized"):
            np.testing.assert_allclose(got[f], np.asarray(ref[f])[:3], rtol=1e-15, atol=0)
