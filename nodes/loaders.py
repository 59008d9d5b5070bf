"""Loader nodes: RFNet, depth and salience models, loaded once (ComfyUI caches a node's output
while its inputs stay the same), from ComfyUI's models/ folders or the embedded defaults."""
from __future__ import annotations

from . import host

host.require("timm", "transformers", "safetensors", "cv2")

EMBEDDED = "embedded"
FALLBACK = "fallback (no weights)"


def _choices(kind: str, extra: list[str], files: tuple[str, ...] = ()) -> list[str]:
    return extra + host.list_models(kind, ("config.json",), files)


class RFNetLoader:
    DESCRIPTION = ("Loads an RFNet inspector (a folder in models/rfnet with config.json, "
                   "model.safetensors and tokenizer/) or the embedded one trained on RF-Synth. Depth "
                   "and salience come with it: the models it was trained with, unless wired in.")
    CATEGORY = "Reliable AD/loaders"
    RETURN_TYPES = ("RFNET",)
    RETURN_NAMES = ("rfnet",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (_choices("rfnet", [EMBEDDED]), {"tooltip": "a folder in models/rfnet, or the embedded RF-Synth model"}),
            "dtype": (["auto", "float32", "bfloat16"], {"default": "auto", "tooltip": "auto: bfloat16 where the hardware runs it fast"}),
        }, "optional": {
            "depth_model": ("RF_DEPTH_MODEL", {"tooltip": "overrides the depth model RFNet was trained with"}),
            "salience_model": ("RF_SALIENCE_MODEL", {"tooltip": "overrides the salience model RFNet was trained with"}),
        }}

    def load(self, model_name, dtype="auto", depth_model=None, salience_model=None):
        from rfnet.embedded import embedded_path
        from rfnet.inspect import Inspector

        folder = embedded_path("rfnet") if model_name == EMBEDDED else host.resolve_model("rfnet", model_name)
        insp = Inspector.from_pretrained(folder, dtype=dtype)
        if depth_model is not None and insp.depth is not None:
            insp.depth = depth_model
        if salience_model is not None and insp.salience is not None:
            insp.salience = salience_model
        return (insp,)


class _MapLoader:
    CATEGORY = "Reliable AD/loaders"
    FUNCTION = "load"
    KIND = ""

    def load(self, model_name):
        from rfnet.extractors import make_extractor

        if model_name == EMBEDDED:
            spec = "embedded"
        elif model_name == FALLBACK:
            spec = "fallback"
        else:
            spec = str(host.resolve_model(f"rf_{self.KIND}", model_name))
        return (make_extractor(self.KIND, spec).eval(),)


class DepthModelLoader(_MapLoader):
    DESCRIPTION = ("A depth model for inspection: the embedded estimator, a transformers DPT / Depth "
                   "Anything folder in models/rf_depth, or the no-weight fallback.")
    RETURN_TYPES = ("RF_DEPTH_MODEL",)
    RETURN_NAMES = ("depth_model",)
    KIND = "depth"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (_choices("rf_depth", [EMBEDDED, FALLBACK]),
                                            {"tooltip": "a folder in models/rf_depth, the embedded estimator or the fallback"})}}


class SalienceModelLoader(_MapLoader):
    DESCRIPTION = ("A salience model for inspection: the embedded estimator, U^2-Net (u2net.pth or "
                   "u2netp.pth in models/rf_salience), or the no-weight fallback.")
    RETURN_TYPES = ("RF_SALIENCE_MODEL",)
    RETURN_NAMES = ("salience_model",)
    KIND = "salience"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (_choices("rf_salience", [EMBEDDED, FALLBACK], (".pth", ".pt")),
                                            {"tooltip": "u2net.pth / u2netp.pth in models/rf_salience, the embedded estimator or the fallback"})}}


host.register_folders()

NODE_CLASS_MAPPINGS = {"RFNetLoader": RFNetLoader, "RFDepthModelLoader": DepthModelLoader,
                       "RFSalienceModelLoader": SalienceModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"RFNetLoader": "Load RFNet (inspector)", "RFDepthModelLoader": "Load Depth Model (RF)",
                              "RFSalienceModelLoader": "Load Salience Model (RF)"}
