import json

import numpy as np
import pytest
import torch
from conftest import box_cutout
from PIL import Image

from rfnet.data import Collator, RFDataset, RFDatasetWriter, SkipReport, read_label_txt, to_map_tensor
from rfnet.labels import UnknownLabelError, canonical, to_index


def _img(colour, size=24, mode="RGB"):
    return Image.new(mode, (size, size), colour)


def _product(size=20):
    return box_cutout(size - 8, size - 8, 4, (200, 30, 30))


class CountingExtractor(torch.nn.Module):
    """A depth extractor that counts its calls; the map is the image's mean brightness."""

    name = "counting:test"
    kind = "depth"
    is_fallback = False

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images):
        self.calls += images.shape[0]
        return images.mean(1, keepdim=True)


def write_good(root, n=4, maps=True):
    w = RFDatasetWriter(root)
    for i in range(n):
        w.add(f"s{i}", _img((10 * i, 100, 150)), _product(), ["Available", "space mismatch", 4, "Shape_Hallucination"][i % 4],
              caption=f"产品 {i}", prompt="a wall", split="train" if i < n - 1 else "test",
              depth=_img(128, mode="L") if maps else None, salience=_img(200, mode="L") if maps else None)
    return w


def test_writer_reader_roundtrip(tmp_path):
    write_good(tmp_path, 4)
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["format"] == "rf-dataset" and info["version"] == 1
    ds = RFDataset(tmp_path, label_set="rf1m6", image_size=16)
    assert len(ds) == 4 and len(ds.skips) == 0
    assert [s["label"] for s in ds.samples] == ["Available", "Space Mismatch", "Indistinctiveness", "Shape Hallucination"]
    item = ds[1]
    assert item["generated"].shape == (3, 16, 16) and item["depth"].shape == (1, 16, 16)
    assert torch.allclose(item["generated"][:, 0, 0], torch.tensor([10, 100, 150]) / 255.0, atol=1e-6)
    assert torch.allclose(item["depth"], torch.full((1, 16, 16), 128 / 255.0), atol=1e-6)
    # the product's transparent border is composited on white
    prod = RFDataset(tmp_path, label_set="rf1m6", image_size=None)[0]["product"]
    assert torch.allclose(prod[:, 0, 0], torch.ones(3)) and prod[0, 10, 10] == pytest.approx(200 / 255)
    assert item["caption"] == "产品 1"
    assert len(RFDataset(tmp_path, label_set="rf1m6", split="test", image_size=16)) == 1


def test_writer_refuses_duplicates_and_bad_ids(tmp_path):
    w = write_good(tmp_path, 1)
    with pytest.raises(ValueError, match="already"):
        w.add("s0", _img(0), _product(), "Available")
    with pytest.raises(ValueError, match="must be"):
        w.add("../evil", _img(0), _product(), "Available")
    # a new writer on the same folder knows what is there
    with pytest.raises(ValueError, match="already"):
        RFDatasetWriter(tmp_path).add("s0", _img(0), _product(), "Available")


def test_broken_samples_are_skipped_counted_and_named(tmp_path):
    write_good(tmp_path, 4)
    w = RFDatasetWriter(tmp_path)
    w.add("missing", _img(1), _product(), "Available", depth=_img(1, mode="L"), salience=_img(1, mode="L"))
    (tmp_path / "images" / "missing.png").unlink()
    w.add("truncated", _img(2), _product(), "Available", depth=_img(1, mode="L"), salience=_img(1, mode="L"))
    data = (tmp_path / "images" / "truncated.png").read_bytes()
    (tmp_path / "images" / "truncated.png").write_bytes(data[: len(data) // 2])
    w.add("garbage", _img(3), _product(), "Available", depth=_img(1, mode="L"), salience=_img(1, mode="L"))
    (tmp_path / "products" / "garbage.png").write_bytes(b"not an image at all")
    Image.new("CMYK", (24, 24), (0, 50, 100, 0)).save(tmp_path / "images" / "cmyk.jpg")
    with open(tmp_path / "manifest.jsonl", "a") as f:
        rec = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[0])
        f.write(json.dumps(dict(rec, id="badlabel", label="Blurry")) + "\n")
        f.write(json.dumps(dict(rec, id="cmyk2", image="images/cmyk.jpg")) + "\n")
        f.write("{this is not json\n")
    ds = RFDataset(tmp_path, label_set="rf1m6", image_size=16)
    assert len(ds) == 4
    assert ds.skips.counts == {"missing file": 1, "unreadable file": 2, "wrong mode": 1,
                               "unknown label": 1, "bad manifest line": 1}
    paths = " ".join(p for _, p, _ in ds.skips.items)
    for name in ("missing.png", "truncated.png", "garbage.png", "cmyk.jpg", "badlabel", "manifest.jsonl:"):
        assert name in paths
    assert "skipped 6 samples" in ds.skips.summary()
    wrong = [d for r, _, d in ds.skips.items if r == "wrong mode"][0]
    assert "CMYK" in wrong and "convert" in wrong


def test_labels_outside_the_set_are_skipped(tmp_path):
    w = RFDatasetWriter(tmp_path)
    w.add("u", _img(1), _product(), "Unsuitable", depth=_img(1, mode="L"), salience=_img(1, mode="L"))
    w.add("a", _img(1), _product(), "Available", depth=_img(1, mode="L"), salience=_img(1, mode="L"))
    ds = RFDataset(tmp_path, label_set="paper5", image_size=8)
    assert [s["id"] for s in ds.samples] == ["a"]
    assert ds.skips.counts == {"label not in label set": 1}
    coarse = RFDataset(tmp_path, label_set="coarse", image_size=8)
    assert sorted(coarse.labels) == [0, 1]


def test_missing_maps_are_computed_once_and_cached(tmp_path):
    write_good(tmp_path, 3, maps=False)
    ex = CountingExtractor()
    sal = CountingExtractor()
    sal.name, sal.kind = "counting:sal", "salience"
    ds = RFDataset(tmp_path, image_size=16, depth_extractor=ex, salience_extractor=sal, label_set="rf1m6")
    assert ex.calls == 3 and sal.calls == 3
    cached = sorted((tmp_path / ".cache" / "maps" / "counting_test" / "depth").iterdir())
    assert len(cached) == 3
    # the cached map is the extractor's output
    want = torch.tensor([0, 100, 150]).float().mean() / 255.0
    assert ds[0]["depth"][0, 0, 0] == pytest.approx(float(want), abs=1 / 255)
    RFDataset(tmp_path, image_size=16, depth_extractor=ex, salience_extractor=sal, label_set="rf1m6")
    assert ex.calls == 3  # second time: read from the cache


def test_missing_maps_without_extractor_are_skipped(tmp_path):
    write_good(tmp_path, 2, maps=False)
    ds = RFDataset(tmp_path, image_size=16, label_set="rf1m6")
    assert len(ds) == 0 and ds.skips.counts == {"no depth map": 2}
    assert len(RFDataset(tmp_path, image_size=16, label_set="rf1m6", maps=())) == 2
    # a model without depth needs no depth maps
    only_sal = RFDataset(tmp_path, image_size=16, label_set="rf1m6", maps=("salience",),
                         salience_extractor=CountingExtractor())
    assert len(only_sal) == 2 and "depth" not in only_sal[0] and "salience" in only_sal[0]


def test_sixteen_bit_depth_maps():
    a = np.array([[0, 65535], [32768, 16384]], dtype=np.uint16)
    t = to_map_tensor(Image.fromarray(a))
    assert torch.allclose(t[0], torch.tensor(a / 65535.0, dtype=torch.float32), atol=1e-6)


@pytest.mark.parametrize("text", [
    "img/a.png\tAvailable\nimg/b.png\tSpace Mismatch\nimg/c.png\t5\n",
    "img/a.png,available\nimg/b.png,space_mismatch\nimg/c.png,Shape Hallucination\n",
    "img/a.png 0\nimg/b.png Space Mismatch\nimg/c.png shape-hallucination\n",
    "# RF1M labels\nimg/a.png | Available\nimg/b.png | 2\nimg/c.png | SHAPE HALLUCINATION\n",
])
def test_rf1m_label_txt_variants(tmp_path, text):
    (tmp_path / "label.txt").write_text(text)
    recs = read_label_txt(tmp_path / "label.txt")
    assert [(r["image"], r["label"]) for r in recs] == [
        ("img/a.png", "Available"), ("img/b.png", "Space Mismatch"), ("img/c.png", "Shape Hallucination")]


def test_rf1m_label_txt_with_header_and_bad_lines(tmp_path):
    (tmp_path / "label.txt").write_text(
        "image\tproduct\tcaption\tlabel\n"
        "g/1.png\tp/1.png\t红色口红 3.5g\tSize Mismatch\n"
        "g/2.png\tp/2.png\ttitle\tBlurry\n"
        "g/3.png\tp/3.png\tonly three\n"
        "g/4.png\tp/4.png\tlamp\t1\n")
    skips = SkipReport()
    recs = read_label_txt(tmp_path / "label.txt", skips)
    assert [(r["image"], r["product"], r["caption"], r["label"]) for r in recs] == [
        ("g/1.png", "p/1.png", "红色口红 3.5g", "Size Mismatch"), ("g/4.png", "p/4.png", "lamp", "Unsuitable")]
    assert skips.counts == {"unknown label": 1, "bad label line": 1}
    assert "label.txt:3" in skips.items[0][1] or "label.txt:3" in skips.items[1][1]


def test_label_parsing():
    assert canonical("space  mismatch") == "Space Mismatch"
    assert canonical(3) == "Size Mismatch"  # RF1M's order: Available, Unsuitable, Space, Size, ...
    assert canonical("1", numbering="paper5") == "Space Mismatch"
    with pytest.raises(UnknownLabelError, match="0-5"):
        canonical("Blurry")
    with pytest.raises(UnknownLabelError, match="outside"):
        canonical(9)
    assert to_index("Indistinctiveness", "coarse") == 1 and to_index("Available", "coarse") == 0
    assert to_index("Unsuitable", "paper5") is None


def test_collator_tokenizes_and_stacks():
    from rfnet.text import build_tokenizer

    tok = build_tokenizer(["red lamp", "蓝色 box"], 100)
    items = [{"id": "a", "label": 0, "caption": "red lamp", "generated": torch.zeros(3, 4, 4)},
             {"id": "b", "label": 2, "caption": "", "generated": torch.ones(3, 4, 4)}]
    b = Collator(tok)(items)
    assert b["generated"].shape == (2, 3, 4, 4) and b["label"].tolist() == [0, 2]
    assert b["input_ids"].shape[0] == 2 and b["attention_mask"][1].sum() == 2  # [CLS] [SEP]
    assert tok.convert_ids_to_tokens(b["input_ids"][0][:4].tolist()) == ["[CLS]", "red", "lamp", "[SEP]"]


def test_tokenizer_is_deterministic():
    from rfnet.text import build_tokenizer

    caps = [f"brand{i % 7} lamp 台灯 {i}" for i in range(50)]
    a, b = build_tokenizer(caps, 60), build_tokenizer(list(reversed(caps)), 60)
    assert a.get_vocab() == b.get_vocab()
