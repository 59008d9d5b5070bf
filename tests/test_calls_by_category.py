"""scripts/calls_by_category.py: one class's calls on the products of chosen categories."""
import json

import pytest
from conftest import load_script

cc = load_script("calls_by_category")


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def world(tmp_path):
    data = tmp_path / "数据 集"
    data.mkdir()
    cats = ["mug", "massage chair", "lamp", "mug", "lamp", "massage chair"]
    _jsonl(data / "manifest.jsonl", [{"id": f"s{k}", "source": {"category": c}} for k, c in enumerate(cats)])
    predicted = ["Unsuitable", "Unsuitable", "Unsuitable", "Available", "Unsuitable", "Space Mismatch"]
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": f"s{k}", "predicted": p} for k, p in enumerate(predicted)])
    return data, preds


def test_counts_only_the_chosen_categories(world, capsys):
    data, preds = world
    # direct count: mugs and massage chairs are s0, s1, s3, s5; Unsuitable among them: s0, s1
    assert cc.count_calls(cc.categories(data), preds, "Unsuitable", {"mug", "massage chair"}) == (2, 4)
    assert cc.count_calls(cc.categories(data), preds, "Unsuitable", {"lamp"}) == (2, 2)
    assert cc.main(["--data", str(data), "--predictions", f"v4={preds}"]) == 0
    assert "v4: 2 of 4" in capsys.readouterr().out


def test_predictions_of_another_dataset_are_refused(world, tmp_path):
    data, _ = world
    other = _jsonl(tmp_path / "q.jsonl", [{"id": "x9", "predicted": "Available"}])
    with pytest.raises(SystemExit, match="x9.*not in the dataset"):
        cc.main(["--data", str(data), "--predictions", f"v4={other}"])


def test_a_category_absent_from_the_data_is_named(world):
    data, preds = world
    with pytest.raises(SystemExit, match="no record of category sofa"):
        cc.main(["--data", str(data), "--predictions", f"v4={preds}", "--category", "sofa"])
