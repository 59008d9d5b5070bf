"""scripts/matte_check.py: an inspector's verdicts split by the product's matte."""
import json

from conftest import load_script

mc = load_script("matte_check")


def _rec(i, label, matte=None, rfgen=False):
    src = {"matte": matte} if rfgen else {"params": {"product": {"matte": matte}} if matte else {}}
    return {"id": str(i), "label": label, "source": src}


def test_counts_false_alarms_and_recall_per_matte(tmp_path, capsys):
    printed = {"id": "6", "label": "Available", "source": {"params": {"product": {"matte": "hard", "printed": 7}}}}
    assert mc.matte_of(printed) == "hard, printed"
    recs = [_rec(0, "Available", "hard"), _rec(1, "Available", "hard"), _rec(2, "Unsuitable", "hard"),
            _rec(3, "Available"), _rec(4, "Unsuitable", "soft", rfgen=True), _rec(5, "Space Mismatch", "soft")]
    preds = [{"id": "0", "predicted": "Unsuitable"}, {"id": "1", "predicted": "Available"},
             {"id": "2", "predicted": "Unsuitable"}, {"id": "3", "predicted": "Available"},
             {"id": "4", "predicted": "Available"}, {"id": "5", "predicted": "Unsuitable"},
             {"id": "9", "predicted": "Unsuitable"}]  # not in the dataset: ignored
    r = mc.split_by_matte({x["id"]: x for x in recs}, preds)
    assert r["hard"] == {"intact": 2, "intact_unsuitable": 1, "damaged": 1, "damaged_unsuitable": 1,
                         "n": 3, "correct": 2}
    # a record without a matte (v1) is soft
    assert r["soft"] == {"intact": 2, "intact_unsuitable": 1, "damaged": 1, "damaged_unsuitable": 0,
                         "n": 3, "correct": 1}
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in recs) + "\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "predictions.jsonl").write_text("\n".join(json.dumps(x) for x in preds) + "\n")
    assert mc.main(["--data", str(tmp_path / "d"), "--predictions", f"x={tmp_path / 'p'}"]) == 0
    out = capsys.readouterr().out
    assert "| x | hard | 3 | 50.0% (1/2) | 100.0% (1/1) | 66.7% (2/3) |" in out
