"""50-digit references for the ReLU kernels' hard cases: nearly identical, nearly antipodal and deep pairs.

The recursion of docs/kernels.md ("The recursion") in mpmath with 50 significant digits, started
from the exact binary values of the float inputs (a float32 input is the float32 number itself), so
that what the float kernels lose to the inputs' Gram matrix, to ``pi - t`` near ``pi``, to
``1 - (1 - rho)`` and to the depth scale ``(W_std^2 / 2)^(L - 1)`` shows against it. Depth 10^6 takes
about a minute and a half per pair: those values are stored in ``tests/data/relu_accuracy.json``,
which ``python tests/relu_reference.py`` rewrites.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from mpmath import mp, mpf

DIGITS = 50
FIELDS = ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized", "nngp_diag1", "ntk_diag1")
DATA = pathlib.Path(__file__).parent / "data" / "relu_accuracy.json"


def exact(values) -> list:
    """The entries of a float array as mpmath numbers, exactly (no decimal detour)."""
    return [mpf(float(v)) for v in np.asarray(values).ravel()]


def correlation(x, y):
    """``<x, y> / (|x| |y|)`` of the exact float entries, in 50 digits."""
    with mp.workdps(DIGITS + 10):
        a, b = exact(x), exact(y)
        dot = mp.fsum(u * v for u, v in zip(a, b))
        return dot / mp.sqrt(mp.fsum(u * u for u in a) * mp.fsum(v * v for v in b))


def gap(x, y) -> float:
    """``1 - |rho_1|`` of the pair, the inputs' angle gap to +-1, as a float."""
    with mp.workdps(DIGITS + 10):
        return float(1 - abs(correlation(x, y)))


def sphere_recursion(rho1, layers) -> dict[str, list]:
    """``rho_l``, ``1 - rho_l``, ``f'(rho_l)`` and ``Thetabar^l`` from ``rho_1`` (``W_std^2 = 2``, no bias).

    ``rho1``: an mpmath number or a float (taken exactly). The angle ``t_l = arccos rho_l`` is the
    state; ``rho_{l+1} = J(t_l) = (sin t + (pi - t) cos t) / pi``, ``f'(rho_l) = (pi - t_l) / pi`` and
    ``Thetabar^{l+1} = (l Thetabar^l f'(rho_l) + rho_{l+1}) / (l + 1)``. Returns mpmath numbers.
    """
    wanted = sorted(set(int(l) for l in layers))
    out = {k: {} for k in ("rho", "one_minus_rho", "fprime", "ntk_normalized")}
    with mp.workdps(DIGITS + 10):
        pi = mp.pi
        rho = mpf(rho1)
        omr = 1 - rho
        t = mp.acos(rho)
        tbar = rho
        ell = 1
        while True:
            if ell in out["rho"] or ell in wanted:
                out["rho"][ell], out["one_minus_rho"][ell] = rho, omr
                out["fprime"][ell], out["ntk_normalized"][ell] = (pi - t) / pi, tbar
            if ell >= wanted[-1]:
                break
            s, c = mp.sin(t), mp.cos(t)
            fprime = (pi - t) / pi
            rho = (s + (pi - t) * c) / pi
            # 1 - J(t) as a sum of non-negative terms: no cancellation near t = 0.
            omr = ((pi - t) * 2 * mp.sin(t / 2) ** 2 + (t - s)) / pi
            tbar = (ell * tbar * fprime + rho) / (ell + 1)
            t = 2 * mp.asin(mp.sqrt(omr / 2))
            ell += 1
    return {k: [v[l] for l in layers] for k, v in out.items()}


def pair_kernels(x, y, *, layers, W_std, b_std=0.0) -> dict[str, np.ndarray]:
    """Every field of ``relu_kernel_trace`` for the pair ``(x, y)`` at ``layers``, as float64.

    ``W_std``, ``b_std``: the floats passed to the kernel (taken exactly, so ``math.sqrt(2)`` is the
    float's value, whose square is ``2 + 4.4e-16``). Without bias the normalized recursion runs once
    (:func:`sphere_recursion`) and the raw kernels carry ``sqrt(Sigma^1(x, x) Sigma^1(y, y)) c^(l-1)``
    with ``c = W_std^2 / 2`` in 50 digits; with a bias the raw recursion runs (shallow depths).
    Also ``one_minus_rho``, ``gap`` (``1 - |rho|``) and ``one_minus_ntk_normalized``, accurate where
    the fields round to +-1.
    """
    layers = [int(l) for l in layers]
    with mp.workdps(DIGITS + 10):
        a, b = exact(x), exact(y)
        n0 = len(a)
        w2, b2 = mpf(float(W_std)) ** 2, mpf(float(b_std)) ** 2
        qa = w2 / n0 * mp.fsum(u * u for u in a) + b2
        qb = w2 / n0 * mp.fsum(v * v for v in b) + b2
        s1 = w2 / n0 * mp.fsum(u * v for u, v in zip(a, b)) + b2
        values = {k: [] for k in FIELDS + ("one_minus_rho", "gap", "one_minus_ntk_normalized")}
        if b2 == 0:
            c = w2 / 2
            rec = sphere_recursion(s1 / mp.sqrt(qa * qb), [1] + [l - 1 for l in layers if l > 1] + layers)
            at = {l: {k: rec[k][i] for k in rec} for i, l in enumerate([1] + [l - 1 for l in layers if l > 1] + layers)}
            for l in layers:
                scale = mp.sqrt(qa * qb) * c ** (l - 1)
                values["rho"].append(at[l]["rho"])
                values["one_minus_rho"].append(at[l]["one_minus_rho"])
                values["gap"].append(1 - abs(at[l]["rho"]))
                values["ntk_normalized"].append(at[l]["ntk_normalized"])
                values["one_minus_ntk_normalized"].append(1 - at[l]["ntk_normalized"])
                values["nngp"].append(at[l]["rho"] * scale)
                values["ntk"].append(at[l]["ntk_normalized"] * l * scale)
                values["nngp_dot"].append(c * at[l - 1]["fprime"] if l > 1 else mpf(0))
                values["nngp_diag1"].append(qa * c ** (l - 1))
                values["ntk_diag1"].append(l * qa * c ** (l - 1))
        else:
            pi = mp.pi
            s, q1, q2, th, t1, t2, sdot = s1, qa, qb, s1, qa, qb, mpf(0)
            for ell in range(1, max(layers) + 1):
                if ell > 1:
                    t = mp.acos(s / mp.sqrt(q1 * q2))
                    sdot = w2 * (pi - t) / (2 * pi)
                    s = w2 * mp.sqrt(q1 * q2) / (2 * pi) * (mp.sin(t) + (pi - t) * mp.cos(t)) + b2
                    q1, q2 = w2 / 2 * q1 + b2, w2 / 2 * q2 + b2
                    th = th * sdot + s
                    t1, t2 = t1 * w2 / 2 + q1, t2 * w2 / 2 + q2
                if ell in layers:
                    rho, tbar = s / mp.sqrt(q1 * q2), th / mp.sqrt(t1 * t2)
                    for k, v in (("rho", rho), ("one_minus_rho", 1 - rho), ("gap", 1 - abs(rho)),
                                 ("ntk_normalized", tbar),
                                 ("one_minus_ntk_normalized", 1 - tbar), ("nngp", s), ("ntk", th),
                                 ("nngp_dot", sdot), ("nngp_diag1", q1), ("ntk_diag1", t1)):
                        values[k].append(v)
            # Layers in the order asked.
            order = sorted(layers)
            values = {k: [v[order.index(l)] for l in layers] for k, v in values.items()}
        return {k: np.array([float(v) for v in vs]) for k, vs in values.items()}


# --------------------------------------------------------------------------
# The stored deep cases.

DEEP_LAYERS = [1, 2, 3, 10, 100, 1000, 10_000, 100_000, 1_000_000]
BASE = np.array([0.3, -1.2, 0.7, 2.0, -0.4, 1.1, 0.05, -0.9])
DIRECTION = np.array([1.0, -0.5, 0.25, 0.75, -1.0, 0.5, -0.25, 0.125])
OTHER = np.array([1.5, 0.2, -0.8, 0.6, 1.3, -0.1, 0.9, 0.4])


def deep_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The pairs stored to depth 10^6, as the tests rebuild them (exact float arithmetic).

    ``near_identical_f64``: ``y = x + 1e-7 d`` in float64 (``1 - rho_1 ~ 1.4e-15``);
    ``generic_f64``: an unrelated pair (``rho_1 ~ 0.3``); ``generic_f32``: the same pair in float32.
    """
    return {
        "near_identical_f64": (BASE, BASE + 1e-7 * DIRECTION),
        "generic_f64": (BASE, OTHER),
        "generic_f32": (BASE.astype(np.float32), OTHER.astype(np.float32)),
    }


def write_deep(path=DATA) -> None:
    """Writes :func:`pair_kernels` (``W_std = sqrt(2)``, no bias) of :func:`deep_pairs` at ``DEEP_LAYERS``."""
    import math

    payload = {"digits": DIGITS, "layers": DEEP_LAYERS, "W_std": math.sqrt(2.0), "pairs": {}}
    for name, (x, y) in deep_pairs().items():
        values = pair_kernels(x, y, layers=DEEP_LAYERS, W_std=math.sqrt(2.0))
        payload["pairs"][name] = {
            "x": [float(v) for v in x], "y": [float(v) for v in y],
            "values": {k: [repr(float(v)) for v in vs] for k, vs in values.items()},
        }
    pathlib.Path(path).write_text(json.dumps(payload, indent=1) + "\n")


def read_deep(path=DATA) -> dict:
    """The stored values: ``{pair: {field: [len(DEEP_LAYERS)] float64}}``, checking the stored inputs."""
    payload = json.loads(pathlib.Path(path).read_text())
    out = {}
    for name, (x, y) in deep_pairs().items():
        stored = payload["pairs"][name]
        assert np.array_equal(np.asarray(stored["x"]), x.astype(np.float64)), name
        assert np.array_equal(np.asarray(stored["y"]), y.astype(np.float64)), name
        out[name] = {k: np.array([float(v) for v in vs]) for k, vs in stored["values"].items()}
    return out


if __name__ == "__main__":
    write_deep()
