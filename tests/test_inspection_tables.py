"""scripts/inspection_tables.py: the per-defect table is counted from the predictions."""
import json
from pathlib import Path

from conftest import load_script

tables = load_script("inspection_tables")


def _write_predictions(run: Path, predicted: dict[str, str]) -> None:
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "predictions.jsonl").write_text("".join(
        json.dumps({"id": i, "label": "?", "predicted": p, "p_available": 0.5}) + "\n"
        for i, p in predicted.items()))


def test_passed_as_available_counts_each_defect_from_the_test_labels(tmp_path):
    truth = {"a": "Available", "s1": "Size Mismatch", "s2": "Size Mismatch", "s3": "Size Mismatch",
             "h1": "Shape Hallucination", "u1": "Unsuitable"}
    # a coarse-label row: its predictions know only Available / Unavailable
    _write_predictions(tmp_path / "coarse", {"a": "Available", "s1": "Available", "s2": "Unavailable",
                                             "s3": "Available", "h1": "Unavailable", "u1": "Available",
                                             "not_in_test": "Available"})
    shares = tables.passed_as_available(tables.load_predictions(tmp_path / "coarse"), truth)
    # defects absent from the test data get no column; Available is not a defect
    assert shares == {"Unsuitable": 1.0, "Size Mismatch": 2 / 3, "Shape Hallucination": 0.0}

    # a fine-label row: a defect called as another defect is caught, not passed
    _write_predictions(tmp_path / "fine", {"a": "Available", "s1": "Space Mismatch", "s2": "Size Mismatch",
                                           "s3": "Available", "h1": "Shape Hallucination",
                                           "u1": "Unsuitable"})
    shares = tables.passed_as_available(tables.load_predictions(tmp_path / "fine"), truth)
    assert shares["Size Mismatch"] == 1 / 3
