"""pytest plugin: neural-tangents' own test files, run through ntkdepth's bridge.

Loaded with ``-p nt_upstream_harness`` by ``tests/test_nt_upstream.py`` in a
separate pytest process (so that nothing here reaches the project's own test
session). It imports neural-tangents through :mod:`ntkdepth.kernels.nt_bridge`
before the test files do, gives their helpers the ``jax.tree_map`` that JAX
has removed (an alias of ``jax.tree_util.tree_map``, in this process only),
marks absl's flags as parsed, and deselects the tests named in the JSON file
``$NTKDEPTH_NT_DESELECT`` (``{"stax/stax_test.py::Class::test": "reason"}``),
writing what it selected, deselected and could not find to
``$NTKDEPTH_NT_REPORT``.
"""

import json
import os
from pathlib import Path

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


def _name(item) -> str:
    """``stax/stax_test.py::StaxTest::test_x0``: the node id below neural-tangents' ``tests/``."""
    path, _, rest = item.nodeid.partition("::")
    path = path.split("tests/", 1)[1] if "tests/" in path else path
    return f"{path}::{rest}"


def pytest_collection_modifyitems(config, items):
    listed = json.loads(Path(os.environ["NTKDEPTH_NT_DESELECT"]).read_text())
    keep, drop = [], []
    for item in items:
        (drop if _name(item) in listed else keep).append(item)
    found = {_name(item) for item in drop}
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    report = {
        "collected": len(keep) + len(drop),
        "selected": [_name(item) for item in keep],
        "deselected": len(drop),
        "not_found": sorted(set(listed) - found),
    }
    Path(os.environ["NTKDEPTH_NT_REPORT"]).write_text(json.dumps(report))
