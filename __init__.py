"""ComfyUI entry of the Reliable AD node pack (RFNet inspection, Recurrent Generation, RFFT).

ComfyUI imports this file as a package. Everything that could fail is guarded: the pack never
stops ComfyUI's start-up, and nothing is downloaded at import.
"""
import logging

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except Exception as e:  # noqa: BLE001 - a broken pack must not take ComfyUI down with it
    logging.getLogger("reliable_ad").error(
        "[reliable_ad] the node pack could not load (%s: %s); reinstall its requirements with "
        "`pip install -r requirements.txt` in ComfyUI's environment", type(e).__name__, e)
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

# The badge on RFNet Inspect and Recurrent Generate nodes (web/reliable_ad.js).
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
