"""The pack as ComfyUI and pip see it."""
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, which pyproject claims: the same parser from PyPI
    import tomli as tomllib

from pack_loader import import_pack  # scripts/pack_loader.py (conftest puts scripts/ on the path)

ROOT = Path(__file__).resolve().parents[1]
_import_pack = import_pack  # the name tests used when it lived here


def test_pack_imports_as_a_comfyui_custom_node():
    pack = import_pack()
    nodes, names = pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS
    # the nodes the workflows are wired with are all there (none silently left out)
    wired = {n["type"] for f in (ROOT / "workflows").glob("*.json")
             for n in json.loads(f.read_text(encoding="utf-8")).get("nodes", [])
             if n.get("type", "").startswith("RF")}
    assert wired and wired <= set(nodes), f"workflows use nodes the pack does not load: {wired - set(nodes)}"
    assert set(names) == set(nodes), "every node needs a display name, and only nodes have one"
    for key, cls in nodes.items():  # what ComfyUI calls on each class at start-up
        spec = cls.INPUT_TYPES()
        assert isinstance(spec, dict) and "required" in spec, key
        assert callable(getattr(cls, cls.FUNCTION)), key
        assert isinstance(cls.RETURN_TYPES, tuple), key


def test_a_failing_node_module_is_left_out_with_one_log_line(caplog):
    import_pack()
    loader = sys.modules["reliable_ad_under_test.nodes"]
    with caplog.at_level(logging.WARNING, logger="reliable_ad"):
        classes, names, failed = loader.load_nodes(("no_such_module",), package="reliable_ad_under_test.nodes")
    assert classes == {} and list(failed) == ["no_such_module"]
    assert len(caplog.records) == 1 and "no_such_module" in caplog.text and "left out" in caplog.text


def test_engine_import_is_light():
    # Importing the engine package must not pull torch in (ComfyUI start-up time, no side effects).
    r = subprocess.run([sys.executable, "-c", "import sys, rfnet, rfft, rfsynth; print('torch' in sys.modules)"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_requirements_match_pyproject_and_leave_host_packages_unpinned():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()
            if l.strip() and not l.startswith("#")]
    assert sorted(deps) == sorted(reqs)
    for host in ("torch", "numpy", "opencv-python-headless", "torchvision"):
        spec = next(d for d in deps if re.split(r"[<>=!~ \[]", d)[0] == host)
        assert spec == host, f"{host} must stay unpinned, found {spec!r}"


def test_pyproject_declares_the_comfy_registry_section():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["tool"]["comfy"]["PublisherId"] and meta["tool"]["comfy"]["DisplayName"]
    # ComfyUI's own module is `nodes`: the pack's nodes/ must never be installed as a package
    assert "nodes" not in meta["tool"]["setuptools"]["packages"]


def test_no_absolute_import_of_nodes_and_no_unsafe_loading():
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(import nodes\b|from nodes\b)", text, re.M), path
        call = "torch." + "load("  # spelled apart so that this check does not match itself
        for line in text.splitlines():
            if call in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
