"""Review & Label: the node stores a batch for review, and the server route writes each click
into the feedback dataset, refusing anything it did not offer."""
import json
import sys

import numpy as np
import pytest
import torch
from test_pack import _import_pack

PACK = _import_pack()
host = sys.modules["reliable_ad_under_test.nodes.host"]
review = sys.modules["reliable_ad_under_test.nodes.review"]
M = PACK.NODE_CLASS_MAPPINGS


def _scene(label, seed):
    from rfsynth.scene import render_sample

    s = render_sample(seed, 64, label)
    return s, torch.from_numpy(np.asarray(s.image, np.float32) / 255.0)[None]


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("comfy_output")
    rfnet = M["RFNetLoader"]().load("embedded")[0]
    scenes = [_scene(lab, 30 + i) for i, lab in enumerate(["Available", "Space Mismatch", "Size Mismatch"])]
    s0 = scenes[0][0]
    a = np.asarray(s0.product.convert("RGBA"), np.float32) / 255.0
    pimg, pmask = torch.from_numpy(a[..., :3])[None], torch.from_numpy(1.0 - a[..., 3])[None]
    mp = pytest.MonkeyPatch()
    mp.setattr(host, "output_dir", lambda: out)
    res = M["RFReviewLabel"]().review(torch.cat([t for _, t in scenes]), pimg, rfnet, "红色 香水", s0.caption,
                                      s0.prompt, product_mask=pmask)
    mp.undo()
    return out, res


def test_the_node_offers_the_batch_least_certain_first_with_rfnets_labels(batch_out):
    out, res = batch_out
    (ui,) = res["ui"]["rf_review"]
    assert res["result"][0] == f"红色 香水/{ui['batch']}"  # a Chinese dataset name with a space is kept
    meta = json.loads((out / "rf_review" / "红色 香水" / ui["batch"] / "batch.json").read_text(encoding="utf-8"))
    assert len(ui["items"]) == 3 and all(it["label"] is None for it in ui["items"])
    tops = [max(it["probs"].values()) for it in ui["items"]]
    assert tops == sorted(tops)  # the least sure first
    for it in ui["items"]:
        assert it["rfnet"] == max(it["probs"], key=it["probs"].get)  # pre-filled with RFNet's verdict
        assert (out / it["subfolder"] / it["filename"]).is_file() and it["type"] == "output"
    assert [it["index"] for it in ui["items"]] == meta["order"]


def test_a_click_lands_in_the_dataset_and_a_second_click_changes_it(batch_out):
    from rfnet.dataformat import SkipReport, read_records

    out, res = batch_out
    ui = res["ui"]["rf_review"][0]
    post = {"dataset": ui["dataset"], "batch": ui["batch"], "index": 1, "label": "Size Mismatch"}
    r = review.apply_label(out, post)
    assert r["ok"] and r["labelled"] == 1 and r["total"] == 3
    root = out / "rf_feedback" / "红色 香水"
    _, recs, info = read_records(root, SkipReport())
    assert [(x["id"], x["label"]) for x in recs] == [(f"rv_{ui['batch']}_001", "Size Mismatch")]
    assert info["label_set"] == "rf1m6" and (root / recs[0]["image"]).is_file() and (root / recs[0]["product"]).is_file()
    review.apply_label(out, {**post, "label": "available"})  # changed mind: one record, the new label
    _, recs, _ = read_records(root, SkipReport())
    assert [x["label"] for x in recs] == ["Available"]
    # a reloaded page gets the labels back from the server
    again = review.ui_batch(review.read_batch(out, ui["dataset"], ui["batch"]))
    assert {it["index"]: it["label"] for it in again["items"]} == {0: None, 1: "Available", 2: None}


@pytest.mark.parametrize("bad, why", [
    ({"label": "Nice"}, "unknown label"),
    ({"label": "Unavailable"}, "unknown label"),  # the coarse label names no defect
    ({"dataset": "../红色 香水"}, "not a dataset name"),
    ({"dataset": "elsewhere"}, "no review batch"),
    ({"batch": "../../../etc"}, "not a review batch id"),
    ({"index": 3}, "not an image of batch"),
    ({"index": True}, "not an image of batch"),
    ({"index": "0"}, "not an image of batch"),
])
def test_the_route_refuses_what_it_did_not_offer_and_writes_nothing(batch_out, bad, why):
    out, res = batch_out
    ui = res["ui"]["rf_review"][0]
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    post = {"dataset": ui["dataset"], "batch": ui["batch"], "index": 0, "label": "Available", **bad}
    with pytest.raises(review.ReviewError, match=why):
        review.apply_label(out, post)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    with pytest.raises(review.ReviewError):
        review.apply_label(out, ["not", "an", "object"])


def test_train_rfnet_refuses_too_few_labels_then_trains_calibrates_and_resumes(tmp_path, monkeypatch):
    from rfnet.model import RFNet
    from rfsynth.make import make

    out, models = tmp_path / "output", tmp_path / "models"
    monkeypatch.setattr(host, "output_dir", lambda: out)
    monkeypatch.setattr(host, "model_dirs", lambda kind: [models / kind])
    node = M["RFTrainRFNet"]()
    kw = dict(dataset="我的 标注", init_from="embedded", mix_rfsynth=16, name="我的 检查器", steps=4, learning_rate=1e-3,
              batch_size=8, target_precision=0.6, seed=0, checkpointing_steps=2)
    with pytest.raises(ValueError, match="Review & Label"):
        node.run(**kw)  # nothing labelled yet
    few = out / "rf_feedback" / "我的 标注"
    make(few, 30, size=64, seed=5, splits="train=0.8,val=0.2", workers=1, progress=False)
    with pytest.raises(ValueError, match="at least 50 of each"):
        node.run(**kw)
    import shutil

    shutil.rmtree(few)
    make(few, 170, size=64, seed=5, splits="train=0.8,val=0.2", workers=1, progress=False)

    class Cancel(Exception):
        pass

    calls = {"n": 0}

    def cancel_at_third_step():
        calls["n"] += 1
        if calls["n"] == 3:
            raise Cancel

    monkeypatch.setattr(host, "check_cancel", cancel_at_third_step)
    with pytest.raises(Cancel):
        node.run(**kw)
    run_dir = out / "rfnet_runs" / "我的 检查器"
    assert (run_dir / "checkpoint-2").exists() and not (models / "rfnet" / "我的 检查器").exists()
    monkeypatch.setattr(host, "check_cancel", lambda: None)
    path, curve = node.run(**kw)["result"]  # queued again: resumes from checkpoint-2
    assert path == str(models / "rfnet" / "我的 检查器")
    cfg = json.loads((models / "rfnet" / "我的 检查器" / "config.json").read_text())
    assert 0 <= cfg["acceptance_threshold"] <= 1 and cfg["acceptance_calibration"]["target_precision"] == 0.6
    card = (models / "rfnet" / "我的 检查器" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "我的 标注" in card and "_rfsynth_v2_16" in card
    assert "mirrored left-right with probability 0.5" in card  # the mirror widget is on by default
    RFNet.from_pretrained(models / "rfnet" / "我的 检查器")
    assert curve.shape[0] == 1 and curve.shape[-1] == 3 and float(curve.std()) > 0
    steps = [r["step"] for r in __import__("csv").DictReader(open(run_dir / "logs" / "train_log.csv")) if r["loss"]]
    assert steps == ["1", "2", "3", "4"]  # step 3 was cancelled and run again from checkpoint-2: logged once


def test_the_routes_answer_as_comfyuis_server_would_call_them(batch_out, monkeypatch):
    """register_routes with stand-ins for ComfyUI's PromptServer and aiohttp: the handlers' status
    codes and bodies (a real server: tests/test_comfyui.py)."""
    import asyncio
    import types

    out, res = batch_out
    ui = res["ui"]["rf_review"][0]
    handlers = {}

    class Routes:
        def post(self, path):
            return lambda f: handlers.setdefault(("POST", path), f)

        def get(self, path):
            return lambda f: handlers.setdefault(("GET", path), f)

    class Response:
        def __init__(self, body, status=200):
            self.body, self.status = body, status

    web = types.SimpleNamespace(json_response=lambda body, status=200: Response(body, status))
    monkeypatch.setitem(sys.modules, "aiohttp", types.SimpleNamespace(web=web))
    monkeypatch.setitem(sys.modules, "server", types.SimpleNamespace(
        PromptServer=types.SimpleNamespace(instance=types.SimpleNamespace(routes=Routes()))))
    monkeypatch.setattr(host, "output_dir", lambda: out)
    assert review.register_routes()

    class Request:
        def __init__(self, body=None, query=None):
            self.body, self.query = body, query or {}

        async def json(self):
            if isinstance(self.body, Exception):
                raise self.body
            return self.body

    post, get = handlers[("POST", "/reliable_ad/review/label")], handlers[("GET", "/reliable_ad/review/batch")]
    ok = asyncio.run(post(Request({"dataset": ui["dataset"], "batch": ui["batch"], "index": 2, "label": "Unsuitable"})))
    assert ok.status == 200 and ok.body["ok"] and ok.body["label"] == "Unsuitable"
    bad = asyncio.run(post(Request({"dataset": ui["dataset"], "batch": ui["batch"], "index": 2, "label": "bad"})))
    assert bad.status == 400 and "unknown label" in bad.body["error"]
    assert asyncio.run(post(Request(ValueError("not JSON")))).status == 400
    state = asyncio.run(get(Request(query={"dataset": ui["dataset"], "batch": ui["batch"]})))
    assert state.status == 200 and {it["index"]: it["label"] for it in state.body["items"]}[2] == "Unsuitable"
    assert asyncio.run(get(Request(query={"dataset": "../x", "batch": ui["batch"]}))).status == 404
    # without a server (ComfyUI imported by a script) the node still loads
    monkeypatch.setitem(sys.modules, "server", types.SimpleNamespace(PromptServer=types.SimpleNamespace()))
    assert review.register_routes() is False
