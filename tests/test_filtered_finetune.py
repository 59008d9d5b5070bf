"""scripts/filtered_finetune.py: which images each judge keeps, seeds apart from the evaluation's,
and the loss counts the generated region only."""
import json

import pytest
import torch
from conftest import load_script

ff = load_script("filtered_finetune")


def _rows(tmp_path):
    rows = [{"job": 1, "k": 0, "oracle": "Available", "accepted": False},
            {"job": 0, "k": 1, "oracle": "Size Mismatch", "accepted": True},
            {"job": 0, "k": 0, "oracle": "Available", "accepted": True}]
    (tmp_path / "rows_0.jsonl").write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[2]) + "\n")
    (tmp_path / "rows_1.jsonl").write_text(json.dumps(rows[1]) + "\n\n")
    return rows


def test_rows_from_every_shard_in_job_order(tmp_path):
    _rows(tmp_path)
    assert [(r["job"], r["k"]) for r in ff.rows_of(tmp_path)] == [(0, 0), (0, 1), (1, 0)]


def test_each_judge_keeps_its_own_images(tmp_path):
    _rows(tmp_path)
    rows = ff.rows_of(tmp_path)
    key = lambda keep: [(r["job"], r["k"]) for r in ff.kept(rows, keep)]  # noqa: E731
    assert key("oracle") == [(0, 0), (1, 0)]
    assert key("rfnet") == [(0, 0), (0, 1)]  # the inspector's false accept is kept, its wasted rejection not
    assert key("all") == [(0, 0), (0, 1), (1, 0)]
    with pytest.raises(ValueError, match="--keep must be one of"):
        ff.kept(rows, "people")


def test_image_seeds_never_meet_the_evaluations():
    from rfft.evaluate import image_seeds

    seed = ff.TRAIN_SEED
    mine = {ff.image_seed(seed, j, k) for j in range(5000) for k in range(2)}
    assert len(mine) == 10_000
    for first in image_seeds(seed) + image_seeds(31337):
        assert not mine & set(range(first, first + 5000))


def test_masked_mse_is_the_mean_over_the_generated_region():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :3] = 1
    mask[1, :, 5:, 2:] = 1
    direct = torch.cat([((pred[0] - target[0])[:, :3] ** 2).flatten(), ((pred[1] - target[1])[:, 5:, 2:] ** 2).flatten()])
    assert torch.allclose(ff.masked_mse(pred, target, mask), direct.mean())


def test_table_pairs_the_rate_and_the_diversity_job_for_job(tmp_path, capsys):
    from rfft.evaluate import paired_difference

    def ev(name, ok, div):
        rows = [{"prompt": f"p{i}", "oracle": "Available" if o else "Size Mismatch", "diversity": d}
                for i, (o, d) in enumerate(zip(ok, div))]
        e = {"seed": 31337, "rows": rows, "available_rate_oracle": sum(ok) / len(ok), "available_rate_rfnet": 0.3,
             "wall_colour_match": 0.8, "background_diversity": sum(div) / len(div), "background_detail": 8.7}
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps(e))
        return str(tmp_path / name / "eval.json")

    base = ev("base", [1, 0, 1, 0], [30.0, 32.0, 34.0, 36.0])
    other = ev("other", [1, 1, 1, 0], [29.0, 32.5, 33.0, 35.0])
    assert ff.main(["table", base, other]) == 0
    lines = capsys.readouterr().out.splitlines()
    d, lo, hi = paired_difference([1, 1, 1, 0], [1, 0, 1, 0])
    dd, dlo, dhi = paired_difference([29.0, 32.5, 33.0, 35.0], [30.0, 32.0, 34.0, 36.0])
    assert lines[3].startswith("| other/eval | 75.0% (3/4) | " + f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    assert f"32.4 ({dd:+.1f} [{dlo:+.1f}, {dhi:+.1f}])" in lines[3]
    assert "(baseline)" in lines[2]
    bad = ev("bad", [1, 1, 1], [1.0, 2.0, 3.0])
    with pytest.raises(SystemExit, match="not an evaluation of the same jobs"):
        ff.main(["table", base, bad])
