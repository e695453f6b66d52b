"""Metrics of kernel and network predictions (paper, Appendix D, Table 2): MSE, accuracy and error
rate, the confusion matrix and macro F1, in plain NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "confusion_matrix",
    "macro_f1",
    "misclassification_rate",
    "mse",
    "one_hot",
    "per_class_f1",
    "predicted_classes",
]


def _labels(name: str, values) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a [m] array of class labels; got shape {list(a.shape)}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold integer class labels; got {a.dtype} values")
        a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"{name} holds a negative class label {a.min()}")
    return a.astype(np.int64)


def _pair(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    y = _labels("labels", labels)
    p = _labels("predictions", predictions)
    if y.shape != p.shape:
        raise ValueError(f"labels {list(y.shape)} and predictions {list(p.shape)} differ in length")
    if y.size == 0:
        raise ValueError("no labels: metrics of an empty set are undefined")
    return y, p


def one_hot(labels, num_classes: int) -> np.ndarray:
    """``[m, num_classes]`` float64 one-hot rows of integer ``labels`` ``[m]``."""
    y = _labels("labels", labels)
    if y.size and y.max() >= num_classes:
        raise ValueError(f"label {y.max()} is out of range for num_classes = {num_classes}")
    out = np.zeros((y.size, num_classes))
    out[np.arange(y.size), y] = 1.0
    return out


def predicted_classes(outputs) -> np.ndarray:
    """``[..., m]``: the index of the largest output of each row of ``outputs`` ``[..., m, K]``."""
    out = np.asarray(outputs)
    if out.ndim < 2:
        raise ValueError(f"outputs must be [..., m, K]; got shape {list(out.shape)}")
    if not np.all(np.isfinite(out)):
        raise ValueError("outputs contain NaN or inf")
    return np.argmax(out, axis=-1)


def mse(outputs, targets) -> float:
    """Mean squared error ``mean_{i,k} (f_k(x_i) - y_ik)^2`` over all entries (same shapes)."""
    f = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if f.shape != y.shape:
        raise ValueError(f"outputs {list(f.shape)} and targets {list(y.shape)} differ in shape")
    if f.size == 0:
        raise ValueError("no outputs: the mean squared error of an empty set is undefined")
    return float(np.mean((f - y) ** 2))


def accuracy(labels, predictions) -> float:
    """The fraction of ``predictions`` equal to ``labels`` (both ``[m]`` integer classes)."""
    y, p = _pair(labels, predictions)
    return float(np.mean(y == p))


def misclassification_rate(labels, predictions) -> float:
    """``1 - accuracy``: the fraction of wrong predictions."""
    return 1.0 - accuracy(labels, predictions)


def confusion_matrix(labels, predictions, num_classes: int | None = None) -> np.ndarray:
    """``[K, K]`` integer counts: entry ``(i, j)`` counts items of true class ``i`` predicted as ``j``.

    ``K`` is ``num_classes`` or, by default, one more than the largest class seen.
    """
    y, p = _pair(labels, predictions)
    k = int(max(y.max(), p.max())) + 1 if num_classes is None else int(num_classes)
    if max(y.max(), p.max()) >= k:
        raise ValueError(f"class {max(y.max(), p.max())} is out of range for num_classes = {k}")
    return np.bincount(y * k + p, minlength=k * k).reshape(k, k)


def per_class_f1(labels, predictions, num_classes: int | None = None) -> np.ndarray:
    """``[K]`` F1 scores ``2 TP / (2 TP + FP + FN)`` per class; 0 for a class that
    never occurs and is never predicted (its F1 is undefined)."""
    cm = confusion_matrix(labels, predictions, num_classes)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2 TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, 0.0)


def macro_f1(labels, predictions, num_classes: int | None = None) -> float:
    """The unweighted mean of the per-class F1 scores over the classes that occur in
    ``labels`` or ``predictions`` (classes absent from both are left out, as in
    scikit-learn's ``f1_score(average="macro")``)."""
    cm = confusion_matrix(labels, predictions, num_classes)
    f1 = per_class_f1(labels, predictions, num_classes)
    present = (cm.sum(0) + cm.sum(1)) > 0
    return float(np.mean(f1[present]))
