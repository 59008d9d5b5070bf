"""RF-Gen (rfsynth.make_generated): generated images labelled by the oracle, reproducible,
resumable, with broken images dropped and counted."""
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from rfsynth import make_generated as mg
from rfsynth.fingerprint import fingerprint

FAST = (mg.Recipe("fast", steps=2), mg.Recipe("fast_lift", steps=2, lift=0.2, guidance=3.0))


def _recs(folder):
    return [json.loads(x) for x in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def test_records_say_how_each_image_was_made_and_the_oracle_agrees(tmp_path):
    from PIL import Image

    from rfsynth.oracle import judge

    r = mg.make(tmp_path / "g", 3, seed=5, splits="train=1", images_per_job=2, recipes=FAST, workers=1,
                progress=False)
    assert r["jobs"] == 3 and r["dropped"] == 0
    recs = _recs(tmp_path / "g")
    assert len(recs) == 6 and len({x["id"] for x in recs}) == 6
    for rec in recs:
        src = rec["source"]
        job = mg.draw_job(5, src["job"], FAST, 64, 2)
        assert src["recipe"] == job["recipe"].name and src["image_seed"] == job["seeds"][src["k"]]
        assert rec["prompt"] == job["prompt"] and rec["caption"] == job["caption"]
        assert src["annotator"] == "oracle" and src["steps"] == 2
        # the stored label is the oracle's verdict on the stored pixels
        v = judge(Image.open(tmp_path / "g" / rec["image"]), Image.open(tmp_path / "g" / rec["product"]),
                  src["placement"], src["category"], supplied=Image.open(tmp_path / "g" / rec["supplied"]),
                  damage=src["damage"])
        assert v.label == rec["label"]
        # the cutout as supplied is stored, and it is the one the job drew (damage judged on it)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "g" / rec["supplied"])), np.asarray(job["cutout"]))


def test_resume_gives_the_same_dataset_as_one_run(tmp_path):
    kw = dict(seed=9, splits="train=0.5,val=0.5", images_per_job=2, recipes=FAST, workers=1, progress=False)
    mg.make(tmp_path / "once", 3, **kw)
    mg.make(tmp_path / "twice", 1, **kw)
    second = mg.make(tmp_path / "twice", 3, **kw)
    assert second["jobs"] == 2  # the finished job is not redone
    assert fingerprint(tmp_path / "once") == fingerprint(tmp_path / "twice")


def test_non_finite_generations_are_dropped_and_counted(tmp_path):
    nan = (mg.Recipe("nan", steps=2, guidance=float("nan")),)
    r = mg.make(tmp_path / "g", 2, seed=1, splits="train=1", images_per_job=2, recipes=nan, workers=1,
                progress=False)
    assert r["dropped"] == 4 and r["labels"] == {}
    dropped = [json.loads(x) for x in (tmp_path / "g" / "dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == 4 and {d["reason"] for d in dropped} == {"non-finite latents"}
    assert not (tmp_path / "g" / "manifest.jsonl").exists() or not _recs(tmp_path / "g")


def test_degenerate_images_are_named():
    import numpy as np

    assert mg.degenerate(np.zeros((8, 8, 3))) == "constant image"
    assert mg.degenerate(np.full((8, 8, 3), np.nan)) == "non-finite pixels"
    assert mg.degenerate(np.random.default_rng(0).uniform(size=(8, 8, 3))) is None


def test_relabel_follows_a_rule_change(tmp_path, monkeypatch):
    from rfsynth import rules

    mg.make(tmp_path / "g", 3, seed=5, splits="train=1", images_per_job=2, recipes=FAST, workers=1, progress=False)
    before = _recs(tmp_path / "g")
    assert mg.relabel(tmp_path / "g")["moved"] == {}  # same rules, same labels
    monkeypatch.setattr(rules, "LOW_CONTRAST_FRAC", 0.0)  # every intact product now lacks contrast
    r = mg.relabel(tmp_path / "g")
    after = _recs(tmp_path / "g")
    keep = {"Unsuitable", "Indistinctiveness"}  # rule 1 still comes first
    assert {x["label"] for x in after} <= keep
    assert [x["label"] == "Unsuitable" for x in after] == [x["label"] == "Unsuitable" for x in before]
    assert sum(r["moved"].values()) == sum(x["label"] not in keep for x in before) > 0
    assert [x["id"] for x in after] == [x["id"] for x in before]


@pytest.mark.parametrize("argv, msg", [
    (["--num_jobs", "0"], "--num_jobs must be at least 1"),
    (["--splits", "train"], "--splits"),
    (["--controlnet", "nofolder"], "expected NAME=FOLDER"),
    (["--controlnet", "x=/no/such/dir"], "has no config.json"),
    (["--no_default_recipes"], "leaves nothing to draw with"),
])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, argv, msg):
    assert mg.main(["--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_damage_is_the_worlds_record_whatever_the_resize_or_the_matte():
    """Rule 1 reads the job's damage record: a damaged product is Unsuitable even where placement
    shrank its cutout and softened the cut (audit set B's miss), and an intact product with a
    hard matte (v2) is not, though its edges are all hard."""
    from rfft.placement import place
    from rfsynth.oracle import judge
    from rfsynth.products import hard_edges

    img = np.full((64, 64, 3), 200, np.uint8)
    for i in range(30):
        job = mg.draw_job(400, i, FAST, 64, 1, damage_p=1.0)
        assert job["damage"]["removed_frac"] >= 0.02  # v2 keeps only cuts that remove something
        a = np.asarray(job["cutout"])[..., 3] > 0  # and crops the cutout to its frame (products.tight)
        assert a[1].any() and a[-2].any() and a[:, 1].any() and a[:, -2].any()
        pl = place(job["cutout"], 64, job["scale"])
        assert judge(img, pl.cutout, pl.box, job["category"], damage=job["damage"]).label == "Unsuitable"
        # the record decides, not the pixels: the same cutout without it is judged on the scene
        assert judge(img, pl.cutout, pl.box, job["category"], damage=None).label != "Unsuitable"
    hard = 0
    for i in range(60):
        job = mg.draw_job(401, i, FAST, 64, 1, damage_p=0.0)
        if job["matte"] != "hard":
            continue
        hard += 1
        assert hard_edges(np.asarray(job["cutout"])[..., 3]).sum() >= 10
        pl = place(job["cutout"], 64, job["scale"])
        v = judge(img, pl.cutout, pl.box, job["category"], supplied=job["cutout"], damage=job["damage"])
        assert v.label != "Unsuitable"
    assert 8 <= hard <= 30  # about rules.HARD_MATTE_P of 60


def test_v1_jobs_are_drawn_as_before_and_the_record_agrees_with_v1s_hard_edge_rule():
    """Version 1 draws RF-Gen v1's products (soft mattes), and on them the record rule and v1's
    hard-edge count give the same verdict, so no v1 label moves (also checked on the stored
    RF-Gen v1 sets: docs/RFSYNTH.md). v2 changes the product's look and frame, never another draw."""
    from rfsynth import rules
    from rfsynth.products import hard_edges, tight

    for i in range(40):
        v1 = mg.draw_job(402, i, FAST, 64, 2, damage_p=0.5, version=1)
        v2 = mg.draw_job(402, i, FAST, 64, 2, damage_p=0.5, version=2)
        assert v1["matte"] == "soft"
        edges = hard_edges(np.asarray(v1["cutout"])[..., 3]).sum()
        assert (edges >= rules.HARD_EDGE_MIN_PX) == bool(v1["damage"])
        for k in ("prompt", "caption", "category", "scale", "seeds"):
            assert v1[k] == v2[k]
        if (v2["matte"], v2["printed"]) == ("soft", None) and (
                v1["damage"] is None or v1["damage"]["removed_frac"] >= rules.DAMAGE_MIN_FRAC):
            # v2 crops every cutout to its one-pixel frame; nothing else differs
            assert np.array_equal(np.asarray(tight(v1["cutout"])), np.asarray(v2["cutout"]))


def test_a_v1_folder_resumes_as_v1_and_refuses_another_version(tmp_path, capsys):
    mg.make(tmp_path / "g", 1, seed=6, splits="train=1", images_per_job=1, recipes=FAST[:1], workers=1,
            progress=False, version=1)
    mg.make(tmp_path / "g", 2, seed=6, splits="train=1", images_per_job=1, recipes=FAST[:1], workers=1,
            progress=False)  # no version asked: the folder's own
    assert [r["source"]["version"] for r in _recs(tmp_path / "g")] == [1, 1]
    assert {r["source"]["matte"] for r in _recs(tmp_path / "g")} == {"soft"}
    argv = ["--out", str(tmp_path / "g"), "--num_jobs", "3", "--version", "2", "--no_progress"]
    assert mg.main(argv) == 2
    err = capsys.readouterr().err
    assert "begun as version 1" in err and "--version 1" in err and "Traceback" not in err
    assert len(_recs(tmp_path / "g")) == 2  # nothing written


def _sigint_handler(_job):
    return signal.getsignal(signal.SIGINT)


def test_pool_workers_leave_ctrl_c_to_the_main_process(monkeypatch):
    # Ctrl-C reaches every process in the terminal's group: workers that handled it too would each
    # print a KeyboardInterrupt traceback over the main process's message
    monkeypatch.setattr(mg, "run_job", _sigint_handler)
    # as in a terminal (a shell's background job, CI's perhaps, starts with SIGINT ignored, and
    # forked workers would inherit that whatever the initializer did)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with mg._runner(2, "embedded", 1) as run:
            got = list(run([0, 1]))
        assert got == [signal.SIG_IGN, signal.SIG_IGN]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the main process still stops on it
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_says_how_far_it_got_and_how_to_go_on(tmp_path, capsys, monkeypatch):
    out = tmp_path / "生成 数据"

    def interrupted(folder, *args, **kwargs):
        Path(folder).mkdir(parents=True)
        (Path(folder) / "jobs_done.txt").write_text("0\n1\n2\n12\n")  # job 12: from a larger --num_jobs
        raise KeyboardInterrupt

    monkeypatch.setattr(mg, "make", interrupted)
    assert mg.main(["--out", str(out), "--num_jobs", "10"]) == 130
    err = capsys.readouterr().err
    assert f"3 of 10 jobs are in {out}" in err and "run the same command" in err
    assert "Traceback" not in err
