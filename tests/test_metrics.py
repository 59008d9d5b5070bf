import math

import numpy as np
import pytest

from rfnet.metrics import average_precision, confusion_matrix, inspection_report, pr_curve


def test_average_precision_by_hand():
    # ranked by score: T F T T F -> precision at each true: 1/1, 2/3, 3/4; AP = (1 + 2/3 + 3/4) / 3
    y = [1, 0, 1, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.1]
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_average_precision_ties_share_a_threshold():
    # two tied at the top, one true one false: precision 1/2 at recall 1/2; then T: 2/3 at 1
    y = [1, 0, 1]
    s = [0.9, 0.9, 0.5]
    assert average_precision(y, s) == pytest.approx(0.5 * 0.5 + 0.5 * (2 / 3))
    p, r, t = pr_curve(np.array(y), np.array(s))
    assert list(t) == [0.9, 0.5] and list(r) == [0.5, 1.0]


def test_average_precision_perfect_and_no_positives():
    assert average_precision([0, 1, 1], [0.1, 0.8, 0.9]) == 1.0
    assert math.isnan(average_precision([0, 0], [0.3, 0.2]))


def test_report_by_hand():
    labels = ("Available", "Space Mismatch", "Size Mismatch")
    y = [0, 0, 0, 1, 1, 2]
    probs = np.array([
        [0.9, 0.05, 0.05],  # 0 -> 0  TP
        [0.2, 0.7, 0.1],    # 0 -> 1  FN
        [0.6, 0.3, 0.1],    # 0 -> 0  TP
        [0.5, 0.4, 0.1],    # 1 -> 0  FP
        [0.1, 0.8, 0.1],    # 1 -> 1
        [0.1, 0.1, 0.8],    # 2 -> 2
    ])
    r = inspection_report(y, probs, labels)
    a = r["available"]
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == pytest.approx(2 / 3)
    assert a["f1"] == pytest.approx(2 / 3) and a["support"] == 3
    # ranking by P(Available): .9 T, .6 T, .5 F, .2 T, .1 F, .1 F
    assert a["ap"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert r["per_class"]["Space Mismatch"]["precision"] == pytest.approx(0.5)


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix([0, 1, 1], [1, 1, 0], 2).tolist() == [[0, 1], [1, 1]]
