#!/usr/bin/env python3
"""Set-up and entry commands for a fresh machine with only Python 3.10+.

    python3 dev.py main   # the main job on the embedded defaults (python -m rfft.generate)
    python3 dev.py test   # the test suite (extra arguments go to pytest)
    python3 dev.py demo   # inspection alone: fresh RF-Synth images judged by RFNet and the oracle

Each command creates or reuses a virtual environment in .venv, installs what it needs there
(once; re-installs when pyproject.toml changes) and runs inside it. Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("RELIABLE_AD_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")

# torch is installed before the project so that pip takes the build the machine already has
# (CPU machines here keep these releases on disk); the project itself never pins torch.
TORCH = {
    "x86_64": ["torch==2.14.1", "torchvision==0.29.1"],
    "aarch64": ["torch==2.9.1", "torchvision==0.24.1"],
}


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def _has(module: str) -> bool:
    return subprocess.run([str(PY), "-c", f"import {module}"], capture_output=True).returncode == 0


def ensure_env() -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"Python 3.10 or newer is needed; this is {platform.python_version()}.")
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not _has("torch") or not _has("torchvision"):
        pins = TORCH.get(platform.machine(), ["torch", "torchvision"])
        _run([str(PY), "-m", "pip", "install", *pins])
    stamp = VENV / ".reliable_ad_installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        _run([str(PY), "-m", "pip", "install", "-e", f"{ROOT}[test]"])
        stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("main", "test", "demo", "setup"):
        print(__doc__)
        return 2
    ensure_env()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    if argv[0] == "setup":
        return 0
    if argv[0] == "test":
        # the linter first (pyproject's [tool.ruff]): a quick check that fails the run as a test would
        lint = subprocess.run([str(PY), "-m", "ruff", "check", "."], cwd=ROOT, env=env)
        if lint.returncode:
            return lint.returncode
        cmd = [str(PY), "-m", "pytest", *argv[1:]]
    elif argv[0] == "demo":
        cmd = [str(PY), "-m", "rfsynth.demo", *argv[1:]]
    else:
        cmd = [str(PY), "-m", "rfft.generate", *argv[1:]]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
