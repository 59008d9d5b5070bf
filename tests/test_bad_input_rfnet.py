"""A hostile-but-fair user's corpus of bad input for RFNet: the CLIs (rfnet.train,
rfnet.evaluate, rfnet.inspect), the Inspector API, the dataset reader and the RFNet Inspect node.

Every case is built here, by code. Each asserts the message a user reads (a key phrase), the
exit code (2 for a CLI's refusal, in one line, before any model is loaded) and that nothing
else was lost: the other samples are still read, the good images of the same batch keep their
verdicts, nothing is written outside the dataset folder.
"""
import json
import logging
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rfnet import evaluate, train
from rfnet import inspect as rinspect
from rfnet.data import RFDataset, RFDatasetWriter, user_cache_dir
from rfnet.embedded import embedded_path
from rfnet.errors import InputError
from rfnet.inspect import Inspector
from rfsynth.scene import render_sample as synth

EMBEDDED = embedded_path("rfnet")
TINY = ["--preset", "tiny", "--image_size", "32", "--width", "32", "--train_batch_size", "8",
        "--no_progress", "--report_to", "none", "--validation_split", "none"]


# ---------------------------------------------------------------------------------------------
# Building the corpus
# ---------------------------------------------------------------------------------------------
def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit PNG of side x side black pixels: ~50 kB on disk, 400 megapixels decoded."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    z, row = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8)
    idat = b"".join(z.compress(row * 500) for _ in range(side // 500)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def sixteen_bit(im: Image.Image) -> Image.Image:
    """``im`` as a 16-bit grey PNG would hold it (mode I;16, 257 per 8-bit level)."""
    return Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257)


def write_dataset(root: Path, n: int = 4, maps: bool = True, split: str = "test") -> list[str]:
    """``n`` good toy samples (64 px); returns their ids."""
    w = RFDatasetWriter(root)
    ids = []
    for i in range(n):
        case = ["Available", "Space Mismatch", "Indistinctiveness", "Shape Hallucination"][i % 4]
        s = synth(100 + i, 64, case)
        img, prod, cap, prompt = s.image, s.product, s.caption, s.prompt
        grey = Image.new("L", img.size, 128)
        w.add(f"g{i}", img, prod, case, cap, prompt, split,
              depth=grey if maps else None, salience=grey if maps else None)
        ids.append(f"g{i}")
    return ids


def append_records(root: Path, *recs: dict, raw: bytes = b"") -> None:
    """Records copied from the first good one with fields replaced (and raw bytes, as is)."""
    base = json.loads((root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()[0])
    with open(root / "manifest.jsonl", "ab") as f:
        for r in recs:
            f.write((json.dumps(dict(base, **r), ensure_ascii=False) + "\n").encode())
        f.write(raw)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class MeanExtractor(torch.nn.Module):
    """A map extractor that counts the images it sees; the map is the image's brightness."""

    is_fallback = False

    def __init__(self, kind="depth"):
        super().__init__()
        self.kind, self.name, self.calls = kind, f"mean:{kind}", 0

    def forward(self, images):
        self.calls += images.shape[0]
        return images.mean(1, keepdim=True)


def cli(main, argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a CLI's main() called in-process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, prog: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"python -m {prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def insp():
    return Inspector.from_pretrained(EMBEDDED, dtype="float32")


@pytest.fixture(scope="module")
def scene():
    """A 64 px RF-Synth scene the embedded model passes as Available."""
    return synth(10, 64, "Available")


def as_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 255).permute(2, 0, 1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Files shared by the cases: a bomb, a 16-bit product, a text file named .png, damaged
    copies of the embedded model."""
    d = tmp_path_factory.mktemp("corpus")
    write_bomb_png(d / "bomb.png")
    (d / "notes.png").write_text("this is not an image")
    for name in ("garbage_config", "truncated_weights", "no_weights"):
        shutil.copytree(EMBEDDED, d / name)
    (d / "garbage_config" / "config.json").write_text("{ this is not json")
    w = d / "truncated_weights" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 3])
    (d / "no_weights" / "model.safetensors").unlink()
    return d


# ---------------------------------------------------------------------------------------------
# Inspector API: garbage is never Available; the rest of the batch is judged as usual
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, note, zero_p", [
    ("nan", "non-finite pixels", True),
    ("inf", "non-finite pixels", True),
    ("-inf", "non-finite pixels", True),
    ("black", "constant image", False),
    ("white", "constant image", False),
])
def test_inspector_rejects_garbage_in_a_batch_and_keeps_the_good_verdicts(insp, scene, bad, note, zero_p):
    g = as_tensor(scene.image)
    garbage = {"nan": torch.full_like(g, float("nan")), "inf": torch.full_like(g, float("inf")),
               "-inf": torch.full_like(g, -float("inf")), "black": torch.zeros_like(g),
               "white": torch.ones_like(g)}[bad]
    alone = insp(scene.product, g[None], scene.caption)[0]
    good1, junk, good2 = insp(scene.product, torch.stack([g, garbage, g]), scene.caption)
    assert alone.accepted and alone.label == "Available"  # the scene is a fair test
    for v in (good1, good2):
        assert v.accepted and v.note is None and v.p_available == pytest.approx(alone.p_available, abs=1e-5)
    assert not junk.accepted and note in junk.note and junk.label in insp.labels
    if zero_p:
        assert junk.p_available == 0.0 and junk.label != "Available"
    assert all(np.isfinite(list(junk.probs.values()))) and sum(junk.probs.values()) == pytest.approx(1, abs=1e-5)
    json.dumps(junk.to_dict(), allow_nan=False)  # valid JSON for the UI: no NaN anywhere


def test_accept_everything_threshold_still_rejects_garbage(scene):
    insp0 = Inspector.from_pretrained(EMBEDDED, threshold=0.0, dtype="float32")
    g = as_tensor(scene.image)
    vs = insp0(scene.product, torch.stack([g, torch.full_like(g, float("nan")), torch.zeros_like(g)]), scene.caption)
    assert [v.accepted for v in vs] == [True, False, False]


@pytest.mark.parametrize("size, phrase", [((1, 1), "1x1, smaller than 16 px"), ((15, 40), "15x40, smaller than 16 px"),
                                          ((0, 0), "0x0: empty")])
def test_tiny_image_in_a_list_is_rejected_and_does_not_shrink_the_others(insp, scene, size, phrase):
    tiny = Image.effect_noise(size, 60).convert("RGB") if 0 not in size else Image.new("RGB", size)
    first, second = insp(scene.product, [tiny, scene.image], scene.caption)  # the tiny one first
    alone = insp(scene.product, scene.image, scene.caption)[0]
    assert not first.accepted and phrase in first.note
    assert second.accepted and second.p_available == pytest.approx(alone.p_available, abs=1e-5)


def test_nan_product_rejects_every_image(insp, scene):
    g = as_tensor(scene.image)
    prod = torch.full((3, 40, 40), float("nan"))
    vs = insp(prod, torch.stack([g, g]), scene.caption)
    assert all(not v.accepted and v.p_available == 0 and "product image: non-finite" in v.note for v in vs)


def test_sixteen_bit_pil_product_is_scaled_not_clipped(insp, scene):
    grey8 = scene.product.convert("L")
    v8 = insp(grey8, scene.image, scene.caption)[0]
    v16 = insp(sixteen_bit(scene.product), scene.image, scene.caption)[0]
    assert v16.p_available == pytest.approx(v8.p_available, abs=1e-4) and v16.label == v8.label


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(threshold=1.5), "threshold must be in [0, 1]"),
    (dict(threshold=float("nan")), "threshold must be in [0, 1]"),
    (dict(threshold=-0.1), "threshold must be in [0, 1]"),
    (dict(threshold="high"), "threshold must be a number"),
])
def test_inspector_refuses_a_bad_threshold(kwargs, phrase):
    with pytest.raises(InputError) as e:
        Inspector.from_pretrained(EMBEDDED, **kwargs)
    assert phrase in str(e.value)


@pytest.mark.parametrize("call, phrase", [
    (lambda i, g, p: i(p, g, ["a", "b", "c"]), "3 captions for 2 generated images"),
    (lambda i, g, p: i(torch.stack([as_tensor(p)] * 3), g, "x"), "3 product images for 2 generated images"),
    (lambda i, g, p: i(p, g[:, :2], "x"), "1, 3 or 4 channels"),
    (lambda i, g, p: i(p, g, "x", depth=torch.rand(3, 1, 64, 64)), "3 depth maps for 2 generated images"),
])
def test_inspector_refuses_mismatched_arguments(insp, scene, call, phrase):
    g = torch.stack([as_tensor(scene.image)] * 2)
    with pytest.raises(InputError) as e:
        call(insp, g, scene.product)
    assert phrase in str(e.value)


def test_nan_probabilities_are_never_available(insp):
    from rfnet.model import safe_probs

    v = insp.verdict(torch.full((len(insp.labels),), float("nan")))
    assert not v.accepted and v.label != "Available" and v.p_available == 0 and "non-finite" in v.note
    # the model itself: a NaN row gets no Available mass, the finite row keeps its softmax
    logits = torch.tensor([[float("nan")] * 6, [3.0, 0, 0, 0, 0, 0]])
    p = safe_probs(logits)
    assert p[0, 0] == 0 and int(p[0].argmax()) != 0 and torch.isfinite(p).all()
    assert torch.allclose(p[1], logits[1].softmax(-1))
    with torch.no_grad():
        out = insp.model(product=torch.rand(1, 3, 64, 64), generated=torch.full((1, 3, 64, 64), float("nan")),
                         depth=torch.rand(1, 1, 64, 64), salience=torch.rand(1, 1, 64, 64),
                         input_ids=torch.tensor([[2, 3]]), attention_mask=torch.ones(1, 2, dtype=torch.long))
    assert float(out.p_available[0]) == 0.0 and int(out.probs[0].argmax()) != 0


# ---------------------------------------------------------------------------------------------
# The RFNet Inspect node
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node():
    from pack_loader import import_pack

    import_pack()
    mod = sys.modules["reliable_ad_under_test.nodes.inspection"]
    return mod.RFNetInspect(), sys.modules["reliable_ad_under_test.nodes.host"]


def _comfy(im):
    return torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 255)[None]


def _comfy_product(im):
    """What Load Image gives for a cutout: IMAGE and MASK (1 where transparent)."""
    a = np.asarray(im.convert("RGBA"), np.float32) / 255
    return torch.from_numpy(a[..., :3])[None], torch.from_numpy(1 - a[..., 3])[None]


def test_node_judges_the_good_images_of_a_batch_with_nan_black_and_tiny_ones(node, insp, scene, tmp_path, monkeypatch):
    rfnode, host = node
    monkeypatch.setattr(host, "temp_dir", lambda: tmp_path)
    g = _comfy(scene.image)
    batch = torch.cat([g, torch.full_like(g, float("nan")), torch.zeros_like(g), g])
    res = rfnode.inspect(insp, *_comfy_product(scene.product)[:1], batch, scene.caption, 0.0,
                         product_mask=_comfy_product(scene.product)[1])
    rows = json.loads(res["result"][3])  # the node's JSON output: valid, no NaN
    json.dumps(rows, allow_nan=False)
    assert [r["accepted"] for r in rows] == [True, False, False, True]
    assert "non-finite" in rows[1]["note"] and "constant" in rows[2]["note"] and rows[1]["p_available"] == 0
    assert res["result"][2] is False and len(res["ui"]["images"]) == 4  # every image has its badge
    assert "constant image" in res["result"][0]
    # a 1x1 IMAGE on its own: a verdict, rejected, not a crash
    (text, _, ok, _) = rfnode.inspect(insp, _comfy(scene.product), torch.rand(1, 1, 1, 3), "x", 0.0)["result"]
    assert not ok and "smaller than 16 px" in text


@pytest.mark.parametrize("args, phrase", [
    (dict(threshold=2.0), "threshold must be in [0, 1]"),
    (dict(threshold=float("nan")), "threshold must be in [0, 1]"),
    (dict(images=torch.zeros(0, 64, 64, 3)), "needs a batch of images"),
    (dict(depth=torch.rand(3, 64, 64, 3)), "one depth map per image"),
])
def test_node_refuses_bad_input_with_a_message(node, insp, scene, tmp_path, monkeypatch, args, phrase):
    rfnode, host = node
    monkeypatch.setattr(host, "temp_dir", lambda: tmp_path)
    kw = dict(rfnet=insp, product=_comfy(scene.product), images=_comfy(scene.image).repeat(2, 1, 1, 1),
              caption="x", threshold=0.0)
    kw.update(args)
    with pytest.raises(InputError) as e:
        rfnode.inspect(**kw)
    assert phrase in str(e.value)
    assert not list(tmp_path.iterdir())  # no preview written for a refused call


# ---------------------------------------------------------------------------------------------
# The dataset reader: bad samples are skipped and counted, the others read, nothing escapes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_id", ["../../evil", "a/b", "..", "", None, ["x"], "x\\..\\y", ".hidden", "x\x00y"])
def test_bad_ids_are_skipped_and_no_map_is_written_outside(tmp_path, bad_id):
    root = tmp_path / "ds"
    ids = write_dataset(root, 3, maps=False)
    append_records(root, {"id": bad_id})
    before = set(tmp_path.iterdir())
    ds = RFDataset(root, label_set="rf1m6", image_size=32, depth_extractor=MeanExtractor(),
                   salience_extractor=MeanExtractor("salience"))
    assert [s["id"] for s in ds.samples] == ids and ds.skips.counts == {"bad id": 1}
    assert "plain file name" in ds.skips.items[0][2] or "non-empty string" in ds.skips.items[0][2]
    assert set(tmp_path.iterdir()) == before  # nothing beside the dataset
    cached = list((root / ".cache").rglob("*.png"))
    assert len(cached) == 6 and all(p.resolve().is_relative_to(root.resolve()) for p in cached)


def test_label_txt_maps_are_keyed_by_path_not_file_name(tmp_path):
    """a/x.png and b/x.png: each gets its own depth and salience, not the other's."""
    for sub, grey in (("a", 40), ("b", 220)):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (32, 32), (grey, grey, grey)).save(tmp_path / sub / "x.png")
    (tmp_path / "label.txt").write_text("a/x.png\tAvailable\nb/x.png\tSpace Mismatch\n")
    ex = MeanExtractor()
    ds = RFDataset(tmp_path, label_set="rf1m6", image_size=16, need_product=False, maps=("depth",),
                   depth_extractor=ex)
    assert ex.calls == 2 and len(ds) == 2
    assert ds[0]["depth"].mean() == pytest.approx(40 / 255, abs=1 / 255)
    assert ds[1]["depth"].mean() == pytest.approx(220 / 255, abs=1 / 255)
    RFDataset(tmp_path, label_set="rf1m6", image_size=16, need_product=False, maps=("depth",), depth_extractor=ex)
    assert ex.calls == 2  # the second read takes both from the cache


@pytest.fixture()
def read_only(monkeypatch):
    """Make folders read-only. Root ignores permission bits, so there the write probe is told."""
    import rfnet.data as data

    folders, real = [], data._writable

    def make(folder: Path):
        folders.append(folder)
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)

    monkeypatch.setattr(data, "_writable",
                        lambda f: not any(Path(f).is_relative_to(d) for d in folders) and real(f))
    yield make
    for d in folders:
        for p in [d, *d.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_read_only_dataset_caches_maps_in_the_user_cache_and_says_where(tmp_path, monkeypatch, caplog, read_only):
    root = tmp_path / "ro"
    write_dataset(root, 3, maps=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    read_only(root)
    before = tree(root)
    with caplog.at_level(logging.WARNING, logger="rfnet.data"):
        ds = RFDataset(root, label_set="rf1m6", image_size=32, depth_extractor=MeanExtractor(),
                       salience_extractor=MeanExtractor("salience"))
    assert len(ds) == 3 and tree(root) == before
    cache = user_cache_dir()
    assert cache.is_relative_to(tmp_path / "xdg") and "not writable" in caplog.text and str(cache) in caplog.text
    assert len(list(cache.rglob("*.png"))) == 6 and ds[0]["depth"].shape == (1, 32, 32)
    # an explicit cache folder takes them instead, and nothing is computed twice there
    ex = MeanExtractor()
    RFDataset(root, label_set="rf1m6", image_size=32, depth_extractor=ex, maps=("depth",), cache_dir=tmp_path / "c")
    RFDataset(root, label_set="rf1m6", image_size=32, depth_extractor=ex, maps=("depth",), cache_dir=tmp_path / "c")
    assert ex.calls == 3 and len(list((tmp_path / "c").rglob("*.png"))) == 3 and tree(root) == before


def test_bomb_sixteen_bit_non_utf8_and_odd_records_in_one_dataset(tmp_path, corpus, caplog):
    root = tmp_path / "ds"
    ids = write_dataset(root, 3)
    shutil.copy(corpus / "bomb.png", root / "images" / "bomb.png")
    sixteen_bit(synth(5, 64, "Available").image).save(root / "images" / "deep.png")
    append_records(root, {"id": "bomb", "image": "images/bomb.png"},
                   {"id": "deep", "image": "images/deep.png"},
                   {"id": "numeric_image", "image": 5},
                   {"id": "numeric_caption", "caption": 12345},
                   raw=json.dumps({**json.loads((root / "manifest.jsonl").read_text().splitlines()[0]),
                                   "id": "gbk", "caption": "CAPTION"}).encode().replace(
                                       b"CAPTION", "红色口红".encode("gbk")) + b"\n")
    (root / "dataset.json").write_text("{ broken")
    with caplog.at_level(logging.WARNING):
        ds = RFDataset(root, label_set="rf1m6", image_size=32)
    kept = [s["id"] for s in ds.samples]
    assert kept == [*ids, "deep", "numeric_caption", "gbk"]
    assert ds.skips.counts == {"image too large": 1, "bad manifest line": 1}
    assert any("too large" in d and "decompression bomb" in d for _, _, d in ds.skips.items)
    assert "not valid UTF-8" in caplog.text and "dataset.json" in caplog.text
    deep = ds[kept.index("deep")]["generated"]
    assert 0.05 < float(deep.mean()) < 0.95  # scaled from 16 bits, not clipped to white
    assert ds[kept.index("numeric_caption")]["caption"] == "12345" and "\ufffd" in ds[kept.index("gbk")]["caption"]


def test_non_utf8_label_txt_is_read(tmp_path):
    Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (32, 32), (200, 10, 30)).save(tmp_path / "b.png")
    (tmp_path / "label.txt").write_bytes("image\tcaption\tlabel\na.png\t台灯\tAvailable\n".encode("gbk")
                                         + "b.png\tok\t2\n".encode())
    ds = RFDataset(tmp_path, label_set="rf1m6", image_size=16, need_product=False, maps=())
    assert [s["label"] for s in ds.samples] == ["Available", "Space Mismatch"]


# ---------------------------------------------------------------------------------------------
# python -m rfnet.inspect
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory, scene):
    d = tmp_path_factory.mktemp("files")
    scene.product.save(d / "product.png")
    sixteen_bit(scene.product).save(d / "product16.png")
    scene.image.save(d / "good.png")
    Image.new("RGB", (64, 64)).save(d / "black.png")
    return d


@pytest.mark.parametrize("argv, phrase", [
    (["--threshold", "1.5"], "threshold must be in [0, 1]"),
    (["--threshold", "nan"], "threshold must be in [0, 1]"),
    (["--image", "{d}/missing.png"], "missing.png: generated image file does not exist"),
    (["--image", "{c}/notes.png"], "notes.png: generated image cannot be decoded"),
    (["--image", "{c}/bomb.png"], "bomb.png: generated image is too large"),
    (["--image", "{d}"], "is a folder, not an image file"),
    (["--product", "{c}/bomb.png"], "product image is too large"),
    (["--model", "{d}/no_such_model"], "no such folder"),
    (["--model", "{c}/garbage_config"], "garbage_config/config.json is not a valid RFNet config"),
    (["--model", "{c}/truncated_weights"], "truncated_weights/model.safetensors is damaged or truncated"),
    (["--model", "{c}/no_weights"], "no model.safetensors there"),
])
def test_inspect_cli_refuses_in_one_line(files, corpus, capsys, argv, phrase):
    base = {"--product": f"{files}/product.png", "--image": f"{files}/good.png"}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v.format(d=files, c=corpus)
    code, out, err = cli(rinspect.main, [x for kv in base.items() for x in kv], capsys)
    assert code == 2 and out == ""
    assert phrase in one_line_error(err, "rfnet.inspect")


def test_inspect_cli_takes_sixteen_bit_products_and_flags_black_images(files, capsys):
    code, out, err = cli(rinspect.main, ["--product", files / "product16.png", "--image", files / "good.png",
                                         files / "black.png", "--dtype", "float32"], capsys)
    assert code == 0, err
    good, black = (json.loads(l) for l in out.splitlines())
    assert good["note"] is None and 0 <= good["p_available"] <= 1
    assert not black["accepted"] and "constant image" in black["note"]


# ---------------------------------------------------------------------------------------------
# python -m rfnet.evaluate
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "ds"
    write_dataset(root, 4, maps=False)
    return root


@pytest.mark.parametrize("argv, phrase", [
    (["--batch_size", "0"], "--batch_size must be at least 1, not 0"),
    (["--batch_size", "-3"], "--batch_size must be at least 1, not -3"),
    (["--data", "{t}/no_such_data"], "no_such_data: no such dataset folder or file"),
    (["--split", "tset"], "no samples in split 'tset'; splits there: test (4)"),
    (["--model", "{t}/no_model"], "no such folder"),
    (["--model", "{c}/garbage_config"], "config.json is not a valid RFNet config"),
    (["--model", "{c}/truncated_weights"], "model.safetensors is damaged or truncated"),
])
def test_evaluate_cli_refuses_in_one_line_before_loading(eval_data, corpus, tmp_path, capsys, argv, phrase):
    base = {"--model": str(EMBEDDED), "--data": str(eval_data), "--split": "test", "--output_dir": str(tmp_path / "ev")}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v.format(t=tmp_path, c=corpus)
    code, out, err = cli(evaluate.main, [x for kv in base.items() for x in kv], capsys)
    assert code == 2
    assert phrase in one_line_error(err, "rfnet.evaluate")
    assert not (tmp_path / "ev").exists()  # refused before anything was written


def test_evaluate_takes_embedded_as_rfnet_inspect_and_train_do(eval_data, tmp_path):
    args = evaluate.parse_args(["--rfnet", "embedded", "--data", str(eval_data), "--output_dir", str(tmp_path)])
    evaluate.check_args(args)
    assert Path(args.model) == EMBEDDED


def test_evaluate_library_raises_instead_of_exiting(eval_data, tmp_path):
    with pytest.raises(InputError, match="batch_size"):
        evaluate.evaluate(evaluate.parse_args(["--model", str(EMBEDDED), "--data", str(eval_data),
                                               "--output_dir", str(tmp_path), "--batch_size", "0"]))


def test_evaluate_a_read_only_dataset_with_bad_samples(tmp_path, corpus, monkeypatch, capsys, caplog, read_only):
    root = tmp_path / "ro"
    write_dataset(root, 4, maps=False)
    shutil.copy(corpus / "bomb.png", root / "images" / "bomb.png")
    append_records(root, {"id": "../../../outside"}, {"id": "bomb", "image": "images/bomb.png"})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    read_only(root)
    before, around = tree(root), set(tmp_path.iterdir())
    with caplog.at_level(logging.WARNING):
        code, out, err = cli(evaluate.main, ["--model", EMBEDDED, "--data", root, "--output_dir", tmp_path / "ev",
                                             "--device", "cpu"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["skipped"] == {"bad id": 1, "image too large": 1}
    assert "not writable" in caplog.text and str(tmp_path / "xdg") in caplog.text
    assert tree(root) == before and set(tmp_path.iterdir()) == around | {tmp_path / "ev", tmp_path / "xdg"}


# ---------------------------------------------------------------------------------------------
# python -m rfnet.train
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, phrase", [
    (["--train_batch_size", "0"], "--train_batch_size must be at least 1, not 0"),
    (["--train_batch_size", "-8"], "--train_batch_size must be at least 1, not -8"),
    (["--num_train_epochs", "0"], "--num_train_epochs must be at least 1, not 0"),
    (["--max_train_steps", "0"], "--max_train_steps must be at least 1, not 0"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1"),
    (["--checkpointing_steps", "0"], "--checkpointing_steps must be at least 1"),
    (["--learning_rate", "nan"], "--learning_rate must be a positive number"),
    (["--learning_rate=-1e-4"], "--learning_rate must be a positive number"),
    (["--train_data", "{t}/nothing_here"], "nothing_here: no such dataset folder or file"),
    (["--train_split", "nope"], "no samples in split 'nope'; splits there: test (4)"),
    (["--validation_data", "{t}/no_val", "--validation_split", "val"], "no_val: no such dataset folder"),
    (["--model_config", "{c}/garbage_config/config.json"], "--model_config"),
    (["--model_config", "{t}/none.json"], "--model_config"),
    (["--resume_from_checkpoint", "{t}/checkpoint-9"], "is not a complete checkpoint"),
    (["--preset", "paper"], "hfl/chinese-roberta-wwm-ext"),
    (["--init_from", "embedded", "--image_size", "0"], "--image_size must be at least 8, not 0"),
    (["--init_from", "{t}/vit", "--image_size", "128"], "needs a CNN backbone"),
])
def test_train_cli_refuses_in_one_line_before_training(eval_data, corpus, tmp_path, capsys, argv, phrase):
    base = {"--train_data": str(eval_data), "--train_split": "test", "--output_dir": str(tmp_path / "out")}
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"image_backbone": "vit_tiny_patch16_224"}))
    (tmp_path / "vit" / "model.safetensors").write_bytes(b"")
    rest = [a.format(t=tmp_path, c=corpus) for a in argv]
    code, out, err = cli(train.main, [x for kv in base.items() for x in kv] + TINY + rest, capsys)
    assert code == 2
    assert phrase in one_line_error(err, "rfnet.train")
    if argv[0] != "--preset":  # the argument checks come before the output folder is made
        assert not (tmp_path / "out").exists()


def test_train_library_raises_instead_of_exiting(eval_data, tmp_path):
    with pytest.raises(InputError, match="--caption_encoder"):  # was SystemExit: fatal in ComfyUI
        train.train(train.parse_args(["--train_data", str(eval_data), "--output_dir", str(tmp_path),
                                      "--train_split", "test", "--preset", "paper"]))


@pytest.mark.slow
def test_train_skips_bad_samples_and_resumes_past_damaged_checkpoints(tmp_path, corpus, caplog):
    """A dataset with a bomb and a bad id trains on the rest; a resume skips a garbage
    trainer_state.json and a truncated model.safetensors for the last intact checkpoint, gives
    the weights of the uninterrupted run and logs each step once."""
    import csv

    from safetensors.torch import load_file

    data = tmp_path / "ds"
    write_dataset(data, 12, maps=False, split="train")
    shutil.copy(corpus / "bomb.png", data / "images" / "bomb.png")
    append_records(data, {"id": "../x", "split": "train"}, {"id": "bomb", "image": "images/bomb.png", "split": "train"})
    out = tmp_path / "run"
    args = ["--train_data", data, "--output_dir", out, *TINY, "--train_batch_size", "4",
            "--max_train_steps", "9", "--checkpointing_steps", "3", "--logging_steps", "1"]
    assert train.main([str(a) for a in args]) == 0
    skipped = json.loads((out / "skipped.json").read_text())
    assert skipped["train"] == {"bad id": 1, "image too large": 1}
    whole = load_file(str(out / "model.safetensors"))
    (out / "checkpoint-9" / "trainer_state.json").write_text("{ garbage")
    w = out / "checkpoint-6" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    (out / "checkpoint-foo").mkdir()
    (out / "checkpoint-foo" / "trainer_state.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="rfnet.train"):
        assert train.main([str(a) for a in args + ["--resume_from_checkpoint", "latest"]]) == 0
    assert "checkpoint-9 cannot be loaded" in caplog.text and "checkpoint-6 cannot be loaded" in caplog.text
    resumed = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "logs" / "train_log.csv")) if r["loss"]]
    assert steps == list(range(1, 10))  # once each: the rows after checkpoint-3 were not kept twice
    # an explicitly named damaged checkpoint is an error, not a silent fallback
    w.write_bytes(w.read_bytes()[:100])  # the resumed run wrote it again
    with pytest.raises(InputError, match="cannot resume from .*checkpoint-6"):
        train.train(train.parse_args([str(a) for a in args + ["--resume_from_checkpoint", out / "checkpoint-6"]]))
