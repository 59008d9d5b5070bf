"""Is an RFFT run's gain on its training inspector shared by another inspector?

Regenerates the judged image of each held-out job of ``scripts/rfft_experiments.py evaluate``
(same products, prompts and seeds, so the same pixels) with a given ControlNet, and scores it with
several inspectors and the oracle. If the fine-tuning raised the training judge's P(Available) on
images the oracle calls defective while another judge's stays where it was, the generator found
that judge's blind spots (the reward is hacked); if both rise, the images are hard for any judge
trained on these data.

    python scripts/cross_judge.py --name none~rfnet_v3 --controlnet runs/rfft_exp/none~rfnet_v3/controlnet \
        --judge v2=runs/rfnet_v2 --judge v3=runs/rfnet_v3 --jobs 300
    python scripts/cross_judge.py --name original~rfnet_v3 --judge v2=runs/rfnet_v2 --judge v3=runs/rfnet_v3 --jobs 300
    python scripts/cross_judge.py --table original~rfnet_v3 none~rfnet_v3     # per-class means and AUCs, each judge

Writes runs/rfft_exp/cross_judge/NAME.json (one row per job: the oracle's label, and each judge's
P(Available) and acceptance); skips a name already written with the same settings. Give the run
its evaluation's name (rfft_experiments' run name) so the oracle's labels are checked against it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfft_experiments import CLASSES, EVAL_SEED, RUNS, defect_cells  # noqa: E402  (scripts/ is on the path when run as a script)

OUT = RUNS / "cross_judge"


def run(name: str, controlnet: str | None, judges: dict[str, str], jobs: int, negative_prompt: str = "") -> Path:
    from rfft.evaluate import draw_job_images, draw_jobs, image_seeds
    from rfft.pipeline import AdInpaintPipeline
    from rfnet.fileio import write_json
    from rfnet.inspect import Inspector
    from rfsynth.oracle import judge

    dst = OUT / f"{name}.json"
    settings = {"controlnet": controlnet, "judges": judges, "jobs": jobs, "negative_prompt": negative_prompt}
    if dst.exists():
        old = json.loads(dst.read_text())
        differ = [k for k, v in settings.items() if k in old and old[k] != v]
        if differ:
            raise SystemExit(f"{dst} was written with other settings ({', '.join(differ)}): give another --name, "
                             "or delete it to redo it")
        print(f"{dst} exists")
        return dst
    pipe = AdInpaintPipeline.load("embedded", controlnet)
    pipe.set_progress_bar_config(disable=True)
    inspectors = {k: Inspector.from_pretrained(v) for k, v in judges.items()}
    rows, first_seed = [], image_seeds(EVAL_SEED)[0]
    for i, job in enumerate(draw_jobs(EVAL_SEED, jobs)):
        # the evaluation's first seed of job i (rfft_experiments.stage_evaluate); one image is enough here
        pl, (img,) = draw_job_images(pipe, job, [first_seed + i], negative_prompt=negative_prompt)
        row = {"i": i, "oracle": judge(img, pl.cutout, pl.box, job["category"], damage=None).label}
        for k, insp in inspectors.items():
            v = insp(pl.cutout, img, job["caption"])[0]
            row[k], row[f"{k}_accepted"] = round(v.p_available, 4), v.accepted  # accepted: the Inspector's rule
        rows.append(row)
    # one image a job, not the evaluation's batch of two: pixels may differ by 1 of 255 (batched
    # arithmetic), so say how many oracle labels match the evaluation's
    ev = RUNS / "eval" / f"{name}.json"
    same = None
    if ev.exists():
        old = {x["i"]: x["oracle"] for x in json.loads(ev.read_text())["rows"]}
        same = sum(old.get(x["i"]) == x["oracle"] for x in rows)
        print(f"oracle labels as in {ev.name}: {same} of {len(rows)}")
    write_json(dst, {"name": name, **settings, "same_oracle_as_evaluation": same,
                     "thresholds": {k: insp.threshold for k, insp in inspectors.items()}, "rows": rows})
    return dst


def threshold_of(rec: dict, judge: str) -> float:
    """The judge's acceptance threshold: as recorded, else its folder's calibrated one (config.json)."""
    if judge in rec.get("thresholds", {}):
        return rec["thresholds"][judge]
    return json.loads((Path(rec["judges"][judge]) / "config.json").read_text())["acceptance_threshold"]


def acceptance(rec: dict, judge: str):
    """Whether ``judge`` accepted a row of ``rec``: the Inspector's own decision where the record
    kept it; in an older record, P(Available) at or above the threshold (without the Inspector's
    out-of-distribution rule)."""
    key = f"{judge}_accepted"
    if key in rec["rows"][0]:
        return lambda x: x[key]
    t = threshold_of(rec, judge)
    return lambda x: x[judge] >= t


def table(names: list[str]) -> str:
    recs = [json.loads((OUT / f"{n}.json").read_text()) for n in names]
    judges = list(recs[0]["judges"])
    if any(list(r["judges"]) != judges for r in recs):
        raise SystemExit("the runs were scored by different judges: give runs with the same --judge names")
    lines = ["Images per oracle class; for each judge, its mean P(Available) on them and, for a defect, its AUC "
             "against the Available images; then the images the judge accepts at its threshold, all and "
             "oracle-Available.", "",
             "| run | judge | " + " | ".join(CLASSES) + " | accepted: all / oracle-Available |",
             "|---|---|" + "---:|" * (len(CLASSES) + 1)]
    for r in recs:
        for j in judges:
            t, ok = threshold_of(r, j), acceptance(r, j)
            acc = [x["oracle"] for x in r["rows"] if ok(x)]
            at = "top class" if t is None else f"P >= {t:.2f}"
            lines.append(f"| {r['name']} | {j} ({at}) | " + " | ".join(defect_cells(r["rows"], j))
                         + f" | {len(acc)} / {acc.count('Available')} |")
    base = recs[0]
    for r in recs[1:]:  # job by job against the first run: a net count hides the churn under it
        lines += ["", f"{r['name']} against {base['name']}, job by job:"]
        b = {x["i"]: x for x in base["rows"]}
        pairs = [(b[x["i"]], x) for x in r["rows"] if x["i"] in b]
        lost = sum(o["oracle"] == "Available" != n["oracle"] for o, n in pairs)
        won = sum(n["oracle"] == "Available" != o["oracle"] for o, n in pairs)
        lines.append(f"- oracle: {lost} Available images became defects, {won} defects became Available")
        for j in judges:
            ok0, ok1 = acceptance(base, j), acceptance(r, j)
            new = [n for o, n in pairs if ok1(n) and not ok0(o)]
            gone = [n for o, n in pairs if ok0(o) and not ok1(n)]
            lines.append(f"- {j}: newly accepted {len(new)} ({sum(x['oracle'] == 'Available' for x in new)} Available), "
                         f"no longer accepted {len(gone)} (of which the job's new image is Available: "
                         f"{sum(x['oracle'] == 'Available' for x in gone)})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", help="the run's name (the output file's)")
    p.add_argument("--controlnet", default=None, help="a fine-tuned ControlNet folder; default: the original")
    p.add_argument("--judge", action="append", default=[], metavar="NAME=FOLDER", help="an inspector, repeatable")
    p.add_argument("--jobs", type=int, default=300)
    p.add_argument("--negative_prompt", default="", help="as the evaluation had it (rfft_experiments' negprompt run)")
    p.add_argument("--table", nargs="+", metavar="NAME", help="print the table of these written runs instead")
    a = p.parse_args(argv)
    if a.table:
        print(table(a.table))
        return 0
    if not a.name or not a.judge or any("=" not in j for j in a.judge):
        p.error("give --name and at least one --judge NAME=FOLDER (or --table NAMES)")
    print(run(a.name, a.controlnet, dict(j.split("=", 1) for j in a.judge), a.jobs, a.negative_prompt))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
