import gc

import jax
import numpy as np
import pytest


def _memory_maps() -> int:
    """How many memory maps this process holds (0 where /proc is not there)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


#: Above this many memory maps the compiled programs are dropped (the kernel's limit,
#: ``vm.max_map_count``, is 65,530 by default; one test module adds at most a few thousand).
_MAPS_KEPT = 25_000


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops every compiled program after a test module once the process holds many memory maps.

    Each XLA executable keeps its code mapped in the process; a process running
    much of the suite would otherwise approach the kernel's limit on memory maps,
    where compilation fails. Below the threshold the programs stay, for later
    modules that compile the same ones.
    """
    yield
    if _memory_maps() > _MAPS_KEPT:
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
