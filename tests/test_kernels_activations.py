"""Kernels for every activation: neural-tangents' closed forms, mpmath references, the tabulated path,
user functions, gradients, and finite networks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import ACTIVATION_NAMES, activation, kernel_fn, kernel_trace
from ntkdepth.kernels.engine import normalized_loop
from ntkdepth.kernels.scan import requested_layers, run_length

ORACLE = Path(__file__).resolve().parent / "data" / "activation_oracle.json"

CLOSED_FORMS = [
    ("leaky_relu", {"slope": 0.2}), ("abrelu", {"a": -0.4, "b": 1.3}), ("abs", {}), ("identity", {}),
    ("relu_power", {"power": 2}), ("relu_power", {"power": 3}), ("step", {}), ("sign", {}),
    ("erf", {}), ("erf", {"a": 1.3, "b": 0.7, "c": 0.2}), ("gelu", {}), ("sin", {}), ("cos", {"b": 0.8}),
]


def _stax_kernels(act, depth, W, b, x1, x2):
    from ntkdepth.kernels.nt_bridge import stax

    layers = []
    for _ in range(depth - 1):
        layers += [stax.Dense(1, W_std=W, b_std=b), act.stax()]
    layers.append(stax.Dense(1, W_std=W, b_std=b))
    return stax.serial(*layers)[2](x1, x2, ("nngp", "ntk"))


@pytest.mark.slow
@pytest.mark.parametrize("name,params", CLOSED_FORMS, ids=[f"{n}{p or ''}" for n, p in CLOSED_FORMS])
def test_closed_forms_agree_with_neural_tangents(x64, rng, name, params):
    """Float64, with bias, depths 1 to 20: within 1e-12 of neural-tangents' own layers, wherever those
    are numbers (its RectifiedMonomial turns to NaN a few layers deep, where the kernels of a power
    above 1 overflow anyway)."""
    act = activation(name, **params)
    x1, x2 = rng.normal(size=(5, 4)), 1.3 * rng.normal(size=(3, 4))
    # neural-tangents' RectifiedMonomial differentiates inside its layer (slow) and overflows to NaN
    # where a power above 1 makes the kernels overflow anyway: three layers of it.
    depths = [1, 2, 3] if act.degree not in (None, 0, 1) else [1, 2, 3, 5, 10, 20]
    trace = kernel_trace(x1, x2, depth=max(depths), layers=depths, activation=act, W_std=1.3, b_std=0.4,
                         get=("nngp", "ntk"))
    compared = 0
    for i, depth in enumerate(depths):
        theirs = _stax_kernels(act, depth, 1.3, 0.4, x1, x2)
        for ours, ref in ((trace.nngp[i], theirs.nngp), (trace.ntk[i], theirs.ntk)):
            ours, ref = np.asarray(ours), np.asarray(ref)
            if not np.all(np.isfinite(ref)):
                continue
            assert np.all(np.isfinite(ours)), (depth, name)
            compared += 1
            assert np.max(np.abs(ours - ref)) <= 1e-12 * np.max(np.abs(ref)), (depth, name)
    assert compared >= 4


def test_every_activation_name_is_an_activation_with_exact_diagonals(rng):
    """Every name makes an activation; float32 kernels keep identical inputs at correlation 1 (even
    the sign's, whose correlation map has an infinite slope there)."""
    for name in ACTIVATION_NAMES:
        act = activation(name)
        assert act.label.split("(")[0] in (name, "relu", "swish", "silu", "step", "abs", "leaky_relu", "cos",
                                           "relu_power"), name
    assert activation("swish") == activation("silu") and activation("abs") == activation("abrelu", a=-1.0)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    for name in ("sign", "softplus"):
        rho = np.asarray(kernel_trace(x, depth=4, activation=name, W_std=1.1, b_std=0.1, get="rho").rho)
        np.testing.assert_array_equal(np.diagonal(rho, axis1=1, axis2=2), 1.0, err_msg=name)


def _oracle():
    if not ORACLE.exists():
        pytest.skip("tests/data/activation_oracle.json not generated")
    return json.loads(ORACLE.read_text())


def test_hermite_expansion_matches_two_dimensional_quadrature(x64):
    """One layer's E[phi phi] and E[phi' phi'] against a 50-digit mpmath quadrature, rho within 1e-10 of 1."""
    for case in _oracle()["expectations"]:
        act = activation(case["activation"])
        q1, q2 = case["q1"], case["q2"]
        omr = float(case["one_minus_rho"])
        plan = act.plan(np.array([q1, q2]), np.float64)
        r1, r2 = act.rows(jnp.log(jnp.array([q1])), plan), act.rows(jnp.log(jnp.array([q2])), plan)
        kappa, delta = act.correlations(r1, r2, jnp.array([1.0 - omr]))
        phi_phi = float(kappa[0]) * math.sqrt(math.exp(float(r1["lm"][0]) + float(r2["lm"][0])))
        dphi = float(delta[0]) * math.sqrt(math.exp(float(r1["lmd"][0]) + float(r2["lmd"][0])))
        for got, want in ((phi_phi, float(case["phi_phi"])), (dphi, float(case["dphi_dphi"]))):
            assert abs(got - want) <= 1e-13 * abs(want), (case, got, want)


@pytest.mark.parametrize("nodes", [192, 1216, 3776])
def test_gauss_hermite_rule_integrates_moments_to_rounding(nodes):
    """E[z^2k] = (2k - 1)!! by the refined rule, to 3e-15 (SciPy's own: 6e-15 at 192 nodes, 2.3e-14
    at 1,216, 4.5e-14 at 3,776); exactly symmetric nodes and weights."""
    from ntkdepth.kernels.gaussian import gauss_hermite

    z, w = gauss_hermite(nodes)
    assert np.array_equal(z, -z[::-1]) and np.array_equal(w, w[::-1]) and np.all(np.diff(z) > 0)
    assert abs(math.fsum(w) - 1.0) <= 4e-16
    for k, moment in ((1, 1.0), (2, 3.0), (3, 15.0)):
        assert abs(math.fsum(w * z ** (2 * k)) / moment - 1.0) <= 3e-15, (nodes, k)


def test_deep_recursion_matches_mpmath_to_depth_1000(x64):
    """rho_l and Thetabar^l at the variance fixed point, depths up to 1,000: within 1e-12 relative."""
    for case in _oracle()["recursions"]:
        act = activation(case["activation"])
        q = float(case["q_star"])
        rho1 = float(case["rho_1"])
        layers = np.array(sorted(int(k) for k in case["layers"]))
        plan = act.plan(np.array([q]), np.float64)
        lq = jnp.log(jnp.array([q]))
        out = normalized_loop(jnp.array([[rho1]]), lq, lq, case["W_std"], case["b_std"],
                              jnp.asarray(requested_layers(layers)), act=act, plan=plan,
                              length=run_length(layers), n_out=len(layers), get=("rho", "ntk_normalized"), bias=True, every_layer=False,
                              unroll=1, on_cpu=True)
        for i, layer in enumerate(layers):
            want_rho, want_tbar = (float(v) for v in case["layers"][str(layer)])
            for got, want in ((float(out["rho"][i, 0, 0]), want_rho),
                              (float(out["ntk_normalized"][i, 0, 0]), want_tbar)):
                bound = 1e-12 if layer <= 100 else 2e-11
                assert abs(got - want) <= bound * abs(want), (case["activation"], rho1, layer, got, want)


def _sphere(rng, n, d, radius=None):
    x = rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * (math.sqrt(d) if radius is None else radius)


@pytest.mark.parametrize("name,W,b", [("erf", 1.5, 0.2), ("tanh", 1.2, 0.1), ("gelu", 1.4, 0.3),
                                      ("leaky_relu", 1.3, 0.0), ("sign", 1.0, 0.0)])
def test_tabulated_path_agrees_with_the_layer_loop(x64, rng, name, W, b):
    """Inputs of one norm (or a homogeneous activation without bias): the interpolant is the loop."""
    x = _sphere(rng, 24, 5)
    x = np.vstack([x, x[:1], -x[1:2]])  # identical and antipodal pairs
    if b == 0.0:
        x = x * rng.uniform(0.5, 2.0, size=(len(x), 1))  # homogeneous: any norms
    layers = [1, 2, 3, 20]
    loop = kernel_trace(x, depth=20, layers=layers, activation=name, W_std=W, b_std=b, method="loop")
    tab = kernel_trace(x, depth=20, layers=layers, activation=name, W_std=W, b_std=b, method="interp")
    for f in ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized"):
        a, c = np.asarray(getattr(loop, f)), np.asarray(getattr(tab, f))
        assert np.max(np.abs(a - c)) <= 1e-11 * max(1.0, np.max(np.abs(a))), (f, np.max(np.abs(a - c)))


@pytest.mark.parametrize("name,b,residual", [("erf", 0.0, None), ("tanh", 0.1, None), ("sin", 0.1, 0.5),
                                              ("gelu", 0.0, 0.5)])
def test_one_series_replaces_the_panels_where_every_correlation_is_small(x64, rng, monkeypatch, name, b, residual):
    """Inputs of one norm in many dimensions (every |rho_1| <= 1/4 but identical pairs, and without
    bias opposite ones): each map is one series in rho_1, equal to the loop to 1e-13 (the panels reach
    ~3e-13) and to the recursion at its check points to rounding; in float32 to its rounding; where
    the series misses (degree 4) the panels take over."""
    from ntkdepth.kernels import engine, trace

    x = _sphere(rng, 40, 400)
    x = np.vstack([x, x[:1]] + ([-x[1:2]] if b == 0.0 else []))  # identical (and opposite) pairs
    used, real = [], trace.tabulated_fields
    monkeypatch.setattr(trace, "tabulated_fields", lambda *a, **k: used.append(a[3].bulk) or real(*a, **k))
    kw = dict(depth=30, layers=[1, 2, 7, 30], activation=name, W_std=1.3, b_std=b, residual=residual)
    loop = kernel_trace(x, method="loop", **kw)
    tab = kernel_trace(x, method="interp", **kw)
    assert used[-1] is not None and used[-1].radius == 0.25
    assert float(used[-1].error) <= 16 * np.finfo(np.float64).eps
    for f in ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized"):
        a, c = np.asarray(getattr(loop, f)), np.asarray(getattr(tab, f))
        assert np.max(np.abs(a - c)) <= 1e-13 * max(1.0, np.max(np.abs(a))), (f, np.max(np.abs(a - c)))
    assert np.all(np.asarray(tab.rho)[:, 40, 0] == 1.0)  # identical
    if name != "erf":  # float32 and the fallback once (each compiles the pass anew)
        return
    # float32: the series in single precision, to its rounding (the opposite pair exactly).
    tab32 = kernel_trace(x.astype(np.float32), method="interp", **kw)
    assert used[-1] is not None
    for f in ("rho", "ntk_normalized"):
        a, c = np.asarray(getattr(loop, f)), np.asarray(getattr(tab32, f), np.float64)
        assert np.max(np.abs(a - c)) <= 2e-6, (f, np.max(np.abs(a - c)))
    # A series too short to meet the recursion: the panels, and the same numbers as before.
    monkeypatch.setattr(engine, "BULK_DEGREE", 4)
    trace._cached_tables.cache_clear()
    short = kernel_trace(x, method="interp", **kw)
    assert used[-1] is None
    a, c = np.asarray(loop.ntk), np.asarray(short.ntk)
    assert np.max(np.abs(a - c)) <= 1e-11 * np.max(np.abs(a))
    trace._cached_tables.cache_clear()


@pytest.mark.parametrize("name,W", [("erf", 1.6), ("sin", 1.3), ("tanh", 1.4)])
def test_an_odd_activation_keeps_an_opposite_pair_opposite(x64, rng, name, W):
    """Without bias an odd phi gives h(-x) = -h(x) at every layer: rho = Thetabar = -1 and
    Theta(x, -x) = -Theta(x, x) exactly, in float32 too, where -1 is an unstable fixed point (chaotic
    weights: one rounding of the map grew like chi_1^l, 3e-5 at depth 30 for erf). With a bias the
    pair is not special: the float32 kernels stay within their rounding of float64's."""
    x = _sphere(rng, 6, 50, radius=3.0)
    x = np.vstack([x, -x[:2]])
    for b in (0.0, 0.3) if name == "erf" else (0.0,):
        kw = dict(depth=30, layers=[2, 30], activation=name, W_std=W, b_std=b)
        ref = kernel_trace(x, method="loop", **kw)
        for method, dtype in (("loop", np.float64), ("loop", np.float32), ("interp", np.float32)):
            got = ref if dtype == np.float64 else kernel_trace(x.astype(dtype), method=method, **kw)
            rho, tbar, ntk = (np.asarray(getattr(got, f), np.float64) for f in ("rho", "ntk_normalized", "ntk"))
            if b == 0.0:
                assert np.all(rho[:, [0, 1], [6, 7]] == -1.0) and np.all(tbar[:, [0, 1], [6, 7]] == -1.0)
                np.testing.assert_allclose(ntk[:, [0, 1], [6, 7]], -ntk[:, [0, 1], [0, 1]], rtol=1e-6)
            else:
                assert np.all(rho[:, [0, 1], [6, 7]] > -1.0)
            for f, v in (("rho", rho), ("ntk_normalized", tbar)):  # float32 to its rounding
                err = np.max(np.abs(v - np.asarray(getattr(ref, f))))
                assert err <= 2e-6, (method, dtype, b, f, err)


def test_the_series_radius_is_the_smallest_that_holds_every_pair(x64, rng):
    """``_tabulation_setting``'s radius: 2^-k over the largest |rho_1| of pairs neither identical nor
    opposite; none above 1/4."""
    from ntkdepth.kernels.trace import _tabulation_setting

    def radius(rho):
        rho = jnp.asarray(rho)
        lq = jnp.zeros(rho.shape[0])
        return _tabulation_setting(activation("erf"), rho, jnp.asarray(np.nan), lq, lq, True, np.float64)[2]

    assert radius([[1.0, 0.2], [0.2, 1.0]]) == 0.25
    assert radius([[1.0, -0.07], [-0.07, 1.0]]) == 0.125
    assert radius([[1.0, -1.0, 0.01], [-1.0, 1.0, 0.0], [0.01, 0.0, 1.0]]) == 2.0**-6
    assert radius([[1.0, 0.3], [0.3, 1.0]]) is None


def test_auto_takes_the_tables_for_many_layers_and_the_loop_for_few_pairs(x64, rng, monkeypatch):
    """method='auto' costs the loop's layers and writes against the tables' passes (docs/activations.md).
    Measured (n = 1,000 of one norm, b_std = 0.1, float64, every layer of 100): erf 0.54 s by the tables
    against 2.3 s by the loop, sin 0.55 s against 1.6 s."""
    from ntkdepth.kernels import trace

    every, deepest = np.arange(1, 101), np.array([100])
    setting = (0.0, -40, None)  # the mesh down to v = 2^-40, the panels throughout
    for name in ("erf", "sin", "tanh"):
        act = activation(name)
        for dtype in ("float32", "float64"):
            assert trace._use_tables("auto", setting, act, None, every, (1000, 1000), dtype), (name, dtype)
            assert trace._use_tables("auto", setting, act, None, deepest, (1000, 1000), dtype), (name, dtype)
            # A few pairs at a great depth: the node run alone would cost more than the loop.
            assert not trace._use_tables("auto", setting, act, None, np.array([10**7]), (3, 3), dtype), (name, dtype)
        if act.closed_form:  # the residual loop: the same choices, but every layer (a tie) by the loop
            assert trace._use_tables("auto", setting, act, None, deepest, (1000, 1000), "float64", residual=True)
            assert not trace._use_tables("auto", setting, act, None, every, (1000, 1000), "float64", residual=True)
            assert not trace._use_tables("auto", setting, act, None, np.array([10**7]), (3, 3), "float64",
                                         residual=True)
            # Where the maps are one series (every |rho_1| <= 1/4) the tables' pass is cheaper: every layer too.
            assert trace._use_tables("auto", (0.0, -40, 0.25), act, None, every, (1000, 1000), "float64",
                                     residual=True)
    # End to end: every layer of 40 for 300 points of one norm goes to the tables, and equals the loop.
    x = _sphere(rng, 300, 6)
    calls, real = [], trace._tabulated
    monkeypatch.setattr(trace, "_tabulated", lambda *a, **k: calls.append(1) or real(*a, **k))
    auto = kernel_trace(x, depth=40, activation="erf", W_std=1.3, b_std=0.1, get="ntk")
    assert calls
    loop = kernel_trace(x, depth=40, activation="erf", W_std=1.3, b_std=0.1, get="ntk", method="loop")
    a, c = np.asarray(loop.ntk), np.asarray(auto.ntk)
    assert np.max(np.abs(a - c)) <= 1e-11 * np.max(np.abs(a))


def test_tabulated_path_refuses_inputs_of_several_norms_with_a_bias(rng):
    x = rng.normal(size=(6, 3))
    with pytest.raises(ValueError, match="method='interp' needs inputs of one norm"):
        kernel_trace(x, depth=5, activation="tanh", b_std=0.1, method="interp")


def test_a_user_function_goes_through_the_hermite_expansion(x64, rng):
    """erf passed as a function equals erf's closed form; tanh and SiLU as functions (no symmetry
    declared: phi at every node, every coefficient computed) equal the built-ins (odd; odd part x / 2).
    Inputs of norm about 1: plans of a few hundred terms, with their ladders."""
    x1, x2 = 0.6 * rng.normal(size=(4, 3)), 0.6 * rng.normal(size=(3, 3))
    for fn, name in ((jax.scipy.special.erf, "erf"), (jnp.tanh, "tanh"), (jax.nn.silu, "silu")):
        ours = kernel_trace(x1, x2, depth=6, layers=[2, 6], activation=fn, W_std=1.4, b_std=0.2)
        ref = kernel_trace(x1, x2, depth=6, layers=[2, 6], activation=name, W_std=1.4, b_std=0.2)
        assert ours.error_bound is not None and ours.error_bound < 1e-15
        for f in ("nngp", "ntk", "nngp_dot"):
            a, c = np.asarray(getattr(ours, f)), np.asarray(getattr(ref, f))
            assert np.max(np.abs(a - c)) <= 1e-12 * np.max(np.abs(c)), (name, f)


def test_gradients_match_finite_differences(x64, rng):
    x1, x2 = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    # SiLU: the series' linear odd part, differentiated with the rest through the full pass.
    for name in ("erf", "tanh", "silu"):
        def f(x):
            return jnp.sum(kernel_trace(x, x2, depth=3, layers=[3], activation=name, W_std=1.3, b_std=0.2,
                                        get="ntk_normalized", method="loop").ntk_normalized)

        g = np.asarray(jax.grad(f)(jnp.asarray(x1)))
        h = 1e-6
        e = np.zeros_like(x1)
        e[1, 2] = h
        fd = (float(f(jnp.asarray(x1 + e))) - float(f(jnp.asarray(x1 - e)))) / (2 * h)
        assert abs(g[1, 2] - fd) <= 1e-7 * max(1.0, abs(fd)), (name, g[1, 2], fd)


def test_kernel_fn_applies_the_output_scale(x64, rng):
    x = rng.normal(size=(4, 3))
    k = kernel_fn(3, "erf", 1.2, 0.3, out_std=0.7)(x, get=("nngp", "ntk"))
    base = kernel_trace(x, depth=3, layers=[3], activation="erf", W_std=1.2, b_std=0.3)
    r2, b2 = (0.7 / 1.2) ** 2, 0.09
    np.testing.assert_allclose(k.nngp, r2 * (np.asarray(base.nngp[0]) - b2) + b2, rtol=1e-13)
    np.testing.assert_allclose(k.ntk, r2 * (np.asarray(base.ntk[0]) - b2) + b2, rtol=1e-13)


def test_bad_activations_are_named():
    with pytest.raises(ValueError, match="unknown activation 'tanhh' .did you mean 'tanh'"):
        activation("tanhh")
    with pytest.raises(ValueError, match="leaky_relu.*unexpected keyword"):
        activation("leaky_relu", alpha=0.1)
    with pytest.raises(ValueError, match="power must be an integer in 0..8"):
        activation("relu_power", power=2.5)
    with pytest.raises(ValueError, match="a and b must be nonzero"):
        activation("erf", a=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_finite_networks_empirical_ntk_converges_to_the_kernel(x64, rng, name):
    """The empirical NTK of a width-n network at initialization, averaged over seeds, is the kernel;
    its spread over seeds shrinks like n^-1/2."""
    from ntkdepth.empirical import empirical_ntk
    from ntkdepth.models import NetworkSpec

    spec = NetworkSpec(depth=3, W_std=1.4, b_std=0.2, activation=name)
    x = rng.normal(size=(4, 3))
    exact = np.asarray(spec.kernel_fn()(x, get="ntk"))
    errors = []
    for width in (256, 1024):
        ks = np.stack([np.asarray(empirical_ntk(spec.model(3, width, 1, rngs=s, param_dtype=jnp.float64), x1=x))
                       for s in range(6)])
        errors.append(np.sqrt(np.mean((ks - exact) ** 2)))
        se = ks.std(0) / math.sqrt(len(ks))
        assert np.all(np.abs(ks.mean(0) - exact) <= 5 * se + 1e-9), name
    assert 1.4 <= errors[0] / errors[1] <= 2.9  # n^-1/2 over a factor 4 in width: 2


def test_a_truncated_expansion_reports_its_tail():
    # With fewer terms than the series needs, the tail past the last one is extrapolated from the
    # decay of the coefficients computed: against the sum to 2,048 terms, within a factor 1..3.
    from ntkdepth.kernels.gaussian import hermite_coefficients, plan_terms

    for q in (4.0, 16.0):
        plan = plan_terms(np.tanh, np.array([q]), 2.2e-16, max_terms=512)
        sq = hermite_coefficients(np.tanh, np.array([q]), 2048)[0] ** 2
        k = np.arange(sq.size)
        truth = max(sq[513:].sum() / sq.sum(), (k * sq)[513:].sum() / (k * sq).sum())
        assert plan.terms == 512 and truth <= plan.tail <= 3 * truth, (q, plan, truth)


def test_a_residual_network_is_planned_for_the_variances_it_reaches(x64):
    # The stream's variance grows with depth (here to ~110, where 2,048 terms leave a tail of 1e-4):
    # the plan and its reported bound follow it, with a warning that the bound is far above rounding.
    x = np.random.default_rng(0).normal(size=(3, 20))
    with pytest.warns(UserWarning, match="Hermite expansion's relative tail"):
        tr = kernel_trace(x, depth=200, activation="tanh", W_std=1.5, b_std=0.5, residual=0.5, layers=[200],
                          get="nngp", method="loop")
    q_top = float(np.max(np.asarray(tr.nngp_diag1)))
    assert q_top > 50
    assert tr.error_bound >= activation("tanh").plan(np.array([q_top]), np.float64).tail > 1e-6


@pytest.mark.parametrize("name", ["tanh", "silu"])
def test_the_series_stops_where_its_terms_no_longer_count(x64, name):
    # Correlations bounded by 0.3 (and 0.9) take a few blocks of the plan's terms: the same numbers,
    # to rounding, as every term; the inputs against themselves (r2 = None) as against a copy.
    act = activation(name)
    rng = np.random.default_rng(3)
    lq = jnp.asarray(np.log(rng.uniform(0.3, 4.0, size=7)))
    plan = act.plan(np.exp(np.asarray(lq)), np.float64)
    rows = act.rows(lq, plan)
    a = {k: v[:, None] for k, v in rows.items()}
    b = {k: v[None, :] for k, v in rows.items()}
    for bound in (0.3, 0.9):
        rho = rng.uniform(-bound, bound, size=(7, 7))
        rho = jnp.asarray((rho + rho.T) / 2)
        full = act.correlations(a, b, rho)
        for columns in (b, None):
            cut = act.correlations(a, columns, rho, jnp.max(jnp.abs(rho)))
            for got, want in zip(cut, full):
                np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=4e-16, atol=1e-17)


def test_gelu_closed_form_holds_at_large_variances(x64):
    # Deep networks above GELU's edge grow their variance geometrically (q ~ 1e16 by depth 80 at
    # W_std = 1.77): (1 + q1)(1 + q2) - c^2 then cancelled to rounding (a NaN) and c^2 + q1 q2 delta^2
    # overflowed from q ~ 1e77. Against the same closed form in 320 digits (enough for 50 past the
    # cancellation at q = 1e100).
    from mpmath import mp, mpf

    gelu = activation("gelu")

    def reference(q1, q2, rho):
        with mp.workdps(320):
            q1, q2, rho = mpf(q1), mpf(q2), mpf(rho)
            c, p, p1 = rho * mp.sqrt(q1 * q2), q1 * q2, (1 + q1) * (1 + q2)
            d2 = p1 - c * c
            d = mp.sqrt(d2)
            angle = mp.atan2(c, d)
            k = ((c * c + p * d2) / (p1 * d) + c * angle) / (2 * mp.pi) + c / 4
            kd = c / d / (2 * mp.pi) * (1 / d2 + (1 - p) / p1 + 1) + mpf(1) / 4 + angle / (2 * mp.pi)
            return k, kd

    for q1, q2 in ((3.0, 3.0), (1e16, 2e16), (1e40, 1e40), (1e100, 3e99)):
        r1, r2 = (gelu.rows(jnp.log(jnp.asarray([q])), None) for q in (q1, q2))
        for rho in (1.0, 1 - 1e-9, 0.3, -0.7):
            k, kd = gelu.correlations(r1, r2, jnp.asarray([rho]))
            m1, md1 = reference(q1, q1, 1.0)
            m2, md2 = reference(q2, q2, 1.0)
            ref_k, ref_kd = reference(q1, q2, rho)
            want = (float(ref_k / mp.sqrt(m1 * m2)), float(ref_kd / mp.sqrt(md1 * md2)))
            for got, ref in zip((k, kd), want):
                assert abs(float(got[0]) - ref) <= 1e-13 * abs(ref), (q1, q2, rho, float(got[0]), ref)


@pytest.mark.parametrize("name", ["tanh", "silu", "softplus"])
def test_declared_symmetries_hold(x64, name):
    # odd_part spares the expansion half its evaluations (and, for SiLU and softplus, every odd
    # coefficient but a_1): it must be true of phi and of phi'.
    act = activation(name)
    x = jnp.asarray(np.random.default_rng(5).normal(scale=3.0, size=200))
    if act.odd_part == "all":
        np.testing.assert_array_equal(np.asarray(act(-x)), -np.asarray(act(x)))
        np.testing.assert_array_equal(np.asarray(act.derivative(-x)), np.asarray(act.derivative(x)))
    else:
        s = act.odd_part
        np.testing.assert_allclose(np.asarray(act(x) - act(-x)), np.asarray(2 * s * x), rtol=0, atol=1e-14)
        np.testing.assert_allclose(np.asarray(act.derivative(x) + act.derivative(-x)), 2 * s, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["tanh", "silu"])
def test_each_layer_takes_the_shortest_expansion_its_variances_need(x64, name):
    # A plan made for variances up to 4 offers shorter rungs; inputs of small variance take one of
    # them (fewer terms, nodes and blocks of the series) and give the full plan's numbers to its
    # tolerance, inputs at the largest variance take every term.
    from ntkdepth.kernels.gaussian import ladder_below

    act = activation(name)
    plan = act.plan(np.array([0.05, 4.0]), np.float64)
    assert plan.ladder == ladder_below(plan.terms) and plan.ladder and plan.tol == np.finfo(np.float64).eps
    full = plan._replace(ladder=())
    rng = np.random.default_rng(11)
    for low, high, shorter in ((0.05, 0.3, True), (0.3, 4.0, False)):
        lq = jnp.asarray(np.log(rng.uniform(low, high, size=6)))
        ours, ref = act.rows(lq, plan), act.rows(lq, full)
        used = int(ours["terms"][0])
        assert (used < plan.terms) == shorter, (low, high, used, plan.terms)
        rho = rng.uniform(-0.99, 0.99, size=(6, 6))
        rho = jnp.asarray((rho + rho.T) / 2)
        assert set(ours) == set(ref)
        got = act.correlations({k: v[:, None] for k, v in ours.items()}, None, rho)
        want = act.correlations({k: v[:, None] for k, v in ref.items()}, None, rho)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(np.asarray(ours["lm"]), np.asarray(ref["lm"]), rtol=0, atol=4e-15)
        np.testing.assert_allclose(np.asarray(ours["lmd"]), np.asarray(ref["lmd"]), rtol=0, atol=4e-15)


def test_tables_for_variances_equal_to_rounding_from_unequal_norms(x64, rng):
    # With W_std^2 |x|^2 / n0 far below b_std^2 every Sigma^1(x, x) is b_std^2 to rounding although
    # the norms differ by 3x: the first layer did not reduce the closest pair (the norms ruled the
    # tables out), so the tables reduce it themselves, and agree with the loop.
    x = rng.normal(size=(6, 3)) * np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])[:, None]
    kw = dict(depth=30, activation="erf", W_std=1e-9, b_std=1.0, get=("rho", "ntk_normalized"))
    tables, loop = kernel_trace(x, method="interp", **kw), kernel_trace(x, method="loop", **kw)
    for f in ("rho", "ntk_normalized"):
        np.testing.assert_allclose(np.asarray(getattr(tables, f)), np.asarray(getattr(loop, f)), rtol=1e-12)
