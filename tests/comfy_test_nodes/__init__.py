"""Test-only ComfyUI nodes: a tiny SD1.5-structured MODEL, VAE, ControlNet and conditioning built
in code with random weights (ComfyUI's checkpoint loaders cannot load models this small). The
integration tests load this folder as a second custom node pack."""
import comfy.controlnet
import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import comfy.supported_models_base
import torch
from comfy.cldm import cldm
from comfy.ldm.models.autoencoder import AutoencoderKL

CONTEXT = 32
UNET = dict(image_size=8, in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[1, 1],
            channel_mult=[1, 2], transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
            transformer_depth_middle=1, context_dim=CONTEXT, use_spatial_transformer=True, legacy=False,
            use_linear_in_transformer=False, adm_in_channels=None, use_temporal_attention=False,
            use_temporal_resblock=False, num_heads=2, num_head_channels=-1)


class TinySD15(comfy.supported_models_base.BASE):
    unet_config = {}
    unet_extra_config = {"num_heads": 2, "num_head_channels": -1}  # BASE's default has 64-channel heads
    latent_format = comfy.latent_formats.SD15
    memory_usage_factor = 1.0


class RFTestTinySD:
    CATEGORY = "testing"
    RETURN_TYPES = ("MODEL", "VAE", "CONTROL_NET", "CONDITIONING", "CONDITIONING")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def build(self, seed):
        torch.manual_seed(seed)
        dev = mm.get_torch_device()
        base = comfy.model_base.BaseModel(TinySD15(dict(UNET)), device=dev)
        model = comfy.model_patcher.ModelPatcher(base, load_device=dev, offload_device=mm.unet_offload_device())
        params = {"ddconfig": {"double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3,
                               "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [],
                               "dropout": 0.0}, "embed_dim": 4}
        weights = AutoencoderKL(**params).state_dict()  # random, so that VAE() has every key
        vae = comfy.sd.VAE(sd=weights, config={"params": params})
        cn_cfg = {k: v for k, v in UNET.items() if k not in ("out_channels", "transformer_depth_output")}
        control = cldm.ControlNet(hint_channels=3, operations=comfy.ops.disable_weight_init, device="cpu", **cn_cfg)
        cn = comfy.controlnet.ControlNet(control, load_device=dev)  # hint in pixels, as SD1.5 canny
        pos = [[torch.randn(1, 77, CONTEXT), {}]]
        neg = [[torch.zeros(1, 77, CONTEXT), {}]]
        return (model, vae, cn, pos, neg)


NODE_CLASS_MAPPINGS = {"RFTestTinySD": RFTestTinySD}
