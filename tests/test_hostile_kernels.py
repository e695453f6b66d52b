"""The kernel functions under hostile inputs: each case gives the right number or a clear error.

Numbers are checked against the 40-digit recursion of ``tests/oracles.py``, float64 at a
harmless scale, or finite differences; errors by their kind and the words that name the
value and the fix.
"""

import errno
import json
import math
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.empirical import empirical_ntk
from ntkdepth.kernels import (
    correlation_trace,
    relu_kernel_fn,
    relu_kernel_trace,
    relu_ntk,
    tiled,
    kernel_trace,
    tiled_kernel,
)
from ntkdepth.models import MLP
from ntkdepth.theory import GradientFlowPredictor
import oracles

ROOT2 = math.sqrt(2.0)
BASE = np.random.default_rng(7).standard_normal((3, 5))


# --------------------------------------------------------------------------
# Subnormal and tiny inputs: XLA flushes subnormal numbers to zero.


@pytest.mark.parametrize("scale, dtype", [(1e-39, np.float32), (1e-310, np.float64),
                                          (1e-37, np.float32)])
@pytest.mark.parametrize("method", ["loop", "interp"])
def test_subnormal_inputs_give_the_kernels_of_their_exact_values(scale, dtype, method):
    x = (BASE * scale).astype(dtype)
    assert np.any((x != 0) & (np.abs(x) < np.finfo(dtype).tiny))  # the case is subnormal
    tr = relu_kernel_trace(x, depth=5, layers=[1, 5], method=method)
    ref = oracles.kernel_recursion(x.astype(np.float64), x.astype(np.float64), depth=5,
                                   W_std=ROOT2, b_std=0.0)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for k, layer in enumerate((1, 5)):
        np.testing.assert_allclose(tr.rho[k], ref["rho"][layer - 1], atol=tol)
        np.testing.assert_allclose(tr.ntk_normalized[k], ref["ntk_normalized"][layer - 1], atol=tol)
    np.testing.assert_array_equal(np.diagonal(np.asarray(tr.ntk_normalized[1])), 1.0)


def test_raw_kernels_of_subnormal_rows_keep_their_scale(x64):
    # W_std = 1e300 brings Sigma^1 of rows of norm 1e-310 back into range (~1e-20);
    # a row of norm 1 beside them overflows with itself and meets them at ~1e290.
    x = BASE * 1e-310
    x[0] = BASE[0]
    tr = relu_kernel_trace(x, depth=1, W_std=1e300, get=("nngp",))
    ref = oracles.kernel_recursion(x, x, depth=1, W_std=1e300, b_std=0.0)["nngp"][0]
    assert np.isinf(ref[0, 0]) and np.isinf(np.asarray(tr.nngp[0])[0, 0])
    np.testing.assert_allclose(np.asarray(tr.nngp[0]).ravel()[1:], ref.ravel()[1:], rtol=1e-12)
    assert np.all(np.abs(ref[1:, 1:]) > 1e-30)


@pytest.mark.parametrize("scale, b_std, dtype", [(1e-39, 1e-39, np.float32),
                                                 (1e-310, 1e-310, np.float64),
                                                 (1e-37, 1e-37, np.float32),
                                                 (1e-20, 1e-20, np.float32)])
def test_tiny_inputs_with_a_tiny_bias_give_the_right_correlations(scale, b_std, dtype):
    x = (BASE * scale).astype(dtype)
    tr = relu_kernel_trace(x, depth=3, b_std=b_std, get=("rho", "ntk_normalized"), method="loop")
    ref = oracles.kernel_recursion(x.astype(np.float64), x.astype(np.float64), depth=3,
                                   W_std=ROOT2, b_std=b_std)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(tr.rho, ref["rho"], atol=tol)
    np.testing.assert_allclose(tr.ntk_normalized, ref["ntk_normalized"], atol=tol)


def test_inputs_spanning_more_than_float32_with_a_bias_are_refused():
    x = BASE.astype(np.float32)
    x[0] *= np.float32(1e15)
    x[1] *= np.float32(1e-12)
    with pytest.raises(ValueError, match=r"span more than float32.*dtype='float64'"):
        relu_kernel_trace(x, depth=2, b_std=1e-12)


def test_a_subnormal_w_std_is_refused_naming_float64():
    with pytest.raises(ValueError, match=r"W_std=1e-39.*float32.*dtype='float64'"):
        relu_kernel_trace(BASE.astype(np.float32), depth=2, W_std=1e-39)


# --------------------------------------------------------------------------
# Gradients at the scales the README promises.


def _objective(x, *, b_std=0.0, method="loop", dtype=None):
    tr = relu_kernel_trace(x, depth=4, layers=[4], get="ntk_normalized", b_std=b_std,
                           method=method, dtype=dtype)
    t = tr.ntk_normalized[0]
    return t[0, 1] + 0.3 * t[1, 2] - 0.7 * t[0, 2]


@pytest.fixture(scope="module")
def unit_gradient():
    """The gradient at norm ~1 in float64, checked against central differences."""
    with jax.enable_x64(True):
        x = jnp.asarray(BASE)
        g = np.asarray(jax.grad(_objective)(x))
        d = np.random.default_rng(3).standard_normal(BASE.shape)
        h = 1e-6
        fd = (float(_objective(x + h * d)) - float(_objective(x - h * d))) / (2 * h)
    assert abs(np.sum(g * d) - fd) < 1e-8
    return g


@pytest.mark.parametrize("method", ["loop", "interp"])
@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e-19, 1.0, 1e18, 1e19, 1e20])
def test_float32_gradient_is_right_at_every_promised_norm(unit_gradient, scale, method):
    # The normalized NTK does not depend on the norms without bias: the gradient at
    # x * scale is the unit gradient / scale.
    x = jnp.asarray(BASE * scale, jnp.float32)
    g = np.asarray(jax.grad(_objective)(x, method=method), np.float64) * scale
    assert np.all(np.isfinite(g))
    # The interpolant's derivative in float32 is good to ~1e-4 at any scale (at norm 1 too).
    tol = 2e-5 if method == "loop" else 1e-4
    assert np.max(np.abs(g - unit_gradient)) < tol * np.max(np.abs(unit_gradient))


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
def test_float64_gradient_is_right_at_extreme_norms(x64, unit_gradient, scale):
    g = np.asarray(jax.grad(_objective)(jnp.asarray(BASE * scale))) * scale
    assert np.max(np.abs(g - unit_gradient)) < 1e-12 * np.max(np.abs(unit_gradient))


@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1.0, 1e10, 1e18])
def test_float32_gradient_with_a_bias_matches_float64_and_finite_differences(scale):
    with jax.enable_x64(True):
        x64_ = jnp.asarray(BASE * scale)
        ref = np.asarray(jax.grad(_objective)(x64_, b_std=0.1))
        d = np.random.default_rng(4).standard_normal(BASE.shape) * scale
        h = 1e-5
        fd = (float(_objective(x64_ + h * d, b_std=0.1))
              - float(_objective(x64_ - h * d, b_std=0.1))) / (2 * h)
        assert abs(np.sum(ref * d) - fd) < 1e-7
    g = np.asarray(jax.grad(_objective)(jnp.asarray(BASE * scale, jnp.float32), b_std=0.1))
    # What a relative change of the inputs does to the kernel: |dK| <= |g - ref| |x|.
    assert np.max(np.abs(g - ref)) * scale < 2e-6


# --------------------------------------------------------------------------
# Arguments that owe a sentence, and complex inputs.


@pytest.mark.parametrize("get, words", [
    (None, r"get=None \(NoneType\) is not a field name"),
    (3, r"get=3 \(int\) is not a field name"),
    (b"ntk", r"get=b'ntk' \(bytes\) is not a field name"),
    ((), r"get=\(\) asks for no field"),
    (("ntk", "ntk"), r"names \['ntk'\] more than once"),
    (("ntk", 3), r"3 is not a field name"),
])
def test_a_bad_get_is_named_with_the_fields_to_choose_from(get, words):
    for call in (lambda: relu_kernel_trace(BASE, depth=2, get=get),
                 lambda: relu_kernel_fn(2)(BASE, get=get),
                 lambda: tiled_kernel(BASE, depth=2, get=get, progress=False)):
        with pytest.raises(ValueError, match=words) as err:
            call()
        assert "'ntk'" in str(err.value) or "ntk" in str(err.value)


@pytest.mark.parametrize("name", ["W_std", "b_std"])
def test_an_array_of_scales_is_refused_in_one_sentence(name):
    with pytest.raises(ValueError, match=rf"{name} must be a single number.*shape \(2,\).*once per value"):
        relu_kernel_trace(BASE, depth=2, **{name: np.array([1.0, 2.0])})
    with pytest.raises(ValueError, match=rf"{name} must be a real number"):
        relu_kernel_trace(BASE, depth=2, **{name: "1.0"})


def test_complex_inputs_are_refused_not_cast(x64):
    z = BASE + 1j * BASE[::-1]
    with pytest.raises(ValueError, match=r"x1 is complex \(complex128\).*x1.real"):
        relu_ntk(z, depth=2)
    with pytest.raises(ValueError, match=r"x2 is complex"):
        relu_ntk(BASE, z, depth=2)
    with pytest.raises(ValueError, match=r"x1 is complex"):
        tiled_kernel(z, depth=2, progress=False)
    with pytest.raises(ValueError, match=r"rho is complex"):
        correlation_trace(np.array([0.5 + 0.1j]), depth=2)
    k = np.eye(3)
    with pytest.raises(ValueError, match=r"k_train is complex.*k_train.real"):
        GradientFlowPredictor(k + 0j, np.ones(3))
    with pytest.raises(ValueError, match=r"y_train is complex"):
        GradientFlowPredictor(k, np.ones(3) + 1j)
    with pytest.raises(ValueError, match=r"k_test_train is complex"):
        GradientFlowPredictor(k, np.ones(3)).predict(1.0, k + 1j)


@pytest.mark.parametrize("lr", ["1", np.array([1.0, 2.0]), None, True])
def test_a_learning_rate_that_is_not_one_number_is_refused(lr):
    with pytest.raises(ValueError, match=r"learning_rate must be one finite number > 0"):
        GradientFlowPredictor(np.eye(3), np.ones(3), learning_rate=lr)


def test_predict_with_no_times_is_refused():
    pred = GradientFlowPredictor(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match=r"non-empty 1-d array of times.*got \[\]"):
        pred.predict([], np.eye(3))
    with pytest.raises(ValueError, match=r"k_test_train must be \[m, 3\]"):
        pred.predict(1.0, [])


def test_empirical_ntk_of_a_model_takes_positional_inputs_and_checks_them(x64):
    net = MLP(4, [8], 1, rngs=0, param_dtype=jnp.float64)
    x = np.random.default_rng(1).standard_normal((3, 4))
    np.testing.assert_allclose(empirical_ntk(net, x), empirical_ntk(net, x1=x), rtol=1e-14)
    np.testing.assert_allclose(empirical_ntk(net, x, x[:2]), empirical_ntk(net, x1=x, x2=x[:2]),
                               rtol=1e-14)
    for bad, words in ((x[:, :3], r"x1 must have shape \[n, 4\].*got \(3, 3\)"),
                       (x[0], r"x1 must have shape \[n, 4\].*got \(4,\)"),
                       (x[:0], r"x1 is empty")):
        with pytest.raises(ValueError, match=words):
            empirical_ntk(net, bad)
    with pytest.raises(ValueError, match=r"x2 must have shape \[n, 4\]"):
        empirical_ntk(net, x1=x, x2=x[:, :2])
    with pytest.raises(ValueError, match=r"x1 must be a non-empty batch"):
        empirical_ntk(lambda p, v: v @ p, np.ones((4, 1)), x[:0])


# --------------------------------------------------------------------------
# tiled_kernel: precision, checksums, the disk.


def test_tiled_kernel_computes_float64_inputs_in_float64_without_warnings():
    x = BASE[:, :4] / np.linalg.norm(BASE[:, :4], axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k = tiled_kernel(x, depth=20_000, get="ntk_normalized", block_size=2, progress=False)
    assert k.dtype == np.float64
    with jax.enable_x64(True):
        rho = np.clip(x @ x.T, -1.0, 1.0)
        np.fill_diagonal(rho, 1.0)
        ref = np.asarray(correlation_trace(rho, depth=20_000, layers=[20_000]).ntk_normalized[0])
    np.testing.assert_allclose(k, ref, atol=1e-12)


def test_tiled_kernel_warns_once_for_a_deep_float32_kernel_naming_its_dtype_argument():
    with pytest.warns(UserWarning, match=r"tiled_kernel: float32 at depth 2000.*dtype='float64'") as rec:
        tiled_kernel(BASE.astype(np.float32), depth=2000, block_size=1, progress=False)
    assert len(rec) == 1


def test_tiled_kernel_computes_half_precision_in_float32():
    x = (BASE * 100).astype(np.float16)
    k = tiled_kernel(x, depth=3, block_size=2, progress=False)
    assert k.dtype == np.float32 and np.all(np.isfinite(k))
    ref = np.asarray(relu_ntk(x.astype(np.float32), depth=3))
    np.testing.assert_allclose(k, ref, rtol=1e-6)
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64'"):
        tiled_kernel(x, depth=3, dtype="float16", progress=False)


def _finish(path, **kw):
    return tiled_kernel(BASE, depth=3, block_size=2, out=path, progress=False, **kw)


def test_damage_inside_a_complete_tiled_file_is_noticed(tmp_path):
    path = tmp_path / "k.npy"
    ref = np.array(_finish(path))
    offset = path.stat().st_size - ref.nbytes
    with open(path, "r+b") as f:
        f.seek(offset + 8 * 4)  # entry (1, 1), inside the finished tile (0, 0)
        f.write(b"\x7f" * 8)
    with pytest.raises(ValueError, match=rf"{path} is damaged.*checksum.*delete"):
        _finish(path, verify=True)
    assert _finish(path).shape == ref.shape  # without verify a complete file is not read


def test_damage_in_a_finished_tile_is_noticed_on_resume(tmp_path, monkeypatch):
    path = tmp_path / "k.npy"
    calls = []

    def stop_at_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return inner(*args)

    inner = tiled._compute_tile
    monkeypatch.setattr(tiled, "_compute_tile", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        _finish(path)
    monkeypatch.undo()
    offset = path.stat().st_size - 3 * 3 * 8
    with open(path, "r+b") as f:  # entry (0, 1), in the finished tile (0, 0)
        f.seek(offset + 8)
        f.write(np.float64(12.5).tobytes())
    with pytest.raises(ValueError, match=r"damaged: 1 finished tile.*row 0, column 0"):
        _finish(path)


def test_a_record_naming_an_off_grid_tile_is_refused(tmp_path):
    path = tmp_path / "k.npy"
    _finish(path)
    record = Path(str(path) + tiled.RECORD_SUFFIX)
    rec = json.loads(record.read_text())
    rec["done"].append([1, 0, "00000000"])
    rec["complete"] = False
    record.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"names tile \(1, 0\).*not a tile of this kernel's grid"):
        _finish(path)


def test_a_tiled_file_is_allocated_whole_before_the_first_tile(tmp_path, monkeypatch):
    path = tmp_path / "k.npy"
    seen = []
    inner = tiled._compute_tile
    monkeypatch.setattr(tiled, "_compute_tile",
                        lambda *a: (seen.append(path.stat().st_blocks * 512), inner(*a))[1])
    _finish(path)
    assert seen[0] >= path.stat().st_size


def test_a_full_disk_at_creation_is_an_error_naming_the_bytes(tmp_path, monkeypatch):
    path = tmp_path / "k.npy"

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match=rf"no space left on the device writing {path}: it needs [\d,]+ bytes, "
                                      r"[\d,]+ bytes are free there; free some space"):
        _finish(path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_recording_keeps_the_finished_tiles(tmp_path, monkeypatch):
    path = tmp_path / "k.npy"
    ref = np.asarray(relu_ntk(BASE, depth=3))
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 4:  # the record after the third tile
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match=r"no space left on the device writing .*\.tiles\.json: it needs") as err:
        _finish(path)
    assert ".tmp" not in str(err.value)
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.tmp*"))
    np.testing.assert_allclose(_finish(path), ref, rtol=1e-13)


def test_an_output_in_a_missing_folder_or_a_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"out=.*nodir/k\.npy.*does not exist; create it") as err:
        tiled_kernel(BASE, depth=2, out=tmp_path / "nodir" / "k.npy", progress=False)
    assert ".tmp" not in str(err.value)
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError, match=r"afile is a file, not a folder"):
        tiled_kernel(BASE, depth=2, out=tmp_path / "afile" / "k.npy", progress=False)


def _read_only_folder(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:  # root writes anywhere but on a read-only mount such as /sys
        open("/sys/ntkdepth-probe", "w").close()
    except OSError:
        return Path("/sys")
    pytest.skip("no read-only folder available to this user")


def test_an_output_in_a_read_only_folder_is_named_not_its_temporary_file(tmp_path):
    folder = _read_only_folder(tmp_path)
    with pytest.raises(OSError) as err:
        tiled_kernel(BASE, depth=2, out=folder / "k.npy", progress=False)
    message = str(err.value)
    assert "k.npy" in message and ".tmp" not in message
    assert "not writable" in message or "choose a folder you can write to" in message


def test_tiled_kernel_refuses_a_read_only_array_and_a_mesh_that_is_not_a_mesh():
    out = np.empty((3, 3))
    out.setflags(write=False)
    with pytest.raises(ValueError, match=r"out is a read-only array"):
        tiled_kernel(BASE, depth=2, out=out, progress=False)
    with pytest.raises(ValueError, match=r"mesh must be a jax.sharding.Mesh or None; got 'gpu'"):
        tiled_kernel(BASE, depth=2, mesh="gpu", progress=False)


@pytest.mark.parametrize("method", ["auto", "loop", "interp"])
def test_a_depth_beyond_the_layer_counters_is_refused_before_anything_is_allocated(method):
    x = np.random.default_rng(0).normal(size=(3, 5))
    with pytest.raises(ValueError, match=r"depth 10000000000 exceeds 2,147,483,647"):
        relu_ntk(x, depth=10**10, method=method)
    with pytest.raises(ValueError, match=r"depth 2147483648 exceeds"):
        kernel_trace(x, depth=2**31, activation="tanh", get="ntk")
