"""ComfyUI nodes of the pack: thin adapters between ComfyUI's types and the engine.

Each node module is imported on its own, inside try/except, so that one failed import (a
missing optional dependency, say) leaves out only that module's nodes, with one log line that
says what to install, and never stops ComfyUI's start-up.

This package is reached only by relative import from the pack's top-level __init__.py:
ComfyUI has a module of its own called ``nodes``.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("reliable_ad")

# Node modules of this package, in menu order. Each defines NODE_CLASS_MAPPINGS (and
# optionally NODE_DISPLAY_NAME_MAPPINGS).
NODE_MODULES: tuple[str, ...] = ("loaders", "products", "inspection", "generation", "feedback", "review",
                                  "training")


def load_nodes(modules=NODE_MODULES, package: str = __name__):
    """(class mappings, display names, failures) of the node modules that import."""
    classes, names, failed = {}, {}, {}
    for mod_name in modules:
        try:
            mod = importlib.import_module(f".{mod_name}", package)
        except Exception as e:  # noqa: BLE001 - any failure must leave ComfyUI running
            hint = ""
            if isinstance(e, ImportError) and getattr(e, "name", None):
                hint = f"; install it with: pip install {e.name.split('.')[0]}"
            failed[mod_name] = f"{type(e).__name__}: {e}{hint}"
            continue
        classes.update(getattr(mod, "NODE_CLASS_MAPPINGS", {}))
        names.update(getattr(mod, "NODE_DISPLAY_NAME_MAPPINGS", {}))
    if failed:
        log.warning("[reliable_ad] %d node module(s) left out: %s", len(failed),
                    "; ".join(f"{m} ({why})" for m, why in failed.items()))
    return classes, names, failed


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, FAILED = load_nodes()
