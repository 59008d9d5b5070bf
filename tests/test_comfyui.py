"""Integration with a real ComfyUI: start-up, /object_info, every example workflow converted from
UI to API format and validated, the inspection workflow run end to end on CPU.

Set COMFYUI_DIR to a ComfyUI checkout (and COMFYUI_PYTHON to a Python with its requirements and
this pack's, if not the one running the tests); skipped, saying why, otherwise.
"""
import json
import subprocess
import sys
import time
import urllib.request

import pytest
from comfy_server import COMFY, NO_COMFY, PY, ROOT, comfy_found, comfy_server, get, post, run_prompt, tiny_recurrent
from workflow_convert import ui_to_api, validate_api

pytestmark = pytest.mark.skipif(not comfy_found(), reason=NO_COMFY)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        with comfy_server(tmp_path_factory.mktemp("comfy")) as s:
            yield s
    except RuntimeError as e:
        pytest.fail(str(e))


def test_startup_loads_every_node_without_failure(server):
    sys.path.insert(0, str(ROOT))
    from pack_loader import import_pack

    ours = import_pack().NODE_CLASS_MAPPINGS
    info = server["info"]
    for name, cls in ours.items():
        assert name in info, f"{name} missing from /object_info"
        declared = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            assert set(info[name]["input"].get(section, {})) == set(declared.get(section, {})), name
    text = server["log"].read_text()
    assert "reliable_ad" in text or "reliable_ad" in json.dumps(list(info))  # the pack was seen
    for bad in ("left out", "could not load", "IMPORT FAILED"):
        assert not [ln for ln in text.splitlines() if bad in ln and "reliable_ad" in ln], text[-2000:]


def test_every_example_workflow_converts_and_validates(server):
    flows = sorted((ROOT / "workflows").glob("*.json"))
    assert len(flows) >= 5
    for f in flows:
        ui = json.loads(f.read_text())
        api = ui_to_api(ui, server["info"])
        problems = validate_api(api, server["info"], allow_missing_files=True)
        assert not problems, f"{f.name}: {problems}"
        assert (f.with_suffix(".jpg")).exists(), f"{f.name} has no thumbnail"


def _run(server, api, timeout=300):
    try:
        return run_prompt(server, api, timeout)
    except TimeoutError as e:
        pytest.fail(str(e))


def test_inspection_workflow_runs_end_to_end(server):
    ui = json.loads(next((ROOT / "workflows").glob("*Inspect a generated image*.json")).read_text())
    api = ui_to_api(ui, server["info"])
    assert not validate_api(api, server["info"])
    h = _run(server, api)
    assert h["status"]["status_str"] == "success", json.dumps(h["status"])[:2000]
    verdicts = [v for out in h["outputs"].values() for v in out.get("rf_verdicts", [])]
    assert verdicts and all(0 <= v["p_available"] <= 1 for v in verdicts)
    assert {v["label"] for v in verdicts} <= {"Available", "Unsuitable", "Space Mismatch", "Size Mismatch",
                                              "Indistinctiveness", "Shape Hallucination"}


def test_recurrent_generate_with_a_tiny_sd15_model(server):
    api = tiny_recurrent(steps=3, attempts=3, candidates=2)
    assert not validate_api(api, server["info"])
    h = _run(server, api)
    assert h["status"]["status_str"] == "success", json.dumps(h["status"])[:2000]
    rows = h["outputs"]["6"]["rf_verdicts"]
    assert 1 <= len(rows) <= 3 and sum(r["chosen"] for r in rows) == 1
    assert [r["batch_index"] for r in rows] == list(range(len(rows)))
    assert h["outputs"]["6"]["text"][0].startswith(("accepted attempt", "no attempt accepted"))
    assert h["outputs"]["7"]["images"]


def test_a_failing_training_node_is_a_node_error_and_the_queue_goes_on(server):
    """RFFT Train with a product folder holding no readable image used to raise SystemExit in the
    engine: it ended ComfyUI's worker thread, the prompt showed as running forever and no later
    prompt ran. Now it is a normal node error, and the next prompt runs."""
    (server["base"] / "input" / "no_products").mkdir(exist_ok=True)
    (server["base"] / "input" / "no_products" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    failing = {"1": {"class_type": "RFFTTrain", "inputs": {
        "generator": "embedded", "controlnet": "(the generator's own)", "rfnet": "embedded",
        "products": "no_products", "name": "rf_test_stall",
        "prompts": json.dumps([{"prompt": "a {product} on a table", "negative_prompt": "", "image_scale": 0.5}]),
        "steps": 2, "learning_rate": 1e-5, "reg": "cc", "beta": 1.0, "num_inference_steps": 2,
        "grad_steps_window": 1, "batch_size": 1, "seed": 0, "checkpointing_steps": 1}}}
    assert not validate_api(failing, server["info"])
    h = _run(server, failing, timeout=180)  # before the fix: never finished
    assert h["status"]["status_str"] == "error", json.dumps(h["status"])[:2000]
    errors = [m[1] for m in h["status"]["messages"] if m[0] == "execution_error"]
    assert errors and "no usable product image" in errors[0]["exception_message"], errors
    assert "SystemExit" not in errors[0]["exception_type"]
    # the worker is alive: the next prompt (core nodes only) runs to the end
    ok = {"1": {"class_type": "LoadImage", "inputs": {"image": "reliable_ad_product.png"}},
          "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    h = _run(server, ok, timeout=120)
    assert h["status"]["status_str"] == "success", json.dumps(h["status"])[:2000]
    assert h["outputs"]["2"]["images"]


def test_cancel_stops_recurrent_generate_within_a_step(server):
    api = tiny_recurrent(steps=400, attempts=5, candidates=1)
    pid = post(server["url"] + "/prompt", {"prompt": api})["prompt_id"]
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until it runs, then into the sampling of attempt 1
        if get(server["url"] + "/queue")["queue_running"]:
            break
        time.sleep(0.2)
    time.sleep(8)
    t0 = time.time()
    urllib.request.urlopen(urllib.request.Request(server["url"] + "/interrupt", b"{}", method="POST"), timeout=10)
    while time.time() - t0 < 60:
        hist = get(server["url"] + f"/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            break
        time.sleep(0.1)
    stopped = time.time() - t0
    msgs = [m[0] for m in hist[pid]["status"]["messages"]]
    assert "execution_interrupted" in msgs, msgs
    assert stopped < 10, f"took {stopped:.1f} s to stop"
    assert "7" not in hist[pid].get("outputs", {})  # nothing saved from a cancelled run



@pytest.mark.slow
def test_core_controlnet_loader_loads_an_rfft_output(tmp_path):
    """RFFT writes ControlNets with save_pretrained (config.json + diffusion_pytorch_model
    .safetensors); ComfyUI's own loader (comfy.controlnet.load_controlnet, behind the core
    ControlNetLoader node) must take the SD1.5-shaped file and hold the same weights. Slow: an
    SD1.5 ControlNet (361M parameters) is built and written."""
    import torch

    from rfft import components as C

    torch.manual_seed(0)
    with torch.device("meta"):
        unet = C.build_unet("sd15")
    cn = C.build_controlnet(unet.to_empty(device="cpu"), "sd15").half()
    for p in cn.parameters():  # random, not zero, so that a wrong mapping shows
        p.data.normal_(0, 0.02)
    cn.save_pretrained(tmp_path / "rfft_cn", safe_serialization=True)
    probe = {k: float(v.float().sum()) for k, v in cn.state_dict().items()
             if k in ("controlnet_cond_embedding.conv_in.weight", "down_blocks.1.resnets.0.conv1.weight",
                      "controlnet_down_blocks.3.weight", "mid_block.attentions.0.proj_in.weight")}
    script = f"""
import json, sys
sys.path.insert(0, {COMFY!r})
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.controlnet
cn = comfy.controlnet.load_controlnet({str(tmp_path / "rfft_cn" / "diffusion_pytorch_model.safetensors")!r})
sd = cn.control_model.state_dict()
print("RESULT " + json.dumps({{"type": type(cn).__name__, "n": len(sd), "sums": {{k: float(v.float().sum()) for k, v in sd.items()}}}}))
"""
    r = subprocess.run([PY, "-c", script], capture_output=True, text=True, cwd=COMFY, timeout=600)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, r.stderr[-3000:]
    got = json.loads(line[0][7:])
    assert got["type"] == "ControlNet" and got["n"] >= len(cn.state_dict()) - 2
    # ComfyUI renames to the LDM layout; the same tensors must be there under their LDM names
    ldm = {"controlnet_cond_embedding.conv_in.weight": "input_hint_block.0.weight",
           "down_blocks.1.resnets.0.conv1.weight": "input_blocks.4.0.in_layers.2.weight",
           "controlnet_down_blocks.3.weight": "zero_convs.3.0.weight",
           "mid_block.attentions.0.proj_in.weight": "middle_block.1.proj_in.weight"}
    for k, v in probe.items():
        assert got["sums"][ldm[k]] == pytest.approx(v, rel=1e-3, abs=1e-3), k
