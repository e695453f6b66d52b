"""tiled_kernel: tile by tile equals the in-memory kernel; resume, refusal, mesh, processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import kernel_trace, relu_kernel_trace, tiled, tiled_kernel

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-12


def reference(x1, x2, *, depth, layers=None, get="ntk", b_std=0.0):
    """The in-memory kernel: ``[n1, n2]`` at ``depth`` or ``[m, n1, n2]`` at ``layers``."""
    tr = relu_kernel_trace(x1, x2, depth=depth, b_std=b_std,
                           layers=[depth] if layers is None else layers, get=(get,))
    k = np.asarray(getattr(tr, get))
    return k[0] if layers is None else k


def assert_close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_less(np.abs(a - b), rtol * np.maximum(np.abs(b), 1e-300) + 1e-300)


def files(path):
    return [Path(path), Path(str(path) + tiled.RECORD_SUFFIX)]


@pytest.fixture
def data(rng):
    return rng.standard_normal((31, 6)), rng.standard_normal((23, 6))


class CountingTiles:
    """Wraps ``tiled._compute_tile``: counts calls, optionally raises at call ``fail_at``."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at, self.inner = 0, fail_at, tiled._compute_tile

    def __call__(self, *args):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner(*args)


# --------------------------------------------------------------------------
# Equal to the in-memory kernel.


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("output", ["new", "array", "npy"])
def test_tiles_equal_in_memory_kernel(x64, data, tmp_path, symmetric, output):
    x1, x2 = data
    x2 = None if symmetric else x2
    ref = reference(x1, x2, depth=6, layers=[1, 4, 6])
    out = {"new": None, "array": np.empty(ref.shape, np.float64),
           "npy": tmp_path / "k.npy"}[output]
    k = tiled_kernel(x1, x2, depth=6, layers=[1, 4, 6], block_size=7, out=out, progress=False)
    assert_close(k, ref)
    if output == "array":
        assert k is out
    if output == "npy":
        assert isinstance(k, np.memmap) and not k.flags.writeable
        rec = json.loads(files(out)[1].read_text())
        n_tiles = 15 if symmetric else 5 * 4  # ceil(31/7) = 5 row tiles, 4 column tiles
        assert rec["complete"] and len(rec["done"]) == n_tiles


@pytest.mark.parametrize("get,b_std", [("nngp", 0.4), ("rho", 0.4), ("ntk_normalized", 0.0),
                                       ("nngp_dot", 0.4)])
def test_every_field_one_depth(x64, data, get, b_std):
    x1, x2 = data
    k = tiled_kernel(x1, x2, depth=5, get=get, b_std=b_std, block_size=10, progress=False)
    assert k.shape == (31, 23)
    assert_close(k, reference(x1, x2, depth=5, get=get, b_std=b_std))


def test_float32_and_symmetry(data):
    x1 = data[0].astype(np.float32)
    k = tiled_kernel(x1, depth=3, block_size=8, progress=False)
    assert k.dtype == np.float32
    np.testing.assert_array_equal(k, k.T)  # mirrored tiles: exactly symmetric
    np.testing.assert_allclose(k, reference(x1, None, depth=3), rtol=2e-6)


def test_symmetric_computes_upper_tiles_only(x64, data, monkeypatch):
    counter = CountingTiles()
    monkeypatch.setattr(tiled, "_compute_tile", counter)
    tiled_kernel(data[0], depth=2, block_size=7, progress=False)
    assert counter.calls == 15  # 5 x 5 tiles, 5 + 4 + 3 + 2 + 1 on and above the diagonal


# --------------------------------------------------------------------------
# Resume.


@pytest.mark.parametrize("symmetric", [True, False])
def test_resume_after_interruption(x64, data, tmp_path, monkeypatch, symmetric):
    x1, x2 = data
    x2 = None if symmetric else x2
    path = tmp_path / "k.npy"
    monkeypatch.setattr(tiled, "_compute_tile", CountingTiles(fail_at=6))
    with pytest.raises(KeyboardInterrupt):
        tiled_kernel(x1, x2, depth=4, block_size=7, out=path, progress=False)
    rec = json.loads(files(path)[1].read_text())
    assert not rec["complete"] and len(rec["done"]) == 5

    counter = CountingTiles()
    monkeypatch.setattr(tiled, "_compute_tile", counter)
    k = tiled_kernel(x1, x2, depth=4, block_size=7, out=path, progress=False)
    total = 15 if symmetric else 20
    assert counter.calls == total - 5
    assert_close(k, reference(x1, x2, depth=4))
    # A finished file is returned as it is.
    counter.calls = 0
    assert_close(tiled_kernel(x1, x2, depth=4, block_size=7, out=path, progress=False),
                 reference(x1, x2, depth=4))
    assert counter.calls == 0


@pytest.mark.parametrize("act,b_std", [("tanh", 0.3), ("erf", 0.0)])
def test_any_activation_equals_kernel_trace_and_resumes(x64, data, tmp_path, monkeypatch, act, b_std):
    # The tiles of a tanh (Hermite expansion) or erf (closed form) network against kernel_trace on
    # the whole inputs; an interrupted file resumes with the missing tiles alone. A tile's expansion
    # covers its own inputs' variances: for tanh the tiles agree to the expansion's accuracy
    # relative to the kernel's scale (its error_bound), for erf to rounding.
    x1, x2 = data
    if act == "tanh":  # variances about 1/2 (not 2): a shorter expansion, less to compile per tile
        x1, x2 = x1 / 2, x2 / 2
    tr = kernel_trace(x1, x2, depth=5, activation=act, b_std=b_std, layers=[2, 5], get=("ntk",))
    ref = np.asarray(tr.ntk)
    scale = np.abs(ref).max(axis=(1, 2), keepdims=True)
    tol = (1e-12 if tr.error_bound is None else max(1e-12, 10 * tr.error_bound)) * scale

    def assert_agrees(k):
        assert k.shape == ref.shape and k.dtype == ref.dtype
        np.testing.assert_array_less(np.abs(np.asarray(k) - ref), np.broadcast_to(tol, ref.shape))

    assert_agrees(tiled_kernel(x1, x2, depth=5, activation=act, b_std=b_std, layers=[2, 5], block_size=9,
                               progress=False))
    path = tmp_path / "k.npy"
    monkeypatch.setattr(tiled, "_compute_tile", CountingTiles(fail_at=5))
    with pytest.raises(KeyboardInterrupt):
        tiled_kernel(x1, x2, depth=5, activation=act, b_std=b_std, layers=[2, 5], block_size=9, out=path,
                     progress=False)
    counter = CountingTiles()
    monkeypatch.setattr(tiled, "_compute_tile", counter)
    k = tiled_kernel(x1, x2, depth=5, activation=act, b_std=b_std, layers=[2, 5], block_size=9, out=path,
                     progress=False)
    assert counter.calls == 4 * 3 - 4  # ceil(31/9) x ceil(23/9) tiles, four finished before
    assert_agrees(k)
    assert json.loads(files(path)[1].read_text())["settings"]["activation"] == act
    # The record is keyed by the activation: another one is refused, naming it.
    with pytest.raises(ValueError, match=f"activation: '{act}' on disk, 'relu' now"):
        tiled_kernel(x1, x2, depth=5, b_std=b_std, layers=[2, 5], block_size=9, out=path, progress=False)


def test_a_custom_activation_tiles_into_memory_but_not_a_file(x64, data, tmp_path):
    x1 = data[0][:9]
    k = tiled_kernel(x1, depth=3, activation=jnp.sin, block_size=4, progress=False)
    assert_close(k, np.asarray(kernel_trace(x1, depth=3, activation=jnp.sin, layers=[3], get="ntk").ntk[0]),
                 rtol=1e-11)
    with pytest.raises(ValueError, match="custom activation .* cannot be keyed"):
        tiled_kernel(x1, depth=3, activation=jnp.sin, block_size=4, out=tmp_path / "k.npy", progress=False)
    assert not list(tmp_path.iterdir())


def test_a_record_of_an_earlier_format_is_refused_with_the_remedy(x64, data, tmp_path):
    x1 = data[0]
    path = tmp_path / "k.npy"
    tiled_kernel(x1, depth=3, block_size=16, out=path, progress=False)
    record = files(path)[1]
    rec = json.loads(record.read_text())
    rec["format"] = "ntkdepth.tiled_kernel/2"
    record.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"earlier tiled_kernel \(ntkdepth.tiled_kernel/2\).*delete"):
        tiled_kernel(x1, depth=3, block_size=16, out=path, progress=False)


KILLED_RUN = """
import sys, time
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from ntkdepth.kernels import tiled, tiled_kernel

inner = tiled._compute_tile
def slow(*args):
    time.sleep(0.15)
    return inner(*args)
tiled._compute_tile = slow
x = np.random.default_rng(7).standard_normal((45, 5))
tiled_kernel(x, depth=3, block_size=5, out=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_resume_after_sigkill(x64, tmp_path, monkeypatch):
    path = tmp_path / "k.npy"
    record = files(path)[1]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(path)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while done < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                done = len(json.loads(record.read_text())["done"])
            except (OSError, ValueError):
                pass
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = json.loads(record.read_text())
    assert 4 <= len(rec["done"]) < 45 and not rec["complete"]

    counter = CountingTiles()
    monkeypatch.setattr(tiled, "_compute_tile", counter)
    x = np.random.default_rng(7).standard_normal((45, 5))
    k = tiled_kernel(x, depth=3, block_size=5, out=path, progress=False)
    assert counter.calls == 45 - len(rec["done"])  # 9 x 9 tiles: 45 on and above the diagonal
    assert_close(k, reference(x, None, depth=3))


# --------------------------------------------------------------------------
# Refusals.


def test_resume_with_other_settings_refused(x64, data, tmp_path):
    x1, x2 = data
    path = tmp_path / "k.npy"
    tiled_kernel(x1, x2, depth=4, block_size=7, out=path, progress=False)
    before = path.read_bytes()
    changes = [
        (dict(depth=5), "depth"), (dict(b_std=0.1), "b_std"), (dict(W_std=1.0), "W_std"),
        (dict(get="nngp"), "field"), (dict(block_size=8), "block_size"),
        (dict(layers=[2, 4]), "layers"),
    ]
    for change, name in changes:
        kw = dict(depth=4, block_size=7, out=path, progress=False) | change
        with pytest.raises(ValueError, match=rf"{path}.*other settings.*{name}.*delete"):
            tiled_kernel(x1, x2, **kw)
    with pytest.raises(ValueError, match="the inputs differ"):
        tiled_kernel(x1 + 1e-9, x2, depth=4, block_size=7, out=path, progress=False)
    with pytest.raises(ValueError, match="dtype"):
        tiled_kernel(x1.astype(np.float32), x2.astype(np.float32), depth=4, block_size=7,
                     out=path, progress=False)
    assert path.read_bytes() == before


def test_corrupt_or_truncated_files_refused(x64, data, tmp_path, monkeypatch):
    x1 = data[0]
    path = tmp_path / "k.npy"
    record = files(path)[1]
    monkeypatch.setattr(tiled, "_compute_tile", CountingTiles(fail_at=4))
    with pytest.raises(KeyboardInterrupt):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)
    monkeypatch.undo()
    good = record.read_text()

    record.write_text(good[: len(good) // 2])  # a torn record
    with pytest.raises(ValueError, match=rf"record {record} is unreadable or corrupt.*delete"):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)
    record.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="corrupt"):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)

    record.write_text(good)
    with open(path, "r+b") as f:  # a truncated array file
        f.truncate(path.stat().st_size - 8)
    with pytest.raises(ValueError, match=rf"{path} is truncated.*delete"):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)
    path.write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match=rf"{path} is not a readable .npy"):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)
    np.save(path, np.zeros((31, 30)))
    with pytest.raises(ValueError, match=r"shape \(31, 30\).*delete"):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)

    record.unlink()  # a file without a record is never overwritten
    with pytest.raises(ValueError, match="no tile record"):
        tiled_kernel(x1, depth=3, block_size=7, out=path, progress=False)


def test_bad_arguments(x64, data):
    x1, x2 = data
    with pytest.raises(ValueError, match="one field"):
        tiled_kernel(x1, depth=2, get=("ntk", "nngp"))
    with pytest.raises(ValueError, match="unknown field"):
        tiled_kernel(x1, depth=2, get="theta")
    with pytest.raises(ValueError, match="shape"):
        tiled_kernel(x1, x2, depth=2, out=np.empty((31, 31)))
    with pytest.raises(ValueError, match="block_size"):
        tiled_kernel(x1, depth=2, block_size=0)
    with pytest.raises(ValueError, match="zero vector"):
        tiled_kernel(np.vstack([x1, np.zeros(6)]), depth=2)
    with pytest.raises(ValueError, match="NaN"):
        tiled_kernel(x1, np.where(x2 > 1, np.nan, x2), depth=2)
    with pytest.raises(ValueError, match="feature dimensions"):
        tiled_kernel(x1, x2[:, :5], depth=2)
    with pytest.raises(ValueError, match=r"\.npy"):
        tiled_kernel(x1, depth=2, out="kernel.bin")


# --------------------------------------------------------------------------
# A device mesh, and several processes.


MESH_RUN = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from jax.sharding import Mesh
from ntkdepth.kernels import relu_kernel_trace, tiled_kernel

assert len(jax.devices()) == 4, jax.devices()
rng = np.random.default_rng(3)
x1, x2 = rng.standard_normal((30, 6)), rng.standard_normal((17, 6))
worst = 0.0
mesh = Mesh(np.array(jax.devices()), ("d",))
for y, get, b in ((None, "ntk", 0.0), (x2, "nngp", 0.5)):
    single = tiled_kernel(x1, y, depth=6, layers=[2, 6], get=get, b_std=b, block_size=8,
                          progress=False)
    sharded = tiled_kernel(x1, y, depth=6, layers=[2, 6], get=get, b_std=b, block_size=8,
                           mesh=mesh, progress=False)
    worst = max(worst, float(np.max(np.abs(sharded - single) / np.abs(single))))
grid = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
disk = tiled_kernel(x1, depth=6, block_size=12, mesh=grid, out=sys.argv[1] + "/k.npy",
                    progress=False)
ref = np.asarray(relu_kernel_trace(x1, depth=6, layers=[6], get=("ntk",)).ntk[0])
worst = max(worst, float(np.max(np.abs(disk - ref) / np.abs(ref))))
try:
    tiled_kernel(x1, depth=2, block_size=6, mesh=mesh)
except ValueError as e:
    assert "multiple of 4" in str(e), e
else:
    raise AssertionError("block_size 6 over 4 devices accepted")
print("WORST", worst)
"""


def _run(code, *args, env=None, timeout=240):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_mesh_of_four_devices_equals_single_device(tmp_path):
    res = _run(MESH_RUN, str(tmp_path),
               env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert res.returncode == 0, res.stderr[-3000:]
    worst = float(res.stdout.split("WORST")[1])
    assert worst < RTOL


PROCESS_RUN = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
port, pid, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=60)
import numpy as np
from ntkdepth.kernels import tiled_kernel

assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2
x1 = np.random.default_rng(5).standard_normal((29, 6))
x2 = np.random.default_rng(6).standard_normal((19, 6))
tiled_kernel(x1, None, depth=5, block_size=8, out=path + "/sym.npy", progress=False)
tiled_kernel(x1, x2, depth=5, b_std=0.2, get="nngp", block_size=8, out=path + "/rect.npy",
             progress=False)
print("OK", pid)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_one_file(x64, tmp_path):
    try:
        jax.config.jax_cpu_collectives_implementation  # noqa: B018
    except AttributeError:
        pytest.skip("this jax has no CPU collectives option (jax_cpu_collectives_implementation)")
    port = str(_free_port())
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS_RUN, port, str(i), str(tmp_path)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=180))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the two processes did not finish within 180 s")
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "OK" in out
    x1 = np.random.default_rng(5).standard_normal((29, 6))
    x2 = np.random.default_rng(6).standard_normal((19, 6))
    assert_close(np.load(tmp_path / "sym.npy"), reference(x1, None, depth=5))
    assert_close(np.load(tmp_path / "rect.npy"), reference(x1, x2, depth=5, get="nngp", b_std=0.2))
    assert json.loads((tmp_path / ("sym.npy" + tiled.RECORD_SUFFIX)).read_text())["complete"]
