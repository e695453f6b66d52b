"""Independent references for the kernel tests: the recursions in 40-digit arithmetic.

These follow docs/kernels.md literally (the naive recursion on correlations and raw
kernels, no angle tricks, no rescaling), in mpmath with 40 significant digits,
so that float64 rounding in ntkdepth can be measured against them.
"""

from __future__ import annotations

import numpy as np
from mpmath import mp, mpf

DIGITS = 40


def correlation_recursion(rho1: float, layers: list[int]) -> dict[str, np.ndarray]:
    """``rho_l``, ``1 - rho_l``, ``f'(rho_l)`` and ``Thetabar^l`` on the sphere (W^2 = 2, no bias).

    ``Thetabar^l = Theta^l / l`` with the raw NTK recursion
    ``Theta^{l+1} = Theta^l f'(rho_l) + f(rho_l)`` (unit diagonal kernels).
    """
    wanted = set(layers)
    out = {k: {} for k in ("rho", "one_minus_rho", "fprime", "ntk_normalized")}
    with mp.workdps(DIGITS):
        pi = mp.pi
        rho = mpf(rho1)
        theta = rho
        for ell in range(1, max(layers) + 1):
            if ell > 1:
                acos = mp.acos(rho)
                fprime = (pi - acos) / pi
                rho = (mp.sqrt(1 - rho * rho) + (pi - acos) * rho) / pi
                theta = theta * fprime + rho
            if ell in wanted:
                out["rho"][ell] = float(rho)
                out["one_minus_rho"][ell] = float(1 - rho)
                out["fprime"][ell] = float((pi - mp.acos(rho)) / pi)
                out["ntk_normalized"][ell] = float(theta / ell)
    return {k: np.array([v[l] for l in layers]) for k, v in out.items()}


def kernel_recursion(x1, x2, *, depth: int, W_std: float, b_std: float) -> dict[str, np.ndarray]:
    """``Sigma^l``, ``Theta^l``, ``rho_l`` and ``Thetabar^l`` for every pair, ``[depth, n1, n2]``.

    docs/kernels.md, "The recursion"; inputs of any norm, biases allowed.
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    n1, n2, n0 = x1.shape[0], x2.shape[0], x1.shape[1]
    shape = (depth, n1, n2)
    out = {k: np.zeros(shape) for k in ("nngp", "ntk", "rho", "ntk_normalized", "nngp_dot")}
    with mp.workdps(DIGITS):
        w2, b2, pi = mpf(W_std) ** 2, mpf(b_std) ** 2, mp.pi

        def dot(u, v):
            return mp.fsum(mpf(float(a)) * mpf(float(b)) for a, b in zip(u, v))

        def next_layer(s, qa, qb):
            rho = s / mp.sqrt(qa * qb)
            rho = min(max(rho, mpf(-1)), mpf(1))
            t = mp.acos(rho)
            e = mp.sqrt(qa * qb) / (2 * pi) * (mp.sin(t) + (pi - t) * mp.cos(t))
            return w2 * e + b2, w2 * (pi - t) / (2 * pi)

        for i in range(n1):
            for j in range(n2):
                qa = w2 / n0 * dot(x1[i], x1[i]) + b2
                qb = w2 / n0 * dot(x2[j], x2[j]) + b2
                s = w2 / n0 * dot(x1[i], x2[j]) + b2
                ta, tb, th = qa, qb, s
                sdot = mpf(0)
                for ell in range(1, depth + 1):
                    if ell > 1:
                        s, sdot = next_layer(s, qa, qb)
                        qa, _ = next_layer(qa, qa, qa)
                        qb, _ = next_layer(qb, qb, qb)
                        half = w2 / 2
                        th = th * sdot + s
                        ta = ta * half + qa
                        tb = tb * half + qb
                    out["nngp"][ell - 1, i, j] = float(s)
                    out["nngp_dot"][ell - 1, i, j] = float(sdot)
                    out["ntk"][ell - 1, i, j] = float(th)
                    out["rho"][ell - 1, i, j] = float(s / mp.sqrt(qa * qb))
                    out["ntk_normalized"][ell - 1, i, j] = float(th / mp.sqrt(ta * tb))
    return out


DEEP_STARTS = [-1.0, -1.0 + 1e-8, -0.9, -0.3, 0.0, 0.5, 0.9, 0.99, 1.0 - 1e-6, 1.0 - 1e-8,
               1.0 - 1e-12, 1.0]
DEEP_LAYERS = [1, 2, 3, 10, 100, 1000, 10_000, 100_000, 1_000_000]


def write_deep_oracle(path) -> None:
    """Writes :func:`correlation_recursion` at ``DEEP_STARTS`` x ``DEEP_LAYERS`` as JSON.

    Depth 1e6 in 40 digits takes about a minute per starting correlation, too
    long for the test suite, so the values are stored in
    ``tests/data/deep_oracle.json``; ``python tests/oracles.py`` rewrites it.
    """
    import json

    values = []
    for r in DEEP_STARTS:
        out = correlation_recursion(r, DEEP_LAYERS)
        values.append({k: v.tolist() for k, v in out.items()})
    payload = {"digits": DIGITS, "layers": DEEP_LAYERS, "rho1": DEEP_STARTS, "values": values}
    with open(path, "w") as fh:
        json.dump(payload, fh)


def read_deep_oracle(starts, layers, *, check_to: int = 1000) -> dict[float, dict[str, np.ndarray]]:
    """:func:`correlation_recursion` for each start in ``starts`` at ``layers``, read from
    ``tests/data/deep_oracle.json``; the layers up to ``check_to`` are recomputed here and must
    agree with the file, so the stored values are the recursion's own."""
    import json
    import pathlib

    stored = json.loads((pathlib.Path(__file__).parent / "data" / "deep_oracle.json").read_text())
    picked = [stored["layers"].index(l) for l in layers]
    out = {}
    for r in starts:
        values = stored["values"][stored["rho1"].index(r)]
        out[r] = {k: np.asarray(v)[picked] for k, v in values.items()}
        live_layers = [l for l in layers if l <= check_to]
        live = correlation_recursion(r, live_layers)
        for k, v in live.items():
            np.testing.assert_allclose(out[r][k][: len(live_layers)], v, rtol=1e-15, atol=0,
                                       err_msg=f"deep_oracle.json disagrees with the recursion ({r}, {k})")
    return out




def residual_recursion(x1, x2, *, layers: list[int], W_std: float, b_std: float, alpha: float,
                       activation: str = "relu", digits: int = 50) -> dict[str, np.ndarray]:
    """The residual network's stream kernels (docs/residual.md#the-recursion) in ``digits``-digit
    arithmetic: ``rho_l``, ``1 - rho_l`` and ``Thetabar^l`` of every pair, ``[len(layers), n1, n2]``.

    ``Sigma^{l+1} = Sigma^l + alpha^2 (W^2 E[phi phi] + b^2)``, ``Theta^{l+1} = Theta^l (1 + alpha^2 W^2
    E[phi' phi']) + alpha^2 (W^2 E[phi phi] + b^2)`` on the raw kernels, with the closed forms of ReLU
    (arc-cosine) and erf (arcsine).
    """
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    wanted = {l: i for i, l in enumerate(layers)}
    out = {k: np.empty((len(layers), len(x1), len(x2))) for k in ("rho", "one_minus_rho", "ntk_normalized")}
    with mp.workdps(digits):
        pi = mp.pi
        w2, b2, a2 = mpf(W_std) ** 2, mpf(b_std) ** 2, mpf(alpha) ** 2
        n0 = x1.shape[1]

        def expectations(s11, s22, s12):
            if activation == "relu":
                c = s12 / mp.sqrt(s11 * s22)
                c = max(min(c, mpf(1)), mpf(-1))
                t = mp.acos(c)
                m = mp.sqrt(s11 * s22) * (mp.sin(t) + (pi - t) * mp.cos(t)) / (2 * pi)
                md = (pi - t) / (2 * pi)
            elif activation == "erf":
                d = (1 + 2 * s11) * (1 + 2 * s22)
                m = 2 / pi * mp.asin(2 * s12 / mp.sqrt(d))
                md = 4 / pi / mp.sqrt(d - 4 * s12 * s12)
            else:
                raise ValueError(activation)
            return m, md

        def dot(a, b):
            return mp.fsum(mpf(float(u)) * mpf(float(v)) for u, v in zip(a, b))

        for i, a in enumerate(x1):
            for j, b in enumerate(x2):
                s11, s22 = w2 * dot(a, a) / n0 + b2, w2 * dot(b, b) / n0 + b2
                s12 = w2 * dot(a, b) / n0 + b2
                t11, t22, t12 = s11, s22, s12
                for ell in range(1, max(layers) + 1):
                    if ell > 1:
                        new = []
                        for p, q, r, tp in ((s11, s11, s11, t11), (s22, s22, s22, t22), (s11, s22, s12, t12)):
                            m, md = expectations(p, q, r)
                            branch = a2 * (w2 * m + b2)
                            new.append((r + branch, tp * (1 + a2 * w2 * md) + branch))
                        (s11, t11), (s22, t22), (s12, t12) = new
                    if ell in wanted:
                        out["rho"][wanted[ell], i, j] = float(s12 / mp.sqrt(s11 * s22))
                        out["one_minus_rho"][wanted[ell], i, j] = float(1 - s12 / mp.sqrt(s11 * s22))
                        out["ntk_normalized"][wanted[ell], i, j] = float(t12 / mp.sqrt(t11 * t22))
    return out


#: Residual ReLU networks with alpha = 1 far past depth 1/lambda: the settings, the pairs and the depths of
#: ``tests/data/residual_deep_oracle.json``.
RESIDUAL_DEEP_CASES = [dict(W_std=2**0.5, b_std=0.0, alpha=1.0), dict(W_std=1.3, b_std=0.2, alpha=1.0)]
RESIDUAL_DEEP_X1 = [[1.0, 0.0, 0.0]]
RESIDUAL_DEEP_X2 = [[0.5, 0.75**0.5, 0.0], [-1.2, 0.0, 1.6], [1.0 - 5e-7, 1e-3, 0.0]]
RESIDUAL_DEEP_LAYERS = [1, 10, 100, 1000, 10_000, 100_000]


def write_residual_deep_oracle(path) -> None:
    """Writes :func:`residual_recursion` for ``RESIDUAL_DEEP_CASES`` at ``RESIDUAL_DEEP_LAYERS`` as JSON
    (about half a minute per pair and case at 50 digits)."""
    import json

    values = []
    for case in RESIDUAL_DEEP_CASES:
        out = residual_recursion(np.array(RESIDUAL_DEEP_X1), np.array(RESIDUAL_DEEP_X2), layers=RESIDUAL_DEEP_LAYERS,
                                 **case)
        values.append({k: v.tolist() for k, v in out.items()})
    payload = {"digits": 50, "cases": RESIDUAL_DEEP_CASES, "x1": RESIDUAL_DEEP_X1, "x2": RESIDUAL_DEEP_X2,
               "layers": RESIDUAL_DEEP_LAYERS, "values": values}
    with open(path, "w") as fh:
        json.dump(payload, fh)


#: Residual networks to depth 1e4 with unequal norms and a near pair: ``(activation, alpha, b_std)`` at
#: ``W_std = 1.3`` (``alpha = 0.01`` is ``1/sqrt(L)`` at ``L = 1e4``), the pairs and the depths of
#: ``tests/data/residual_1e4_oracle.json``.
RESIDUAL_1E4_CASES = [("relu", 0.01, 0.2), ("relu", 0.05, 0.0), ("erf", 0.3, 0.1)]
RESIDUAL_1E4_LAYERS = [1, 2, 10, 100, 1000, 10_000]


def residual_1e4_pairs(seed: int = 20261128):
    """Two inputs against two of dimension 3: one of them within 3e-2 of the first, one of another norm."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(2, 3))
    x2 = np.vstack([x1[:1] + 3e-2 * rng.normal(size=(1, 3)), 1.5 * rng.normal(size=(1, 3))])
    return x1, x2


def write_residual_1e4_oracle(path) -> None:
    """Writes :func:`residual_recursion` for ``RESIDUAL_1E4_CASES`` at ``RESIDUAL_1E4_LAYERS`` as JSON
    (about 8 s per case at 50 digits)."""
    import json

    x1, x2 = residual_1e4_pairs()
    values = []
    for act, alpha, b in RESIDUAL_1E4_CASES:
        out = residual_recursion(x1, x2, layers=RESIDUAL_1E4_LAYERS, W_std=1.3, b_std=b, alpha=alpha, activation=act)
        values.append({k: v.tolist() for k, v in out.items()})
    payload = {"digits": 50, "W_std": 1.3, "cases": RESIDUAL_1E4_CASES, "x1": x1.tolist(), "x2": x2.tolist(),
               "layers": RESIDUAL_1E4_LAYERS, "values": values}
    with open(path, "w") as fh:
        json.dump(payload, fh)


if __name__ == "__main__":
    import pathlib

    data = pathlib.Path(__file__).parent / "data"
    write_deep_oracle(data / "deep_oracle.json")
    write_residual_deep_oracle(data / "residual_deep_oracle.json")
    write_residual_1e4_oracle(data / "residual_1e4_oracle.json")

