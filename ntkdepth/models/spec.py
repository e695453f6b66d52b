"""One description of a fully-connected network, :class:`NetworkSpec`: its Flax model, its
infinite-width kernels and its neural-tangents layers (docs/networks.md#one-description-networkspec).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ntkdepth.kernels.activations import Activation
from ntkdepth.kernels.activations import activation as as_activation
from ntkdepth.kernels.residual import check_residual, residual_alpha
from ntkdepth.models.mlp import PARAMETERIZATIONS

__all__ = ["NetworkSpec", "network_arguments"]

def _integer(value, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _scale(value, name: str, positive: bool) -> float:
    low = "> 0" if positive else ">= 0"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number {low}; got {value!r}") from None
    if isinstance(value, (bool, np.bool_)) or not math.isfinite(number) or (
        number <= 0 if positive else number < 0
    ):
        raise ValueError(f"{name} must be a finite number {low}; got {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A fully-connected network apart from its widths (docs/networks.md).

    Attributes:
      depth: ``L``, the number of weight layers (``L - 1`` hidden layers); an
        integer >= 1.
      W_std: weight scale ``s`` of layers ``1 .. L-1``, finite and > 0.
      b_std: bias scale of every layer, finite and >= 0 (0: no biases).
      out_std: weight scale of the output layer ``L``, finite and > 0;
        ``None`` (the default) stands for ``W_std`` and is stored as its value.
      parameterization: ``"ntk"`` (the paper's), ``"standard"`` or ``"mup"``.
      activation: a name of :data:`ntkdepth.kernels.ACTIVATION_NAMES` (default
        ``"relu"``) or an :class:`~ntkdepth.kernels.Activation` with its parameters
        (``activation("leaky_relu", slope=0.2)``); every one has exact kernels.
      residual: ``None`` (the plain network), or the branch scale of a residual
        network (:class:`~ntkdepth.models.ResidualMLP`): a number ``alpha > 0`` or
        the text ``"a/sqrt(L)"`` (``alpha = a / sqrt(depth)``, following
        :meth:`replace`'s depth); docs/residual.md.

    Instances are immutable, hashable and compare by value; :meth:`replace`
    returns a checked copy with some fields changed, and
    ``dataclasses.asdict(spec)`` a plain dict of the seven fields.
    """

    depth: int
    W_std: float = math.sqrt(2.0)
    b_std: float = 0.0
    out_std: float | None = None
    parameterization: str = "ntk"
    activation: str | Activation = "relu"
    residual: float | str | None = None

    def __post_init__(self):
        depth = _integer(self.depth, "depth", 1)
        W_std = _scale(self.W_std, "W_std", positive=True)
        b_std = _scale(self.b_std, "b_std", positive=False)
        out_std = W_std if self.out_std is None else _scale(self.out_std, "out_std", positive=True)
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {self.parameterization!r}; choose one of {PARAMETERIZATIONS}"
            )
        if isinstance(self.activation, str) or isinstance(self.activation, Activation):
            as_activation(self.activation)  # an unknown name is an error naming the known ones
        else:
            raise ValueError(f"activation must be a name or an ntkdepth.kernels.Activation; got {self.activation!r}")
        residual = check_residual(self.residual)
        for name, value in (("depth", depth), ("W_std", W_std), ("b_std", b_std), ("out_std", out_std),
                            ("residual", residual)):
            object.__setattr__(self, name, value)

    @property
    def alpha(self) -> float | None:
        """The residual branch scale at this depth (``None`` for the plain network)."""
        return residual_alpha(self.residual, self.depth)

    def replace(self, **changes) -> NetworkSpec:
        """A copy with ``changes`` applied (and checked), e.g. ``spec.replace(depth=5)``."""
        if "W_std" in changes and "out_std" not in changes and self.out_std == self.W_std:
            changes["out_std"] = None  # an output scale that followed W_std keeps following it
        return dataclasses.replace(self, **changes)

    # -- the finite network ---------------------------------------------------

    def model(self, in_dim: int, width: int, out_dim: int = 1, *, rngs, tokens: bool = False,
              **options):
        """The Flax NNX :class:`ntkdepth.models.MLP` of this spec at hidden width ``width``.

        ``MLP(in_dim, [width] * (depth - 1), out_dim, ...)`` with the spec's
        scales, parameterization and activation; with ``residual``,
        ``ResidualMLP(in_dim, width, depth, out_dim, residual=...)``. ``rngs``: an ``nnx.Rngs`` or
        an int seed. ``tokens``: integer token inputs in ``[0, in_dim)``.
        ``options``: the other keywords of ``MLP`` (``input_scale``,
        ``base_width``, ``param_dtype``, ``precision``); the spec's own fields
        cannot be overridden here (use :meth:`replace`).

        ``model(x) -> (f [b, out_dim], features [b, width])``.
        """
        if self.residual is None and self.depth < 2:
            raise ValueError(
                "NetworkSpec.model needs depth >= 2 (an MLP has at least one hidden layer); depth=1 "
                "is the linear model, whose kernels NetworkSpec.kernel_fn() gives"
            )
        fixed = {f.name for f in dataclasses.fields(self)} & set(options)
        if fixed:
            raise TypeError(
                f"{sorted(fixed)} belong to the spec: use spec.replace(...) instead of passing them "
                "to NetworkSpec.model"
            )
        from ntkdepth.models.mlp import MLP

        width = _integer(width, "width", 1)
        if self.residual is not None:
            from ntkdepth.models.residual import ResidualMLP

            return ResidualMLP(
                in_dim, width, self.depth, out_dim, residual=self.residual,
                parameterization=self.parameterization, W_std=self.W_std, b_std=self.b_std,
                out_std=self.out_std, activation=self.activation, tokens=tokens, rngs=rngs, **options,
            )
        return MLP(
            in_dim, [width] * (self.depth - 1), out_dim,
            parameterization=self.parameterization, W_std=self.W_std, b_std=self.b_std,
            out_std=self.out_std, activation=self.activation, tokens=tokens, rngs=rngs, **options,
        )

    # -- the infinite-width kernels ---------------------------------------------

    def kernel_fn(self, *, dtype=None, method: str = "auto"):
        """The analytic kernels of the network's output, in neural-tangents' call style.

        Returns ``kernel_fn(x1, x2=None, get=("nngp", "ntk"), *, dtype=...)``:
        with a string ``get`` one ``[n1, n2]`` kernel, with a tuple a named
        tuple of them (fields of :data:`ntkdepth.kernels.KERNEL_FIELDS`).
        ``nngp`` is the limit of the output's covariance at initialization and
        ``ntk`` the limit of the network's empirical NTK as every hidden width
        grows. ``dtype`` and ``method`` as in
        :func:`ntkdepth.kernels.relu_kernel_trace`.

        Raises ``ValueError`` for muP (its
        output kernels vanish as the width grows; at ``base_width`` the network
        is ``spec.replace(parameterization="ntk")``), and, when the call asks
        for an NTK field, for the standard parameterization (its NTK grows with
        the width: ``spec.stax(width)`` gives it at a width); for ``rho`` or
        ``ntk_normalized`` when ``out_std != W_std`` with a bias.
        """
        if self.parameterization == "mup":
            raise ValueError(
                "a muP network has no infinite-width kernel: its output multiplier "
                "out_std * sqrt(base_width) / width sends the output's covariance to 0 as the width "
                "grows. At width = base_width it is the NTK network: use "
                "spec.replace(parameterization='ntk').kernel_fn()"
            )
        from ntkdepth.kernels.trace import kernel_fn as activation_kernel_fn

        inner = activation_kernel_fn(self.depth, self.activation, self.W_std, self.b_std, out_std=self.out_std,
                                     dtype=dtype, method=method, residual=self.residual)
        if self.parameterization == "ntk":
            return inner
        default_dtype = dtype

        def kernel_fn(x1, x2=None, get=("nngp", "ntk"), *, dtype=default_dtype):
            fields = (get,) if isinstance(get, str) else tuple(get)
            if {"ntk", "ntk_normalized"} & set(fields):
                raise ValueError(
                    "at standard parameterization the NTK grows with the width and has no "
                    "infinite-width limit: ask for get='nngp' (the same as at NTK parameterization), "
                    "use spec.stax(width) for the NTK at a given width, or "
                    "spec.replace(parameterization='ntk')"
                )
            return inner(x1, x2, get, dtype=dtype)

        kernel_fn.__doc__ = inner.__doc__
        return kernel_fn

    def stax(self, width: int, out_dim: int = 1):
        """The network as neural-tangents layers: ``(init_fn, apply_fn, kernel_fn)``.

        Through :func:`ntkdepth.kernels.stax_mlp`: ``depth - 1`` hidden layers
        of ``width`` units with neural-tangents' own layer for the activation,
        and a readout of ``out_dim`` units with scale ``out_std``. At NTK
        parameterization its ``kernel_fn`` equals :meth:`kernel_fn`; at
        standard parameterization its NTK is that of the finite-width network
        (Sohl-Dickstein et al. 2020) and depends on ``width``. muP raises
        ``ValueError``, and so does an activation neural-tangents has no layer
        for (tanh, silu, softplus, a custom function): its kernels are
        :meth:`kernel_fn`'s. With ``residual``, through
        :func:`ntkdepth.kernels.stax_residual_mlp` (blocks of ``FanOut``,
        ``parallel`` and ``FanInSum``).
        """
        if self.parameterization == "mup":
            raise ValueError(
                "neural-tangents' stax has no muP parameterization; use parameterization='ntk' or "
                "'standard'"
            )
        from ntkdepth.kernels.stax_layers import stax_mlp, stax_residual_mlp

        if self.residual is not None:
            return stax_residual_mlp(self.depth, width, self.alpha, W_std=self.W_std, b_std=self.b_std,
                                     parameterization=self.parameterization, out_dim=out_dim,
                                     out_std=self.out_std, activation=self.activation)
        return stax_mlp(self.depth, width, W_std=self.W_std, b_std=self.b_std,
                        parameterization=self.parameterization, out_dim=out_dim, out_std=self.out_std,
                        activation=self.activation)


def network_arguments(spec, *, depth=None, W_std=None, b_std=None, out_std=None, activation=None,
                      purpose: str) -> tuple[int, float, float, float | None, str | Activation]:
    """``(depth, W_std, b_std, out_std, activation)`` from a spec or from the keyword form, never both.

    For the theory of networks at NTK parameterization (``purpose`` names it in
    errors); which activations a theory covers is the caller's to check. Without
    ``spec`` the keywords are returned as given, with ``W_std`` defaulting to
    ``sqrt(2)``, ``b_std`` to 0 and ``activation`` to ``"relu"`` (``out_std``
    stays ``None``: the caller's default, ``W_std``); ``depth`` is then required.
    """
    given = [name for name, value in (("depth", depth), ("W_std", W_std), ("b_std", b_std),
                                       ("out_std", out_std), ("activation", activation)) if value is not None]
    if spec is None:
        if depth is None:
            raise ValueError(f"{purpose} needs the network: pass spec=NetworkSpec(...) or depth=")
        return (depth, math.sqrt(2.0) if W_std is None else W_std, 0.0 if b_std is None else b_std, out_std,
                "relu" if activation is None else activation)
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"spec must be a NetworkSpec; got {type(spec).__name__}")
    if given:
        raise ValueError(
            f"{purpose}: pass the network either as spec= or as {', '.join(g + '=' for g in given)}, not both "
            "(spec.replace(...) changes a field)"
        )
    if spec.parameterization != "ntk" or spec.residual is not None:
        wrong = [f"{name}={value!r}" for name, value, ok in
                 (("parameterization", spec.parameterization, spec.parameterization == "ntk"),
                  ("residual", spec.residual, spec.residual is None)) if not ok]
        raise ValueError(
            f"{purpose} covers plain networks at NTK parameterization; got {', '.join(wrong)} "
            "(spec.replace(parameterization='ntk', residual=None) gives the plain network)"
        )
    return spec.depth, spec.W_std, spec.b_std, spec.out_std, spec.activation
