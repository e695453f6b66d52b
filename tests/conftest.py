import gc

import jax
import numpy as np
import pytest


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
