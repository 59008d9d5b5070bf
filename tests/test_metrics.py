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


def test_available_agreement_counts_only_available_or_not():
    labels = ("Available", "Space Mismatch", "Size Mismatch")
    # a defect mistaken for another defect still agrees on "not Available"
    y = [1, 0, 2, 0]
    probs = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.3, 0.6, 0.1]])
    r = inspection_report(y, probs, labels)
    assert r["accuracy"] == pytest.approx(1 / 4)
    assert r["available"]["agreement"] == pytest.approx(2 / 4)


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix([0, 1, 1], [1, 1, 0], 2).tolist() == [[0, 1], [1, 1]]


def test_bootstrap_interval_of_accuracy_matches_the_binomial_width():
    # 2,000 answers, 70% right: the normal approximation's 95% interval is +-1.96*sqrt(.21/2000)
    from rfnet.metrics import accuracy, bootstrap_interval

    rng = np.random.default_rng(5)
    y = rng.integers(0, 6, 2000)
    pred = np.where(rng.random(2000) < 0.7, y, (y + 1) % 6)
    acc = accuracy(y, pred)
    lo, hi = bootstrap_interval(accuracy, y, pred)
    half = 1.96 * math.sqrt(acc * (1 - acc) / 2000)
    assert lo < acc < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert bootstrap_interval(accuracy, y, pred) == [lo, hi]  # the same seed, the same interval
    assert bootstrap_interval(accuracy, y, pred, seed=1) != [lo, hi]


def test_bootstrap_interval_is_paired_across_arrays():
    # two models whose scores differ by small noise: their AP difference has a narrow paired
    # interval, far narrower than either model's own interval. Drawing different rows for the
    # two score arrays would make it as wide as the two together.
    from rfnet.metrics import bootstrap_interval

    rng = np.random.default_rng(0)
    y = rng.random(1000) < 0.4
    a = y * 0.6 + rng.random(1000)
    b = a + 0.05 * rng.standard_normal(1000)
    lo_a, hi_a = bootstrap_interval(average_precision, y, a, n_boot=500)
    lo_d, hi_d = bootstrap_interval(lambda t, s1, s2: average_precision(t, s1) - average_precision(t, s2),
                                    y, a, b, n_boot=500)
    assert lo_d <= average_precision(y, a) - average_precision(y, b) <= hi_d
    assert (hi_d - lo_d) < 0.35 * (hi_a - lo_a)
    same = bootstrap_interval(lambda t, s1, s2: average_precision(t, s1) - average_precision(t, s2),
                              y, a, a, n_boot=50)
    assert same == [0.0, 0.0]


def test_bootstrap_interval_perfect_ranking_and_bad_input():
    from rfnet.metrics import bootstrap_interval

    y = np.array([1, 1, 0, 0, 0, 1])
    assert bootstrap_interval(average_precision, y, y * 0.5 + 0.1, n_boot=100) == [1.0, 1.0]
    with pytest.raises(ValueError, match="one length"):
        bootstrap_interval(average_precision, y, y[:3])


def test_report_intervals_only_when_asked():
    labels = ("Available", "Space Mismatch")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p1 = np.clip(y * 0.3 + 0.7 * rng.random(300), 0, 1)  # overlapping scores: some errors
    probs = np.stack([1 - p1, p1], 1)
    assert "ap_ci95" not in inspection_report(y, probs, labels)["available"]
    r = inspection_report(y, probs, labels, intervals=True)
    lo, hi = r["available"]["ap_ci95"]
    assert lo <= r["available"]["ap"] <= hi
    lo, hi = r["accuracy_ci95"]
    assert lo <= r["accuracy"] <= hi and hi - lo > 0


def test_metrics_equal_scikit_learns():
    """The hand-written metrics are scikit-learn's (kept so that ComfyUI users need no
    scikit-learn and scipy to train an inspector): AP, the PR curve, the confusion matrix and
    per-class precision, recall and F1, on random data with many tied scores."""
    skm = pytest.importorskip("sklearn.metrics", reason="pip install scikit-learn (the test extra has it)")
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 300))
        y = rng.integers(0, 6, n)
        if not (y == 0).any():
            y[0] = 0
        s = np.round(rng.random(n), int(rng.integers(1, 4)))  # 1-3 decimals: ties
        is_ava = y == 0
        assert average_precision(is_ava, s) == pytest.approx(skm.average_precision_score(is_ava, s), abs=1e-12)
        p, r, thr = pr_curve(is_ava, s)
        sp, sr, sthr = skm.precision_recall_curve(is_ava, s)
        keep = sthr >= thr.min()  # scikit-learn lists thresholds low to high and adds (1, 0)
        assert np.allclose(p, sp[:-1][keep][::-1]) and np.allclose(r, sr[:-1][keep][::-1])
        pred = rng.integers(0, 6, n)
        assert (confusion_matrix(y, pred, 6) == skm.confusion_matrix(y, pred, labels=list(range(6)))).all()
        rep = inspection_report(y, np.eye(6)[pred] * 0.9 + 0.02, [str(i) for i in range(6)])
        sp, sr, sf, _ = skm.precision_recall_fscore_support(y, pred, labels=list(range(6)), zero_division=0)
        got = rep["available"]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((sp[0], sr[0], sf[0]))
