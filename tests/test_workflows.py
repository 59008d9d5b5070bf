"""The example workflows and the UI-to-API converter, without ComfyUI (test_comfyui.py checks
them against a real server)."""
import json
from pathlib import Path

from pack_loader import import_pack
from workflow_convert import CONTROL_VALUES, ui_to_api, validate_api, widget_slots

ROOT = Path(__file__).resolve().parents[1]

INFO = {  # a slice of /object_info, in its format
    "KSampler": {"input": {"required": {
        "model": ["MODEL"], "seed": ["INT", {"min": 0, "max": 2**64 - 1, "control_after_generate": True}],
        "steps": ["INT", {"min": 1, "max": 10000}], "sampler_name": [["euler", "ddim"]]}},
        "input_order": {"required": ["model", "seed", "steps", "sampler_name"]}, "output": ["LATENT"]},
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd15.safetensors"]]}},
                               "input_order": {"required": ["ckpt_name"]}, "output": ["MODEL", "CLIP", "VAE"]},
    "Note": {"input": {"required": {}}, "output": []},
}


def _ui(widgets):
    return {"nodes": [
        {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["sd15.safetensors"], "inputs": []},
        {"id": 2, "type": "KSampler", "widgets_values": widgets, "inputs": [{"name": "model", "link": 1}]},
        {"id": 3, "type": "Note", "widgets_values": ["hello"], "inputs": []},
        {"id": 4, "type": "KSampler", "mode": 4, "widgets_values": widgets, "inputs": []}],
        "links": [[1, 1, 0, 2, 0, "MODEL"]]}


def test_converter_follows_widget_order_and_control_slots():
    api = ui_to_api(_ui([7, "randomize", 20, "ddim"]), INFO)
    assert set(api) == {"1", "2"}  # the Note and the bypassed node are left out
    assert api["2"]["inputs"] == {"model": ["1", 0], "seed": 7, "steps": 20, "sampler_name": "ddim"}
    assert validate_api(api, INFO) == []


def test_validator_catches_bad_values_and_links():
    api = ui_to_api(_ui([7, "randomize", 0, "plms"]), INFO)
    problems = validate_api(api, INFO)
    assert any("steps" in p and "outside" in p for p in problems)
    assert any("plms" in p for p in problems)
    api["2"]["inputs"]["model"] = ["1", 1]  # CLIP into a MODEL input
    assert any("wants MODEL" in p for p in validate_api(api, INFO))


def test_workflows_are_complete_ui_graphs_with_thumbnails():
    flows = sorted((ROOT / "workflows").glob("*.json"))
    assert len(flows) >= 5
    for f in flows:
        ui = json.loads(f.read_text())
        ids = {n["id"] for n in ui["nodes"]}
        for lid, a, a_slot, b, b_slot, t in ui["links"]:
            src = next(n for n in ui["nodes"] if n["id"] == a)
            dst = next(n for n in ui["nodes"] if n["id"] == b)
            assert a in ids and b in ids and lid in src["outputs"][a_slot]["links"]
            assert dst["inputs"][b_slot]["link"] == lid and dst["inputs"][b_slot]["type"] == t
        assert f.with_suffix(".jpg").stat().st_size > 1000
        assert any(n["type"].startswith("RF") for n in ui["nodes"])


def _our_nodes(info: dict):
    """(workflow file, node) for every node of the pack's own in the example workflows."""
    for f in sorted((ROOT / "workflows").glob("*.json")):
        for n in json.loads(f.read_text(encoding="utf-8"))["nodes"]:
            if n["type"] in info:
                yield f, n


def _pack_info() -> dict:
    """object_info for the pack's own nodes, as the server serves it (JSON: tuples become lists)."""
    info = {}
    for key, cls in import_pack().NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        info[key] = json.loads(json.dumps({"input": spec, "input_order": {k: list(v) for k, v in spec.items()}},
                                          default=str))
    return info


def test_a_seed_named_int_gets_a_control_slot_as_the_front_end_gives_it():
    info = {"A": {"input": {"required": {"seed": ["INT", {}], "noise_seed": ["INT", {"control_after_generate": False}],
                                         "n": ["INT", {}], "k": ["INT", {"control_after_generate": "fixed"}]}}}}
    assert widget_slots(info, "A") == [("seed", False), ("seed", True), ("noise_seed", False),
                                       ("n", False), ("k", False), ("k", True)]


def test_every_workflow_has_the_widget_values_the_front_end_builds_for_our_nodes():
    # A missing control slot shifts every later value by one (the front end then showed "25" as
    # RFFT Train's seed control); the slot must hold a control name and each value its input's type.
    info = _pack_info()
    checked = 0
    for f, n in _our_nodes(info):
        slots, values = widget_slots(info, n["type"]), n.get("widgets_values") or []
        assert len(values) == len(slots), f"{f.name} {n['type']}: {len(values)} values for {len(slots)} widgets"
        spec = info[n["type"]]["input"]
        for (name, is_control), v in zip(slots, values):
            t = (spec.get("required", {}).get(name) or spec.get("optional", {}).get(name))[0]
            if is_control:
                assert v in CONTROL_VALUES, f"{f.name} {n['type']}.{name}: control slot holds {v!r}"
            elif t == "INT":
                assert isinstance(v, int) and not isinstance(v, bool), f"{f.name} {n['type']}.{name} = {v!r}"
            elif isinstance(t, list):
                assert v in t or not t, f"{f.name} {n['type']}.{name} = {v!r} not among {t}"
        checked += 1
    assert checked >= 10


def test_training_seeds_stay_fixed_and_the_product_folder_increments_when_queued_again():
    """The front end sets every control widget to randomize; web/reliable_ad.js sets a fresh node's
    to rf_control_default (tests/test_browser.py checks it in the front end). A string in
    control_after_generate would rename the control widget instead, as it did."""
    nodes = import_pack().NODE_CLASS_MAPPINGS
    for cls, name, want in (("RFFTTrain", "seed", "fixed"), ("RFTrainRFNet", "seed", "fixed"),
                            ("RFLoadProductFolder", "index", "increment")):
        spec = nodes[cls].INPUT_TYPES()["required"][name][1]
        assert spec["control_after_generate"] is True, cls
        assert spec["rf_control_default"] == want, cls
    js = (ROOT / "web" / "reliable_ad.js").read_text(encoding="utf-8")
    assert "rf_control_default" in js


# the front end draws a node's title bar above its position, and grows Load Image to show its picture
TITLE_H, GROWN_H = 30, {"LoadImage": 340, "PreviewImage": 260}


def test_no_two_nodes_of_a_workflow_overlap():
    for f in sorted((ROOT / "workflows").glob("*.json")):
        boxes = []
        for n in json.loads(f.read_text(encoding="utf-8"))["nodes"]:
            (x, y), (w, h) = n["pos"], n["size"]
            h = max(h, GROWN_H.get(n["type"], 0))
            boxes.append((n.get("title") or n["type"], x, y - TITLE_H, x + w, y + h))
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
                assert apart, f"{f.name}: {a[0]!r} and {b[0]!r} overlap"


def test_every_caption_names_the_product_the_workflows_load():
    """The caption is one of RFNet's inputs: the workflows' example product is RF-Synth sample
    90210 (a black cabinet), and its caption once said "teal perfume", a mismatch the inspector
    is right to doubt. Every caption widget holds that sample's own caption."""
    from rfsynth.scene import render_sample

    sample = render_sample(90210, 128, "Available")
    info = _pack_info()
    seen = 0
    for f, n in _our_nodes(info):
        for (name, _), v in zip(widget_slots(info, n["type"]), n.get("widgets_values") or []):
            if name == "caption":
                assert v == sample.caption, f"{f.name} {n['type']}: caption {v!r} is not the product's"
                seen += 1
    assert seen >= 6 and sample.category in sample.caption
