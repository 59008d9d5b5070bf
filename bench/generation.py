"""Generation speed, and what inspection costs beside it, on this machine.

    python bench/generation.py [--out bench_out/generation] [--paper_steps 2]

All in one run:

1. the embedded generator (64 px, DDIM 40 steps, guidance 7.5): seconds per image one attempt
   at a time, and in rounds of 4 candidates generated as one batch (the ratio is what batched
   rounds buy Recurrent Generation);
2. the embedded inspection path (depth and salience estimators, RFNet) per image, as a share of
   the embedded generation time;
3. paper scale, random weights built from config (nothing downloaded): SD1.5 UNet + canny
   ControlNet at 512 x 512 timed for ``--paper_steps`` guided steps (batch 2, as classifier-free
   guidance runs) and scaled to 40, plus the text encoder and the VAE decoder once; against
   the paper's inspection path: DPT-Hybrid-shaped depth at 384, U^2-Net salience at 320 and the
   paper-config RFNet (ResNet50 at 384, a BERT-base caption encoder), in the Inspector's dtype.

Writes results.json and results.md to --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time(fn, reps: int = 1) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def embedded(reps: int, k: int) -> dict:
    from rfft.generate import EXAMPLES
    from rfft.pipeline import AdInpaintPipeline
    from rfft.placement import load_product, place
    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    pipe = AdInpaintPipeline.load("embedded")
    pl = place(load_product(EXAMPLES / "products" / "05_perfume.png"), 64, 0.5)
    prompt = "a perfume on a marble table, beige wall, soft daylight"
    one = _time(lambda: pipe(pl, prompt, "blurry", seeds=[1]), reps)
    batch = _time(lambda: pipe(pl, prompt, "blurry", seeds=list(range(k))), reps) / k
    insp = Inspector.from_pretrained(embedded_path("rfnet"))
    imgs = pipe(pl, prompt, seeds=list(range(k))).images
    inspect_one = _time(lambda: insp(pl.cutout, imgs[:1], "perfume"), reps * 3)
    inspect_k = _time(lambda: insp(pl.cutout, imgs, "perfume"), reps * 3) / k
    return {"gen_s_one_at_a_time": one, f"gen_s_per_image_batch{k}": batch, "batched_speedup": one / batch,
            "inspect_s_one": inspect_one, f"inspect_s_per_image_batch{k}": inspect_k,
            "inspection_share_of_generation": inspect_one / one}


def paper_generation(steps: int) -> dict:
    """SD1.5-shaped UNet + ControlNet, VAE and text encoder (random weights) at 512 x 512; the
    models are freed when this returns."""
    import torch

    from rfft import components as C

    torch.manual_seed(0)
    unet = C.build_unet("sd15").eval()
    cn = C.build_controlnet(unet, "sd15").eval()
    vae = C.build_vae("sd15").eval()
    te = C.build_text_encoder("sd15").eval()
    B = 2  # classifier-free guidance: unconditional and conditional in one batch
    lat = torch.randn(B, 4, 64, 64)
    ctrl = torch.rand(B, 3, 512, 512)
    ids = torch.randint(0, 49407, (B, 77))
    with torch.no_grad():
        h = te(ids)[0]
        t_text = _time(lambda: te(ids))

        def step():
            d, m = cn(lat, 500, encoder_hidden_states=h, controlnet_cond=ctrl, return_dict=False)
            unet(lat, 500, encoder_hidden_states=h, down_block_additional_residuals=d,
                 mid_block_additional_residual=m)

        t_step = _time(step, steps)
        t_dec = _time(lambda: vae.decode(lat[:1] / 0.18215))
        t_enc = _time(lambda: vae.encode(torch.rand(1, 3, 512, 512) * 2 - 1))
    return {"sd15_guided_step_s": t_step, "sd15_text_s": t_text, "sd15_vae_decode_s": t_dec,
            "sd15_vae_encode_s": t_enc, "sd15_image_40_steps_s": t_text + 40 * t_step + t_dec + t_enc}


def paper(steps: int) -> dict:
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation

    from rfnet.extractors import TransformersDepth, U2NetSalience
    from rfnet.inspect import resolve_dtype
    from rfnet.model import RFNet, RFNetConfig
    from rfnet.u2net import U2Net

    res = paper_generation(steps)
    print(json.dumps(res), flush=True)
    gen = res["sd15_image_40_steps_s"]

    dtype = resolve_dtype("auto", "cpu")
    dpt_cfg = DPTConfig(is_hybrid=True, backbone_featmap_shape=[1, 1024, 24, 24], neck_hidden_sizes=[256, 512, 768, 768],
                        embedding_type="vit_hybrid")  # DPT-Hybrid (the paper's depth model)
    # as the Inspector runs them: estimators in float32, RFNet in its inference dtype
    depth = TransformersDepth(DPTForDepthEstimation(dpt_cfg), 384)
    sal = U2NetSalience(U2Net("u2net"))
    rf = RFNet(RFNetConfig()).eval().to_inference(dtype)
    g = torch.rand(1, 3, 512, 512)
    o = torch.rand(1, 3, 512, 512)
    ids = torch.randint(5, 1000, (1, 64))
    with torch.no_grad():
        t_depth = _time(lambda: depth(g), 2)
        t_sal = _time(lambda: sal(g), 2)
        S = rf.config.image_size

        def rfnet():
            x = torch.nn.functional.interpolate(g, size=(S, S)).to(dtype)
            rf(product=torch.nn.functional.interpolate(o, size=(S, S)).to(dtype), generated=x,
               depth=x[:, :1], salience=x[:, :1], input_ids=ids, attention_mask=torch.ones_like(ids))

        t_rf = _time(rfnet, 2)
    insp = t_depth + t_sal + t_rf
    return {**res, "inspect_dtype": str(dtype),
            "depth_dpt_hybrid_s": t_depth, "salience_u2net_s": t_sal, "rfnet_paper_s": t_rf,
            "inspect_s": insp, "inspection_share_of_generation": insp / gen}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_out/generation")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--paper_steps", type=int, default=2)
    p.add_argument("--skip_paper", action="store_true")
    a = p.parse_args(argv)
    import torch

    res = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                      f"torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}
    res["embedded"] = embedded(a.reps, a.k)
    print(json.dumps(res["embedded"], indent=1), flush=True)
    if not a.skip_paper:
        res["paper"] = paper(a.paper_steps)
        print(json.dumps(res["paper"], indent=1), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
