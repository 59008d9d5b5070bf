"""scripts/job_effects.py: job-level counts against independence, same-label rates, and the
reference height rule 5 needs, against direct computations."""

import pytest
from conftest import load_script

je = load_script("job_effects")


def _rows(labels):
    return [{"job": j, "k": k, "oracle": lab} for j, pair in enumerate(labels) for k, lab in enumerate(pair)]


A, S, Z = "Available", "Size Mismatch", "Space Mismatch"


def test_job_counts_against_independent_draws():
    rows = _rows([(A, A), (A, S), (S, S), (Z, S)]) + [{"job": 9, "k": 0, "oracle": A}]  # job 9: one image, left out
    counts, indep, p = je.job_counts(rows)
    assert counts == {2: 1, 1: 1, 0: 2}
    assert p == pytest.approx(3 / 8)
    assert indep[0] == pytest.approx(4 * (5 / 8) ** 2)
    assert indep[1] == pytest.approx(4 * 2 * (3 / 8) * (5 / 8))
    assert sum(indep.values()) == pytest.approx(4)


def test_same_label_counts_both_directions():
    same = je.same_label(_rows([(A, A), (A, S), (S, S), (Z, S)]))
    assert same[A] == (3, 2, 3 / 8)       # job 0 twice, job 1's Available once
    assert same[S] == (4, 2, 4 / 8)       # job 2 twice; jobs 1 and 3 differ
    assert same[Z] == (1, 0, 1 / 8)


def test_prompted_reference():
    assert je.prompted_reference("a mug on a oak table, navy wall, a book stack beside it") == "book stack"
    assert je.prompted_reference("a mug on a oak table, navy wall") is None


def test_needed_reference_height_passes_rule_5_at_its_ends():
    from rfsynth import rules
    from rfsynth.catalog import CATEGORY_BY_NAME, REFERENCES

    lo_cm, hi_cm = CATEGORY_BY_NAME["mug"].height_cm
    lo, hi = je.needed_reference_px(30, "cup", "mug")
    implied = lambda ref_px: 30 / (ref_px / REFERENCES["cup"]["height_cm"])  # noqa: E731 (oracle.py, rule 5)
    assert implied(lo) == pytest.approx(hi_cm * rules.SIZE_TOLERANCE)
    assert implied(hi) == pytest.approx(lo_cm / rules.SIZE_TOLERANCE)


def test_size_causes():
    def m(oracle, prompted, reference, px, needed):
        return {"oracle": oracle, "prompted": prompted, "reference": reference, "reference_px": px, "needed_px": needed}

    drawn = [m(A, "cup", "cup", px, (5, 30)) for px in range(10, 21)]  # the cup is drawn 10..20 px
    rows = drawn + [m(S, None, "cup", 12, None), m(S, "door", "cup", 12, (20, 40)),
                    m(S, "cup", "cup", 20, (30, 45)), m(S, "cup", "cup", 11, (12, 14))]
    assert je.size_causes(rows) == {"no reference in the prompt": 1, "another reference drawn": 1,
                                    "needed height outside what is drawn": 1, "needed height drawable": 1}


def test_a_pool_without_two_image_jobs_is_refused_in_one_line(tmp_path):
    rows = tmp_path / "rows_0.jsonl"
    rows.write_text('{"job": 0, "k": 0, "oracle": "Available"}\n', encoding="utf-8")  # one image a job
    with pytest.raises(SystemExit, match="no job with two images"):
        je.main(["--data", str(tmp_path)])
