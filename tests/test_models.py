"""ntkdepth.models.MLP: the forward pass, the parameterizations, and the infinite-width correspondence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import relu_kernel_trace, stax_mlp
from ntkdepth.models import MLP, functional


def _numpy_forward(net, x):
    """The NTK-parameterized forward pass written out in NumPy from docs/networks.md."""
    a = np.asarray(x, np.float64)
    for l, layer in enumerate(net.layers):
        W = np.asarray(layer.kernel[...], np.float64)
        fan_in = W.shape[0]
        std = net.out_std if l == len(net.layers) - 1 else net.W_std
        h = std / np.sqrt(fan_in) * a @ W
        if layer.bias is not None:
            h = h + net.b_std * np.asarray(layer.bias[...], np.float64)
        if l < len(net.layers) - 1:
            a = np.maximum(h, 0)
    return h, a


@pytest.mark.parametrize("b_std", [0.0, 0.4])
def test_ntk_forward_matches_the_formula_and_returns_the_last_hidden_layer(x64, rng, b_std):
    net = MLP(5, [7, 9, 6], 3, W_std=1.3, b_std=b_std, out_std=0.7, rngs=4, param_dtype=jnp.float64)
    x = rng.normal(size=(4, 5))
    f, a = net(jnp.asarray(x))
    f_ref, a_ref = _numpy_forward(net, x)
    np.testing.assert_allclose(f, f_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a, a_ref, rtol=1e-12, atol=1e-12)
    assert a.shape == (4, 6) and f.shape == (4, 3)
    assert (net.layers[0].bias is None) == (b_std == 0)


def test_token_inputs_equal_the_dense_layer_on_scaled_one_hot_vectors(x64):
    V = 11
    tok = MLP(V, [8, 8], 4, tokens=True, input_scale=V**0.5, b_std=0.2, rngs=3, param_dtype=jnp.float64)
    dense = MLP(V, [8, 8], 4, tokens=False, b_std=0.2, rngs=3, param_dtype=jnp.float64)
    ids = jnp.array([0, 5, 10, 5])
    onehot = V**0.5 * jax.nn.one_hot(ids, V, dtype=jnp.float64)
    for got, want in zip(tok(ids), dense(onehot)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_token_inputs_must_be_integer_ids():
    net = MLP(5, [4], 2, tokens=True, rngs=0)
    with pytest.raises(ValueError, match="integer ids"):
        net(jnp.ones(3))


def test_standard_and_mup_are_the_ntk_network_at_initialization(x64, rng):
    x = jnp.asarray(rng.normal(size=(3, 6)))
    kw = dict(W_std=1.4, b_std=0.3, rngs=5, param_dtype=jnp.float64)
    ntk = MLP(6, [16, 16], 2, **kw)
    std = MLP(6, [16, 16], 2, parameterization="standard", **kw)
    np.testing.assert_allclose(std(x)[0], ntk(x)[0], rtol=1e-12)
    mup = MLP(6, [16, 16], 2, parameterization="mup", base_width=16, **kw)
    np.testing.assert_allclose(mup(x)[0], ntk(x)[0], rtol=1e-12)
    wide = MLP(6, [64, 64], 2, parameterization="mup", base_width=16, **kw)
    assert wide.learning_rate_multiplier() == 4.0 and ntk.learning_rate_multiplier() == 1.0
    # muP's readout is sqrt(n / base) times smaller than NTK's at the same width.
    assert wide.layers[-1].multiplier == pytest.approx(1.4 * 16**0.5 / 64)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(hidden=[]), "at least one hidden layer"),
        (dict(hidden=[4, 0]), "positive width"),
        (dict(parameterization="mean_field"), "unknown parameterization"),
        (dict(activation="gelo"), "unknown activation"),
        (dict(W_std=0.0), "positive"),
        (dict(b_std=-1.0), "b_std"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    args = dict(in_dim=3, hidden=[4], out_dim=1) | kwargs
    with pytest.raises(ValueError, match=match):
        MLP(args.pop("in_dim"), args.pop("hidden"), args.pop("out_dim"), **args)


@pytest.mark.parametrize("b_std", [0.0, 0.25])
def test_the_same_network_through_neural_tangents_stax(x64, rng, b_std):
    """stax_mlp with our weights computes our outputs, and its kernel_fn is the kernel core's."""
    depth, width = 3, 32
    net = MLP(4, [width, width], 1, b_std=b_std, rngs=7, param_dtype=jnp.float64)
    init_fn, apply_fn, kernel_fn = stax_mlp(depth, width, W_std=2**0.5, b_std=b_std)
    _, stax_params = init_fn(jax.random.PRNGKey(0), (-1, 4))
    dense = [p for p in stax_params if p != ()]
    mine = []
    for layer in net.layers:
        W = layer.kernel[...]
        mine.append((W, layer.bias[...]) if layer.bias is not None else (W, None))
    ours_as_stax = []
    it = iter(mine)
    for p in stax_params:
        if p == ():
            ours_as_stax.append(())
        else:
            W, b = next(it)
            ours_as_stax.append((W,) if len(p) == 1 else (W, b))
    assert len(dense) == depth
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(apply_fn(ours_as_stax, x), net(jnp.asarray(x))[0], rtol=1e-12, atol=1e-12)
    k = kernel_fn(x, None, ("nngp", "ntk"))
    trace = relu_kernel_trace(x, depth=depth, b_std=b_std)
    np.testing.assert_allclose(k.ntk, trace.ntk[-1], rtol=1e-10)
    np.testing.assert_allclose(k.nngp, trace.nngp[-1], rtol=1e-10)


def test_output_covariance_over_initializations_is_the_nngp_kernel(x64, rng):
    """Monte Carlo over 400 initializations: E[f(x) f(x')] -> Sigma^L within sampling error."""
    x = rng.normal(size=(3, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sigma = np.asarray(relu_kernel_trace(x, depth=3, b_std=0.3).nngp[-1])

    def sample(seed):
        net = MLP(5, [256, 256], 1, b_std=0.3, rngs=int(seed), param_dtype=jnp.float64)
        f = np.asarray(net(jnp.asarray(x))[0][:, 0])
        return np.outer(f, f)

    samples = np.stack([sample(s) for s in range(400)])
    mean, se = samples.mean(0), samples.std(0) / np.sqrt(len(samples))
    assert np.all(np.abs(mean - sigma) < 4 * se + 0.02 * np.abs(sigma)), (mean, sigma, se)


def test_functional_form_matches_the_module(rng):
    net = MLP(3, [8], 2, rngs=1)
    fm = functional(net)
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    np.testing.assert_array_equal(fm.apply(fm.params, x)[0], net(x)[0])
    np.testing.assert_array_equal(fm.output(fm.params, x), net(x)[0])
