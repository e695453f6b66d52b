"""Infinite-width drift of the hidden layers under gradient flow (``docs/drift.md``).

The paper's Table 1 shows that the last hidden layer ``a^{L-1}`` of a wide
network at NTK parameterization moves by an amount that does not vanish with
width, while every single unit's movement does. This package computes that
movement exactly in the infinite-width limit, from kernels alone. The
derivation is in ``docs/drift.md``; in short, for the network of
``docs/networks.md`` (ReLU, ``depth = L`` weight layers, weight scale ``s = W_std`` in
layers ``1..L-1``, ``s_out`` in the last one, bias scale ``b_std``), trained
by gradient flow on ``1/2 sum_j w_j |f(x_j) - y_j|^2`` for a time ``t``:

    |a^m_t(x) - a^m_0(x)|^2  ->  sum_k R_k^T D^m(x) R_k            (each hidden layer m)

    R   = int_0^t W r(s) ds = W^{1/2} A^{-1} (I - exp(-t A)) W^{1/2} r(0),
          A = W^{1/2} Theta^L W^{1/2},  W = diag(w),  r(0) = f_0(X) - Y   ([N, K])
    D^m_{jj'}(x) = T^m(x, x_j, x_j') B^m_{jj'} Theta^m(x, x_j) Theta^m(x, x_j')
                   + (s^2 / 2) D^{m-1}_{jj'}(x),                    D^0 = 0
    B^{L-1} = s_out^2,   B^{m-1}_{jj'} = s^2 P_m(x_j, x_j') B^m_{jj'}

with the Gaussian orthant probabilities of ``h^m ~ N(0, Sigma^m)``

    P_m(a, b)    = E[phi'(h^m(a)) phi'(h^m(b))] = (pi - arccos rho_ab) / (2 pi)
    T^m(a, b, c) = E[phi'(h^m(a)) phi'(h^m(b)) phi'(h^m(c))]
                 = 1/8 + (asin rho_ab + asin rho_ac + asin rho_bc) / (4 pi)

(``rho`` the layer-m correlations). Averaged over initializations,
``f_0(X) ~ N(0, Sigma^L)`` independently over the K outputs, and the mean is
``sum_k trace(G (Sigma^L + y_k y_k^T) G D^m(x))`` with ``R = G r(0)``.
For depth 3 it reduces to the two-hidden-layer formula (``docs/drift.md``,
section "Depth 3").

Per unit (last hidden layer): half of the units (``phi'(h_i(x)) = 0``) do not
move in the limit; the other half move by ``n^{-1/2}`` times a Gaussian scale
mixture, computed here by Monte Carlo over the unit's sign pattern on the
training inputs (:func:`per_unit_drift_statistics`).

Modules: :mod:`.aggregate` (the drift of a layer), :mod:`.units` (the law of
one unit's drift), :mod:`.onehot` (one-hot inputs), on the shared kernels and
training dynamics of :mod:`.kernels` and the checks of :mod:`.validation`.

Public functions:

- :func:`drift_prediction`: ``[T, n_eval]`` predicted ``|a_t(x) - a_0(x)|^2``.
- :func:`drift_norm_prediction`: its square root.
- :func:`per_unit_drift_statistics`: mean, second moment, quantiles and the
  expected maximum of ``sqrt(n) |a_{t,i}(x) - a_{0,i}(x)|`` over units.
- :func:`onehot_drift_prediction`: the one-hot (skip-gram, Table 1) setting,
  using the symmetry of one-hot kernels for vocabularies of thousands.
- :func:`onehot_drift_measures`: the limits of Table 1's measured drifts (aggregate,
  per-unit mean and expected maximum at given widths) in that setting.
- :func:`residual_integral_map`: the matrix ``G`` that maps ``r(0)`` to ``R``.
"""

from __future__ import annotations

from ntkdepth.theory.drift.aggregate import drift_norm_prediction, drift_prediction
from ntkdepth.theory.drift.kernels import residual_integral_map
from ntkdepth.theory.drift.onehot import onehot_drift_measures, onehot_drift_prediction
from ntkdepth.theory.drift.units import UnitDriftStatistics, per_unit_drift_statistics

__all__ = [
    "UnitDriftStatistics",
    "drift_prediction",
    "drift_norm_prediction",
    "onehot_drift_measures",
    "onehot_drift_prediction",
    "per_unit_drift_statistics",
    "residual_integral_map",
]
