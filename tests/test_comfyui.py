"""Integration with a real ComfyUI: start-up, /object_info, every example workflow converted from
UI to API format and validated, the inspection workflow run end to end on CPU.

Set COMFYUI_DIR to a ComfyUI checkout (and COMFYUI_PYTHON to a Python with its requirements and
this pack's, if not the one running the tests); skipped, saying why, otherwise.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from workflow_convert import ui_to_api, validate_api

ROOT = Path(__file__).resolve().parents[1]
COMFY = os.environ.get("COMFYUI_DIR")
PY = os.environ.get("COMFYUI_PYTHON", sys.executable)
pytestmark = pytest.mark.skipif(not COMFY or not (Path(COMFY) / "main.py").exists(),
                                reason="no ComfyUI: set COMFYUI_DIR to a ComfyUI checkout (see README, Tests)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _post(url, obj):
    req = urllib.request.Request(url, json.dumps(obj).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "reliable_ad").symlink_to(ROOT, target_is_directory=True)
    (base / "custom_nodes" / "rf_test_nodes").symlink_to(ROOT / "tests" / "comfy_test_nodes", target_is_directory=True)
    shutil.copytree(ROOT / "rfft" / "examples" / "products", base / "input" / "products")
    for f in (ROOT / "workflows" / "assets").glob("*.png"):
        shutil.copy(f, base / "input" / f.name)
    port = _free_port()
    log = open(base / "server.log", "w")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([PY, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                             "--disable-auto-launch", "--disable-api-nodes", "--base-directory", str(base),
                             "--database-url", "sqlite:///:memory:"],
                            cwd=COMFY, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    info = None
    while time.time() < deadline and proc.poll() is None:
        try:
            info = _get(url + "/object_info", timeout=5)
            break
        except OSError:
            time.sleep(1)
    if info is None:
        proc.kill()
        pytest.fail("ComfyUI did not start:\n" + (base / "server.log").read_text()[-3000:])
    yield {"url": url, "info": info, "log": base / "server.log", "base": base}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


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
    pid = _post(server["url"] + "/prompt", {"prompt": api})["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        hist = _get(server["url"] + f"/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            return hist[pid]
        time.sleep(0.5)
    pytest.fail(f"prompt {pid} did not finish in {timeout} s")


def test_inspection_workflow_runs_end_to_end(server):
    ui = json.loads((ROOT / "workflows" / "inspect_generated_image.json").read_text())
    api = ui_to_api(ui, server["info"])
    assert not validate_api(api, server["info"])
    h = _run(server, api)
    assert h["status"]["status_str"] == "success", json.dumps(h["status"])[:2000]
    verdicts = [v for out in h["outputs"].values() for v in out.get("rf_verdicts", [])]
    assert verdicts and all(0 <= v["p_available"] <= 1 for v in verdicts)
    assert {v["label"] for v in verdicts} <= {"Available", "Unsuitable", "Space Mismatch", "Size Mismatch",
                                              "Indistinctiveness", "Shape Hallucination"}


def _tiny_recurrent(steps: int, attempts: int, candidates: int) -> dict:
    """A tiny SD1.5-structured MODEL, VAE and ControlNet (test node) through core ControlNet
    apply, Product Placement, and Recurrent Generate with the embedded RFNet."""
    return {
        "1": {"class_type": "RFTestTinySD", "inputs": {"seed": 0}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "reliable_ad_product.png"}},
        "3": {"class_type": "RFProductPlacement", "inputs": {
            "product": ["2", 0], "mask": ["2", 1], "width": 64, "height": 64, "image_scale": 0.5,
            "keep_location": False, "dilate": -1, "low_threshold": 100, "high_threshold": 200}},
        "4": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["1", 3], "negative": ["1", 4], "control_net": ["1", 2], "image": ["3", 2],
            "vae": ["1", 1], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "5": {"class_type": "RFNetLoader", "inputs": {"model_name": "embedded", "dtype": "auto"}},
        "6": {"class_type": "RFRecurrentGenerate", "inputs": {
            "model": ["1", 0], "positive": ["4", 0], "negative": ["4", 1], "vae": ["1", 1],
            "placement": ["3", 3], "rfnet": ["5", 0], "caption": "Vela teal perfume 15ml", "seed": 5,
            "steps": steps, "cfg": 7.5, "sampler_name": "ddim", "scheduler": "ddim_uniform",
            "max_attempts": attempts, "candidates": candidates, "threshold": 0.0}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "rf_test"}},
    }


def test_recurrent_generate_with_a_tiny_sd15_model(server):
    api = _tiny_recurrent(steps=3, attempts=3, candidates=2)
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
    api = _tiny_recurrent(steps=400, attempts=5, candidates=1)
    pid = _post(server["url"] + "/prompt", {"prompt": api})["prompt_id"]
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until it runs, then into the sampling of attempt 1
        if _get(server["url"] + "/queue")["queue_running"]:
            break
        time.sleep(0.2)
    time.sleep(8)
    t0 = time.time()
    urllib.request.urlopen(urllib.request.Request(server["url"] + "/interrupt", b"{}", method="POST"), timeout=10)
    while time.time() - t0 < 60:
        hist = _get(server["url"] + f"/history/{pid}")
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
