"""scripts/relabel_effect.py: a model's figures under two labellings, counted by hand."""
import json

import pytest
import relabel_effect as re_  # scripts/ is on the path (conftest)


def test_compare_counts_each_labelling_and_pairs_the_difference():
    ids = [f"rfgen9_{j:06d}_{k}" for j in range(10) for k in (0, 1)]
    before = dict.fromkeys(ids, "Size Mismatch")
    after = dict(before)
    for i in ids[:6]:  # a rule change makes 6 of 20 images Available
        after[i] = "Available"
    predicted = dict.fromkeys(ids[:4], "Available") | dict.fromkeys(ids[4:], "Size Mismatch")
    r = re_.compare(before, after, predicted, n_boot=200)
    # before: 4 wrong (predicted Available on Size Mismatch), 16 right; after: 2 wrong (ids 4, 5)
    assert r["n"] == 20
    assert r["agreement"]["before"] == pytest.approx(80.0) and r["agreement"]["after"] == pytest.approx(90.0)
    assert r["accuracy"]["before"] == pytest.approx(80.0) and r["accuracy"]["after"] == pytest.approx(90.0)
    d, lo, hi = r["agreement"]["diff"]
    # per job (two images each): jobs 0 and 1 gain 2 images, job 2 loses 2, the rest 0; whole
    # jobs are resampled, so the interval is wide but cannot reach the loss of every job
    assert d == pytest.approx(10.0) and -100.0 < lo < d < hi


def test_compare_refuses_disjoint_ids():
    with pytest.raises(ValueError, match="same images"):
        re_.compare({"a": "Available"}, {"a": "Available"}, {"b": "Available"})


def test_cli_reads_manifests_and_predictions(tmp_path, capsys):
    for name, labels in (("old", ["Available", "Size Mismatch"]), ("new", ["Available", "Available"])):
        d = tmp_path / name
        d.mkdir()
        d.joinpath("manifest.jsonl").write_text(
            "".join(json.dumps({"id": f"rfgen9_000000_{k}", "label": lab}) + "\n" for k, lab in enumerate(labels)))
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": f"rfgen9_000000_{k}", "predicted": "Available"}) + "\n"
                                              for k in range(2)))
    assert re_.main(["--before", str(tmp_path / "old"), "--after", str(tmp_path / "new"),
                     "--predictions", f"m={tmp_path / 'p.jsonl'}", "--n_boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "1 labels moved" in out and "Size Mismatch -> Available: 1" in out
    assert "| m | agreement (n 2) | 50.00% | 100.00% | +50.00" in out
