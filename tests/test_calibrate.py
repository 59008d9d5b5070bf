"""Acceptance calibration: the threshold for a target precision, checked by direct count."""
import json

import numpy as np
import pytest

from rfnet.calibrate import calibrate, main
from rfnet.metrics import at_threshold, threshold_for_precision


def _brute(y, s, target):
    """Every candidate threshold counted directly; the lowest meeting the target."""
    best = None
    for t in sorted(set(s)):
        acc = s >= t
        prec = (acc & y).sum() / acc.sum()
        if prec >= target and best is None:
            best = (t, prec, (acc & y).sum() / y.sum())
    return best


@pytest.mark.parametrize("seed", range(5))
def test_threshold_matches_direct_count(seed):
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=300) < 0.6
    s = np.clip(rng.normal(0.35 + 0.35 * y, 0.2), 0, 1).round(3)  # ties on purpose
    r = threshold_for_precision(y, s, 0.9)
    t, prec, rec = _brute(y, s, 0.9)
    assert r["reached"] and r["threshold"] == pytest.approx(t)
    assert r["precision"] == pytest.approx(prec) and r["recall"] == pytest.approx(rec)
    assert r["accepted"] == int((s >= t).sum())
    again = at_threshold(y, s, r["threshold"])
    assert again["precision"] == pytest.approx(prec) and again["recall"] == pytest.approx(rec)


def test_unreachable_target_is_reported_not_hidden():
    y = np.array([True, False, True, False])
    s = np.array([0.9, 0.9, 0.5, 0.5])  # precision 0.5 at every threshold
    r = threshold_for_precision(y, s, 0.95)
    assert not r["reached"] and r["precision"] == pytest.approx(0.5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="no Available"):
        threshold_for_precision([False, False], [0.2, 0.4])
    with pytest.raises(ValueError, match="target precision"):
        threshold_for_precision([True], [0.2], 1.5)


def test_cli_writes_config_and_config_loads(tmp_path):
    from rfnet.model import RFNetConfig

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(RFNetConfig().to_dict()))
    preds = tmp_path / "p.jsonl"
    rows = [{"label": "Available" if i % 3 else "Size Mismatch", "p_available": i / 30} for i in range(30)]
    preds.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["--model", str(model), "--predictions", str(preds), "--target_precision", "0.8"]) == 0
    cfg = json.loads((model / "config.json").read_text())
    y = np.array([r["label"] == "Available" for r in rows])
    s = np.array([r["p_available"] for r in rows])
    assert cfg["acceptance_threshold"] == pytest.approx(_brute(y, s, 0.8)[0])
    assert RFNetConfig.from_dict(cfg).acceptance_threshold == cfg["acceptance_threshold"]
    before = (model / "config.json").read_text()
    assert calibrate(model, preds, 0.99, write=False)["target_precision"] == 0.99
    assert (model / "config.json").read_text() == before  # dry run writes nothing


def test_cli_bad_predictions_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    bad = tmp_path / "p.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(SystemExit) as e:
        main(["--model", str(tmp_path), "--predictions", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "p.jsonl:1 is not a prediction line" in err and "Traceback" not in err


def test_inspector_accepts_at_the_calibrated_threshold_unless_told_otherwise(tmp_path):
    import shutil

    import torch

    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    model = tmp_path / "m"
    shutil.copytree(embedded_path("rfnet"), model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["acceptance_threshold"] = 0.999
    (model / "config.json").write_text(json.dumps(cfg))
    calibrated = Inspector.from_pretrained(model)
    assert calibrated.threshold == calibrated.default_threshold == 0.999
    assert Inspector.from_pretrained(model, threshold=0.2).threshold == 0.2  # an explicit value wins
    emb = json.loads((embedded_path("rfnet") / "config.json").read_text())["acceptance_threshold"]
    assert Inspector.from_pretrained(embedded_path("rfnet")).threshold == emb  # the embedded model's own
    cfg["acceptance_threshold"] = None
    (model / "config.json").write_text(json.dumps(cfg))
    assert Inspector.from_pretrained(model).threshold is None  # uncalibrated: argmax
    cfg["acceptance_threshold"] = 0.999
    (model / "config.json").write_text(json.dumps(cfg))
    gen = torch.rand(3, 3, 64, 64)
    prod = torch.rand(1, 3, 64, 64)
    vs = calibrated(prod, gen, "Lumi red vase")
    assert all(v.accepted == (v.p_available >= 0.999) for v in vs)


def test_evaluate_reports_precision_and_recall_at_the_calibrated_threshold(tmp_path, toy_dataset):
    from rfnet import evaluate, train

    out = tmp_path / "m"
    train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(out), "--preset", "tiny",
                                  "--image_size", "32", "--width", "32", "--max_train_steps", "2",
                                  "--no_progress", "--report_to", "none"]))
    ev = tmp_path / "ev"
    evaluate.main(["--model", str(out), "--data", str(toy_dataset), "--output_dir", str(ev)])
    preds = ev / "predictions.jsonl"
    calibrate(out, preds, 0.5)
    evaluate.main(["--model", str(out), "--data", str(toy_dataset), "--output_dir", str(ev)])
    m = json.loads((ev / "metrics.json").read_text())
    rows = [json.loads(x) for x in preds.read_text().splitlines()]
    y = np.array([r["label"] == "Available" for r in rows])
    s = np.array([r["p_available"] for r in rows])
    t = json.loads((out / "config.json").read_text())["acceptance_threshold"]
    direct = at_threshold(y, s, t)
    assert m["at_calibrated_threshold"]["precision"] == pytest.approx(direct["precision"])
    assert m["at_calibrated_threshold"]["accepted"] == int((s >= t).sum())


def _brute_pr(y, s):
    """(threshold, precision, recall) at every distinct score, counted directly."""
    out = []
    for t in sorted(set(s)):
        acc = s >= t
        out.append((t, (acc & y).sum() / acc.sum(), (acc & y).sum() / y.sum()))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_min_recall_keeps_only_thresholds_with_that_recall(seed):
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=400) < 0.5
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1).round(3)
    rows = _brute_pr(y, s)
    # a target only a tiny accepted set reaches: the floor forbids it
    r = threshold_for_precision(y, s, 0.999, min_recall=0.3)
    kept = [row for row in rows if row[2] >= 0.3]
    best = max(p for _, p, _ in kept)
    t, prec, rec = max((row for row in kept if row[1] == best), key=lambda row: row[2])
    assert not r["reached"] and r["threshold"] == pytest.approx(t)
    assert r["precision"] == pytest.approx(prec) and r["recall"] >= 0.3
    # without the floor the best precision sits at lower recall
    assert threshold_for_precision(y, s, 0.999)["recall"] < 0.3
    # a reachable target: the lowest threshold meeting it among those keeping the floor
    target = round(float(np.median([p for _, p, _ in kept])), 3)
    r = threshold_for_precision(y, s, target, min_recall=0.3)
    want = min(row[0] for row in kept if row[1] >= target)
    assert r["reached"] and r["threshold"] == pytest.approx(want)


def test_several_targets_take_the_highest_reached_and_fallback_top(tmp_path):
    from rfnet.model import RFNetConfig

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(RFNetConfig().to_dict()))
    rng = np.random.default_rng(7)
    y = rng.uniform(size=300) < 0.55
    s = np.clip(rng.normal(0.4 + 0.25 * y, 0.2), 0, 1).round(4)
    preds = tmp_path / "p.jsonl"
    preds.write_text("\n".join(json.dumps({"label": "Available" if a else "Space Mismatch", "p_available": float(p)})
                               for a, p in zip(y, s)))
    reach = {t: threshold_for_precision(y, s, t, 0.3)["reached"] for t in (0.99, 0.9, 0.8, 0.6)}
    assert not reach[0.99] and reach[0.6]
    r = calibrate(model, preds, [0.6, 0.99, 0.8, 0.9], write=False, min_recall=0.3)
    want = max(t for t, ok in reach.items() if ok)
    assert r["reached"] and r["target_precision"] == want and r["targets_tried"] == [0.99, 0.9, 0.8, 0.6]
    # nothing reached: best keeps the best-precision threshold, top stores none (argmax accepts)
    best = calibrate(model, preds, [0.999, 0.995], write=False, min_recall=0.3)
    assert not best["reached"] and best["threshold"] == pytest.approx(threshold_for_precision(y, s, 0.995, 0.3)["threshold"])
    assert main(["--model", str(model), "--predictions", str(preds), "--target_precision", "0.999", "0.995",
                 "--min_recall", "0.3", "--fallback", "top"]) == 0
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["acceptance_threshold"] is None
    assert cfg["acceptance_calibration"]["fallback"] == "top"
    assert cfg["acceptance_calibration"]["best_threshold"] == pytest.approx(best["threshold"])
    assert RFNetConfig.from_dict(cfg).acceptance_threshold is None


def test_cli_rejects_bad_min_recall(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        main(["--model", str(tmp_path), "--predictions", str(tmp_path / "p.jsonl"), "--min_recall", "1.5"])
    assert e.value.code == 2 and "--min_recall must be in [0, 1]" in capsys.readouterr().err
