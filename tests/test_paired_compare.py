"""scripts/paired_compare.py: paired differences between two inspectors on the same images."""
import json

import numpy as np
import pytest
from conftest import load_script

from rfnet.metrics import average_precision

pc = load_script("paired_compare")


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(labels, probs):
    return [{"id": f"rfgen200_{k // 4:06d}_{k % 4}", "label": "Available" if y else "Size Mismatch",
             "predicted": "Available" if p >= 0.5 else "Size Mismatch", "p_available": p}
            for k, (y, p) in enumerate(zip(labels, probs))]


def test_job_of_groups_rfgen_images_and_leaves_composed_ids_alone():
    assert pc.job_of("rfgen200_000123_2") == "rfgen200_000123"
    assert pc.job_of("rfs1_000123") == "rfs1_000123"
    assert pc.job_of("商品 杯子") == "商品 杯子"


def test_point_estimates_match_a_direct_computation(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.random(80) < 0.45
    pb = np.clip(y * 0.3 + rng.random(80) * 0.7, 0, 1)
    po = np.clip(y * 0.5 + rng.random(80) * 0.5, 0, 1)
    base = pc.read_predictions(_write(tmp_path / "b.jsonl", _rows(y, pb)))
    other = pc.read_predictions(_write(tmp_path / "o.jsonl", _rows(y, po)))
    r = pc.paired_difference(base, other, n_boot=200)
    assert r["n"] == 80 and r["groups"] == 20

    def agree(p):
        return np.mean((p >= 0.5) == y)

    assert r["agreement"][0] == pytest.approx(agree(po) - agree(pb))
    assert r["ap"][0] == pytest.approx(average_precision(y, po) - average_precision(y, pb))
    assert r["agreement"][1] <= r["agreement"][0] <= r["agreement"][2]
    assert r["ap"][1] < r["ap"][2]


def test_identical_models_differ_by_exactly_zero(tmp_path):
    rows = _rows([1, 0, 1, 0, 1, 1, 0, 0], [0.9, 0.2, 0.6, 0.4, 0.7, 0.3, 0.8, 0.1])
    p = pc.read_predictions(_write(tmp_path / "a.jsonl", rows))
    r = pc.paired_difference(p, dict(p), n_boot=100)
    assert r["agreement"] == [0.0, 0.0, 0.0] and r["ap"] == [0.0, 0.0, 0.0]


def test_different_images_are_refused_with_a_clear_message(tmp_path):
    rows = _rows([1, 0, 1, 0], [0.9, 0.2, 0.6, 0.4])
    a = pc.read_predictions(_write(tmp_path / "a.jsonl", rows))
    b = pc.read_predictions(_write(tmp_path / "b.jsonl", rows[:3]))
    with pytest.raises(ValueError, match="different images"):
        pc.paired_difference(a, b)
