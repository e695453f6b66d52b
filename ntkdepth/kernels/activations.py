"""Elementwise activations: the function, its derivative, and the Gaussian expectations of both.

The layer recursion (docs/kernels.md#the-recursion) needs, for a centred Gaussian pair ``(u, v)``
with variances ``q1, q2`` and correlation ``rho``, the second moments ``m(q) = E[phi(u)^2]``,
``md(q) = E[phi'(u)^2]`` and the correlations ``kappa`` of ``phi(u), phi(v)`` and ``delta`` of
``phi'(u), phi'(v)``. Each :class:`Activation` gives them in closed form where one exists, else by
the Hermite expansion of :mod:`ntkdepth.kernels.gaussian` (docs/activations.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels import nt_bridge
from ntkdepth.kernels.angles import angle_from_correlation, arcsine, sine_from_correlation
from ntkdepth.kernels.gaussian import MehlerPlan, mehler_correlations, plan_terms, row_expansion

__all__ = [
    "ACTIVATION_NAMES",
    "ABRelu",
    "Activation",
    "Custom",
    "Erf",
    "Gelu",
    "Identity",
    "RectifiedMonomial",
    "Sign",
    "Silu",
    "Sin",
    "Softplus",
    "Tanh",
    "activation",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


class Activation:
    """An elementwise nonlinearity ``phi`` and the Gaussian expectations the kernels need.

    Subclasses are frozen dataclasses (hashable, compared by value) whose fields are the
    activation's parameters. ``degree`` is ``k`` for a positively homogeneous ``phi``
    (``phi(c x) = c^k phi(x)`` for ``c > 0``; the correlations then depend on ``rho`` alone), else
    ``None``. ``closed_form`` says whether the expectations are exact formulas or the Hermite
    expansion.
    """

    name: ClassVar[str] = ""
    degree: ClassVar[int | None] = None
    closed_form: ClassVar[bool] = True

    @property
    def passes_gradient(self) -> bool:
        """False where ``phi' = 0`` almost everywhere (step, sign): such a layer passes no NTK on."""
        return True

    @property
    def asymptote(self) -> Activation | None:
        """The positively homogeneous activation ``phi`` tends to at large scale (``phi(c x) / c`` as
        ``c -> inf``) where it grows linearly: ReLU for GELU, SiLU and softplus; else ``None``."""
        return None

    # -- the function -------------------------------------------------------------------------
    def __call__(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    def derivative(self, x: jax.Array) -> jax.Array:
        """``phi'(x)`` (almost everywhere; 0 where ``phi`` is piecewise constant)."""
        raise NotImplementedError

    # -- the expectations ---------------------------------------------------------------------
    def plan(self, q_values, dtype) -> MehlerPlan | None:
        """What the Hermite expansion needs for these variances (``None`` for a closed form)."""
        return None

    def rows(self, lq: jax.Array, plan: MehlerPlan | None) -> dict:
        """Per-input quantities at ``q = exp(lq)`` (``[n]``): at least ``lm = log m(q)`` and
        ``lmd = log md(q)`` (``-inf`` where ``phi'`` is 0 almost everywhere)."""
        raise NotImplementedError

    def correlations(self, r1: dict, r2: dict | None, rho: jax.Array,
                     reach: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """``(kappa, delta)``, shaped like ``rho``, from per-input quantities (:meth:`rows`) that
        broadcast against ``rho`` (``[n1, 1]`` and ``[1, n2]`` for a kernel matrix, or ``rho``'s
        own shape for matching pairs) and the correlation ``rho``. ``r2 = None`` (an activation without
        a closed form): ``r1``'s inputs against themselves (``rho [n, n]``, ``r1`` as ``[n, 1]``).
        ``reach``: a bound on ``|rho|`` over the entries that are used (``None``: 1), which lets a
        series stop early (docs/activations.md#hermite-expansion)."""
        raise NotImplementedError

    # -- neural-tangents ------------------------------------------------------------------------
    def stax(self):
        """The neural-tangents layer of this activation; ``ValueError`` where it has none."""
        raise ValueError(
            f"neural-tangents has no closed-form layer for {self.label}; its kernels are "
            "ntkdepth's own (ntkdepth.kernels.kernel_fn, NetworkSpec.kernel_fn)"
        )

    @property
    def odd(self) -> bool:
        """Whether ``phi(-x) = -phi(x)``: without bias an opposite pair (``x' = -x``) then stays
        opposite at every layer, and the layer loop keeps ``rho = Thetabar = -1`` exactly
        (docs/activations.md#accuracy)."""
        return False

    @property
    def label(self) -> str:
        """``name`` with the parameters that differ from their defaults, e.g. ``leaky_relu(slope=0.2)``."""
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if f.name != "fn" and f.name != "dfn" and getattr(self, f.name) != f.default]
        return self.name + (f"({', '.join(changed)})" if changed else "")


def _angle(rho):
    return angle_from_correlation(rho), sine_from_correlation(rho)


# ---------------------------------------------------------------------------------------------
# Positively homogeneous activations: the correlations are functions of rho alone.


class _Homogeneous(Activation):
    """``phi(c x) = c^degree phi(x)``: ``m(q) = m1 q^degree``, ``md(q) = md1 q^(degree - 1)``."""

    def _moments(self) -> tuple[float, float]:
        """``(m1, md1)``: the second moments of ``phi(z)`` and ``phi'(z)`` for ``z ~ N(0, 1)``."""
        raise NotImplementedError

    def _pair(self, rho) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    @property
    def passes_gradient(self) -> bool:
        return self._moments()[1] > 0

    def rows(self, lq, plan):
        m1, md1 = self._moments()
        k = self.degree
        lmd = (math.log(md1) + (k - 1) * lq) if md1 > 0 else jnp.full_like(lq, -jnp.inf)
        return dict(lm=math.log(m1) + k * lq, lmd=lmd)

    def correlations(self, r1, r2, rho, reach=None):
        return self._pair(rho)


@dataclasses.dataclass(frozen=True)
class ABRelu(_Homogeneous):
    """``phi(x) = a min(x, 0) + b max(x, 0)``: ReLU (``a = 0, b = 1``), leaky ReLU, ``|x|`` (``a = -1``)."""

    a: float = 0.0
    b: float = 1.0
    name: ClassVar[str] = "abrelu"
    degree: ClassVar[int] = 1

    @property
    def odd(self) -> bool:
        return self.a == self.b

    def __post_init__(self):
        for f in ("a", "b"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{self.name}: {f} must be a finite number; got {v!r}")
        if self.a == 0 and self.b == 0:
            raise ValueError(f"{self.name}: a = b = 0 is the zero function")

    @property
    def asymptote(self):
        return self

    def __call__(self, x):
        return self.a * jnp.minimum(x, 0) + self.b * jnp.maximum(x, 0)

    def derivative(self, x):
        return jnp.where(x > 0, self.b, self.a) * jnp.ones_like(x)

    def _moments(self):
        m = (self.a**2 + self.b**2) / 2.0
        return m, m

    def _pair(self, rho):
        t, sin_t = _angle(rho)
        m = (self.a**2 + self.b**2) / 2.0
        c = (self.a - self.b) ** 2 / (2.0 * jnp.pi)
        delta = 1.0 - c * t / m
        kappa = (c * sin_t + (m - c * t) * rho) / m
        return kappa, delta

    def stax(self):
        return nt_bridge.stax.ABRelu(self.a, self.b)

    @property
    def label(self):
        for name, (a, b) in (("relu", (0.0, 1.0)), ("abs", (-1.0, 1.0))):
            if (self.a, self.b) == (a, b):
                return name
        if self.b == 1.0:
            return f"leaky_relu(slope={self.a!r})"
        return f"abrelu(a={self.a!r}, b={self.b!r})"


@dataclasses.dataclass(frozen=True)
class Identity(_Homogeneous):
    """``phi(x) = x``: the network is linear and every layer keeps the correlation."""

    name: ClassVar[str] = "identity"
    degree: ClassVar[int] = 1
    odd: ClassVar[bool] = True

    def __call__(self, x):
        return x

    def derivative(self, x):
        return jnp.ones_like(x)

    def _moments(self):
        return 1.0, 1.0

    def _pair(self, rho):
        return rho, jnp.ones_like(rho)

    def stax(self):
        return nt_bridge.stax.Identity()


def _arccos_kernels(t, sin_t, degree: int) -> list:
    """``[J_0, ..., J_degree]`` (Cho & Saul 2009): ``J_n = (2n - 1) cos t J_{n-1} + (n - 1)^2 sin^2 t J_{n-2}``."""
    cos_t = jnp.cos(t)
    J = [jnp.pi - t]
    if degree >= 1:
        J.append(sin_t + (jnp.pi - t) * cos_t)
    for n in range(2, degree + 1):
        J.append((2 * n - 1) * cos_t * J[n - 1] + (n - 1) ** 2 * sin_t * sin_t * J[n - 2])
    return J


@dataclasses.dataclass(frozen=True)
class RectifiedMonomial(_Homogeneous):
    """``phi(x) = max(x, 0)^degree`` (the arc-cosine kernels of Cho & Saul 2009); degree 0 is the step."""

    power: int = 2
    name: ClassVar[str] = "relu_power"

    def __post_init__(self):
        if isinstance(self.power, bool) or not isinstance(self.power, (int, np.integer)) or not 0 <= self.power <= 8:
            raise ValueError(f"relu_power: power must be an integer in 0..8; got {self.power!r}")

    @property
    def degree(self):  # type: ignore[override]
        return int(self.power)

    def __call__(self, x):
        return jnp.where(x > 0, jnp.maximum(x, 0) ** self.power, 0.0) if self.power else (x > 0).astype(x.dtype)

    def derivative(self, x):
        if self.power == 0:
            return jnp.zeros_like(x)
        return jnp.where(x > 0, self.power * jnp.maximum(x, 0) ** (self.power - 1), 0.0)

    def _moments(self):
        k = self.power
        m = _double_factorial(2 * k - 1) / 2.0
        md = k * k * _double_factorial(2 * k - 3) / 2.0 if k >= 1 else 0.0
        return m, md

    def _pair(self, rho):
        t, sin_t = _angle(rho)
        k = self.power
        J = _arccos_kernels(t, sin_t, k)
        kappa = J[k] / (math.pi * _double_factorial(2 * k - 1))
        delta = J[k - 1] / (math.pi * _double_factorial(2 * k - 3)) if k >= 1 else jnp.zeros_like(rho)
        return kappa, delta

    def stax(self):
        return nt_bridge.stax.RectifiedMonomial(int(self.power))

    @property
    def label(self):
        return "step" if self.power == 0 else f"relu_power(power={self.power})"


@dataclasses.dataclass(frozen=True)
class Sign(_Homogeneous):
    """``phi(x) = sign(x)``; its derivative is 0 almost everywhere, so its layer passes no NTK on."""

    name: ClassVar[str] = "sign"
    degree: ClassVar[int] = 0
    odd: ClassVar[bool] = True

    def __call__(self, x):
        return jnp.sign(x)

    def derivative(self, x):
        return jnp.zeros_like(x)

    def _moments(self):
        return 1.0, 0.0

    def _pair(self, rho):
        # (2/pi) asin(rho) = 1 - 2 arccos(rho) / pi: the arcsine keeps small correlations' digits, the
        # angle (from 1 - |rho|) keeps +-1 exact, where the map's slope is infinite.
        rho = jnp.clip(rho, -1.0, 1.0)
        near_one = 1.0 - 2.0 * angle_from_correlation(jnp.abs(rho)) / jnp.pi
        small = jnp.abs(rho) < 0.5
        kappa = jnp.where(small, (2.0 / jnp.pi) * arcsine(jnp.where(small, rho, 0.0)), jnp.sign(rho) * near_one)
        return kappa, jnp.zeros_like(rho)

    def stax(self):
        return nt_bridge.stax.Sign()


# ---------------------------------------------------------------------------------------------
# Closed forms that depend on the variances.


def _check_numbers(owner: str, **values):
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise ValueError(f"{owner}: {name} must be a finite number; got {v!r}")


@dataclasses.dataclass(frozen=True)
class Erf(Activation):
    """``phi(x) = a erf(b x) + c`` (Williams 1997): ``E[erf(b u) erf(b v)] = (2/pi) asin(rho sqrt(A1 A2))``,
    ``A = 2 b^2 q / (1 + 2 b^2 q)``."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0
    name: ClassVar[str] = "erf"

    @property
    def odd(self) -> bool:
        return self.c == 0.0

    def __post_init__(self):
        _check_numbers("erf", a=self.a, b=self.b, c=self.c)
        if self.a == 0 or self.b == 0:
            raise ValueError("erf: a and b must be nonzero (else phi is constant)")

    def __call__(self, x):
        return self.a * jax.scipy.special.erf(self.b * x) + self.c

    def derivative(self, x):
        return self.a * self.b * (2.0 / math.sqrt(math.pi)) * jnp.exp(-(self.b * x) ** 2)

    def rows(self, lq, plan):
        s = math.log(2.0 * self.b**2) + lq  # log(2 b^2 q)
        A = jax.nn.sigmoid(s)  # 2 b^2 q / (1 + 2 b^2 q), accurate at both ends
        m = self.a**2 * (2.0 / jnp.pi) * jnp.arcsin(A) + self.c**2
        lmd = math.log(4.0 * self.a**2 * self.b**2 / math.pi) - 0.5 * jax.nn.softplus(s + math.log(2.0))
        one_minus_A2 = jax.nn.sigmoid(-s) * (1.0 + A)
        # Per input, the roots and reciprocals each pair would otherwise take (products per pair only).
        return dict(A=A, one_minus_A2=one_minus_A2, m=m, lm=jnp.log(m), lmd=lmd, root_A=jnp.sqrt(A),
                    quarter=jnp.sqrt(jnp.sqrt(one_minus_A2)), inv_root_m=jax.lax.rsqrt(m))

    def correlations(self, r1, r2, rho, reach=None):
        ra = jnp.clip(rho * (r1["root_A"] * r2["root_A"]), -1.0, 1.0)
        kappa = (self.a**2 * (2.0 / jnp.pi) * arcsine(ra) + self.c**2) * (
            r1["inv_root_m"] * r2["inv_root_m"])
        # E[phi' phi'] / sqrt(md md') = ((1 - A1^2)(1 - A2^2))^(1/4) / sqrt(1 - rho^2 A1 A2)
        delta = (r1["quarter"] * r2["quarter"]) / jnp.sqrt((1.0 - ra) * (1.0 + ra))
        return kappa, delta

    def stax(self):
        return nt_bridge.stax.Erf(self.a, self.b, self.c)


@dataclasses.dataclass(frozen=True)
class Gelu(Activation):
    """``phi(x) = x Phi(x)`` (exact GELU; Tsuchida et al. 2021 for its kernels)."""

    name: ClassVar[str] = "gelu"

    @property
    def asymptote(self):
        return ABRelu(0.0, 1.0)

    def __call__(self, x):
        return jax.nn.gelu(x, approximate=False)

    def derivative(self, x):
        return jax.scipy.stats.norm.cdf(x) + x * jnp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    @staticmethod
    def _raw(q1, q2, c, gap):
        """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for variances ``q1, q2`` and covariance ``c``, with
        ``gap = q1 q2 - c^2`` given by the caller (from the correlation, without cancellation)."""
        p, p1 = q1 * q2, (1.0 + q1) * (1.0 + q2)
        # (1 + q1)(1 + q2) - c^2, summed from its positive parts: subtracting c^2 from p1 would leave
        # rounding alone once q is large (zero or negative from q ~ 1e16, a NaN downstream).
        delta2 = 1.0 + q1 + q2 + gap
        delta = jnp.sqrt(delta2)
        angle = jnp.arctan2(c, delta)
        # (c^2 + p delta2) / (p1 delta) as two ratios below 1 times powers of delta: no q^4 to overflow.
        k = ((c * c / p1) / delta + (p / p1) * delta + c * angle) / (2.0 * jnp.pi) + 0.25 * c
        # (1 - p) / p1 + 1 = (2 + q1 + q2) / p1, which does not cancel at large q.
        kd = (c / delta / (2.0 * jnp.pi)) * (1.0 / delta2 + (2.0 + q1 + q2) / p1) + 0.25 + angle / (2.0 * jnp.pi)
        return k, kd

    def rows(self, lq, plan):
        q = jnp.exp(lq)
        m, md = self._raw(q, q, q, jnp.zeros_like(q))
        return dict(q=q, m=m, md=md, lm=jnp.log(m), lmd=jnp.log(md), root_q=jnp.sqrt(q),
                    inv_root_m=jax.lax.rsqrt(m), inv_root_md=jax.lax.rsqrt(md))

    def correlations(self, r1, r2, rho, reach=None):
        q1, q2 = r1["q"], r2["q"]
        gap = q1 * q2 * jnp.maximum((1.0 - rho) * (1.0 + rho), 0.0)
        k, kd = self._raw(q1, q2, rho * (r1["root_q"] * r2["root_q"]), gap)
        return k * (r1["inv_root_m"] * r2["inv_root_m"]), kd * (r1["inv_root_md"] * r2["inv_root_md"])

    def stax(self):
        return nt_bridge.stax.Gelu(approximate=False)


@dataclasses.dataclass(frozen=True)
class Sin(Activation):
    """``phi(x) = a sin(b x + c)``; ``cos`` is ``c = pi / 2``. ``E[sin(u) sin(v)] = e^{-(q1+q2)/2} sinh(cov)``."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0
    name: ClassVar[str] = "sin"

    @property
    def odd(self) -> bool:
        return self.c == 0.0

    def __post_init__(self):
        _check_numbers("sin", a=self.a, b=self.b, c=self.c)
        if self.a == 0 or self.b == 0:
            raise ValueError("sin: a and b must be nonzero (else phi is constant)")

    def __call__(self, x):
        return self.a * jnp.sin(self.b * x + self.c)

    def derivative(self, x):
        return self.a * self.b * jnp.cos(self.b * x + self.c)

    def _raw(self, q1, q2, cov):
        b2 = self.b**2
        s1 = jnp.exp(b2 * (cov - 0.5 * (q1 + q2)))
        s2 = jnp.exp(-b2 * (cov + 0.5 * (q1 + q2))) * math.cos(2.0 * self.c)
        h = self.a**2 / 2.0
        return h * (s1 - s2), h * b2 * (s1 + s2)

    def rows(self, lq, plan):
        q = jnp.exp(lq)
        m, md = self._raw(q, q, q)
        return dict(q=q, m=m, md=md, lm=jnp.log(m), lmd=jnp.log(md), root_q=jnp.sqrt(q),
                    inv_root_m=jax.lax.rsqrt(m), inv_root_md=jax.lax.rsqrt(md))

    def correlations(self, r1, r2, rho, reach=None):
        q1, q2 = r1["q"], r2["q"]
        k, kd = self._raw(q1, q2, rho * (r1["root_q"] * r2["root_q"]))
        return k * (r1["inv_root_m"] * r2["inv_root_m"]), kd * (r1["inv_root_md"] * r2["inv_root_md"])

    def stax(self):
        return nt_bridge.stax.Sin(self.a, self.b, self.c)

    @property
    def label(self):
        if self.c == math.pi / 2:
            rest = [f"{n}={v!r}" for n, v in (("a", self.a), ("b", self.b)) if v != 1.0]
            return "cos" + (f"({', '.join(rest)})" if rest else "")
        return super().label


# ---------------------------------------------------------------------------------------------
# No closed form: the Hermite expansion.


class _Expanded(Activation):
    """Expectations by the Hermite expansion (:mod:`ntkdepth.kernels.gaussian`)."""

    closed_form: ClassVar[bool] = False
    #: What the symmetry of ``phi`` spares the expansion (:func:`ntkdepth.kernels.gaussian.row_expansion`):
    #: ``"all"`` for an odd ``phi``, ``s`` where ``phi(x) - phi(-x) = 2 s x``, ``None`` for neither.
    odd_part: ClassVar[str | float | None] = None

    def plan(self, q_values, dtype):
        tol = float(np.finfo(dtype).eps) if np.dtype(dtype) == np.float64 else 1e-8
        return plan_terms(self._numpy_fn(), q_values, tol)

    def _numpy_fn(self) -> Callable:
        """``phi`` on float64 NumPy arrays (for planning and for tests)."""
        return lambda x: np.asarray(jax.device_get(self.__call__(jnp.asarray(x))), np.float64)

    def rows(self, lq, plan):
        if plan is None:
            raise ValueError(f"{self.label} needs a Hermite plan (Activation.plan)")
        return row_expansion(self.__call__, self.derivative, lq, plan, self.odd_part)

    def correlations(self, r1, r2, rho, reach=None):
        return mehler_correlations(r1, r2, rho, reach)

    @property
    def odd(self) -> bool:
        return self.odd_part == "all"


@dataclasses.dataclass(frozen=True)
class Tanh(_Expanded):
    """``phi(x) = tanh(x)``."""

    name: ClassVar[str] = "tanh"
    odd_part: ClassVar[str] = "all"

    def __call__(self, x):
        return jnp.tanh(x)

    def derivative(self, x):
        return 1.0 / jnp.cosh(x) ** 2

    def _numpy_fn(self):
        return np.tanh


@dataclasses.dataclass(frozen=True)
class Silu(_Expanded):
    """``phi(x) = x sigmoid(x)`` (SiLU, swish); ``phi(x) - phi(-x) = x``."""

    name: ClassVar[str] = "silu"
    odd_part: ClassVar[float] = 0.5

    @property
    def asymptote(self):
        return ABRelu(0.0, 1.0)

    def __call__(self, x):
        return jax.nn.silu(x)

    def derivative(self, x):
        s = jax.nn.sigmoid(x)
        return s * (1.0 + x * (1.0 - s))

    def _numpy_fn(self):
        from scipy.special import expit

        return lambda x: x * expit(x)


@dataclasses.dataclass(frozen=True)
class Softplus(_Expanded):
    """``phi(x) = log(1 + e^x)``; ``phi(x) - phi(-x) = x``."""

    name: ClassVar[str] = "softplus"
    odd_part: ClassVar[float] = 0.5

    @property
    def asymptote(self):
        return ABRelu(0.0, 1.0)

    def __call__(self, x):
        return jax.nn.softplus(x)

    def derivative(self, x):
        return jax.nn.sigmoid(x)

    def _numpy_fn(self):
        return lambda x: np.logaddexp(0.0, x)


@dataclasses.dataclass(frozen=True, eq=False)
class Custom(_Expanded):
    """A user's activation: ``fn`` (a JAX function, elementwise) and its derivative ``dfn``
    (default: ``jax.grad`` of ``fn``), through the Hermite expansion. Compared by identity."""

    fn: Callable[[jax.Array], jax.Array] = None
    dfn: Callable[[jax.Array], jax.Array] | None = None
    label_text: str = "custom"
    name: ClassVar[str] = "custom"

    def __post_init__(self):
        if not callable(self.fn):
            raise ValueError(f"a custom activation needs a callable fn; got {self.fn!r}")
        if self.dfn is not None and not callable(self.dfn):
            raise ValueError(f"the derivative dfn must be callable; got {self.dfn!r}")

    def __call__(self, x):
        return self.fn(x)

    def derivative(self, x):
        if self.dfn is not None:
            return self.dfn(x)
        return jnp.vectorize(jax.grad(lambda s: self.fn(s)))(x)

    @property
    def label(self):
        return self.label_text

    def __hash__(self):
        return id(self)


# ---------------------------------------------------------------------------------------------
# Names.

_FACTORIES: dict[str, Callable[..., Activation]] = {
    "relu": lambda: ABRelu(0.0, 1.0),
    "leaky_relu": lambda slope=0.01: ABRelu(float(slope), 1.0),
    "abrelu": lambda a=0.0, b=1.0: ABRelu(float(a), float(b)),
    "abs": lambda: ABRelu(-1.0, 1.0),
    "identity": Identity,
    "relu_power": lambda power=2: RectifiedMonomial(power),
    "step": lambda: RectifiedMonomial(0),
    "sign": Sign,
    "erf": lambda a=1.0, b=1.0, c=0.0: Erf(a, b, c),
    "gelu": Gelu,
    "sin": lambda a=1.0, b=1.0, c=0.0: Sin(a, b, c),
    "cos": lambda a=1.0, b=1.0, c=0.0: Sin(a, b, c + math.pi / 2),
    "tanh": Tanh,
    "silu": Silu,
    "swish": Silu,
    "softplus": Softplus,
}

#: The activation names :func:`activation` knows (parameters as keywords, e.g. ``leaky_relu(slope=0.2)``).
ACTIVATION_NAMES = tuple(_FACTORIES)


def activation(spec: Any, **params) -> Activation:
    """The :class:`Activation` named by ``spec``: an Activation (returned as is), a name from
    :data:`ACTIVATION_NAMES` with its parameters as keywords (``activation("leaky_relu", slope=0.2)``),
    or a callable (a :class:`Custom` activation whose derivative is found by ``jax.grad``)."""
    if isinstance(spec, Activation):
        if params:
            raise ValueError(f"parameters {sorted(params)} apply to a name, not to an Activation object")
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key not in _FACTORIES:
            import difflib

            near = difflib.get_close_matches(key, ACTIVATION_NAMES, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"unknown activation {spec!r}{hint}; choose one of {ACTIVATION_NAMES}, "
                             "or pass a function")
        try:
            return _FACTORIES[key](**params)
        except TypeError as err:
            raise ValueError(f"activation {spec!r}: {err}") from None
    if callable(spec):
        return Custom(spec, params.pop("derivative", None), params.pop("label", getattr(spec, "__name__", "custom")))
    raise ValueError(f"activation must be a name, an Activation or a function; got {spec!r}")
