"""scripts/inspector_vs_people.py: agreement with people, counted by hand on a small case."""
import json

import inspector_vs_people as ivp  # scripts/ is on the path (conftest)


def test_agreement_leaves_out_unsure_and_counts_both_ways():
    person = {"a": "Available", "b": "Size Mismatch", "c": "unsure", "d": "Shape Hallucination", "e": "Available"}
    judge = {"a": "Available", "b": "Space Mismatch", "c": "Available", "d": "Available"}  # e not judged
    # a: both; b: Available-or-not only; d: neither; c unsure; e missing
    assert ivp.agreement(judge, person) == (2, 1, 3)
    assert ivp.agreement(judge, person, ids={"a", "d"}) == (1, 1, 2)


def test_table_and_cli(tmp_path, capsys):
    (tmp_path / "labels_X.csv").write_text("id,label,note\na,Available,\nb,Size Mismatch,\nc,unsure,\n")
    (tmp_path / "labels_X_2.csv").write_text("id,label,note\na,Available,\nb,Available,\nc,Available,\n")
    (tmp_path / "oracle_X.csv").write_text("id,oracle,recipe,measures\na,Available,g,{}\nb,Size Mismatch,g,{}\n"
                                           "c,Indistinctiveness,g,{}\n")
    rows = [{"id": i, "predicted": p} for i, p in (("a", "Size Mismatch"), ("b", "Size Mismatch"), ("c", "Available"))]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ivp.main(["--labels", str(tmp_path / "labels_X.csv"), str(tmp_path / "labels_X_2.csv"),
                     "--oracle", str(tmp_path / "oracle_X.csv"), "--predictions", f"m={tmp_path / 'p.jsonl'}"]) == 0
    out = capsys.readouterr().out
    # the oracle against labeller 1 (a, b sure): 2/2 and 2/2; against labeller 2 (a, b, c): 1/3 and 1/3;
    # where both agree (a only): 1/1
    assert "| oracle | 100.0% / 100.0% (2) | 33.3% / 33.3% (3) | 100.0% / 100.0% (1) |" in out
    # the model: a wrong, b right vs labeller 1; vs labeller 2: a wrong, b wrong, c right
    assert "| m | 50.0% / 50.0% (2) | 33.3% / 33.3% (3) | 0.0% / 0.0% (1) |" in out


def test_paired_difference_against_the_oracle():
    person = {f"rfgen7_{j:06d}_{k}": ("Available" if (j + k) % 2 else "Size Mismatch") for j in range(20) for k in (0, 1)}
    oracle = dict(person)  # agrees everywhere
    judge = dict(person)
    for i in list(judge)[:8]:  # wrong on Available-or-not for 8 of 40 images
        judge[i] = "Available" if person[i] != "Available" else "Space Mismatch"
    d, lo, hi = ivp.paired_vs(judge, oracle, person)
    assert d == -8 / 40 and lo <= d <= hi < 0
    assert ivp.paired_vs(oracle, oracle, person) == [0.0, 0.0, 0.0]


def test_sides_counts_only_where_judge_and_oracle_differ():
    person = {"a": "Available", "b": "Size Mismatch", "c": "Available", "d": "unsure"}
    oracle = {"a": "Size Mismatch", "b": "Available", "c": "Available", "d": "Available"}
    judge = {"a": "Available", "b": "Space Mismatch", "c": "Available", "d": "Size Mismatch"}
    # a and b differ (d too, but the person is unsure): the person sides with the judge on both
    assert ivp.sides(judge, oracle, person) == (2, 2)
    assert ivp.sides(oracle, judge, person) == (0, 2)
