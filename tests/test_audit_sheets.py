"""scripts/audit_oracle.py: the annotator's legend, shown on every audit sheet, is whole at any
sheet width (it once had a fixed height, and wide text ran off its bottom edge)."""

import numpy as np
import pytest
from conftest import load_script

audit = load_script("audit_oracle")


@pytest.mark.parametrize("width", [360, 700, 1400])
@pytest.mark.parametrize("conventions", [1, 2, 3, 4])
def test_every_reference_swatch_is_whole_on_the_legend(width, conventions):
    img = np.asarray(audit._legend(width, conventions).convert("RGB"))
    assert img.shape[1] == width
    assert (img[-3:] == 255).all()  # a white margin below the last row: nothing cut off
    for name, ref in audit.REFERENCES.items():
        hit = (img == np.array(ref["colour"], dtype=np.uint8)).all(axis=-1)
        rows, cols = np.nonzero(hit)
        assert len(rows) >= 15 * 15, f"the {name} swatch is missing or cut"
        assert rows.max() - rows.min() >= 15 and cols.max() - cols.min() >= 15  # a whole square



def test_the_written_conventions_lengthen_the_legend_and_name_the_rules_people_read_two_ways():
    one, two = audit._legend(700, 1), audit._legend(700, 2)
    assert two.height > one.height + 100  # every word laid out, none dropped
    for words in ("hanging on the wall is decoration", "wall showing on both sides", "If several defects apply"):
        assert words in audit.NOTES[2] and words not in audit.NOTES[1]
    assert audit.NOTES[3].startswith(audit.NOTES[2]) and "nearest to" in audit.NOTES[3]
    assert audit.NOTES[4].startswith(audit.NOTES[3]) and "pixel-sharp side" in audit.NOTES[4]
    assert audit._legend(700, 4).height > audit._legend(700, 3).height


def _rate(table: str, measure: str) -> str:
    row = next(x for x in table.splitlines() if x.startswith(f"| {measure}"))
    return row.split("|")[2].strip()


def test_agreement_counts_only_images_both_sides_were_sure_of():
    # two labellers: 'unsure' on either side leaves the image out of both rates
    pairs = [("a", "Available", "Available"), ("b", "Available", "Size Mismatch"),
             ("c", "Space Mismatch", "Size Mismatch"), ("d", "unsure", "Available"),
             ("e", "Indistinctiveness", "unsure"), ("f", "Shape Hallucination", "Shape Hallucination")]
    table = audit.agreement(pairs, "labeller 1", "labeller _2")
    # sure on both sides: a, b, c, f. Available or not agrees on a, c, f; six classes on a, f
    assert _rate(table, "Available or not") == "3/4 = 75.0%"
    assert _rate(table, "six classes") == "2/4 = 50.0%"
    assert "sure of 4, unsure of 2" in table
    header = next(x for x in table.splitlines() if x.startswith("| labeller 1 \\ labeller _2 |"))
    assert header.rstrip(" |").endswith("unsure")  # the second labeller's unsure is a column
    row = next(x for x in table.splitlines() if x.startswith("| Indistinctiveness |") and x.count("|") > 8)
    assert row.split("|")[-2].strip() == "1"


def test_the_oracle_side_has_no_unsure_column():
    table = audit.agreement([("a", "Available", "Available"), ("b", "unsure", "Space Mismatch")])
    header = next(x for x in table.splitlines() if x.startswith("| eye \\ oracle |"))
    assert "unsure" not in header and "sure of 1, unsure of 1" in table


def test_a_second_labeller_has_its_own_file_and_the_same_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "AUDIT", tmp_path)
    (tmp_path / "ids_E.txt").write_text("E_0\nE_1\n")
    (tmp_path / "labels_E.csv").write_text("id,label,note\nE_0,Available,\nE_1,unsure,\n")
    assert audit.labels_path("E", "_2") == tmp_path / "labels_E_2.csv"
    with pytest.raises(ValueError, match="labels_E_2.csv is missing"):
        audit.check_labels("E", "_2")
    (tmp_path / "labels_E_2.csv").write_text("id,label,note\nE_0,Avail,\n")
    with pytest.raises(ValueError, match=r"E_0: label 'Avail' is not one of.*1 ids without a row"):
        audit.check_labels("E", "_2")


def test_the_oracle_is_scored_where_the_two_labellers_agree():
    pairs = [("a", "Available", "Available"), ("b", "Size Mismatch", "Space Mismatch"),
             ("c", "Available", "Size Mismatch"), ("d", "Shape Hallucination", "Shape Hallucination"),
             ("e", "unsure", "Available")]
    oracle = {"a": "Size Mismatch", "b": "Space Mismatch", "c": "Available", "d": "Shape Hallucination",
              "e": "Available"}
    table = audit.consensus(pairs, oracle)
    # Available or not: both agree on a (yes), b (no), d (no); the oracle matches b and d
    assert "| Available or not | 2/3 = 66.7% |" in table
    # six classes: a and d; the oracle matches d only
    assert "| six classes | 1/2 = 50.0% |" in table


def test_two_rule_rounds_are_compared_on_the_same_sure_images():
    eye = {f"rfgen8_{j:06d}_{k}": "Available" for j in range(5) for k in (0, 1)}
    eye["rfgen8_000004_1"] = "unsure"
    old = dict.fromkeys(eye, "Available")
    new = dict(old)
    eye["rfgen8_000000_0"] = "Size Mismatch"  # old wrong, new right
    new["rfgen8_000000_0"] = "Size Mismatch"
    new["rfgen8_000001_0"] = "Space Mismatch"  # new wrong on both counts
    new["rfgen8_000002_0"] = "Available"
    r = audit.rounds(eye, old, new, n_boot=100)
    assert r["n"] == 9 and r["changed"] == 2
    six, two = r["six classes"], r["Available or not"]
    assert six["old"] == pytest.approx(100 * 8 / 9) and six["new"] == pytest.approx(100 * 8 / 9)
    assert two["diff"][0] == pytest.approx(0.0)  # one gained, one lost
    with pytest.raises(ValueError, match="no sure image"):
        audit.rounds({"x": "unsure"}, {"x": "Available"}, {"x": "Available"})


def test_the_oracle_against_two_labellers_is_paired_over_the_images_both_were_sure_of():
    ids = [f"rfgen8_{j:06d}_{k}" for j in range(4) for k in (0, 1)]
    oracle = dict.fromkeys(ids, "Available")
    one = dict.fromkeys(ids, "Size Mismatch")  # disagrees with the oracle everywhere
    two = dict.fromkeys(ids, "Available")  # agrees everywhere ...
    two[ids[0]] = "unsure"  # ... but one image is left out for both
    r = audit.labellers_vs_oracle(one, two, oracle, n_boot=100)
    assert r["n"] == 7
    assert r["Available or not"]["old"] == 0.0 and r["Available or not"]["new"] == 100.0
    assert r["Available or not"]["diff"] == [100.0, 100.0, 100.0]
