"""The API reference (docs/api/) builds from the docstrings with warnings as errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _build(source: Path, out: Path) -> subprocess.CompletedProcess:
    # The dummy builder reads, imports and resolves every reference as the HTML one does, but
    # writes nothing.
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "dummy", "-E",
         "-d", str(out / "doctrees"), str(source), str(out / "dummy")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )


@pytest.mark.slow
def test_api_reference_builds_without_a_warning(tmp_path):
    done = _build(API, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]


def test_a_broken_cross_reference_fails_the_build(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(API / "conf.py", source / "conf.py")
    (source / "index.rst").write_text(
        "Title\n=====\n\nSee :func:`ntkdepth.no_such_function` and :class:`numpy.ndarray`.\n"
    )
    done = _build(source, tmp_path)
    assert done.returncode != 0
    assert "ntkdepth.no_such_function" in done.stderr
    assert "numpy.ndarray" not in done.stderr  # other projects' names are not this reference's
