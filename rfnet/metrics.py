"""The paper's inspection metrics (Table 1): precision, recall, F1 and average precision of the
Available class, with a per-class report and a confusion matrix.

An image is predicted Available when Available is its most probable class (the verdict RFNet
gives). AP ranks images by P(Available) and is the area under the step-wise precision-recall
curve, sum_n (R_n - R_{n-1}) P_n over distinct thresholds, as scikit-learn computes it.
tests/test_metrics.py checks every function here against scikit-learn; the engine does not
depend on it, so a ComfyUI user trains an inspector without scikit-learn and scipy.

Test sets are finite, so rfnet.evaluate also reports 95% percentile-bootstrap intervals for AP
and accuracy: they say how far a figure may move on another test seed of the same size, and
whether two models evaluated on the same images differ by more than that.
"""
from __future__ import annotations

import numpy as np


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold, highest threshold first."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # ties share one threshold
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    pos = y.sum()
    precision = tp / (tp + fp)
    recall = tp / pos if pos else np.zeros_like(tp, dtype=np.float64)
    return precision, recall, s[last_of_tie]


def average_precision(y_true, scores) -> float:
    y = np.asarray(y_true, dtype=bool)
    if not y.any():
        return float("nan")
    precision, recall, _ = pr_curve(y, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def bootstrap_interval(stat, *arrays, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> list[float]:
    """Percentile-bootstrap interval of ``stat(*arrays)``.

    Every resample draws the same rows from all arrays, so ``stat(y, scores_a, scores_b)``
    returning a difference between two models gives a paired interval: the images both saw
    cancel out, which makes it much narrower than the two separate intervals suggest.
    Resamples where the statistic is undefined (AP without a positive) are left out.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap_interval needs non-empty arrays of one length, got {[len(a) for a in arrays]}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, n, n)
        values[b] = stat(*(a[rows] for a in arrays))
    tail = (1 - level) / 2
    lo, hi = np.nanquantile(values, [tail, 1 - tail])
    return [float(lo), float(hi)]  # a list, as it reads back from metrics.json


def accuracy(y_true, y_pred) -> float:
    return float((np.asarray(y_true) == np.asarray(y_pred)).mean())


def inspection_report(y_true, probs, labels: list[str] | tuple[str, ...],
                      intervals: bool = False) -> dict:
    """Everything rfnet.evaluate writes: Available metrics, per-class report, confusion, and
    with ``intervals`` the 95% bootstrap intervals of AP and accuracy (2,000 resamples each:
    training's per-epoch validation leaves them out)."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {}
    for k, name in enumerate(labels):
        tp = int(cm[k, k])
        fp = int(cm[:, k].sum() - tp)
        fn = int(cm[k, :].sum() - tp)
        p, r, f = precision_recall_f1(tp, fp, fn)
        per_class[name] = {"precision": p, "recall": r, "f1": f, "support": int(cm[k, :].sum())}
    ava = per_class[labels[0]]
    report = {
        "n": int(len(y_true)),
        "available": {
            "precision": ava["precision"],
            "recall": ava["recall"],
            "f1": ava["f1"],
            "ap": average_precision(y_true == 0, probs[:, 0]),
            "support": ava["support"],
            # Available or not, as Recurrent Generation uses the verdict (top class Available)
            "agreement": float(np.mean((y_pred == 0) == (y_true == 0))) if len(y_true) else float("nan"),
        },
        "accuracy": accuracy(y_true, y_pred) if len(y_true) else float("nan"),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
    }
    if intervals and len(y_true):
        report["available"]["ap_ci95"] = bootstrap_interval(average_precision, y_true == 0, probs[:, 0])
        report["accuracy_ci95"] = bootstrap_interval(accuracy, y_true, y_pred)
    return report


def threshold_for_precision(is_available, p_available, target: float = 0.95, min_recall: float = 0.0) -> dict:
    """The lowest P(Available) threshold at which at least ``target`` of the accepted images
    (p >= threshold) are Available: the most recall that precision allows.

    Only thresholds that keep a recall of at least ``min_recall`` are candidates (a precision
    bought by accepting almost nothing is no use to Recurrent Generation). Returns threshold,
    precision, recall and accepted count at it, and ``reached``. When no candidate reaches the
    target, it is the candidate of highest precision (ties: most recall), with ``reached`` False,
    so a caller can say so rather than pretend.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    if not 0 <= min_recall <= 1:
        raise ValueError(f"min_recall must be in [0, 1], got {min_recall}")
    y = np.asarray(is_available, dtype=bool)
    s = np.asarray(p_available, dtype=np.float64)
    if len(y) == 0 or len(y) != len(s):
        raise ValueError(f"need equal, non-empty arrays, got {len(y)} labels and {len(s)} scores")
    if not y.any():
        raise ValueError("no Available image among the calibration data: nothing to calibrate on")
    precision, recall, thresholds = pr_curve(y, s)  # highest threshold first, so recall rises
    # the lowest threshold has recall 1, so at least one candidate is always left
    cand = np.nonzero(recall >= min_recall - 1e-12)[0]
    ok = cand[precision[cand] >= target]
    if len(ok):
        i, reached = int(ok[-1]), True  # the lowest threshold that still meets the target
    else:
        best = precision[cand].max()
        i, reached = int(cand[precision[cand] == best][-1]), False
    accepted = int((s >= thresholds[i]).sum())
    return {"threshold": float(thresholds[i]), "precision": float(precision[i]), "recall": float(recall[i]),
            "accepted": accepted, "n": int(len(y)), "target_precision": float(target),
            "min_recall": float(min_recall), "reached": reached}


def at_threshold(is_available, p_available, threshold: float) -> dict:
    """Precision and recall of accepting p >= threshold."""
    y = np.asarray(is_available, dtype=bool)
    acc = np.asarray(p_available, dtype=np.float64) >= threshold
    tp = int((acc & y).sum())
    p, r, f = precision_recall_f1(tp, int((acc & ~y).sum()), int((~acc & y).sum()))
    return {"threshold": float(threshold), "precision": p, "recall": r, "f1": f, "accepted": int(acc.sum())}
