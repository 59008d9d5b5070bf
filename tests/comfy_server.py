"""Start a real ComfyUI server with this pack (and the test-only nodes) for the integration and
browser tests. COMFYUI_DIR names the checkout, COMFYUI_PYTHON the Python that has its
requirements and this pack's (default: the one running the tests)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY = os.environ.get("COMFYUI_DIR")
PY = os.environ.get("COMFYUI_PYTHON", sys.executable)
NO_COMFY = "no ComfyUI: set COMFYUI_DIR to a ComfyUI checkout (see README, Tests)"


def comfy_found() -> bool:
    return bool(COMFY) and (Path(COMFY) / "main.py").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def post(url, obj):
    req = urllib.request.Request(url, json.dumps(obj).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@contextmanager
def comfy_server(base: Path, extra_args=()):
    """A ComfyUI on a free loopback port whose base directory is ``base`` (custom_nodes, input,
    output, models under it); yields {"url", "info" (/object_info), "log", "base"}."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "reliable_ad").symlink_to(ROOT, target_is_directory=True)
    (base / "custom_nodes" / "rf_test_nodes").symlink_to(ROOT / "tests" / "comfy_test_nodes",
                                                         target_is_directory=True)
    shutil.copytree(ROOT / "rfft" / "examples" / "products", base / "input" / "products")
    for f in (ROOT / "workflows" / "assets").glob("*.png"):
        shutil.copy(f, base / "input" / f.name)
    port = free_port()
    log = open(base / "server.log", "w")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([PY, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                             "--disable-auto-launch", "--disable-api-nodes", "--base-directory", str(base),
                             "--database-url", "sqlite:///:memory:", *extra_args],
                            cwd=COMFY, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    info = None
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                info = get(url + "/object_info", timeout=5)
                break
            except OSError:
                time.sleep(1)
        if info is None:
            raise RuntimeError("ComfyUI did not start:\n" + (base / "server.log").read_text()[-3000:])
        yield {"url": url, "info": info, "log": base / "server.log", "base": base}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_prompt(server, api, timeout=300) -> dict:
    """Queue an API-format prompt and wait for its history entry."""
    pid = post(server["url"] + "/prompt", {"prompt": api})["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        hist = get(server["url"] + f"/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            return hist[pid]
        time.sleep(0.5)
    raise TimeoutError(f"prompt {pid} did not finish in {timeout} s")


def tiny_recurrent(steps: int, attempts: int, candidates: int) -> dict:
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
