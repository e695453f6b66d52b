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
``nt_bridge.neural_tangents`` or :func:`stax_mlp`), not when ntkdepth is
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
import math
import numbers
import sys
import types
from typing import Any

import numpy as np

__all__ = [
    "NeuralTangentsFeatureUnavailable",
    "load",
    "stax_mlp",
    "stax_residual_mlp",
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


def stax_mlp(
    depth: int,
    width: int,
    W_std: float = 2.0**0.5,
    b_std: float = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    out_std: float | None = None,
    activation="relu",
):
    """The paper's MLP as neural-tangents layers: ``(init_fn, apply_fn, kernel_fn)``.

    ``depth`` weight layers (``depth - 1`` hidden layers of ``width`` units with
    neural-tangents' own layer for ``activation`` (ReLU by default; a name or an
    :class:`ntkdepth.kernels.Activation`), then a linear readout of ``out_dim``
    units), weights ``N(0, W_std^2)``
    and biases ``N(0, b_std^2)`` in the given ``parameterization`` (``"ntk"``,
    the paper's, or ``"standard"``). With ``b_std == 0`` the layers have no
    bias parameters at all. ``kernel_fn`` is the infinite-width limit and
    agrees with :func:`ntkdepth.kernels.kernel_trace`. An activation that
    neural-tangents has no closed-form layer for (tanh, silu, softplus, a
    custom function) is a ``ValueError`` pointing to ntkdepth's own kernels.

    ``depth``, ``width`` and ``out_dim`` are integers >= 1 (Python or NumPy),
    ``W_std`` and ``out_std`` finite numbers > 0, ``b_std`` a finite number >= 0; anything
    else is a ``ValueError`` naming the argument.
    """
    for name, value in (("depth", depth), ("width", width), ("out_dim", out_dim)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    depth, width, out_dim = int(depth), int(width), int(out_dim)
    out_std = W_std if out_std is None else out_std
    for name, value, low in (("W_std", W_std, "> 0"), ("b_std", b_std, ">= 0"), ("out_std", out_std, "> 0")):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a finite number {low}; got {value!r}") from None
        if not math.isfinite(number) or (number < 0 if name == "b_std" else number <= 0):
            raise ValueError(f"{name} must be a finite number {low}; got {value!r}")
    W_std, b_std, out_std = float(W_std), float(b_std), float(out_std)
    if parameterization not in ("ntk", "standard"):
        raise ValueError(
            f"parameterization must be 'ntk' or 'standard'; got {parameterization!r}"
        )
    from ntkdepth.kernels.activations import activation as as_activation

    nonlinearity = as_activation(activation).stax  # the ValueError comes before any layer is built
    stax = load().stax
    bias = None if b_std == 0 else b_std
    hidden = []
    for _ in range(depth - 1):
        hidden += [
            stax.Dense(width, W_std=W_std, b_std=bias, parameterization=parameterization),
            nonlinearity(),
        ]
    readout = stax.Dense(out_dim, W_std=out_std, b_std=bias, parameterization=parameterization)
    return stax.serial(*hidden, readout)


def stax_residual_mlp(
    depth: int,
    width: int,
    residual: float | str,
    W_std: float = 2.0**0.5,
    b_std: float = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    out_std: float | None = None,
    activation="relu",
):
    """The residual MLP (:class:`ntkdepth.models.ResidualMLP`) as neural-tangents layers.

    ``Dense(width)``, then ``depth - 1`` blocks ``FanOut(2), parallel(Identity, serial(phi,
    Dense(width, W_std = alpha W_std, b_std = alpha b_std))), FanInSum``, then the readout
    ``Dense(out_dim, W_std = out_std)`` of the stream: ``(init_fn, apply_fn, kernel_fn)``.
    ``residual``: ``alpha > 0``, or ``"a/sqrt(L)"`` for ``alpha = a / sqrt(depth)``. The other
    arguments, and the errors, are those of :func:`stax_mlp`; ``kernel_fn`` agrees with
    :func:`ntkdepth.kernels.kernel_fn` with ``residual`` (docs/residual.md).
    """
    from ntkdepth.kernels.residual import residual_alpha

    stax_mlp(1, width, W_std=W_std, b_std=b_std, parameterization=parameterization, out_dim=out_dim,
             out_std=out_std, activation=activation)  # the same checks, before any block is built
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
    if residual is None:
        raise ValueError("stax_residual_mlp needs residual=alpha (> 0) or 'a/sqrt(L)'; the plain network is stax_mlp")
    alpha = residual_alpha(residual, int(depth))
    from ntkdepth.kernels.activations import activation as as_activation

    nonlinearity = as_activation(activation).stax
    stax = load().stax
    W_std, b_std = float(W_std), float(b_std)
    out_std = W_std if out_std is None else float(out_std)

    def bias(scale):
        return None if b_std == 0 else scale * b_std

    def block():
        branch = stax.serial(nonlinearity(), stax.Dense(int(width), W_std=alpha * W_std, b_std=bias(alpha),
                                                        parameterization=parameterization))
        return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())

    first = stax.Dense(int(width), W_std=W_std, b_std=bias(1.0), parameterization=parameterization)
    readout = stax.Dense(int(out_dim), W_std=out_std, b_std=bias(1.0), parameterization=parameterization)
    return stax.serial(first, *[block() for _ in range(int(depth) - 1)], readout)


def self_check() -> str:
    """Checks the bridge on the running JAX; returns a one-line report or raises.

    ``stax_mlp``'s ``kernel_fn`` must agree with :func:`relu_kernel_trace` to
    1e-10 (float64) for depths 1..6 with and without bias, ``predict`` must
    interpolate the training targets at ``t = inf``, and neither TensorFlow
    nor tf2jax may have been imported.
    """
    import jax
    import numpy as np

    from ntkdepth.kernels.relu import relu_kernel_trace

    nt = load()
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x1, x2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
        worst = 0.0
        for b_std in (0.0, 0.1):
            trace = relu_kernel_trace(x1, x2, depth=6, W_std=1.3, b_std=b_std)
            for depth in range(1, 7):
                k = stax_mlp(depth, 8, W_std=1.3, b_std=b_std)[2](x1, x2, ("nngp", "ntk"))
                for ours, theirs in ((trace.ntk[depth - 1], k.ntk), (trace.nngp[depth - 1], k.nngp)):
                    err = np.max(np.abs(np.asarray(ours) - theirs) / np.abs(np.asarray(theirs)))
                    worst = max(worst, float(err))
        if not worst < 1e-10:
            raise AssertionError(f"stax kernel differs from relu_kernel_trace by {worst:.2e}")
        k_train = relu_kernel_trace(x1, depth=4, layers=[4], get=("ntk",)).ntk[0]
        y = rng.normal(size=(5, 1))
        fit = nt.predict.gradient_descent_mse(k_train, y, learning_rate=y.size)(None, np.zeros_like(y))
        if not np.allclose(fit, y, atol=1e-8):
            raise AssertionError("predict.gradient_descent_mse does not interpolate at t = inf")
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tf2jax"})
    if loaded:
        raise AssertionError(f"imported {loaded}")
    return (
        f"bridge OK: jax {jax.__version__}, neural-tangents {nt.__version__}, "
        f"Python {sys.version.split()[0]}, max kernel difference {worst:.1e}, no TensorFlow"
    )
