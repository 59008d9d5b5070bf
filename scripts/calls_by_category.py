"""How often an inspector calls one class on the products of given categories.

    python scripts/calls_by_category.py --data data/rfgen_test_s206 \
        --predictions v4=runs/eval/v4_s206/predictions.jsonl \
        --predictions v4_mirror=runs/eval/v4m_s206/predictions.jsonl \
        --label Unsuitable --category mug "massage chair"

The mirror-robustness condition of the candidate rules (docs/RESULTS.md): an inspector that
learned the world's handedness calls mirrored mugs (handle on the other side) and massage
chairs damaged, so the count of Unsuitable calls on them with ``--mirror_average`` against
without says whether it did. The category is read from each record's ``source.category``
(RF-Synth and RF-Gen write it); predictions are matched to records by id, and a prediction
whose id is not in the dataset is an error, since the two files then do not belong together.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfnet.dataformat import SkipReport, read_records  # noqa: E402


def categories(data: str | Path) -> dict[str, str]:
    """id -> source.category of every record that has one."""
    _, records, _ = read_records(data, SkipReport())
    return {r["id"]: (r.get("source") or {}).get("category") for r in records}


def count_calls(cats: dict[str, str], predictions: Path, label: str, wanted: set[str]) -> tuple[int, int]:
    """(calls of ``label``, predictions) over the records whose category is in ``wanted``."""
    calls = n = 0
    for line in predictions.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        p = json.loads(line)
        if p["id"] not in cats:
            raise SystemExit(f"{predictions}: id {p['id']!r} is not in the dataset; "
                             "the predictions were made on another dataset")
        if cats[p["id"]] in wanted:
            n += 1
            calls += p["predicted"] == label
    return calls, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the dataset the predictions were made on")
    p.add_argument("--predictions", action="append", required=True, metavar="NAME=PATH",
                   help="rfnet.evaluate's predictions.jsonl (repeatable)")
    p.add_argument("--label", default="Unsuitable")
    p.add_argument("--category", nargs="+", default=["mug", "massage chair"])
    a = p.parse_args(argv)
    cats = categories(a.data)
    wanted = set(a.category)
    missing = wanted - set(cats.values())
    if missing:
        raise SystemExit(f"{a.data}: no record of category {', '.join(sorted(missing))}; "
                         f"categories there: {', '.join(sorted(c for c in set(cats.values()) if c))}")
    print(f"{a.label} calls on {', '.join(a.category)}:")
    for spec in a.predictions:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--predictions {spec!r}: write NAME=PATH")
        calls, n = count_calls(cats, Path(path), a.label, wanted)
        print(f"  {name}: {calls} of {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
