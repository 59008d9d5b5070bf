"""Agreement of the RF-Synth oracle with the construction labels on fresh samples.

    python scripts/oracle_agreement.py --seed 424242 --n 3000 --size 128 [--version 2] [--out result.json]

Sample i uses the seed that rfsynth.make uses for (seed, i); labels follow the default priors.
Prints the agreement, per class, per matte (v2) and overall, and the disagreements with their
measurements.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rfsynth.make import sample_seed  # noqa: E402
from rfsynth.oracle import judge  # noqa: E402
from rfsynth.scene import LABELS, VERSION, render_sample  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--out", default=None)
    p.add_argument("--version", type=int, default=VERSION, help="RF-Synth's version (1 or 2)")
    a = p.parse_args()
    t0 = time.time()
    pairs, misses, mattes = Counter(), [], Counter()
    for i in range(a.n):
        s = render_sample(sample_seed(a.seed, i), a.size, version=a.version)
        v = judge(s.image, s.product, s.placement, s.category, damage=s.damage)
        pairs[(s.label, v.label)] += 1
        matte = s.params["product"].get("matte", "soft")
        mattes[(matte, v.label == s.label)] += 1
        if v.label != s.label:
            misses.append({"index": i, "label": s.label, "oracle": v.label, "measures": v.measures})
    per = {}
    for lab in LABELS:
        n = sum(c for (t, _), c in pairs.items() if t == lab)
        ok = pairs[(lab, lab)]
        per[lab] = {"n": n, "agree": ok / n if n else None}
    total = sum(pairs[(lab, lab)] for lab in LABELS) / a.n
    per_matte = {m: {"n": mattes[(m, True)] + mattes[(m, False)],
                     "agree": mattes[(m, True)] / max(1, mattes[(m, True)] + mattes[(m, False)])}
                 for m in sorted({k for k, _ in mattes})}
    res = {"seed": a.seed, "n": a.n, "size": a.size, "version": a.version, "agreement": total,
           "per_class": per, "per_matte": per_matte,
           "seconds": time.time() - t0, "disagreements": misses[:50]}
    print(f"RF-Synth v{a.version}, seed {a.seed}, {a.n} samples at {a.size}px: agreement {total:.4f} "
          f"({len(misses)} disagree)")
    for m, r in per_matte.items():
        print(f"  {m} matte: n={r['n']} agree={r['agree']:.4f}")
    for lab, r in per.items():
        print(f"  {lab:<20} n={r['n']:<5} agree={r['agree']:.4f}" if r["n"] else f"  {lab:<20} n=0")
    for m in misses[:10]:
        print("  disagreement:", json.dumps(m, default=str)[:300])
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
