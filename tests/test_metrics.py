"""ntkdepth.metrics against counts worked out by hand."""

import numpy as np
import pytest

from ntkdepth.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    misclassification_rate,
    mse,
    one_hot,
    per_class_f1,
    predicted_classes,
)

# 7 items, 3 classes. By hand: confusion rows (true) x columns (predicted)
#   true 0: [1, 1, 0]   true 1: [0, 2, 0]   true 2: [1, 1, 1]
# F1 = 2TP / (2TP + FP + FN): class 0: 2/(2+1+1) = 1/2, class 1: 4/(4+2+0) = 2/3,
# class 2: 2/(2+0+2) = 1/2; macro F1 = 5/9; accuracy = 4/7.
LABELS = [0, 0, 1, 1, 2, 2, 2]
PREDS = [0, 1, 1, 1, 2, 0, 1]


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(
        confusion_matrix(LABELS, PREDS), [[1, 1, 0], [0, 2, 0], [1, 1, 1]]
    )
    cm = confusion_matrix(LABELS, PREDS, num_classes=4)
    assert cm.shape == (4, 4) and cm.sum() == 7 and cm[3].sum() == cm[:, 3].sum() == 0


def test_accuracy_and_misclassification_rate_by_hand():
    assert accuracy(LABELS, PREDS) == pytest.approx(4 / 7)
    assert misclassification_rate(LABELS, PREDS) == pytest.approx(3 / 7)
    assert accuracy(LABELS, LABELS) == 1.0


def test_f1_by_hand():
    np.testing.assert_allclose(per_class_f1(LABELS, PREDS), [1 / 2, 2 / 3, 1 / 2])
    assert macro_f1(LABELS, PREDS) == pytest.approx(5 / 9)


def test_macro_f1_leaves_out_classes_absent_from_both_and_counts_spurious_predictions():
    # Classes 1 and 3 never occur and are never predicted: they do not drag the mean down.
    assert macro_f1([0, 2], [0, 2], num_classes=4) == 1.0
    # Class 1 is predicted once but never true: F1 = 0 for it, 2/3 for class 0.
    assert macro_f1([0, 0], [0, 1]) == pytest.approx((2 / 3 + 0) / 2)


def test_mse_one_hot_and_argmax_by_hand():
    outputs = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.9]])
    targets = one_hot([0, 1, 1], 2)
    np.testing.assert_array_equal(targets, [[1, 0], [0, 1], [0, 1]])
    # (0 + 0 + 0.25 + 0.25 + 0.04 + 0.01) / 6
    assert mse(outputs, targets) == pytest.approx(0.55 / 6)
    np.testing.assert_array_equal(predicted_classes(outputs), [0, 0, 1])  # ties go to the first


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: accuracy([0, 1], [0]), "differ in length"),
        (lambda: accuracy([], []), "empty"),
        (lambda: accuracy([0, -1], [0, 1]), "negative"),
        (lambda: accuracy([0.5, 1], [0, 1]), "integer class labels"),
        (lambda: confusion_matrix([0, 3], [0, 1], num_classes=3), "out of range"),
        (lambda: one_hot([0, 2], 2), "out of range"),
        (lambda: mse(np.zeros((2, 3)), np.zeros((3, 2))), "differ in shape"),
        (lambda: predicted_classes(np.array([[np.nan, 1.0]])), "NaN"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
