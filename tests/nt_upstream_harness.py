"""pytest plugin: neural-tangents' own test files, run through ntkdepth's bridge."""

import jax
import jax.tree_util

from ntkdepth.kernels import nt_bridge

if not hasattr(jax, "tree_map"):
    jax.tree_map = jax.tree_util.tree_map
nt_bridge.load()


def pytest_configure(config):
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
