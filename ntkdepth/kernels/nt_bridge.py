"""neural-tangents' ``stax`` and ``predict`` on current JAX, without TensorFlow.

neural-tangents 0.6.5 (its last release) cannot be imported as it is:

- its ``__init__`` imports ``neural_tangents.experimental``, which imports
  TensorFlow and tf2jax; ntkdepth's lock drops both (see ``[tool.uv]`` in
  ``pyproject.toml``), so that import fails;
- its empirical-kernel module (``neural_tangents._src.empirical``, also used
  by ``monte_carlo``) imports names that JAX has removed (``jax.core.Jaxpr``,
  ``jax.util``, ``jax.interpreters.ad.zeros_like_p``, ...).

Its analytic layers (``stax``) and predictors (``predict``) need neither. This
module imports neural-tangents with placeholder modules standing in for those
three submodules, so that ``stax`` and ``predict`` work and TensorFlow is never
imported. Anything that reaches a placeholder raises
:class:`NeuralTangentsFeatureUnavailable`, naming what to use instead.

The import happens on first use (``nt_bridge.stax``, ``nt_bridge.predict``,
``nt_bridge.neural_tangents`` or :func:`ntkdepth.kernels.stax_mlp`), not when ntkdepth is
imported. If neural-tangents was already imported in full (for example in an
environment that has TensorFlow and an older JAX), that module is used as is.

Usage::

    from ntkdepth.kernels import nt_bridge
    init_fn, apply_fn, kernel_fn = nt_bridge.stax.serial(nt_bridge.stax.Dense(1))
    predict_fn = nt_bridge.predict.gradient_descent_mse(ntk_train, y_train, learning_rate=y_train.size)

neural-tangents' predictors minimise ``0.5 * |f(X) - Y|^2 / Y.size``; pass
``learning_rate=Y.size`` for the loss without the ``1/Y.size`` factor used in
docs/predictor.md#time-and-learning-rate and the paper (Remark 1).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import Any

import numpy as np

__all__ = [
    "NeuralTangentsFeatureUnavailable",
    "load",
]

# Placeholder submodules, and what to use in their place.
_REPLACEMENTS = {
    "neural_tangents.experimental": (
        "it needs TensorFlow and tf2jax, which ntkdepth does not install",
        "ntkdepth's JAX-native code (ntkdepth.kernels, ntkdepth.empirical)",
    ),
    "neural_tangents._src.empirical": (
        "neural-tangents 0.6.5's empirical kernels use JAX internals that current JAX removed",
        "ntkdepth.empirical.empirical_ntk / ntkdepth.empirical.empirical_ntk_fn",
    ),
    "neural_tangents._src.monte_carlo": (
        "neural-tangents 0.6.5's Monte Carlo kernels are built on its empirical kernels, "
        "which use JAX internals that current JAX removed",
        "ntkdepth.empirical.monte_carlo_ntk",
    ),
}


class NeuralTangentsFeatureUnavailable(NotImplementedError):
    """A part of neural-tangents that cannot run on current JAX without TensorFlow."""


class _Unavailable:
    """Stands in for one name of a placeholder module; fails on any use."""

    def __init__(self, module: str, name: str):
        self._message = (
            f"{module}.{name} is not available in ntkdepth's neural-tangents bridge: "
            f"{_REPLACEMENTS[module][0]}. Use {_REPLACEMENTS[module][1]} instead."
        )

    def _fail(self, *args, **kwargs):
        raise NeuralTangentsFeatureUnavailable(self._message)

    __call__ = _fail

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self) -> str:
        return f"<unavailable: {self._message}>"


def _placeholder(module_name: str) -> types.ModuleType:
    module = types.ModuleType(module_name, f"ntkdepth placeholder for {module_name}")

    def __getattr__(name: str):  # PEP 562: any name imported from the placeholder
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable(module_name, name)

    module.__getattr__ = __getattr__
    module.__ntkdepth_placeholder__ = True
    return module


def load() -> types.ModuleType:
    """Imports neural-tangents (once) and returns the package."""
    module = sys.modules.get("neural_tangents")
    if module is not None and hasattr(module, "stax"):
        return module
    installed = []
    for name in _REPLACEMENTS:
        if name not in sys.modules:
            sys.modules[name] = _placeholder(name)
            installed.append(name)
    try:
        module = importlib.import_module("neural_tangents")
    except Exception:
        for name in installed:
            sys.modules.pop(name, None)
        raise
    _patch_max_learning_rate()
    return module


def _eigvalsh_takes_eigvals() -> bool:
    import scipy.linalg

    return "eigvals" in inspect.signature(scipy.linalg.eigvalsh).parameters


def _patch_max_learning_rate() -> None:
    """Makes ``predict.max_learning_rate`` work on SciPy >= 1.14.

    neural-tangents 0.6.5 asks ``scipy.linalg.eigvalsh`` for the largest
    eigenvalue with the keyword ``eigvals=(n - 1, n - 1)``, which SciPy 1.14
    removed in favour of ``subset_by_index=[n - 1, n - 1]``. Where SciPy no
    longer accepts ``eigvals``, the function is replaced by one with the same
    signature and result that uses ``subset_by_index``.
    """
    src = sys.modules.get("neural_tangents._src.predict")
    if src is None or getattr(src.max_learning_rate, "__ntkdepth_patched__", False):
        return
    if _eigvalsh_takes_eigvals():
        return
    original = src.max_learning_rate
    make_2d, on_cpu = src.utils.make_2d, src._is_on_cpu

    def max_learning_rate(ntk_train_train, y_train_size=None, momentum=0.0, eps: float = 1e-12):
        import jax.numpy as jnp
        import scipy.linalg

        # The largest step of gradient descent (with momentum) on the MSE that
        # still converges: 2 (1 + momentum) / lambda_max of the loss's Hessian.
        k = make_2d(ntk_train_train)
        n = k.shape[0]
        factor = n if y_train_size is None else y_train_size
        if on_cpu(k):
            lam_max = scipy.linalg.eigvalsh(np.asarray(k), subset_by_index=[n - 1, n - 1])[-1]
        else:
            lam_max = jnp.linalg.eigvalsh(k)[-1]
        return 2 * (1 + momentum) * factor / (lam_max + eps)

    max_learning_rate.__doc__ = original.__doc__
    max_learning_rate.__wrapped__ = original
    max_learning_rate.__ntkdepth_patched__ = True
    src.max_learning_rate = max_learning_rate
    public = sys.modules.get("neural_tangents.predict")
    if public is not None:
        public.max_learning_rate = max_learning_rate


def __getattr__(name: str) -> Any:
    # Lazy attributes: importing this module costs nothing until one is used.
    if name == "neural_tangents":
        return load()
    if name in ("stax", "predict"):
        return getattr(load(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
