"""Draw docs/img/comfyui_inspect_badges.png: the previews RFNet Inspect shows in ComfyUI (made
by the node's own code, called as ComfyUI calls it) for four RF-Synth images, seeds 90211-90214.

    python scripts/node_badge_previews.py
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pack_loader import import_pack  # noqa: E402  (scripts/pack_loader.py)

from rfsynth.scene import render_sample  # noqa: E402


def main() -> int:
    nodes = import_pack().NODE_CLASS_MAPPINGS
    host = sys.modules["reliable_ad_under_test.nodes.host"]
    tmp = Path(tempfile.mkdtemp())
    host.temp_dir = lambda: tmp
    rf = nodes["RFNetLoader"]().load("embedded")[0]
    tiles = []
    for lab, seed in (("Available", 90211), ("Space Mismatch", 90212), ("Indistinctiveness", 90213),
                      ("Shape Hallucination", 90214)):
        s = render_sample(seed, 128, lab)
        a = np.asarray(s.product.convert("RGBA"), np.float32) / 255
        res = nodes["RFNetInspect"]().inspect(
            rf, torch.from_numpy(a[..., :3])[None], torch.from_numpy(np.asarray(s.image, np.float32) / 255)[None],
            s.caption, 0.0, product_mask=torch.from_numpy(1 - a[..., 3])[None])
        tiles.append(Image.open(tmp / res["ui"]["images"][0]["filename"]).convert("RGB"))
        print(f"seed {seed}: built as {lab}, RFNet says {res['ui']['rf_verdicts'][0]['label']}")
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 10 * (len(tiles) - 1), max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + 10
    out = ROOT / "docs" / "img" / "comfyui_inspect_badges.png"
    sheet.save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
