"""Writes tests/data/activation_oracle.json: high-precision references for activations without closed forms.

Run once (about half an hour): ``./uvrun python tests/make_activation_oracle.py``. Independent of ntkdepth's
float64 code: every number comes from mpmath at 50 digits.

- ``expectations``: ``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` for a few variances and
  correlations (``rho`` down to ``1 - 1e-10``), by a two-dimensional composite Gauss-Legendre rule
  on [-16, 16]^2 (64 panels of 12 nodes a side), checked against 6 nodes a panel.
- ``recursions``: at the variance fixed point ``q*`` of each setting (inputs of one norm, so every
  layer has the same ``q*``), ``rho_l`` and ``Thetabar^l`` at depths up to 1,000 from several
  ``rho_1``. The layer map is Mehler's series with the Hermite coefficients ``a_k(q*)`` integrated
  by composite Gauss-Legendre quadrature at 50 digits (checked against a rule of twice as many
  panels), summed to a tail below 1e-30.
"""

from __future__ import annotations

import json
from pathlib import Path

import mpmath as mp

mp.mp.dps = 50
OUT = Path(__file__).resolve().parent / "data" / "activation_oracle.json"


def sigmoid(x):
    return 1 / (1 + mp.exp(-x))


ACTIVATIONS = {
    "tanh": (mp.tanh, lambda x: 1 / mp.cosh(x) ** 2),
    "silu": (lambda x: x * sigmoid(x), lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x)))),
    "softplus": (lambda x: mp.log1p(mp.exp(x)) if x < 30 else x + mp.log1p(mp.exp(-x)), sigmoid),
}


def expectation(f, q1, q2, rho, rule):
    """E[f(u) f(v)], u = sqrt(q1) z1, v = sqrt(q2)(rho z1 + sqrt(1-rho^2) z2), by the product of a
    composite Gauss-Legendre rule with itself (the integrand is analytic in z1 and z2)."""
    nodes, weights = rule
    s = mp.sqrt(1 - rho * rho)
    a, b = mp.sqrt(q1), mp.sqrt(q2)
    total = mp.mpf(0)
    for z1, w1 in zip(nodes, weights):
        inner = mp.fsum(w2 * f(b * (rho * z1 + s * z2)) for z2, w2 in zip(nodes, weights))
        total += w1 * f(a * z1) * inner
    return total


def legendre_rule(panels: int, degree: int = 3, half_width: float = 40.0):
    """Composite Gauss-Legendre nodes and weights on [-half_width, half_width] for E[g(z)], z ~ N(0, 1)
    (3 * 2^(degree - 1) nodes a panel)."""
    nodes, weights = [], []
    x, w = zip(*mp.calculus.quadrature.GaussLegendre(mp.mp).calc_nodes(degree, mp.mp.prec))
    x, w = list(x), list(w)
    width = mp.mpf(2 * half_width) / panels
    for p in range(panels):
        a = -half_width + p * width
        for xi, wi in zip(x, w):
            z = a + (xi + 1) * width / 2
            nodes.append(z)
            weights.append(wi * width / 2 * mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi))
    return nodes, weights


def hermite_coefficients(f, q, terms, rule):
    """a_k(q) = E[f(sqrt(q) z) He_k(z)] / sqrt(k!), k = 0..terms, with one quadrature rule for all k."""
    nodes, weights = rule
    a = [mp.mpf(0)] * (terms + 1)
    for z, w in zip(nodes, weights):
        fz = f(mp.sqrt(q) * z) * w
        h_prev, h = mp.mpf(1), z
        a[0] += fz
        a[1] += fz * z
        for k in range(1, terms):
            h_prev, h = h, (z * h - mp.sqrt(k) * h_prev) / mp.sqrt(k + 1)
            a[k + 1] += fz * h
    return a


def fixed_point(f, W, b, rule):
    """q* = W^2 E[f(sqrt(q) z)^2] + b^2, by iteration (the settings below contract)."""
    nodes, weights = rule
    q = mp.mpf(1)
    for _ in range(2000):
        new = W * W * mp.fsum(w * f(mp.sqrt(q) * z) ** 2 for z, w in zip(nodes, weights)) + b * b
        if abs(new - q) < mp.mpf(10) ** -35:
            return new
        q = new
    raise RuntimeError("no fixed point")


def recursion(a, W, b, q, rho1, depths):
    """rho_l, Thetabar^l at the fixed point from rho_1 (Mehler's series with the coefficients a)."""
    m = mp.fsum(x * x for x in a)
    d = mp.fsum(k * x * x for k, x in enumerate(a))
    chi = W * W * d / q  # = W^2 md(q*) by Price's theorem
    rho, tbar, T = mp.mpf(rho1), mp.mpf(rho1), q
    out, want = {}, set(depths)
    for layer in range(1, max(depths) + 1):
        if layer in want:
            out[layer] = (rho, tbar)
        acc, dacc = mp.mpf(0), mp.mpf(0)
        for k in range(len(a) - 1, -1, -1):  # Horner for the series and its derivative in rho
            dacc = dacc * rho + acc
            acc = acc * rho + a[k] * a[k]
        kappa, delta = acc / m, dacc / d
        rho_next = (W * W * m * kappa + b * b) / q
        T_next = T * chi + q
        tbar = (T * chi * delta * tbar + q * rho_next) / T_next
        rho, T = rho_next, T_next
    return {str(k): [mp.nstr(v, 30) for v in out[k]] for k in sorted(out)}


def main():
    data = {"expectations": [], "recursions": []}
    plane, coarse = legendre_rule(64, 3, 16.0), legendre_rule(64, 2, 16.0)
    for name, (f, df) in ACTIVATIONS.items():
        for q1, q2, omr in ((1.0, 1.0, "0.7"), (2.0, 0.5, "1.7"), (1.5, 1.5, "1e-10")):
            q1m, q2m, rm = mp.mpf(q1), mp.mpf(q2), 1 - mp.mpf(omr)
            values = {}
            for key, g in (("phi_phi", f), ("dphi_dphi", df)):
                value = expectation(g, q1m, q2m, rm, plane)
                error = abs(value - expectation(g, q1m, q2m, rm, coarse))
                # Gauss-Legendre's error falls like r^(-2m) with m nodes a panel (r set by the
                # distance of tanh's poles): the 12-node rule's error is about the square of the
                # 6-node rule's, so a difference below 1e-8 leaves the former below 1e-16.
                assert error < mp.mpf(10) ** -8 * abs(value), (name, key, error)
                values[key] = mp.nstr(value, 30)
                values[key + "_coarse_difference"] = mp.nstr(error / abs(value), 3)
            data["expectations"].append({
                "activation": name, "q1": q1, "q2": q2, "one_minus_rho": mp.nstr(1 - rm, 30), **values})
            print(data["expectations"][-1], flush=True)
    rule, fine = legendre_rule(160, 5), legendre_rule(320, 5)
    settings = {"tanh": [(1.2, 0.1), (0.9, 0.2)], "silu": [(1.3, 0.3)], "softplus": [(1.1, 0.2)]}
    for name, cases in settings.items():
        f = ACTIVATIONS[name][0]
        for W, b in cases:
            W, b = mp.mpf(W), mp.mpf(b)
            q = fixed_point(f, W, b, rule)
            a = hermite_coefficients(f, q, 700, rule)
            check = hermite_coefficients(f, q, 700, fine)
            quad_error = max(abs(x - y) for x, y in zip(a, check))
            tail = mp.fsum(x * x for x in a[600:]) / mp.fsum(x * x for x in a)
            assert quad_error < mp.mpf(10) ** -30 and tail < mp.mpf(10) ** -30, (name, quad_error, tail)
            for rho1 in ("0.3", "-0.5", "0.9999999999"):
                data["recursions"].append({
                    "activation": name, "W_std": float(W), "b_std": float(b), "q_star": mp.nstr(q, 30),
                    "rho_1": rho1, "layers": recursion(a, W, b, q, mp.mpf(rho1), [1, 2, 3, 10, 100, 1000]),
                })
                print(name, float(W), float(b), rho1, "done", flush=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
