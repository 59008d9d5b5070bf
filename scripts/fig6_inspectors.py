"""Fig. 6 for several inspectors on the same images: what Recurrent Generation delivers with
each one, and each one's mistakes against the oracle.

    python -m rfft.generate --products runs/fig6_products --prompts runs/fig6_prompts.json \\
        --out runs/fig6_all --attempts 5 --seed 31337 --all_attempts
    python scripts/fig6_inspectors.py --run runs/fig6_all --inspector v1=runs/rfnet_v1 \\
        --inspector new=embedded --inspector new@0.8=embedded@0.8 --out runs/fig6_all/compare

``--run`` may be given more than once: the products of several runs with the same settings (a
product list split in parts that ran side by side, each with ``--seed`` moved by 1000 a product
so that every product keeps its seed) are read as one run.

With ``--all_attempts`` every attempt is generated, and attempt i's image does not depend on the
verdicts before it, so the loop's result for any inspector and any budget k follows from the
complete lists (rfft.recurrent.delivered_at). Each inspector judges the stored attempts (PNG,
lossless) with the cutout exactly as inspected (``inspected/``); the run's own inspector is judged
again too, and the largest difference from its recorded P(Available) is printed as a check.

Two references: ``perfect`` accepts exactly what the oracle calls Available (the best any
inspector can do with these images), and ``first`` always delivers attempt 1 (no inspector).
Seconds are the run's own per attempt, so only attempts per available image compare across
inspectors. Writes compare.md, compare.json and fig6_inspectors.png.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # job_effects

from rfft.recurrent import Attempt, rate_curve  # noqa: E402


def read_run(run: Path) -> list[dict]:
    """The products of an --all_attempts run, each with its attempt records in order."""
    settings = json.loads((run / "settings.json").read_text(encoding="utf-8"))
    if not settings.get("all_attempts"):
        raise SystemExit(f"{run} was not written with --all_attempts: its attempt lists stop at acceptance")
    products = []
    for p in sorted((run / "done").glob("*.json")):
        d = json.loads(p.read_text(encoding="utf-8"))
        if d.get("status") == "skipped" or not d.get("attempts"):
            continue
        d["name"], d["run"] = p.stem, str(run)
        d["attempts"] = sorted(d["attempts"], key=lambda r: r["attempt"])
        products.append(d)
    if not products:
        raise SystemExit(f"{run}/done holds no finished product")
    return products


def parse_spec(spec: str) -> tuple[str, str, float | str | None]:
    """NAME=DIR[@THRESHOLD] (DIR may be 'embedded'; THRESHOLD a probability, or 'top': accept when
    Available is the most probable class, whatever the model's calibrated threshold)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise SystemExit(f"--inspector {spec!r}: expected NAME=DIR or NAME=DIR@THRESHOLD")
    folder, _, t = rest.partition("@")
    return name, folder, ("top" if t == "top" else float(t)) if t else None


def judge_all(products: list[dict], folder: str, threshold) -> list[list[dict]]:
    """Each attempt's verdict by one inspector: label, p_available, accepted (each product's
    files from the run that holds it)."""
    from rfft.generate import check_inspector
    from rfnet.inspect import Inspector

    insp = Inspector.from_pretrained(check_inspector(folder), threshold=threshold)  # 'top' included
    out = []
    for d in products:
        run = Path(d["run"])
        with Image.open(run / "inspected" / f"{d['name']}.png") as im:
            cutout = im.convert("RGBA")
        images = []
        for r in d["attempts"]:
            with Image.open(run / r["file"]) as im:
                images.append(im.convert("RGB"))
        # one attempt per call, as the run judged them (one candidate per round): in bfloat16 the
        # attention's result moves with the batch by up to about 1% of P(Available)
        vs = [insp(cutout, [im], d["attempts"][0]["caption"])[0] for im in images]
        out.append([{"label": v.label, "p_available": float(v.p_available), "accepted": bool(v.accepted)} for v in vs])
    return out


def curve_for(products: list[dict], verdicts: list[list[dict]] | None, max_k: int, rule: str = "inspector"):
    runs = []
    for d, vs in zip(products, verdicts or [None] * len(products)):
        atts = []
        for i, r in enumerate(d["attempts"]):
            ok = r.get("oracle") == "Available"
            if rule == "perfect":
                acc, p = ok, float(ok)
            elif rule == "first":
                acc, p = True, 1.0
            else:
                acc, p = vs[i]["accepted"], vs[i]["p_available"]
            atts.append(Attempt(index=r["attempt"], round=r["attempt"], seed=r["seed"], label=r["label"],
                                p_available=p, accepted=acc, probs={}, seconds=r["seconds"],
                                info={"oracle": r.get("oracle")}))
        runs.append(atts)
    return rate_curve(runs, lambda a: a.info.get("oracle") == "Available", max_k)


def agreement(products: list[dict], verdicts: list[list[dict]]) -> tuple[int, int]:
    n = agree = 0
    for d, vs in zip(products, verdicts):
        for r, v in zip(d["attempts"], vs):
            n += 1
            agree += (r.get("oracle") == "Available") == (v["label"] == "Available")
    return agree, n


def available_counts(products: list[dict], max_k: int) -> list[dict]:
    """Products by how many of their first max_k attempts the oracle calls Available, beside the
    count expected if every attempt were an independent draw at the pooled rate (binomial). More
    products at 0 and at max_k than expected means the product, prompt and placement decide much
    of the verdict: no inspector can deliver for a product none of whose attempts is usable."""
    from job_effects import counts_by_available

    counts, independent, _ = counts_by_available(
        [[r.get("oracle") == "Available" for r in d["attempts"][:max_k]] for d in products])
    return [{"available": a, "products": counts[a], "independent": independent[a]} for a in range(max_k + 1)]


def _pct(a: int, n: int) -> str:
    return f"{a / n:.1%} ({a}/{n})" if n else "-"


def table(name: str, curve: list[dict]) -> list[str]:
    lines = [f"**{name}**", "", "| k | delivered available (oracle) | attempts per available image | "
             "wasted rejections (of rejections) | false accepts (of accepted) |", "|---:|---:|---:|---:|---:|"]
    for r in curve:
        lines.append(f"| {r['k']} | {_pct(r['available'], r['products'])} | {r['attempts_per_available']:.2f} | "
                     f"{_pct(r['wasted_rejections'], r['rejections'])} | {_pct(r['false_accepts'], r['accepts'])} |")
    return lines + [""]


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, c in curves.items():
        # the two references apart from each other and from the inspectors
        style = {"perfect": dict(ls="--", color="black"), "first": dict(ls=":", color="grey")}.get(name, {})
        ks = [r["k"] for r in c]
        a1.plot(ks, [100 * r["available_rate"] for r in c], marker="o", label=name, **style)
        a2.plot(ks, [r["attempts_per_available"] for r in c], marker="o", label=name, **style)
    a1.set(xlabel="attempts k", ylabel="delivered available (oracle, %)")
    a2.set(xlabel="attempts k", ylabel="attempts per available image")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True,
                   help="an rfft.generate --out folder written with --all_attempts (repeatable: parts of one run)")
    p.add_argument("--inspector", action="append", default=[], help="NAME=DIR[@THRESHOLD] (repeatable)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    runs, out = [Path(r) for r in a.run], Path(a.out)
    products = [d for r in runs for d in read_run(r)]
    max_k = min(len(d["attempts"]) for d in products)
    every = [json.loads((r / "settings.json").read_text(encoding="utf-8")) for r in runs]
    settings = every[0]
    for r, s in zip(runs[1:], every[1:]):
        differ = [k for k in set(s) | set(settings) if k not in ("seed", "products", "prompts", "out")
                  and s.get(k) != settings.get(k)]
        if differ:
            raise SystemExit(f"{r} was run with other settings than {runs[0]} ({', '.join(sorted(differ))}): "
                             f"only parts of one run can be read together")
    curves = {"first": curve_for(products, None, max_k, "first")}
    summary = {"run": [str(r) for r in runs], "products": len(products), "max_k": max_k, "inspectors": {}}
    md = [f"{len(products)} products, {max_k} attempts each, from {', '.join(map(str, runs))} "
          f"(seeds {', '.join(str(s.get('seed')) for s in every)}); judged by the RF-Synth oracle.", ""]
    for spec in a.inspector:
        name, folder, t = parse_spec(spec)
        vs = judge_all(products, folder, t)
        if Path(folder).resolve() == Path(str(settings.get("inspector"))).resolve() or folder == settings.get("inspector"):
            if t == settings.get("threshold"):
                diff = max(abs(v["p_available"] - r["p_available"])
                           for d, vv in zip(products, vs) for r, v in zip(d["attempts"], vv))
                print(f"{name}: the run's own inspector judged again; largest P(Available) difference {diff:.2e}")
        curves[name] = curve_for(products, vs, max_k)
        ag, n = agreement(products, vs)
        summary["inspectors"][name] = {"folder": folder, "threshold": t, "agreement": ag / n, "attempts": n,
                                       "curve": curves[name]}
        md += [f"{name} (`{folder}`, threshold {t if t is not None else 'its default'}): agrees with the oracle "
               f"on {_pct(ag, n)} of attempts, Available or not.", ""]
    curves["perfect"] = curve_for(products, None, max_k, "perfect")
    for name, c in curves.items():
        md += table(name, c)
    summary["first"], summary["perfect"] = curves["first"], curves["perfect"]
    summary["available_counts"] = counts = available_counts(products, max_k)
    md += [f"Products by oracle-Available attempts of their {max_k}, beside independent draws at the pooled rate:", "",
           "| Available attempts | products | if independent |", "|---:|---:|---:|"]
    md += [f"| {c['available']} | {c['products']} | {c['independent']:.1f} |" for c in counts] + [""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text("\n".join(md), encoding="utf-8")
    (out / "compare.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    plot(curves, out / "fig6_inspectors.png")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
