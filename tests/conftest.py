import gc
import os
import shutil
import tempfile

import jax
import numpy as np
import pytest


# One persistent compilation cache for the whole run: the controller makes it, the
# worker processes find it in the environment, and so do the processes the tests
# start (CLI runs, killed sweeps), which would otherwise compile the same programs
# again each time. Programs dropped after a module (below) are read back from it.
_CACHE_VARIABLE = "NTKDEPTH_TEST_COMPILATION_CACHE"


def pytest_configure(config):
    directory = os.environ.get(_CACHE_VARIABLE)
    if directory is None:
        directory = tempfile.mkdtemp(prefix="ntkdepth-tests-xla-")
        os.environ[_CACHE_VARIABLE] = directory
        config._ntkdepth_cache_made = directory
    settings = {
        "jax_compilation_cache_dir": directory,
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    for name, value in settings.items():
        os.environ[name.upper()] = str(value)
        jax.config.update(name, value)


def pytest_unconfigure(config):
    made = getattr(config, "_ntkdepth_cache_made", None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(_CACHE_VARIABLE, None)


# The test files that take longest on a 2-core CPU, longest first. The workers take whole files
# in collection order (pyproject.toml: --dist loadfile --no-loadscope-reorder), so these start
# first and the run does not end on one of them while the other worker idles; the rest follow
# in their usual order.
LONGEST_FIRST = [
    "test_residual.py", "test_experiments_smoke.py", "test_theory_drift_activations.py",
    "test_theory_drift.py", "test_training_mesh.py", "test_faults.py", "test_kernels_activations.py",
    "test_benchmarks.py", "test_nt_upstream.py", "test_kernels_interp.py", "test_training.py",
    "test_kernels_relu.py", "test_kernels_tiled.py", "test_kernels_accuracy.py", "test_jax_versions.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order kept


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops every compiled program after each test module.

    Each XLA executable keeps its code mapped in the process; a process running
    much of the suite would otherwise approach the kernel's limit on memory maps
    (``vm.max_map_count``), where compilation fails.
    """
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def x64():
    """Runs the test body with 64-bit JAX, restoring the previous setting after."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20261128)


# Lines a test wants shown at the end of the run (e.g. how many of neural-tangents'
# own tests ran through the bridge): a test adds ("summary", line) to its
# user_properties, which travel with its report from a worker process too.
_SUMMARY_LINES: list[str] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        lines = [value for key, value in report.user_properties if key == "summary"]
        if lines:
            _SUMMARY_LINES.extend(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in _SUMMARY_LINES:
        terminalreporter.write_line(line)
