"""The neural-tangents bridge on the other JAX versions ntkdepth supports.

The lock resolves jax 0.10.2 on Python 3.11 (the suite's own environment) and
jax 0.12 on Python 3.12+; GPU images commonly ship Python 3.12 with jax 0.11.
Each case builds a small environment with uv (jax, jaxlib, numpy, frozendict,
and neural-tangents without its TensorFlow requirement) and runs the bridge's
self-check in it against this checkout.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CASES = [("3.12", "0.11.2"), ("3.12", "0.12.0.1")]


def _interpreter(uv: list[str], version: str) -> str | None:
    """A Python ``version`` interpreter: what uv finds, else a pyenv installation."""
    found = subprocess.run(
        uv + ["python", "find", "--no-python-downloads", version], capture_output=True, text=True
    )
    if found.returncode == 0:
        return found.stdout.strip()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"{version}.*/bin/python{version}"))
    return str(candidates[-1]) if candidates else None


def _uv() -> list[str] | None:
    if os.environ.get("NTKDEPTH_UV"):  # set by ./uvrun
        return os.environ["NTKDEPTH_UV"].split()
    if shutil.which("uv"):
        return ["uv"]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    return [sys.executable, "-m", "uv"] if probe.returncode == 0 else None


@pytest.mark.slow
@pytest.mark.parametrize("python,jax_version", CASES, ids=[f"py{p}-jax{j}" for p, j in CASES])
def test_bridge_on_other_jax_versions(tmp_path, python, jax_version):
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed")
    interpreter = _interpreter(uv, python)
    if interpreter is None:
        pytest.skip(f"no Python {python} interpreter on this machine")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    run = lambda *args: subprocess.run(list(args), check=True, capture_output=True, text=True, env=env)
    run(*uv, "venv", "--quiet", "--python", interpreter, str(venv))
    py = str(venv / "bin" / "python")
    run(*uv, "pip", "install", "--quiet", "--python", py,
        f"jax=={jax_version}", f"jaxlib=={jax_version}", "numpy", "frozendict")
    run(*uv, "pip", "install", "--quiet", "--python", py, "--no-deps", "neural-tangents==0.6.5")
    out = subprocess.run(
        [py, "-m", "ntkdepth.kernels.check_bridge"], capture_output=True, text=True,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(f"bridge OK: jax {jax_version},"), out.stdout
