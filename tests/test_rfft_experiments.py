"""scripts/rfft_experiments.py names each run's folder from its settings: every stage (train,
evaluate, fig6, table) finds a run by that name and skips work already done, so two settings
must never share a folder, and a default setting must keep the name earlier rounds wrote."""

from conftest import load_script

exp = load_script("rfft_experiments")


def test_default_settings_keep_the_names_of_earlier_rounds():
    assert [exp.name_of(c, b) for c, b in (("original", 0), ("none", 0), ("cc", 0.1), ("kl", 1.0))] == \
        ["original", "none", "cc_b0.1", "kl_b1"]
    assert exp.name_of("cc", 1.0, "wall_colour") == "cc_b1+wall_colour"
    assert exp.name_of("cc", 1.0, steps=exp.STEPS, lr=exp.LR, rfnet="embedded") == "cc_b1"


def test_each_setting_that_changes_training_gets_its_own_folder():
    names = [exp.name_of("cc", 0.1), exp.name_of("cc", 0.1, lr=1e-3), exp.name_of("cc", 0.1, steps=450),
             exp.name_of("cc", 0.1, rfnet="runs/rfnet_v3"), exp.name_of("cc", 0.1, lr=1e-3, steps=450, rfnet="x/v3")]
    assert names == ["cc_b0.1", "cc_b0.1@lr0.001", "cc_b0.1@450steps", "cc_b0.1~rfnet_v3", "cc_b0.1@lr0.001@450steps~v3"]
    assert [exp.name_of("cc", 1, batch=4), exp.name_of("cc", 1, "wall_colour", extra_weight=0.5),
            exp.name_of("cc", 1, "wall_colour", extra_weight=1.0)] == ["cc_b1@batch4", "cc_b1+wall_colour*0.5", "cc_b1+wall_colour"]
    # Fig. 7b's repeats: training seed 0 keeps the name every earlier run wrote
    assert [exp.name_of("cc", 0.1, seed=s, rfnet="runs/rfnet_v3") for s in (0, 1, 2)] == \
        ["cc_b0.1~rfnet_v3", "cc_b0.1@seed1~rfnet_v3", "cc_b0.1@seed2~rfnet_v3"]


def test_untrained_configurations_are_one_run_whatever_the_training_settings_but_one_per_judge():
    # the original and the negative prompt train nothing: their images are the same in every round,
    # but an evaluation records its judge's verdicts (and fig6 retries on them), so the judge names it
    for c in ("original", "negprompt"):
        assert {exp.name_of(c, 0, lr=1e-3, steps=450, seed=2), exp.name_of(c, 0)} == {c}
        assert exp.name_of(c, 0, lr=1e-3, rfnet="runs/rfnet_v3") == f"{c}~rfnet_v3"


def test_tables_take_one_judge_s_evaluations(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(exp, "RUNS", tmp_path)
    (tmp_path / "eval").mkdir()
    for n in ("original", "none", "original~rfnet_v3", "none~rfnet_v3", "cc_b0.1@seed1~rfnet_v3", "none~other"):
        (tmp_path / "eval" / f"{n}.json").write_text(json.dumps({"name": n}))
    assert set(exp.evaluations("embedded")) == {"original", "none"}
    assert set(exp.evaluations("runs/rfnet_v3")) == {"original~rfnet_v3", "none~rfnet_v3", "cc_b0.1@seed1~rfnet_v3"}


def test_defect_cells_count_mean_and_auc_as_computed_directly():
    """The per-class table that shows a reward being hacked: counts, mean score, and each
    defect's AUC against Available, checked against scikit-learn's ROC AUC (ties count half in both)."""
    import numpy as np
    import pytest

    skm = pytest.importorskip("sklearn.metrics", reason="pip install scikit-learn (the test extra has it)")
    rng = np.random.default_rng(0)
    labels = ["Available"] * 30 + ["Size Mismatch"] * 12 + ["Shape Hallucination"] * 7
    rows = [{"oracle": c, "v3": float(np.round(rng.random(), 1))} for c in labels]  # rounded: ties happen
    cells = exp.defect_cells(rows, "v3")
    assert cells[exp.CLASSES.index("Space Mismatch")] == "0"
    avail = [r["v3"] for r in rows if r["oracle"] == "Available"]
    assert cells[0] == f"30 / {np.mean(avail):.2f}"
    for c, n in (("Size Mismatch", 12), ("Shape Hallucination", 7)):
        neg = [r["v3"] for r in rows if r["oracle"] == c]
        want = skm.roc_auc_score([1] * len(avail) + [0] * n, avail + neg)
        assert cells[exp.CLASSES.index(c)] == f"{n} / {np.mean(neg):.2f} / {want:.2f}"


def test_cross_judge_table_counts_what_each_judge_accepts(tmp_path, monkeypatch):
    """scripts/cross_judge.py's last column: images at or above each judge's threshold, all and
    oracle-Available; the threshold comes from the record, else from the judge's config.json."""
    import json

    import cross_judge

    monkeypatch.setattr(cross_judge, "OUT", tmp_path)
    (tmp_path / "j2").mkdir()
    (tmp_path / "j2" / "config.json").write_text(json.dumps({"acceptance_threshold": 0.5}))
    rows = [{"i": 0, "oracle": "Available", "a": 0.9, "b": 0.6}, {"i": 1, "oracle": "Shape Hallucination", "a": 0.95, "b": 0.4},
            {"i": 2, "oracle": "Available", "a": 0.7, "b": 0.5}, {"i": 3, "oracle": "Size Mismatch", "a": 0.2, "b": 0.9}]
    (tmp_path / "r.json").write_text(json.dumps({"name": "r", "judges": {"a": "unused", "b": str(tmp_path / "j2")},
                                                 "thresholds": {"a": 0.8}, "rows": rows}))
    lines = [x for x in cross_judge.table(["r"]).splitlines() if x.startswith("| r |")]
    assert lines[0].startswith("| r | a (P >= 0.80) | 2 / 0.80 |") and lines[0].endswith("| 2 / 1 |")
    assert lines[1].startswith("| r | b (P >= 0.50) | 2 / 0.55 |") and lines[1].endswith("| 3 / 2 |")


def test_cross_judge_counts_the_inspector_s_own_acceptance_and_the_churn(tmp_path, monkeypatch):
    """Newer records keep each image's ``accepted`` as the Inspector decided it (an image flagged
    outside the training data is not accepted whatever its P); the job-by-job lines count what
    changed between two runs, which a net count hides."""
    import json

    import cross_judge

    monkeypatch.setattr(cross_judge, "OUT", tmp_path)
    base = [{"i": 0, "oracle": "Available", "a": 0.9, "a_accepted": True},
            {"i": 1, "oracle": "Shape Hallucination", "a": 0.3, "a_accepted": False},
            {"i": 2, "oracle": "Available", "a": 0.95, "a_accepted": False}]  # flagged: P high, not accepted
    new = [{"i": 0, "oracle": "Shape Hallucination", "a": 0.95, "a_accepted": True},
           {"i": 1, "oracle": "Available", "a": 0.2, "a_accepted": False},
           {"i": 2, "oracle": "Available", "a": 0.97, "a_accepted": True}]
    for n, rows in (("b", base), ("n", new)):
        (tmp_path / f"{n}.json").write_text(json.dumps({"name": n, "judges": {"a": "x"}, "thresholds": {"a": 0.8},
                                                         "rows": rows}))
    out = cross_judge.table(["b", "n"]).splitlines()
    assert next(x for x in out if x.startswith("| b |")).endswith("| 1 / 1 |")
    assert next(x for x in out if x.startswith("| n |")).endswith("| 2 / 1 |")
    assert "- oracle: 1 Available images became defects, 1 defects became Available" in out
    assert "- a: newly accepted 1 (1 Available), no longer accepted 0 (of which the job's new image is Available: 0)" in out


def test_every_stage_finds_the_run_the_command_line_names(tmp_path, monkeypatch):
    """train, evaluate and fig6 each take their folder from run_name: a flag that one of them
    dropped would send it to another run's folder."""
    import argparse

    a = exp.build_parser().parse_args(["train", "--config", "cc", "--beta", "0.1", "--seed", "2", "--batch", "4",
                                       "--steps", "60", "--lr", "3e-4", "--rfnet", "runs/rfnet_v3"])
    assert exp.run_name(a) == "cc_b0.1@batch4@lr0.0003@60steps@seed2~rfnet_v3"
    monkeypatch.setattr(exp, "RUNS", tmp_path)

    def other_run(*_, **__):
        raise AssertionError("a stage went past the run the command line names")

    import rfft.evaluate
    import rfft.train

    monkeypatch.setattr(rfft.train, "main", other_run)
    monkeypatch.setattr(rfft.evaluate, "evaluate", other_run)
    (tmp_path / exp.run_name(a) / "controlnet").mkdir(parents=True)  # trained: train must skip it
    exp.stage_train(a)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / f"{exp.run_name(a)}.json").write_text("{}")  # evaluated: evaluate must skip it
    exp.stage_evaluate(argparse.Namespace(**{**vars(a), "stage": "evaluate"}))


def test_fig7b_points_average_the_training_seeds_of_each_beta():
    def ev(name, config, beta, o, f, lr=exp.LR, **kw):
        return name, {"name": name, "config": config, "beta": beta, "lr": lr, "available_rate_oracle": o,
                      "available_rate_rfnet": f, **kw}

    rows = dict([ev("cc_b0.1~v3", "cc", 0.1, 0.68, 0.30), ev("cc_b0.1@seed1~v3", "cc", 0.1, 0.683, 0.293),
                 ev("cc_b0.1@seed2~v3", "cc", 0.1, 0.65, 0.29), ev("cc_b1~v3", "cc", 1.0, 0.70, 0.31),
                 ev("cc_b1@lr0.001~v3", "cc", 1.0, 0.10, 0.05, lr=1e-3), ev("cc_b1@450steps~v3", "cc", 1.0, 0.2, 0.2),
                 ev("cc_b1+wall_colour~v3", "cc", 1.0, 0.3, 0.3, extra_reward="wall_colour"),
                 ev("kl_b1~v3", "kl", 1.0, 0.5, 0.5)])
    pts = exp.fig7b_points(rows, "cc")
    assert [(p["beta"], p["seeds"]) for p in pts] == [(0.1, 3), (1.0, 1)]
    assert pts[0]["oracle"] == (sum((0.68, 0.683, 0.65)) / 3, 0.65, 0.683)
    assert pts[0]["rfnet"][1:] == (0.29, 0.30)
    assert pts[1]["oracle"] == (0.70, 0.70, 0.70)
    assert [p["oracle"][0] for p in exp.fig7b_points(rows, "cc", lr=1e-3)] == [0.10]
