"""Bad input for the main job (``python -m rfft.generate``), placement and the Load Product
Folder node: a corpus built here by code. Each case checks the message (a key phrase), the exit
code (2 for a refusal, before any model loads; 0 when a bad product is skipped and counted) and
that nothing else is lost (the other products' outputs exist, under unique names).

One generation run serves every product case (models load once); refusals cost no model."""
import fcntl
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import box_cutout
from PIL import Image

from rfft.generate import EXAMPLES, display_name, load_prompts, main, output_names
from rfft.pipeline import EMBEDDED
from rfft.placement import ProductError, load_product, place

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--size", "64", "--steps", "1", "--attempts", "1", "--guidance_scale", "1", "--no_oracle"]
PROG = "python -m rfft.generate: error: "


def run_cli(argv):
    """(exit code, stderr) of rfft.generate.main in this process."""
    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    with redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


# ---- the corpus -------------------------------------------------------------------------------
def png_bomb(path: Path, side: int) -> None:
    """A real decompression bomb: a 1-bit side x side PNG of zeros, a few kB on disk."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _cutout(colour=(200, 40, 60), alpha=255, w=30, h=40) -> Image.Image:
    return box_cutout(w, h, 5, colour, alpha)


EVIL = "..\\..\\evil\nname.png"  # backslashes, dots and a newline: a legal name on Linux
BYTES_NAME = b"bad\xff\xfename.png"  # not UTF-8

# products that must come out, and the output name each gets (Unicode kept, never shared)
GOOD = {
    "香水 瓶.png": "香水 瓶",
    "音箱.png": "音箱",  # with a GBK caption file
    "a b.png": "a b",
    "a_b.png": "a_b",  # with a binary caption file
    "x.png": "x.png",
    "x.webp": "x.webp",
    "p16.png": "p16",  # 16-bit grey on white (16-bit RGBA: test_16bit_rgba_cutout)
    EVIL: "_.._evil_name-",  # cleaned, never leaving --out; hashed (prefix checked)
}
# products that must be skipped, reported and counted: the phrase their reason holds
BAD = {
    "bomb.png": "refused before decoding",  # 20000 x 20000: PIL's DecompressionBombError
    "bomb_warn.png": "refused before decoding",  # 10000 x 10000: PIL only warns
    "wide.png": "larger than 4096 px",  # refused from its header, before decoding
    display_name(os.fsdecode(BYTES_NAME)): "not valid UTF-8",
    "str_entry.png": "products.json: the entry for 'str_entry.png'",
    "truncated.png": "truncated",
    "empty.png": "not a readable image",
    "text.png": "not a readable image",
    "faint.png": "half opaque",
    "on_green.png": "white background",
}


def build_corpus(d: Path) -> Path:
    d.mkdir()
    perfume = EXAMPLES / "products" / "05_perfume.png"
    for name in ("香水 瓶.png", "a b.png", "x.png", EVIL):
        shutil.copy(perfume, d / name)
    shutil.copy(EXAMPLES / "products" / "01_speaker.png", d / "音箱.png")
    (d / "音箱.txt").write_bytes("黑色 木纹 音箱".encode("gbk"))
    _cutout((30, 90, 200)).save(d / "a_b.png")
    (d / "a_b.txt").write_bytes(bytes(range(128, 256)))
    _cutout((20, 160, 60)).save(d / "x.webp", lossless=True)
    g = np.full((40, 40), 65535, np.uint16)
    g[8:32, 12:28] = 9000
    Image.fromarray(g).save(d / "p16.png")
    png_bomb(d / "bomb.png", 20000)
    png_bomb(d / "bomb_warn.png", 10000)
    Image.new("RGB", (5000, 8), "white").save(d / "wide.png")
    with open(os.path.join(os.fsencode(d), BYTES_NAME), "wb") as f:
        f.write(perfume.read_bytes())
    shutil.copy(perfume, d / "str_entry.png")
    (d / "truncated.png").write_bytes(perfume.read_bytes()[:100])
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    _cutout(alpha=100).save(d / "faint.png")
    Image.fromarray(np.full((30, 30, 3), (90, 140, 90), np.uint8)).save(d / "on_green.png")
    (d / "products.json").write_text(json.dumps(
        {"香水 瓶.png": {"caption": "香水瓶 玻璃", "category": "perfume"}, "str_entry.png": "a perfume"},
        ensure_ascii=False), encoding="utf-8")
    return d


def _prompts(d: Path) -> Path:
    p = d / "prompts.json"  # null means "default" (it was a TypeError and the text "None")
    p.write_text(json.dumps([{"prompt": "a {product} on a table", "negative_prompt": None, "image_scale": None}]))
    return p


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One run over the whole corpus."""
    root = tmp_path_factory.mktemp("corpus")
    prods = build_corpus(root / "products")
    out = root / "out"
    argv = ["--products", str(prods), "--out", str(out), "--prompts", str(_prompts(root)), *FAST]
    code, err = run_cli(argv)
    done = {}
    for p in (out / "done").glob("*.json"):
        d = json.loads(p.read_text(encoding="utf-8"))
        done[d["product"]] = (p.stem, d)
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    return dict(root=root, products=prods, out=out, argv=argv, code=code, err=err, done=done,
                manifest=manifest, report=(out / "report.md").read_text(encoding="utf-8"))


# ---- products that are skipped: the run goes on -----------------------------------------------
def test_the_run_finishes(corpus):
    assert corpus["code"] == 0, corpus["err"]
    assert f"{len(GOOD)} products generated, {len(BAD)} skipped" in corpus["report"]


@pytest.mark.parametrize("name,phrase", sorted(BAD.items()))
def test_bad_product_is_skipped_reported_and_counted(corpus, name, phrase):
    _, d = corpus["done"][name]
    assert d["status"] == "skipped" and phrase in d["error"], d
    skipped = corpus["report"].split("## Skipped products")[1]
    assert f"- {name}: " in skipped and phrase in skipped
    assert not [r for r in corpus["manifest"] if r["product"] == name]


@pytest.mark.parametrize("name,expected", sorted(GOOD.items()))
def test_good_product_has_its_own_readable_output(corpus, name, expected):
    stem, d = corpus["done"][name]
    assert d["status"] in ("accepted", "rejected") and len(d["attempts"]) == 1
    assert stem.startswith(expected) if expected.endswith("-") else stem == expected
    (rec,) = [r for r in corpus["manifest"] if r["product"] == name]
    assert rec["file"] in (f"accepted/{stem}.png", f"best/{stem}.png")
    assert (corpus["out"] / rec["file"]).is_file()
    assert rec["negative_prompt"] == "" and rec["image_scale"] == 0.5  # the config's nulls


def test_outputs_are_unique_and_inside_out(corpus):
    files = [r["file"] for r in corpus["manifest"]]
    assert len(files) == len(set(files)) == len(GOOD)
    assert sorted(r["product"] for r in corpus["manifest"]) == sorted(GOOD)
    out = corpus["out"].resolve()
    for p in out.rglob("*"):
        assert out in p.resolve().parents
    assert not (corpus["root"] / "evil").exists()
    assert [p.name for p in corpus["products"].glob("*.json")] == ["products.json"]  # nothing written there


def test_captions_that_are_not_utf8(corpus):
    (gbk,) = [r for r in corpus["manifest"] if r["product"] == "音箱.png"]
    assert gbk["caption"] == "黑色 木纹 音箱"  # GBK, decoded as GB18030 with a warning
    (binary,) = [r for r in corpus["manifest"] if r["product"] == "a_b.png"]
    assert binary["caption"] == "a_b"  # ignored: the file name is the caption
    warnings = corpus["report"].split("## Warnings")[1]
    assert "音箱.txt is not UTF-8; read as GB18030" in warnings
    assert "a_b.txt is not UTF-8 text; its caption is ignored" in warnings
    assert "2 warnings" in corpus["report"]


def test_output_names_never_collide():
    names = output_names([Path(n) for n in ("香水 瓶.png", "音箱.png", "a b.png", "a_b.png", "x.png", "x.webp",
                                            "X.PNG", "..png", ".hidden.png", "a/b.png", "CON.png")])
    assert len({v.casefold() for v in names.values()}) == len(names)
    assert names["香水 瓶.png"] == "香水 瓶" and names["x.webp"] == "x.webp"
    assert all(v and "/" not in v and not v.startswith(".") for v in names.values())
    assert output_names([Path("x.png")]) == {"x.png": "x"}  # a lone clean name is kept as is


# ---- resume: corrupt done files, stale temporary files -----------------------------------------
CORRUPT = {
    "garbage": "{not json",
    "empty": "",
    "missing keys": json.dumps({"product": "a b.png"}),
    "an image outside --out": None,  # filled in below: a record pointing at ../../x.png
}
CORRUPTED = dict(zip(CORRUPT, ("香水 瓶.png", "音箱.png", "a b.png", "p16.png")))


@pytest.fixture(scope="module")
def resumed(corpus):
    """The corpus run's folder, copied; four done files corrupted and temporary files left as a
    SIGKILL leaves them; then the same command again."""
    out = corpus["root"] / "out_resumed"
    shutil.copytree(corpus["out"], out)
    for kind, name in CORRUPTED.items():
        stem, d = corpus["done"][name]
        text = CORRUPT[kind]
        if text is None:
            d = json.loads(json.dumps(d))
            d["attempts"][0]["file"] = "../../x.png"
            text = json.dumps(d)
        (out / "done" / f"{stem}.json").write_text(text, encoding="utf-8")
    stale = [out / ".manifest.jsonl.tmp12345", out / "best" / ".x.png.png.tmp99", out / "done" / ".a_b.json.tmp7"]
    kept = [out / "notes.tmp1", out / ".keep", out / "best" / "mine.tmp"]
    for p in stale + kept:
        p.parent.mkdir(exist_ok=True)
        p.write_text("x")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "done").glob("*.json")}
    argv = [a if a != str(corpus["out"]) else str(out) for a in corpus["argv"]]
    h = Records()
    logging.getLogger("rfft.generate").addHandler(h)
    try:
        code, err = run_cli(argv)
    finally:
        logging.getLogger("rfft.generate").removeHandler(h)
    return dict(out=out, code=code, err=err, log=h.lines, before=before, stale=stale, kept=kept)


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_done_file_is_redone_with_a_warning(corpus, resumed, kind):
    assert resumed["code"] == 0, resumed["err"]
    name = CORRUPTED[kind]
    stem, original = corpus["done"][name]
    again = json.loads((resumed["out"] / "done" / f"{stem}.json").read_text(encoding="utf-8"))
    assert again["status"] == original["status"]
    assert [r["seed"] for r in again["attempts"]] == [r["seed"] for r in original["attempts"]]
    assert any(f"{stem}.json is corrupt" in line for line in resumed["log"]), resumed["log"]


def test_resume_redoes_only_what_is_missing(corpus, resumed):
    redone = {f"{corpus['done'][n][0]}.json" for n in CORRUPTED.values()}
    for p in (resumed["out"] / "done").glob("*.json"):
        d = json.loads(p.read_text(encoding="utf-8"))
        if p.name not in redone and d["status"] != "skipped":  # skipped ones are tried again
            assert p.stat().st_mtime_ns == resumed["before"][p.name]
    lines = (resumed["out"] / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(GOOD)


def test_stale_temporary_files_are_removed_and_nothing_else(resumed):
    assert not any(p.exists() for p in resumed["stale"])
    assert all(p.exists() for p in resumed["kept"])


# ---- refusals: one line, exit code 2, before any model loads ----------------------------------
@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Broken copies of the embedded generator and RFNet (files linked, the broken one written)."""
    from rfnet.embedded import embedded_path

    root = tmp_path_factory.mktemp("broken")

    def copy(src, dst, path, data):
        shutil.copytree(src, dst, copy_function=os.symlink)
        (dst / path).unlink()
        (dst / path).write_bytes(data)
        return str(dst)

    unet = (EMBEDDED / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    rfnet = embedded_path("rfnet")
    return {
        "truncated unet": copy(EMBEDDED, root / "g1", "unet/diffusion_pytorch_model.safetensors",
                               unet[:len(unet) // 2]),
        "garbage vae config": copy(EMBEDDED, root / "g2", "vae/config.json", b"garbage{"),
        "truncated controlnet": copy(EMBEDDED / "controlnet", root / "cn", "diffusion_pytorch_model.safetensors",
                                     unet[:100]),
        "garbage rfnet weights": copy(rfnet, root / "r1", "model.safetensors", b"\x00" * 64),
        "empty rfnet config": copy(rfnet, root / "r2", "config.json", b""),
    }


def _mkdir(p):
    p.mkdir()
    return str(p)


def _corrupt_prompts(tmp):
    p = tmp / "bad_prompts.json"
    p.write_text(json.dumps([{"prompt": "a {product}", "image_scale": "big"}]))
    return str(p)


REFUSALS = [  # (case, extra arguments (a function of tmp and broken), key phrase)
    ("--attempts 0", lambda t, b: ["--attempts", "0"], "--attempts must be at least 1, got 0"),
    ("--attempts -1", lambda t, b: ["--attempts", "-1"], "--attempts must be at least 1, got -1"),
    ("--candidates 0", lambda t, b: ["--candidates", "0"], "--candidates must be at least 1"),
    ("--steps 0", lambda t, b: ["--steps", "0"], "--steps must be at least 1"),
    ("--size 7", lambda t, b: ["--size", "7"], "not a multiple of 4, the generator's VAE factor"),
    ("--size 0", lambda t, b: ["--size", "0"], "--size must be a positive canvas side"),
    ("--limit 0", lambda t, b: ["--limit", "0"], "--limit must be at least 1, got 0"),
    ("--threshold 2", lambda t, b: ["--threshold", "2"], "--threshold is a probability"),
    ("unknown --scheduler", lambda t, b: ["--scheduler", "FastestScheduler"], "unknown scheduler 'FastestScheduler'"),
    ("missing --lora", lambda t, b: ["--lora", str(t / "nope.safetensors")], "nope.safetensors: no such file"),
    ("--device gpu", lambda t, b: ["--device", "gpu"], "is not a device torch knows"),
    ("missing --generator", lambda t, b: ["--generator", str(t / "nope")], "generator not found"),
    ("truncated generator", lambda t, b: ["--generator", b["truncated unet"]], "safetensors is truncated ("),
    ("garbage generator config", lambda t, b: ["--generator", b["garbage vae config"]], "config.json is not valid JSON"),
    ("missing --controlnet", lambda t, b: ["--controlnet", str(t / "nope")], "no ControlNet at"),
    ("truncated --controlnet", lambda t, b: ["--controlnet", b["truncated controlnet"]], "is truncated"),
    ("--controlnet embedded-rfft not shipped", lambda t, b: ["--controlnet", "embedded-rfft"],
     "--controlnet embedded-rfft: config.json, diffusion_pytorch_model.safetensors missing from"),
    ("missing --inspector", lambda t, b: ["--inspector", str(t / "nope")], "--inspector"),
    ("garbage --inspector weights", lambda t, b: ["--inspector", b["garbage rfnet weights"]],
     "is not a safetensors file"),
    ("empty --inspector config", lambda t, b: ["--inspector", b["empty rfnet config"]], "is not valid JSON"),
    ("bad --prompts", lambda t, b: ["--prompts", _corrupt_prompts(t)], "image_scale must be a number"),
    ("missing --prompts", lambda t, b: ["--prompts", str(t / "nope.json")], "cannot read the prompt config"),
    ("missing --products", lambda t, b: ["--products", str(t / "nope")], "not a folder of product images"),
    ("no product images", lambda t, b: ["--products", _mkdir(t / "empty")], "no product images"),
    ("--out is --products", lambda t, b: ["--out", str(t / "p")], "is inside --products"),
    ("--out inside --products", lambda t, b: ["--out", str(t / "p" / "gen")], "is inside --products"),
]
if not __import__("torch").cuda.is_available():
    REFUSALS.append(("--device cuda without CUDA", lambda t, b: ["--device", "cuda"], "cuda is not available"))


@pytest.mark.parametrize("case,extra,phrase", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_in_one_line_before_loading(tmp_path, broken, case, extra, phrase):
    prods = tmp_path / "p"
    prods.mkdir()
    shutil.copy(EXAMPLES / "products" / "05_perfume.png", prods)
    out = tmp_path / "out"
    code, err = run_cli(["--products", str(prods), "--out", str(out), *FAST, *extra(tmp_path, broken)])
    assert code == 2
    assert err.startswith(PROG) and err.count("\n") == 1, err  # one line, no traceback
    assert phrase in err, err
    assert not out.exists() and not (prods / "gen").exists()  # checked before --out is touched


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("mine")
    code, err = run_cli(["--out", str(tmp_path / "out"), *FAST])
    assert code == 2 and "is a file, not a folder" in err
    assert (tmp_path / "out").read_text() == "mine"


@pytest.mark.parametrize("out", ["/sys/rfft_generate_test_out", "FILE/sub"])
def test_out_that_cannot_be_created(tmp_path, out):
    (tmp_path / "FILE").write_text("x")
    out = out.replace("FILE", str(tmp_path / "FILE"))
    code, err = run_cli(["--out", out, *FAST])
    assert code == 2 and err.count("\n") == 1 and "cannot be created" in err, err


# ---- the output folder: lock, settings, --overwrite -------------------------------------------
def _bad_only(tmp_path, products_json=None):
    """A product folder whose only product is bad: a run goes to the end without a model."""
    prods = tmp_path / "p"
    prods.mkdir(exist_ok=True)
    (prods / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    if products_json is not None:
        (prods / "products.json").write_text(products_json)
    return ["--products", str(prods), "--out", str(tmp_path / "out"), *FAST]


def test_second_run_on_one_out_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running rfft.generate holds it
    try:
        code, err = run_cli(_bad_only(tmp_path))
    finally:
        os.close(fd)
    assert code == 2 and "in use by another rfft.generate run (pid 4242)" in err
    assert not (out / "done").exists()
    assert run_cli(_bad_only(tmp_path))[0] == 0  # free once the other run ends


def test_resume_with_other_settings_is_refused_then_overwrite_starts_over(tmp_path):
    argv = _bad_only(tmp_path)
    out = tmp_path / "out"
    assert run_cli(argv)[0] == 0
    (out / "mine.txt").write_text("not an output")
    (out / "accepted").mkdir()
    (out / "accepted" / "old.png").write_bytes(b"x")
    settings = (out / "settings.json").read_text()
    code, err = run_cli(argv + ["--steps", "2", "--seed", "3"])
    assert code == 2 and "other settings" in err and "steps 1 -> 2" in err and "seed 0 -> 3" in err
    assert "--overwrite" in err and "new --out" in err
    assert (out / "settings.json").read_text() == settings and (out / "accepted" / "old.png").exists()
    assert run_cli(argv + ["--limit", "1"])[0] == 0  # --limit only picks products: not a setting
    assert run_cli(argv + ["--steps", "2", "--seed", "3", "--overwrite"])[0] == 0
    assert not (out / "accepted").exists() and (out / "mine.txt").read_text() == "not an output"
    assert json.loads((out / "settings.json").read_text())["steps"] == 2


@pytest.mark.parametrize("products_json,phrase", [
    ("[1, 2]", "products.json is a JSON list; ignored"),
    ("{garbage", "products.json is not valid UTF-8 JSON"),
    ("\xff{}", "products.json is not valid UTF-8 JSON"),
])
def test_bad_products_json_is_a_warning_not_a_stop(tmp_path, products_json, phrase):
    argv = _bad_only(tmp_path)
    (Path(argv[1]) / "products.json").write_bytes(products_json.encode("latin-1"))
    assert run_cli(argv)[0] == 0
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert phrase in report.split("## Warnings")[1] and "1 skipped, 1 warnings" in report


def test_prompt_nulls_mean_default(tmp_path):
    (e,) = load_prompts(_prompts(tmp_path))
    assert (e.negative_prompt, e.image_scale) == ("", 0.5)


# ---- placement ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make,phrase", [
    (lambda p: png_bomb(p, 20000), "refused before decoding"),
    (lambda p: Image.new("L", (4097, 2), 255).save(p), "larger than 4096 px"),
    (lambda p: p.write_bytes(b""), "not a readable image"),
    (lambda p: _cutout(alpha=127).save(p), "half opaque"),
])
def test_load_and_place_refuse_bad_files(tmp_path, make, phrase):
    p = tmp_path / "x.png"
    make(p)
    with pytest.raises(ProductError, match=phrase):
        place(load_product(p), 64, 0.5)


def test_16bit_rgba_cutout(tmp_path):
    rgba16 = np.zeros((40, 40, 4), np.uint16)
    rgba16[8:32, 12:28] = (5000, 20000, 60000, 65535)  # BGRA for cv2, which writes 16-bit PNGs
    cv2.imwrite(str(tmp_path / "p.png"), rgba16)
    cut = load_product(tmp_path / "p.png")
    assert cut.mode == "RGBA" and (np.asarray(cut)[..., 3] == 255).sum() == 24 * 16
    assert place(cut, 64, 0.5).box["h"] == 32


# ---- the Load Product Folder node --------------------------------------------------------------
@pytest.fixture(scope="module")
def node_folder(tmp_path_factory):
    from test_nodes import M, host

    root = tmp_path_factory.mktemp("input")
    d = build_corpus(root / "products")
    (d / "products.json").write_text("[1, 2]")  # a list: ignored with a warning, not a stop
    return M["RFLoadProductFolder"](), host, root


def _node_order(root):
    return [display_name(p.name) for p in sorted((root / "products").iterdir()) if p.suffix in (".png", ".webp")]


NODE_BAD = {**BAD, "str_entry.png": None}  # its products.json entry is gone with the list


@pytest.mark.parametrize("name", sorted(set(GOOD) | {n for n, v in NODE_BAD.items() if v is None}))
def test_node_loads_good_products_around_bad_ones(node_folder, monkeypatch, name):
    node, host, root = node_folder
    monkeypatch.setattr(host, "input_dir", lambda: root)
    files = _node_order(root)
    img, mask, caption, got, count = node.load("products", files.index(name))
    assert got == name and count == len(files) and img.shape[-1] == 3 and float(mask.mean()) < 1
    if name == "音箱.png":
        assert caption == "黑色 木纹 音箱"


@pytest.mark.parametrize("name,phrase", sorted((n, v) for n, v in NODE_BAD.items() if v))
def test_node_refuses_only_the_bad_product(node_folder, monkeypatch, name, phrase):
    node, host, root = node_folder
    monkeypatch.setattr(host, "input_dir", lambda: root)
    files = _node_order(root)
    with pytest.raises(ValueError, match="cannot be used") as e:
        node.load("products", files.index(name))
    assert phrase in str(e.value) and "the other products load" in str(e.value)


# ---- SIGKILL mid-run, then resume: the same outputs (slow) -------------------------------------
@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_outputs(tmp_path):
    prods = tmp_path / "p"
    prods.mkdir()
    for n in ("00_lipstick.png", "01_speaker.png", "05_perfume.png", "06_table_lamp.png"):
        shutil.copy(EXAMPLES / "products" / n, prods / n)
    cmd = [sys.executable, "-m", "rfft.generate", "--products", str(prods), *FAST, "--attempts", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ref, out = tmp_path / "ref", tmp_path / "out"
    subprocess.run(cmd + ["--out", str(ref)], check=True, env=env, cwd=ROOT, capture_output=True)
    p = subprocess.Popen(cmd + ["--out", str(out)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "done").glob("*.json"))) < 1:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert len(list((out / "done").glob("*.json"))) < 4  # killed mid-run, not after it
    (out / "best").mkdir(exist_ok=True)
    (out / "best" / ".06_table_lamp.png.tmp999999").write_bytes(b"half")  # as a kill mid-write leaves
    subprocess.run(cmd + ["--out", str(out)], check=True, env=env, cwd=ROOT, capture_output=True)

    def images(d):
        return {p.relative_to(d).as_posix(): np.asarray(Image.open(p)).tobytes()
                for p in d.rglob("*.png") if p.parent != d}

    assert images(out) == images(ref)
    assert not list(out.rglob("*.tmp*"))
    strip = ("seconds",)
    rows = [[{k: v for k, v in json.loads(x).items() if k not in strip} for x in
             (d / "manifest.jsonl").read_text().splitlines()] for d in (ref, out)]
    assert rows[0] == rows[1]


@pytest.mark.parametrize("module, argv, phrase", [
    ("rfft.evaluate", ["--controlnet", "/no/such/controlnet", "--products", "1"], "/no/such/controlnet"),
    ("rfft.evaluate", ["--generator", "/no/such/generator", "--products", "1"], "/no/such/generator"),
    ("rfft.evaluate", ["--rfnet", "/no/such/rfnet", "--products", "1"], "/no/such/rfnet"),
    ("rfnet.embedded", ["--kind", "rfnet", "--src", "/no/such/model"], "/no/such/model"),
    ("rfft.train_generator", ["--data", "/no/such/scenes", "--output_dir", "OUT"], "/no/such/scenes"),
])
def test_clis_report_a_missing_folder_in_one_line(module, argv, phrase, capsys, tmp_path):
    """Every command turns a missing file into ``prog: error: ...`` and exit 2, not a traceback
    (rfft.evaluate printed one for a ControlNet that is not there), and writes nothing."""
    import importlib

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([str(out) if x == "OUT" else x for x in argv])
    assert not out.exists()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"python -m {module}: error:") and phrase in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
