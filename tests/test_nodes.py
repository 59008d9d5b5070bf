"""Every node, called as ComfyUI calls it, with ComfyUI's types built here (no ComfyUI needed)."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import box_cutout
from test_pack import _import_pack

PACK = _import_pack()
N = sys.modules["reliable_ad_under_test.nodes"]
host = sys.modules["reliable_ad_under_test.nodes.host"]
M = PACK.NODE_CLASS_MAPPINGS


def _comfy_image(pil):
    """What Load Image gives: IMAGE [1, H, W, 3] and MASK [1, H, W], 1 where transparent."""
    a = np.asarray(pil.convert("RGBA"), np.float32) / 255.0
    return torch.from_numpy(a[..., :3])[None], torch.from_numpy(1.0 - a[..., 3])[None]


def _cutout():
    return box_cutout(20, 40, (5, 4), (40, 90, 200))


def test_every_node_loads_with_a_schema():
    assert not N.FAILED, N.FAILED
    assert set(M) == {"RFNetLoader", "RFDepthModelLoader", "RFSalienceModelLoader", "RFProductPlacement",
                      "RFPasteProduct", "RFLoadProductFolder", "RFDepthMap", "RFSalienceMap", "RFNetInspect",
                      "RFRecurrentGenerate", "RFFeedback", "RFReviewLabel", "RFFTTrain", "RFTrainRFNet"}
    for name, cls in M.items():
        spec = cls.INPUT_TYPES()
        assert "required" in spec and cls.DESCRIPTION and cls.CATEGORY.startswith("Reliable AD")
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert len(cls.RETURN_TYPES) == len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))
        assert name in PACK.NODE_DISPLAY_NAME_MAPPINGS
    assert PACK.WEB_DIRECTORY == "./web"


def test_product_placement_matches_the_engine():
    from rfft.placement import place

    img, mask = _comfy_image(_cutout())
    out_img, inpaint, canny, placements = M["RFProductPlacement"]().place(img, 128, 96, 0.5, False, -1, 100, 200, mask)
    want = place(_cutout(), (128, 96), 0.5)
    assert placements[0].box == want.box
    assert out_img.shape == (1, 96, 128, 3) and inpaint.shape == (1, 96, 128) and canny.shape == (1, 96, 128, 3)
    assert torch.equal(inpaint[0], torch.from_numpy(want.inpaint_mask))
    assert torch.equal((canny[0, ..., 0] * 255).round().byte(), torch.from_numpy(np.array(want.control)[..., 0]))
    # Paste Product puts the product's pixels back exactly
    noise = torch.rand(1, 96, 128, 3)
    (pasted,) = M["RFPasteProduct"]().paste(noise, placements)
    solid = torch.from_numpy(want.alpha >= 1)
    assert torch.equal((pasted[0][solid] * 255).round().byte(), torch.from_numpy(want.product[want.alpha >= 1]))


@pytest.fixture(scope="module")
def rfnet():
    return M["RFNetLoader"]().load("embedded")[0]


def _scene(label, seed):
    from rfsynth.scene import render_sample

    s = render_sample(seed, 64, label)
    return s, torch.from_numpy(np.asarray(s.image, np.float32) / 255.0)[None]


def test_inspect_gives_verdicts_and_badged_previews(rfnet, tmp_path, monkeypatch):
    monkeypatch.setattr(host, "temp_dir", lambda: tmp_path)
    good, gi = _scene("Available", 11)
    bad, bi = _scene("Space Mismatch", 12)
    pimg, pmask = _comfy_image(good.product)
    res = M["RFNetInspect"]().inspect(rfnet, pimg, torch.cat([gi, bi]), good.caption, 0.0, product_mask=pmask)
    rows = res["ui"]["rf_verdicts"]
    assert len(rows) == 2 and len(res["ui"]["images"]) == 2
    for r in res["ui"]["images"]:
        assert (tmp_path / r["filename"]).exists() and r["type"] == "temp"
    # the same verdicts as the engine's Inspector called directly
    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    direct = Inspector.from_pretrained(embedded_path("rfnet"))(good.product, [good.image, bad.image], good.caption)
    assert [r["label"] for r in rows] == [v.label for v in direct]
    assert res["result"][1] == pytest.approx(direct[0].p_available, abs=2e-3)  # bf16, tensor vs PIL input
    assert json.loads(res["result"][3]) == rows
    # a threshold turns acceptance into P(Available) >= t
    res1 = M["RFNetInspect"]().inspect(rfnet, pimg, gi, good.caption, 0.999999, product_mask=pmask)
    assert res1["result"][2] == (rows[0]["p_available"] >= 0.999999)


def test_depth_and_salience_nodes_match_the_estimators():
    from rfnet.extractors import make_extractor

    _, gi = _scene("Available", 3)
    dm = M["RFDepthModelLoader"]().load("embedded")[0]
    sm = M["RFSalienceModelLoader"]().load("fallback (no weights)")[0]
    (d,) = M["RFDepthMap"]().run(gi, dm)
    s_img, s_mask = M["RFSalienceMap"]().run(gi, sm)
    assert d.shape == (1, 64, 64, 3) and s_mask.shape == (1, 64, 64)
    with torch.no_grad():
        want = make_extractor("depth", "embedded")(gi.movedim(-1, 1))
    assert torch.allclose(d[..., 0], want[:, 0], atol=1e-5)
    assert torch.equal(s_img[..., 0], s_mask)


class FakeVAE:
    """ComfyUI's VAE interface at 8x: encode BHWC -> latent, decode latent -> BHWC."""

    def encode(self, pixels):
        return torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8).repeat(1, 2, 1, 1)[:, :4]

    def decode(self, latent):
        return torch.nn.functional.interpolate(latent[:, :3], scale_factor=8).movedim(1, -1).clamp(0, 1)


class ScriptedRFNet:
    """Accepts the images whose mean brightness is above a cut, as the RFNET the node is given."""

    def __init__(self, accept_from: float):
        self.cut = accept_from
        self.model, self.depth, self.salience = torch.nn.Linear(1, 1), None, None

    def __call__(self, product, images, captions, depth=None, salience=None):
        out = []
        for im in images:
            p = float(im.mean())
            ok = p >= self.cut
            out.append(SimpleNamespace(label="Available" if ok else "Space Mismatch", p_available=p, accepted=ok,
                                       probs={"Available": p}))
        return out


def _recurrent(rfnet, max_attempts, candidates, monkeypatch, calls):
    img, mask = _comfy_image(_cutout())
    *_, placements = M["RFProductPlacement"]().place(img, 64, 64, 0.5, False, -1, 100, 200, mask)
    node = M["RFRecurrentGenerate"]()

    def sample(model, seed, steps, cfg, sampler, scheduler, pos, neg, latent, callback=None):
        calls.append({"seed": seed, "batch_index": list(latent["batch_index"]), "mask": latent["noise_mask"]})
        for step in range(steps):  # the sampler reports each step through the node's callback
            callback(step, latent["samples"], latent["samples"], steps)
        # brighter with the batch index: attempt i is accepted once its brightness passes the cut
        return torch.stack([torch.full(latent["samples"].shape[1:], 0.1 * (i + 1)) for i in latent["batch_index"]])

    monkeypatch.setattr(node, "sample", sample)
    monkeypatch.setattr(host, "temp_dir", lambda: __import__("pathlib").Path(monkeypatch._tmp))
    return node.generate("MODEL", "POS", "NEG", FakeVAE(), placements, rfnet, "a vase", 42, 4, 7.5, "ddim",
                         "ddim_uniform", max_attempts, candidates, 0.0, unique_id="7"), placements[0]


def test_recurrent_generate_stops_at_acceptance(monkeypatch, tmp_path):
    monkeypatch._tmp = tmp_path
    calls = []
    res, pl = _recurrent(ScriptedRFNet(0.45), 8, 2, monkeypatch, calls)
    image, attempts, accepted, verdicts, report = res["result"]
    assert accepted and [c["batch_index"] for c in calls] == [[0, 1], [2, 3], [4, 5]]
    assert all(c["seed"] == 42 for c in calls)
    assert torch.equal(calls[0]["mask"][0], torch.from_numpy(pl.inpaint_mask))  # eq. 2 through the noise mask
    rows = [json.loads(x) for x in verdicts.splitlines()]
    chosen = [r for r in rows if r["chosen"]]
    assert len(rows) == 6 and chosen[0]["batch_index"] == 4 and attempts.shape[0] == 6
    assert "accepted attempt 5 of 6" in report
    solid = torch.from_numpy(pl.alpha >= 1)
    assert torch.equal((image[0][solid] * 255).round().byte(), torch.from_numpy(pl.product[pl.alpha >= 1]))


def test_recurrent_generate_progress_runs_once_across_attempts_and_ends_on_the_results(monkeypatch, tmp_path):
    monkeypatch._tmp = tmp_path
    seen = []
    monkeypatch.setattr(host.Progress, "set", lambda self, v, preview=None: seen.append((self.total, v, preview)))
    calls = []
    _recurrent(ScriptedRFNet(0.45), 8, 2, monkeypatch, calls)  # accepted in round 3 of at most 4, 4 steps each
    totals, values = {t for t, _, _ in seen}, [v for _, v, _ in seen]
    assert totals == {16}  # one bar: 4 rounds of 4 steps, not a bar per attempt
    assert values == sorted(values), "progress never restarts"
    assert values[:4] == [1, 2, 3, 4] and 12 in values  # the third round ends at 12 of 16
    fmt, strip, _ = seen[-1][2]  # the last preview is the badged attempts, not a latent
    assert values[-1] == 16 and fmt == "PNG" and strip.width > 6 * strip.height


def test_recurrent_generate_returns_the_best_when_none_passes(monkeypatch, tmp_path):
    monkeypatch._tmp = tmp_path
    calls = []
    res, _ = _recurrent(ScriptedRFNet(2.0), 3, 1, monkeypatch, calls)
    _, attempts, accepted, verdicts, report = res["result"]
    assert not accepted and attempts.shape[0] == 3 and "no attempt accepted in 3" in report
    rows = [json.loads(x) for x in verdicts.splitlines()]
    assert [r["batch_index"] for r in rows if r["chosen"]] == [2]  # the brightest = highest P(Available)


def test_recurrent_generate_stops_on_cancel(monkeypatch, tmp_path):
    monkeypatch._tmp = tmp_path
    state = {"n": 0}

    class Interrupted(Exception):
        pass

    def cancel():
        state["n"] += 1
        if state["n"] == 3:
            raise Interrupted

    monkeypatch.setattr(host, "check_cancel", cancel)
    calls = []
    with pytest.raises(Interrupted):
        _recurrent(ScriptedRFNet(2.0), 10, 1, monkeypatch, calls)
    assert len(calls) == 2


def test_feedback_writes_a_dataset_the_trainer_reads(tmp_path, monkeypatch):
    from rfnet.data import SkipReport, read_records

    monkeypatch.setattr(host, "output_dir", lambda: tmp_path)
    s1, i1 = _scene("Available", 5)
    s2, i2 = _scene("Size Mismatch", 6)
    pimg, pmask = _comfy_image(s1.product)
    node = M["RFFeedback"]()
    out = node.record(torch.cat([i1, i2]), pimg, "Available", "../../escape", s1.caption, s1.prompt, pmask,
                      labels="Available, Size Mismatch")
    root = tmp_path / "rf_feedback" / "escape"
    assert str(root) in out["result"][0]
    _, recs, info = read_records(root, SkipReport())
    assert [r["label"] for r in recs] == ["Available", "Size Mismatch"] and info["label_set"] == "rf1m6"
    assert recs[0]["caption"] == s1.caption and (root / recs[0]["product"]).exists()
    with pytest.raises(ValueError, match="one per image"):
        node.record(torch.cat([i1, i2]), pimg, "Available", "x", "", "", pmask, labels="Available")
    with pytest.raises(ValueError, match="unknown label"):
        node.record(i1, pimg, "Available", "x", "", "", pmask, labels="Pretty")


def test_product_folder_walks_and_stays_inside_input(tmp_path, monkeypatch):
    import shutil

    from rfft.generate import EXAMPLES

    shutil.copytree(EXAMPLES / "products", tmp_path / "products")
    monkeypatch.setattr(host, "input_dir", lambda: tmp_path)
    node = M["RFLoadProductFolder"]()
    img, mask, caption, name, count = node.load("products", 9)
    assert count == 8 and name == "01_speaker.png" and "speaker" in caption  # index wraps around
    assert img.shape[-1] == 3 and mask.shape == img.shape[:3] and 0 < float(mask.mean()) < 1
    with pytest.raises(ValueError, match="not found inside"):
        node.load("../", 0)


def test_loader_names_the_folders_it_searched(monkeypatch, tmp_path):
    from rfnet.weights import WeightsNotFoundError

    monkeypatch.setattr(host, "model_dirs", lambda kind: [tmp_path / kind])
    with pytest.raises(WeightsNotFoundError, match="rf_depth") as e:
        M["RFDepthModelLoader"]().load("missing-dpt")
    assert str(tmp_path) in str(e.value), "the message names the folder it searched"
    # it tells a designer where the file goes, not an environment variable
    assert "ComfyUI/models/rf_depth/" in str(e.value) and "RF_MODELS_DIR" not in str(e.value)
    assert "DPT" in str(e.value)
    (tmp_path / "rfnet" / "我的 模型").mkdir(parents=True)
    assert host.safe_join(tmp_path / "rfnet", "../../etc/passwd") is None
    assert host.safe_join(tmp_path / "rfnet", "我的 模型") == (tmp_path / "rfnet" / "我的 模型").resolve()


def test_safe_name_keeps_chinese_and_spaces_and_never_climbs_out():
    assert host.safe_name("红色 香水 反馈") == "红色 香水 反馈"  # a designer's folder name, unchanged
    assert host.safe_name("../../escape") == "escape"
    assert host.safe_name("a/b\\c:d*?") == "a_b_c_d"
    assert host.safe_name("..", "fb") == "fb" and host.safe_name(" . ", "fb") == "fb"
    assert host.safe_name("CON") == "_CON" and host.safe_name("nul.txt") == "_nul.txt"
    assert host.safe_name("x" * 300) == "x" * 100
    assert host.safe_name("e\u0301") == "\u00e9"  # NFC: one name for what looks like one name


def test_a_missing_dependency_leaves_out_only_its_nodes(monkeypatch, caplog):
    import importlib.util
    import logging

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "cv2" else real(m, *a))
    for mod in ("products",):
        sys.modules.pop(f"reliable_ad_under_test.nodes.{mod}", None)
    with caplog.at_level(logging.WARNING, logger="reliable_ad"):
        classes, _, failed = N.load_nodes(("products",), package="reliable_ad_under_test.nodes")
    assert classes == {} and "opencv-python-headless" in failed["products"]
    assert "pip install opencv-python-headless" in caplog.text


def test_rfft_train_node_writes_a_controlnet_and_resumes_after_cancel(tmp_path, monkeypatch, tiny_generator):
    import shutil

    from diffusers import ControlNetModel

    from rfft.generate import EXAMPLES

    (tmp_path / "input" / "products").mkdir(parents=True)
    shutil.copy(EXAMPLES / "products" / "05_perfume.png", tmp_path / "input" / "products")
    dirs = {"diffusers": [tiny_generator.parent], "controlnet": [tmp_path / "controlnet"], "rfnet": []}
    monkeypatch.setattr(host, "model_dirs", lambda kind: dirs.get(kind, []))
    monkeypatch.setattr(host, "input_dir", lambda: tmp_path / "input")
    monkeypatch.setattr(host, "output_dir", lambda: tmp_path / "output")
    calls = {"n": 0}

    class Cancelled(Exception):
        pass

    def cancel_at_third():
        calls["n"] += 1
        if calls["n"] == 3:
            raise Cancelled

    monkeypatch.setattr(host, "check_cancel", cancel_at_third)
    node = M["RFFTTrain"]()
    prompts = json.dumps([{"prompt": "a {product} on a marble table", "negative_prompt": "", "image_scale": 0.5}])
    kw = dict(generator=tiny_generator.name, controlnet="(the generator's own)", rfnet="embedded", products="products",
              prompts=prompts, name="../my net", steps=4, learning_rate=1e-3, reg="cc", beta=1.0,
              num_inference_steps=4, grad_steps_window=2, batch_size=1, seed=0, checkpointing_steps=2)
    with pytest.raises(Cancelled):
        node.run(**kw)
    run_dir = tmp_path / "output" / "rfft_runs" / "my net"
    assert (run_dir / "checkpoint-2").exists() and not (tmp_path / "controlnet" / "my net").exists()
    path, curve = node.run(**kw)["result"]  # resumes from checkpoint-2
    assert path == str(tmp_path / "controlnet" / "my net") and curve.shape[-1] == 3
    ControlNetModel.from_pretrained(path)
    steps = [int(float(ln.split(",")[-3])) for ln in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]  # step 3 ran, was cancelled, and ran again from checkpoint-2: logged once


def test_recurrent_generate_refuses_nan_pixels_saying_what_to_do(monkeypatch, tmp_path):
    monkeypatch._tmp = tmp_path
    real = FakeVAE.decode
    monkeypatch.setattr(FakeVAE, "decode", lambda self, z: real(self, z) * float("nan"))
    with pytest.raises(ValueError, match="NaN pixels.*--fp32-vae"):
        _recurrent(ScriptedRFNet(2.0), 3, 1, monkeypatch, [])
