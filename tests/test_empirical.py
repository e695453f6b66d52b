"""Empirical kernels of finite networks and the drift statistics of the last hidden layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.config import ConfigError
from ntkdepth.empirical import (
    drift_against_prediction,
    drift_curves,
    empirical_ntk,
    feature_kernel,
    feature_record,
    final_drift,
    mlp_ntk,
)
from ntkdepth.experiment_settings import SkipGramSettings
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.models import MLP, functional
from ntkdepth.stats import fit_power_law
from ntkdepth.training import SweepRun


def _sphere(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("parameterization", ["ntk", "standard", "mup"])
@pytest.mark.parametrize("b_std", [0.0, 0.3])
def test_structured_ntk_equals_the_jacobian_contraction(x64, rng, parameterization, b_std):
    net = MLP(4, [12, 10], 3, parameterization=parameterization, b_std=b_std, base_width=5,
              rngs=2, param_dtype=jnp.float64)
    x1, x2 = jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(rng.normal(size=(3, 4)))
    want = empirical_ntk(net, x1=x1, x2=x2, block_size=2)
    # An explicit Jacobian of the flattened parameters, averaged over the 3 outputs.
    fm = functional(net)
    flat, unravel = jax.flatten_util.ravel_pytree(fm.params)
    jac = lambda x: jax.jacrev(lambda p: fm.output(unravel(p), x))(flat)  # [n, k, P]
    explicit = jnp.einsum("ikp,jkp->ij", jac(x1), jac(x2)) / 3
    np.testing.assert_allclose(want, explicit, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mlp_ntk(net, x1, x2, block_size=2), explicit, rtol=1e-12, atol=1e-12)


def test_structured_ntk_with_token_inputs(x64):
    net = MLP(9, [16, 16], 4, tokens=True, input_scale=3.0, b_std=0.1, rngs=0, param_dtype=jnp.float64)
    ids = jnp.array([0, 4, 4, 8])
    np.testing.assert_allclose(mlp_ntk(net, ids), empirical_ntk(net, x1=ids), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        mlp_ntk(net, jnp.array([0, 9]))


def _mean_relative_error(kernel_of, limit, x, widths, seeds):
    """``[W]``: mean over seeds of ``|K - limit|_F / |limit|_F``, ``K = kernel_of(net, x)`` at depth 3."""
    def error(w, seed):  # one network at a time
        net = MLP(x.shape[1], [w, w], 1, rngs=seed, param_dtype=jnp.float64)
        return np.linalg.norm(np.asarray(kernel_of(net, jnp.asarray(x))) - limit) / np.linalg.norm(limit)

    return [np.mean([error(w, seed) for seed in range(seeds)]) for w in widths]


def test_empirical_ntk_converges_to_theta_like_one_over_sqrt_width(x64, rng):
    """Relative Frobenius error against Theta^3 over 3 seeds: slope near -1/2 in width."""
    x = _sphere(rng, 12, 6)
    theta = np.asarray(relu_kernel_trace(x, depth=3).ntk[-1])
    widths = [128, 512, 2048]
    errors = _mean_relative_error(mlp_ntk, theta, x, widths, seeds=3)
    fit = fit_power_law(widths, errors)
    assert -0.7 < fit.exponent < -0.3, (fit, errors)
    assert errors[-1] < 0.08


def test_feature_kernel_converges_to_its_analytic_limit(x64, rng):
    """<a^{L-1}(x), a^{L-1}(x')>/n -> Sigma^L / W_std^2 (no bias)."""
    x = _sphere(rng, 6, 5)
    limit = np.asarray(relu_kernel_trace(x, depth=3).nngp[-1]) / 2.0
    err = _mean_relative_error(feature_kernel, limit, x, [256, 4096], seeds=4)
    # Sixteen times the width: a quarter of the error (n^{-1/2}), up to seed noise.
    assert err[1] < 0.08 and 0.15 < err[1] / err[0] < 0.4, err


def test_feature_record_on_a_case_computed_by_hand(x64):
    a0 = np.array([[1.0, 0.0, 2.0, 2.0], [0.0, 3.0, 0.0, 4.0]])
    at = np.array([[1.0, 1.0, 2.0, 0.0], [0.0, 3.0, 0.0, 4.0]])
    s = feature_record(jnp.asarray(a0), jnp.asarray(at))
    # First input: differences (0, 1, 0, -2): |.|_2 = sqrt 5, mean |.| = 3/4, max 2, |a_0| = 3.
    np.testing.assert_allclose(s["aggregate"], [np.sqrt(5), 0.0], rtol=1e-15)
    np.testing.assert_allclose(s["per_neuron_mean"], [0.75, 0.0], rtol=1e-15)
    np.testing.assert_allclose(s["per_neuron_max"], [2.0, 0.0], rtol=1e-15)
    np.testing.assert_allclose(s["relative"], [np.sqrt(5) / 3, 0.0], rtol=1e-15)
    np.testing.assert_allclose(s["norm"], [np.sqrt(6), 5.0], rtol=1e-15)
    # <a_t, a_t'>/4 - <a_0, a_0'>/4: (0+3+0+0)/4 - (0+0+0+8)/4 = -5/4 off the diagonal.
    s0 = feature_record(jnp.asarray(a0), jnp.asarray(a0))
    np.testing.assert_allclose(s["gram"] - s0["gram"], [[(6 - 9) / 4, -5 / 4], [-5 / 4, 0.0]], rtol=1e-15)
    with pytest.raises(ValueError, match="same shape"):
        feature_record(jnp.ones((2, 3)), jnp.ones((2, 4)))


def _run(width, seed, a0, at):
    """A SweepRun whose two records are ``feature_record`` at step 0 and after training."""
    recs = [feature_record(jnp.asarray(a0), jnp.asarray(a)) for a in (a0, at)]
    stats = {k: np.stack([np.asarray(r[k]) for r in recs]) for k in recs[0]}
    return SweepRun(width, seed, np.array([0, 1]), np.zeros(2), np.zeros((2, len(a0), 1)), stats)


def test_final_drift_pools_the_last_record_over_inputs_and_seeds(x64, rng):
    a0 = {s: rng.normal(size=(3, 5)) for s in (0, 1)}
    at = {s: a0[s] + rng.normal(size=(3, 5)) for s in (0, 1)}
    runs = {(5, s): _run(5, s, a0[s], at[s]) for s in (0, 1)}
    # A second width, listed first: the arrays follow the widths' order.
    runs[(4, 0)] = _run(4, 0, a0[0][:, :4], a0[0][:, :4] + 1.0)
    table = final_drift(runs, [4, 5], {4: [0], 5: [0, 1]})
    diff = np.concatenate([at[s] - a0[s] for s in (0, 1)])  # [6, 5]: 3 inputs of 2 seeds
    agg = np.linalg.norm(diff, axis=1)
    rel = agg / np.linalg.norm(np.concatenate([a0[0], a0[1]]), axis=1)
    change = [np.abs(at[s] @ at[s].T - a0[s] @ a0[s].T)[~np.eye(3, dtype=bool)] / 5 for s in (0, 1)]
    want = {"aggregate": agg, "per_neuron_mean": np.abs(diff).mean(1), "per_neuron_max": np.abs(diff).max(1),
            "relative": rel, "inner_product": np.concatenate(change)}
    for m, v in want.items():
        assert table[m]["mean"].shape == table[m]["sd"].shape == (2,), m
        assert table[m]["mean"][1] == pytest.approx(v.mean(), rel=1e-12), m
        assert table[m]["sd"][1] == pytest.approx(v.std(ddof=1), rel=1e-12), m
    assert table["aggregate"]["mean"][0] == pytest.approx(2.0) and table["aggregate"]["sd"][0] == pytest.approx(0.0)
    curves = drift_curves(runs, [4, 5], {4: [0], 5: [0, 1]})
    assert curves["aggregate"].shape == (2, 2) and curves["loss"].shape == (2, 2)
    np.testing.assert_allclose(curves["aggregate"][1], [0.0, agg.mean()], rtol=1e-12)
    np.testing.assert_allclose(curves["per_neuron_max"][0], [0.0, 1.0], rtol=1e-12)


def test_final_drift_refuses_features_without_a_relative_drift(x64):
    a0 = np.array([[0.0, 0.0], [1.0, 2.0]])  # the first input's units are all inactive
    with pytest.raises(ValueError, match="relative drift of width 2, seed 7 is NaN"):
        final_drift({(2, 7): _run(2, 7, a0, a0 + 1.0)}, [2], [7])


def test_measured_drift_names_the_widths_and_seeds_that_leave_a_narrow_width_out(x64, rng):
    settings = SkipGramSettings(widths=[2, 8, 16], seeds_by_width=[1, 2, 1], seed=3)
    a0 = np.array([[0.0, 0.0], [1.0, 2.0]])  # at width 2 the first token's units are all inactive
    runs = {(2, 3): _run(2, 3, a0, a0 + 1.0)}
    for w, seeds in ((8, (3, 4)), (16, (3,))):
        for s in seeds:
            b0 = rng.normal(size=(2, w))
            runs[(w, s)] = _run(w, s, b0, b0 + 0.1)
    with pytest.raises(ConfigError) as err:
        settings.measured_drift(runs)
    assert "width 2, seed 3" in str(err.value) and "Leave width 2 out" in str(err.value)
    assert "--set widths=[8,16] --set seeds_by_width=[2,1]" in str(err.value)
    table = SkipGramSettings(widths=[8, 16], seeds_by_width=[2, 1], seed=3).measured_drift(runs)
    np.testing.assert_array_equal(table["aggregate"]["mean"], final_drift(runs, [8, 16], {8: [3, 4], 16: [3]})
                                  ["aggregate"]["mean"])


def test_drift_against_prediction_on_a_gap_that_closes_like_n_to_the_minus_one_half():
    widths = [256, 1024, 4096, 16384]
    n = np.asarray(widths, float)
    predicted = {"aggregate": np.full(4, 0.125), "per_neuron_mean": 0.08 / np.sqrt(n)}
    # Measured = predicted * (1 + c n^-1/2) from 1024 on; the narrowest width is off the law.
    gap = {"aggregate": 3.0 / np.sqrt(n) * [5.0, 1, 1, 1], "per_neuron_mean": -2.0 / np.sqrt(n) * [0.1, 1, 1, 1]}
    measured = {m: predicted[m] * (1 + gap[m]) for m in predicted}
    out = drift_against_prediction(measured, predicted, widths, min_width=1000)
    for m in predicted:
        np.testing.assert_allclose(out[m]["ratio"], 1 + gap[m], rtol=1e-14)
        assert out[m]["exponent"] == pytest.approx(-0.5, abs=1e-12)
        assert out[m]["widths"] == [1024, 4096, 16384]
    # Over every width the narrowest one pulls the fit away from -1/2.
    assert abs(drift_against_prediction(measured, predicted, widths)["aggregate"]["exponent"] + 0.5) > 0.1
    # A gap of exactly 0 has no power law; one width has none either.
    exact = drift_against_prediction(predicted, predicted, widths)["aggregate"]
    assert exact["exponent"] is None and exact["ratio"].tolist() == [1.0] * 4
    one = drift_against_prediction({"aggregate": [0.2]}, {"aggregate": [0.1]}, [64])["aggregate"]
    assert one["exponent"] is None and one["ratio"].tolist() == [2.0] and one["widths"] == [64]
    with pytest.raises(ValueError, match="one measured and one predicted value per width"):
        drift_against_prediction({"aggregate": [0.1, 0.2]}, {"aggregate": [0.1, 0.2, 0.3]}, [64, 256, 1024])


def test_power_law_fit_recovers_the_exponent():
    x = np.array([100.0, 300.0, 1000.0, 3000.0])
    fit = fit_power_law(x, 7.0 * x**-0.5)
    assert fit.exponent == pytest.approx(-0.5, abs=1e-12)
    assert fit.prefactor == pytest.approx(7.0, rel=1e-10)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law(x, -x)


def _tiny_net(params, x):
    """A two-layer tanh network with two outputs, parameters in a dict (any pytree works)."""
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] / jnp.sqrt(4.0) + params["b2"]


def test_empirical_ntk_equals_finite_differences_and_its_panels(x64, rng):
    params = {"w1": jnp.asarray(rng.normal(size=(3, 4))), "b1": jnp.asarray(rng.normal(size=4)),
              "w2": jnp.asarray(rng.normal(size=(4, 2))), "b2": jnp.asarray(rng.normal(size=2))}
    x1, x2 = jnp.asarray(rng.normal(size=(7, 3))), jnp.asarray(rng.normal(size=(5, 3)))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    h = 1e-6

    def fd_jacobian(x):  # [n, k, P] by central differences, one parameter at a time
        diff = jax.vmap(lambda e: _tiny_net(unravel(flat + e), x) - _tiny_net(unravel(flat - e), x))
        return np.moveaxis(np.asarray(diff(h * jnp.eye(flat.size))) / (2 * h), 0, -1)

    j1, j2 = fd_jacobian(x1), fd_jacobian(x2)
    want = np.einsum("ikp,jkp->ij", j1, j2) / 2
    np.testing.assert_allclose(empirical_ntk(_tiny_net, params, x1, x2, block_size=3), want, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(empirical_ntk(_tiny_net, params, x1, x2), want, rtol=1e-8, atol=1e-9)  # one program
    np.testing.assert_allclose(empirical_ntk(_tiny_net, params, x1, block_size=4),
                               np.einsum("ikp,jkp->ij", j1, j1) / 2, rtol=1e-8, atol=1e-9)
    # Jacobians beyond memory_bytes: panels of x1 against recomputed blocks of x2, same numbers.
    row_bytes = 2 * flat.size * 8
    panels = empirical_ntk(_tiny_net, params, x1, x2, block_size=2, memory_bytes=5 * row_bytes)
    np.testing.assert_allclose(panels, want, rtol=1e-8, atol=1e-9)


def test_empirical_ntk_computes_each_jacobian_once(x64, rng):
    """Count forward passes: one per block of x1 and of x2 (3 + 4), not one per pair of blocks."""
    calls = []

    def counted(params, x):
        jax.debug.callback(lambda: calls.append(1))
        return _tiny_net(params, x)

    params = {"w1": jnp.ones((3, 4)), "b1": jnp.zeros(4), "w2": jnp.ones((4, 2)), "b2": jnp.zeros(2)}
    x1, x2 = jnp.asarray(rng.normal(size=(12, 3))), jnp.asarray(rng.normal(size=(16, 3)))
    k = empirical_ntk(counted, params, x1, x2, block_size=4)
    jax.block_until_ready(k)
    assert len(calls) == 3 + 4
