import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
    """Runs the test body with 64-bit JAX, restoring the previous setting after."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20261128)
