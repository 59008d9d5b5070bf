"""The example workflows and the UI-to-API converter, without ComfyUI (test_comfyui.py checks
them against a real server)."""
import json
from pathlib import Path

from workflow_convert import ui_to_api, validate_api

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
