"""The inpainting pipeline: eq. 2 at every step, exact paste-back, seeds, loading, SD1.5 shape."""
import numpy as np
import pytest
import torch
from conftest import box_cutout

from rfft import components as C
from rfft.pipeline import AdInpaintPipeline, GeneratorNotFoundError, check_generator, load_parts
from rfft.placement import place


def _product():  # two colours: a blue body with a yellow label
    im = box_cutout(16, 32, 4, (40, 90, 200))
    im.paste((250, 200, 30, 255), (8, 10, 16, 20))
    return im


@pytest.fixture(scope="module")
def pipe(tiny_generator):
    return AdInpaintPipeline.load(tiny_generator)


def test_eq2_product_latent_kept_at_every_step_and_pixels_exact(pipe):
    pl = place(_product(), 64, 0.5)
    out = pipe(pl, "a vase on a marble table", "blurry", seeds=[3, 4], num_inference_steps=6,
               guidance_scale=7.5, trace=True)
    m = pipe.latent_mask(pl)
    assert 0 < (1 - m).sum() < m.numel()  # some latent cells keep the product, most are generated
    z_prod = pipe.encode_image(pl.product_image())
    noise = pipe.initial_noise([3, 4], (1, 4, 16, 16))
    assert len(out.trace) == 6
    for i, t_next, lat in out.trace:
        want = z_prod if t_next is None else pipe.scheduler.add_noise(z_prod, noise, torch.tensor([t_next]))
        keep = (1 - m).bool().expand_as(lat)
        assert torch.allclose(lat[keep], want.expand_as(lat)[keep], atol=1e-6), f"step {i}"
        # and the generated region is not the product's (the UNet did something there)
        assert not torch.allclose(lat[~keep], want.expand_as(lat)[~keep], atol=1e-3)
    solid = pl.alpha >= 1
    for im in out.images:
        a = np.asarray(im)
        assert np.array_equal(a[solid], pl.product[solid])
    raw = np.asarray(out.raw[0])
    assert not np.array_equal(raw[solid], pl.product[solid])  # pasting back did the work


def test_seed_reproduces_an_image_alone_or_in_a_batch(pipe):
    pl = place(_product(), 64, 0.5)
    both = pipe(pl, "a vase", seeds=[11, 12], num_inference_steps=3)
    alone = pipe(pl, "a vase", seeds=[12], num_inference_steps=3)
    other = pipe(pl, "a vase", seeds=[13], num_inference_steps=3)
    assert both.seeds == [11, 12]
    a, b = np.asarray(both.raw[1]).astype(int), np.asarray(alone.raw[0]).astype(int)
    assert np.abs(a - b).max() <= 1
    assert np.abs(np.asarray(other.raw[0]).astype(int) - b).max() > 5


def test_guidance_and_prompt_change_the_output(pipe):
    pl = place(_product(), 64, 0.5)
    a = pipe(pl, "a vase on a marble table", seeds=[5], num_inference_steps=3, guidance_scale=7.5)
    b = pipe(pl, "beige wall, a cup beside it", seeds=[5], num_inference_steps=3, guidance_scale=7.5)
    assert np.abs(np.asarray(a.raw[0]).astype(int) - np.asarray(b.raw[0]).astype(int)).max() > 0


def test_scheduler_by_name(pipe):
    pl = place(_product(), 64, 0.5)
    pipe.set_scheduler("EulerDiscreteScheduler")
    try:
        out = pipe(pl, "a vase", seeds=[1], num_inference_steps=4, trace=True)
        m = pipe.latent_mask(pl)
        z = pipe.encode_image(pl.product_image())
        keep = (1 - m).bool().expand_as(out.trace[-1][2])
        assert torch.allclose(out.trace[-1][2][keep], z.expand_as(out.trace[-1][2])[keep], atol=1e-6)
    finally:
        pipe.set_scheduler("DDIMScheduler")
    with pytest.raises(ValueError, match="unknown scheduler"):
        pipe.set_scheduler("NoSuchScheduler")


def test_missing_generator_says_what_to_pass(tmp_path):
    with pytest.raises(GeneratorNotFoundError, match="diffusers folder"):
        load_parts(tmp_path / "nowhere")
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(GeneratorNotFoundError, match="config folder"):
        load_parts(tmp_path / "x.safetensors")


def test_single_file_checkpoint_loads_every_weight(tmp_path, tiny_generator, pipe):
    """An LDM-layout single file (as civitai/HF single-file SD1.5 downloads are), with a config
    folder that holds no weights: every UNet, VAE and text-encoder weight arrives unchanged, and
    the pipeline draws the same image as from the diffusers folder."""
    import shutil

    from ldm_format import to_ldm_checkpoint
    from safetensors.torch import save_file

    ckpt = tmp_path / "model.safetensors"
    save_file(to_ldm_checkpoint(pipe.unet, pipe.vae, pipe.text_encoder), str(ckpt))
    cfg = tmp_path / "config"
    shutil.copytree(tiny_generator, cfg, ignore=shutil.ignore_patterns("*.safetensors", "controlnet"))
    with pytest.raises(GeneratorNotFoundError, match="ControlNet"):
        load_parts(ckpt, config=cfg)
    parts = load_parts(ckpt, tiny_generator / "controlnet", config=cfg)
    for name in ("unet", "vae", "text_encoder"):
        want, got = getattr(pipe, name).state_dict(), parts[name].state_dict()
        keys = [k for k in want if not k.endswith("position_ids")]
        assert [k for k in keys if k not in got] == []
        bad = [k for k in keys if not torch.equal(want[k], got[k].reshape(want[k].shape))]
        assert bad == [], f"{name}: {len(bad)} weights differ, e.g. {bad[:3]}"
    single = AdInpaintPipeline(**parts)
    pl = place(_product(), 64, 0.5)
    a = pipe(pl, "a vase on a marble table", seeds=[5], num_inference_steps=3).images[0]
    b = single(pl, "a vase on a marble table", seeds=[5], num_inference_steps=3).images[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_sd15_configs_are_stable_diffusion_15():
    """Built on the meta device (no memory): SD1.5's published parameter counts (UNet 859.52M,
    VAE 83.65M, CLIP ViT-L/14 text encoder 123.06M), so real weights load into these exact
    modules; the ControlNet is the UNet's encoder half plus its zero convolutions and the
    conditioning embedding, counted directly."""
    with torch.device("meta"):
        unet = C.build_unet("sd15")
        cn = C.build_controlnet(unet, "sd15")
        counts = {"unet": C.count_params(unet), "vae": C.count_params(C.build_vae("sd15")),
                  "text_encoder": C.count_params(C.build_text_encoder("sd15"))}
    assert counts == {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    encoder = sum(C.count_params(getattr(unet, n)) for n in ("conv_in", "time_embedding", "down_blocks", "mid_block"))
    extra = sum(C.count_params(getattr(cn, n)) for n in ("controlnet_cond_embedding", "controlnet_down_blocks",
                                                         "controlnet_mid_block"))
    assert C.count_params(cn) == encoder + extra
    assert len(cn.controlnet_down_blocks) == 12  # one zero conv per SD1.5 skip connection
    assert cn.config.conditioning_embedding_out_channels == (16, 32, 96, 256)


@pytest.mark.slow
def test_sd15_shaped_random_generator_runs_the_same_path(tmp_path):
    from rfft.train_generator import build_prompt_tokenizer

    tok = build_prompt_tokenizer(["a vase on a table"])
    tok.model_max_length = 77
    parts = C.random_generator("sd15", tokenizer=tok)
    pipe = AdInpaintPipeline(**parts)
    pl = place(_product(), 64, 0.5)  # a small canvas: the path, not the picture, is under test
    out = pipe(pl, "a vase", seeds=[0], num_inference_steps=1, trace=True)
    assert out.images[0].size == (64, 64) and pipe.latent_factor == 8
    m = pipe.latent_mask(pl)
    z = pipe.encode_image(pl.product_image())
    keep = (1 - m).bool().expand_as(out.trace[-1][2])
    assert torch.allclose(out.trace[-1][2][keep], z.expand_as(out.trace[-1][2])[keep])


def test_lora_with_a_scale(tmp_path, tiny_generator):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    pipe = AdInpaintPipeline.load(tiny_generator)
    pl = place(_product(), 64, 0.5)
    base = np.asarray(pipe(pl, "a vase", seeds=[2], num_inference_steps=2).raw[0]).astype(int)
    # a LoRA as diffusers' training scripts save it: peft weights under "unet."
    donor = AdInpaintPipeline.load(tiny_generator).unet
    donor.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                 target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    g = torch.Generator().manual_seed(0)
    sd = {f"unet.{k}": torch.randn(v.shape, generator=g) * 0.5  # B starts at zero in peft
          for k, v in get_peft_model_state_dict(donor).items()}
    save_file(sd, str(tmp_path / "lora.safetensors"))
    pipe.add_lora(tmp_path / "lora.safetensors", scale=0.0)
    zero = np.asarray(pipe(pl, "a vase", seeds=[2], num_inference_steps=2).raw[0]).astype(int)
    assert np.abs(zero - base).max() <= 1  # scale 0 leaves the model as it was
    pipe.set_adapters(["lora0"], adapter_weights=[1.0])
    one = np.asarray(pipe(pl, "a vase", seeds=[2], num_inference_steps=2).raw[0]).astype(int)
    assert np.abs(one - base).max() > 3


def test_initial_noise_is_each_seeds_own_draw_as_before(pipe):
    # the embedded figures were made with this noise: per seed, torch.randn on a fresh CPU generator
    want = torch.cat([torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(s)) for s in (7, 2**40)])
    assert torch.equal(pipe.initial_noise([7, 2**40], (1, 4, 8, 8)), want)


def test_an_sd15_style_folder_loads_with_a_separate_controlnet(tmp_path):
    """A diffusers SD1.5 folder as people have them: a StableDiffusionPipeline index with a
    (removed) safety checker and a feature extractor, no ControlNet inside; the parts this
    pipeline does not take are left out, and the ControlNet comes from --controlnet."""
    import json
    import shutil

    from rfft.pipeline import EMBEDDED

    d = tmp_path / "sd15 模型"
    shutil.copytree(EMBEDDED, d, ignore=shutil.ignore_patterns("controlnet", "MODEL_CARD.md"))
    idx = json.loads((d / "model_index.json").read_text())
    idx.pop("controlnet")
    idx.update({"_class_name": "StableDiffusionPipeline", "safety_checker": [None, None],
                "requires_safety_checker": False, "feature_extractor": ["transformers", "CLIPImageProcessor"],
                "scheduler": ["diffusers", "PNDMScheduler"]})  # SD1.5's own sampler
    sc = json.loads((d / "scheduler" / "scheduler_config.json").read_text())
    (d / "scheduler" / "scheduler_config.json").write_text(json.dumps({**sc, "_class_name": "PNDMScheduler"}))
    (d / "model_index.json").write_text(json.dumps(idx))
    (d / "feature_extractor").mkdir()
    (d / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "CLIPImageProcessor", "size": 224, "crop_size": 224}))
    with pytest.raises(GeneratorNotFoundError, match="no ControlNet"):
        load_parts(d)
    parts = load_parts(d, controlnet=EMBEDDED / "controlnet")
    assert sorted(parts) == ["controlnet", "scheduler", "text_encoder", "tokenizer", "unet", "vae"]
    assert type(parts["scheduler"]).__name__ == "DDIMScheduler"  # the paper's sampler, which RFFT assumes
    (d / "model_index.json").unlink()
    with pytest.raises(GeneratorNotFoundError, match="model_index.json is missing"):
        check_generator(d, controlnet=EMBEDDED / "controlnet")
    want = load_parts("embedded")
    assert all(torch.equal(a, b) for a, b in zip(parts["unet"].state_dict().values(), want["unet"].state_dict().values()))


def test_nan_pixels_are_flagged_and_shown_black_without_a_cast_warning(pipe, monkeypatch):
    import warnings

    pl = place(_product(), 64, 0.5)
    real = pipe.decode

    def half_broken(latents):  # the second image of the batch comes out NaN, as from an overflow
        x = real(latents).clone()
        x[1, :, :5, :5] = float("nan")
        return x

    monkeypatch.setattr(pipe, "decode", half_broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in cast" fails the test
        out = pipe(pl, "a vase", seeds=[1, 2], num_inference_steps=2)
    assert out.nonfinite == [False, True]
    assert (np.asarray(out.raw[1])[:5, :5] == 0).all()  # the NaN pixels, black
    assert np.asarray(out.raw[1])[10:].any() and np.asarray(out.raw[0])[:5, :5].any()
