"""Make the workflow thumbnails (workflows/NAME.jpg, shown by ComfyUI's template browser) from the
browser tests' screenshots (RF_BROWSER_SHOTS/NAME.png): real renders of each workflow in the
front end, not drawings of it.

    python scripts/workflow_thumbnails.py outputs/browser_shots
"""
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 800  # the template browser shows them small; 800 px keeps the node titles readable


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    shots = Path(argv[0])
    flows = sorted((ROOT / "workflows").glob("*.json"))
    missing = [f.stem for f in flows if not (shots / f"{f.stem}.png").exists()]
    if missing:
        print(f"no screenshot for {', '.join(missing)} in {shots}: run the browser tests first", file=sys.stderr)
        return 2
    for f in flows:
        im = Image.open(shots / f"{f.stem}.png").convert("RGB")
        im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.LANCZOS)
        out = f.with_suffix(".jpg")
        tmp = out.with_suffix(".jpg.tmp")
        im.save(tmp, "JPEG", quality=85)
        tmp.replace(out)
        print(f"{out.relative_to(ROOT)} {im.width}x{im.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
