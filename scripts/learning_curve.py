"""The inspector's learning curve on generated images: agreement with the oracle and AP of
Available on RF-Gen test against the number of labelled generated images it was fine-tuned on.

    python scripts/learning_curve.py --point 0=runs/eval/curve_0 --point 100=runs/eval/curve_100 ... \\
        --out docs/img/rfgen_learning_curve.png

Each point is N=FOLDER, the folder ``rfnet.evaluate`` wrote (its metrics.json). Prints the
table as Markdown and writes the plot.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_points(specs: list[str]) -> list[dict]:
    rows = []
    for spec in specs:
        n, sep, folder = spec.partition("=")
        if not sep or not n.isdigit():
            raise SystemExit(f"--point {spec!r}: expected N=FOLDER, e.g. 1000=runs/eval/curve_1000")
        path = Path(folder) / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"--point {spec}: no {path}; run rfnet.evaluate with --output_dir {folder}")
        m = json.loads(path.read_text(encoding="utf-8"))
        a = m["available"]
        rows.append({"n": int(n), "agreement": a["agreement"], "ap": a["ap"], "ap_ci95": a.get("ap_ci95"),
                     "accuracy": m["accuracy"], "test": m.get("data"), "images": m["n"]})
    return sorted(rows, key=lambda r: r["n"])


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # 0 images (the composed-scene inspector) sits at the left edge of a log axis
    xs = [max(r["n"], 30) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(xs, [100 * r["agreement"] for r in rows], "o-", label="agrees with the oracle, Available or not (%)")
    ax.plot(xs, [100 * r["ap"] for r in rows], "s-", label="AP of Available")
    ax.plot(xs, [100 * r["accuracy"] for r in rows], "^--", label="accuracy, six classes (%)")
    ax.set_xscale("log")
    ax.set_xticks(xs, ["0" if r["n"] == 0 else f"{r['n']:,}" for r in rows])
    ax.set_xlabel("labelled generated images fine-tuned on")
    ax.set_ylabel("on RF-Gen test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/learning_curve.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--point", action="append", required=True, help="N=FOLDER (repeatable)")
    p.add_argument("--out", required=True, help="the plot (.png)")
    a = p.parse_args(argv)
    rows = read_points(a.point)
    print("| generated images seen | agrees, Available or not | AP (Available) | accuracy, 6 classes |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        ci = f" [{100 * r['ap_ci95'][0]:.1f}, {100 * r['ap_ci95'][1]:.1f}]" if r.get("ap_ci95") else ""
        print(f"| {r['n']:,} | {100 * r['agreement']:.1f}% | {100 * r['ap']:.1f}{ci} | {100 * r['accuracy']:.1f}% |")
    plot(rows, Path(a.out))
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
