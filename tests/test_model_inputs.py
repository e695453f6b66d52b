"""The MLP and stax_mlp refuse inputs they would otherwise turn into wrong numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.models import MLP

V = 6


def _net(**kw):
    return MLP(V, [5, 5], 3, tokens=True, input_scale=V**0.5, rngs=1, **kw)


@pytest.mark.parametrize("bad", [V, V + 10, -1, -V])
def test_token_ids_outside_the_vocabulary_are_errors_on_concrete_arrays(bad):
    net = _net()
    ids = jnp.array([0, 2, bad, 1], dtype=jnp.int32)
    with pytest.raises(ValueError, match=rf"token id {bad} at position 2 is outside the vocabulary \[0, {V}\)"):
        net(ids)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        net(np.array([bad]))  # NumPy input too


def test_token_ids_outside_the_vocabulary_give_nan_rows_under_jit():
    net = _net()
    ids = jnp.array([0, 3, V, -1, 5], dtype=jnp.int32)
    f, feats = nnx_jit_call(net, ids)
    good = np.array([True, True, False, False, True])
    assert np.all(np.isnan(f[~good])) and np.all(np.isnan(feats[~good]))
    assert np.all(np.isfinite(f[good]))
    # The valid rows are the same as without jit, and -1 is not read as token V - 1.
    f_ok, _ = net(ids[good])
    np.testing.assert_allclose(f[good], f_ok, rtol=1e-6)


def nnx_jit_call(net, ids):
    from flax import nnx

    out = nnx.jit(lambda m, x: m(x))(net, ids)
    return np.asarray(out[0]), np.asarray(out[1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(in_dim=4, hidden=[2.7], out_dim=1), r"hidden\[0\] must be an integer width; got 2.7"),
        (dict(in_dim=4, hidden=[8, 16.0], out_dim=1), r"hidden\[1\] must be an integer width; got 16.0"),
        (dict(in_dim=4.5, hidden=[8], out_dim=1), r"in_dim must be an integer width; got 4.5"),
        (dict(in_dim=4, hidden=[8], out_dim=True), r"out_dim must be an integer width; got True"),
        (dict(in_dim=4, hidden=[0], out_dim=1), r"hidden\[0\] must be a positive width; got 0"),
    ],
)
def test_widths_must_be_integers(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(kwargs.pop("in_dim"), kwargs.pop("hidden"), kwargs.pop("out_dim"), rngs=0)


def test_numpy_integer_widths_are_accepted():
    net = MLP(np.int64(4), [np.int32(8)], np.int64(2), rngs=0)
    assert net.hidden == (8,) and type(net.hidden[0]) is int
    assert net(jnp.ones((3, 4)))[0].shape == (3, 2)


# -- stax_mlp -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(W_std=np.inf), r"W_std must be a finite number > 0; got inf"),
        (dict(W_std=np.nan), r"W_std must be a finite number > 0; got nan"),
        (dict(b_std=np.inf), r"b_std must be a finite number >= 0; got inf"),
        (dict(b_std=-0.1), r"b_std must be a finite number >= 0"),
        (dict(out_dim=0), r"out_dim must be an integer >= 1; got 0"),
        (dict(out_dim=2.5), r"out_dim must be an integer >= 1; got 2.5"),
        (dict(width=2.7), r"width must be an integer >= 1; got 2.7"),
        (dict(depth=np.float64(3.0)), r"depth must be an integer >= 1"),
    ],
)
def test_stax_mlp_refuses_bad_arguments(kwargs, match):
    from ntkdepth.kernels import stax_mlp

    args = dict(depth=3, width=8) | kwargs
    with pytest.raises(ValueError, match=match):
        stax_mlp(**args)


def test_stax_mlp_accepts_numpy_integers_and_gives_the_same_kernel(x64, rng):
    from ntkdepth.kernels import stax_mlp

    x = rng.normal(size=(3, 4))
    plain = stax_mlp(3, 16, out_dim=2)
    numpy_ints = stax_mlp(np.int64(3), np.int32(16), out_dim=np.int64(2))
    np.testing.assert_array_equal(plain[2](x, None, "ntk"), numpy_ints[2](x, None, "ntk"))
    _, params = numpy_ints[0](jax.random.PRNGKey(0), (-1, 4))
    assert numpy_ints[1](params, jnp.asarray(x)).shape == (3, 2)
