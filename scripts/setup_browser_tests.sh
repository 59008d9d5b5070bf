#!/usr/bin/env bash
# Sets up and runs the browser tests (tests/test_browser.py) in ComfyUI's real front end:
# Debian's chromium, a virtual environment with ComfyUI's requirements, this pack's, Playwright
# and pytest, then pytest with RF_BROWSER_TESTS=1.
#
#   COMFYUI_DIR=~/ComfyUI scripts/setup_browser_tests.sh               # set up and run
#   COMFYUI_DIR=~/ComfyUI scripts/setup_browser_tests.sh --thumbnails  # and refresh workflows/*.jpg
#
# COMFYUI_DIR: a ComfyUI checkout (default .comfyui/, cloned at v0.3.64 if absent).
# COMFYUI_VENV: the environment to use or create (default .comfyui-venv/).
# Playwright's own browser download is not used: it fails on machines without its CDN.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COMFYUI_DIR="${COMFYUI_DIR:-$ROOT/.comfyui}"
COMFYUI_VENV="${COMFYUI_VENV:-$ROOT/.comfyui-venv}"
THUMBS=0
[ "${1:-}" = "--thumbnails" ] && THUMBS=1

if ! command -v chromium >/dev/null && [ -z "${CHROMIUM_PATH:-}" ]; then
  echo "installing Debian's chromium (needs root)"
  apt-get update -qq && apt-get install -y -qq chromium
fi
if [ ! -f "$COMFYUI_DIR/main.py" ]; then
  echo "cloning ComfyUI v0.3.64 into $COMFYUI_DIR"
  git clone --depth 1 --branch v0.3.64 https://github.com/comfyanonymous/ComfyUI "$COMFYUI_DIR"
fi
if [ ! -x "$COMFYUI_VENV/bin/python" ]; then
  python3 -m venv "$COMFYUI_VENV"
fi
PIP="$COMFYUI_VENV/bin/python -m pip"
if ! "$COMFYUI_VENV/bin/python" -c "import playwright, pytest, diffusers, aiohttp" 2>/dev/null; then
  $PIP install -q torch torchvision
  grep -v -E "^(torch|torchaudio|torchvision)$|^#|^$" "$COMFYUI_DIR/requirements.txt" > "$COMFYUI_VENV/comfy_requirements.txt"
  $PIP install -q -r "$COMFYUI_VENV/comfy_requirements.txt"
  $PIP install -q -r "$ROOT/requirements.txt" playwright pytest
fi

SHOTS="${RF_BROWSER_SHOTS:-$ROOT/outputs/browser_shots}"
cd "$ROOT"
RF_BROWSER_TESTS=1 COMFYUI_DIR="$COMFYUI_DIR" COMFYUI_PYTHON="$COMFYUI_VENV/bin/python" RF_BROWSER_SHOTS="$SHOTS" \
  "$COMFYUI_VENV/bin/python" -m pytest tests/test_browser.py -v -p no:cacheprovider

if [ "$THUMBS" = 1 ]; then
  "$COMFYUI_VENV/bin/python" scripts/workflow_thumbnails.py "$SHOTS"
fi
