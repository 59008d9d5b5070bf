"""The repository as ComfyUI loads it, for scripts and tests: a package made from the folder's
__init__.py (the pack's nodes/ is reached only that way: ComfyUI has a module named ``nodes``).

    from pack_loader import import_pack      # scripts/ on sys.path (scripts run from there)
    nodes = import_pack().NODE_CLASS_MAPPINGS
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "reliable_ad_under_test"  # the package's name; its node modules are NAME.nodes.*


def import_pack():
    """Import the repository as ComfyUI does: a package from its folder's __init__.py (once)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = mod
    spec.loader.exec_module(mod)
    return mod
