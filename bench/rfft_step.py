"""One RFFT step at SD1.5 scale on this machine: peak memory and time, with and without the
memory measures.

    python bench/rfft_step.py [--variants plain cc-plain cc-measures] [--size 512] [--out bench_out/rfft_step]

Each variant runs in a fresh subprocess (so its peak resident memory is its own): SD1.5-shaped
UNet, canny ControlNet, VAE and CLIP text encoder with random weights, the paper-config RFNet
(ResNet50 at 384, BERT-base caption encoder) with DPT-Hybrid-shaped depth and U^2-Net salience,
batch 1, one gradient step of the objective in rfft/trainer.py (the steps before it run without
gradients and add time, not memory: the schedule here is 2 steps with the gradient at the last).

- ``plain``: everything float32, no checkpointing, no regularizer (a ReFL step);
- ``cc-plain``: the same with Consistent Condition (its two reference passes and the trained
  ControlNet's extra text-free pass);
- ``cc-measures``: CC with the frozen parts built directly in bfloat16 (never a float32 copy),
  gradient checkpointing in the UNet and ControlNet, and in the VAE decoder block by block
    (rfft/memory.py), the judge's three networks each checkpointed, the trained ControlNet in
  float32 under bfloat16 autocast without its weight cache, the prompts encoded once and the text
  encoder released, and the low-memory AdamW of rfft/optim.py (block-scaled float8 moments, each
  parameter stepped as its gradient completes, so the gradients never all exist). These are the
  flags ``--mixed_precision bf16 --gradient_checkpointing --release_text_encoder --optimizer
  adamw_float8 --step_in_backward`` of ``python -m rfft.train``.

Every variant holds its optimizer's moments from the start, as a run does from its second step
on. Peak resident memory is also sampled every 20 ms and reported per phase (build, forward,
backward, optimizer step), so the phase that sets the peak is known.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


class PhaseSampler:
    """Resident memory sampled in a thread; the largest value seen in each named phase."""

    def __init__(self):
        import threading

        self.phase, self.peaks, self._stop = "build", {}, False
        self._page = __import__("os").sysconf("SC_PAGE_SIZE")
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * self._page / 2**30
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), round(rss, 2))
            time.sleep(0.02)

    def stop(self) -> dict:
        self._stop = True
        self._t.join()
        return self.peaks


def trace_backward(sampler, parts: dict) -> None:
    """Name the backward phase after the module whose output gradient arrived last: a forward
    hook puts a gradient hook on each output (recomputed checkpoint segments included), and the
    sampler's peak per name then says which module's backward holds the most memory."""
    import torch

    def hook(label):
        def on_forward(module, args, out):
            outs = out if isinstance(out, (tuple, list)) else getattr(out, "to_tuple", lambda: (out,))()
            for o in outs:
                if isinstance(o, torch.Tensor) and o.requires_grad:
                    o.register_hook(lambda g, _l=label: setattr(sampler, "phase", "backward:" + _l) or None)
                    break
        return on_forward

    for prefix, module in parts.items():
        for child_name, child in module.named_children():
            for sub_name, sub in (child.named_children() if isinstance(child, torch.nn.ModuleList) else [("", child)]):
                sub.register_forward_hook(hook(".".join(x for x in (prefix, child_name, sub_name) if x)))


def run_variant(name: str, size: int, trace: bool = False) -> dict:
    import contextlib

    import numpy as np
    import torch
    from PIL import Image
    from transformers import DPTConfig, DPTForDepthEstimation

    from rfft import components as C
    from rfft.pipeline import AdInpaintPipeline
    from rfft.placement import place
    from rfft.train_generator import build_prompt_tokenizer
    from rfft.trainer import DifferentiableJudge, Example, RFFTConfig, RFFTObjective
    from rfnet.extractors import TransformersDepth, U2NetSalience
    from rfnet.model import RFNet, RFNetConfig
    from rfnet.text import build_tokenizer
    from rfnet.u2net import U2Net

    sampler = PhaseSampler()
    measures = name == "cc-measures"
    frozen = torch.bfloat16 if measures else torch.float32
    torch.manual_seed(0)

    @contextlib.contextmanager
    def default_dtype(dt):
        old = torch.get_default_dtype()
        torch.set_default_dtype(dt)
        try:
            yield
        finally:
            torch.set_default_dtype(old)

    tok = build_prompt_tokenizer(["a perfume on a marble table, beige wall, soft daylight"])
    tok.model_max_length = 77
    with default_dtype(frozen):
        unet = C.build_unet("sd15")
        vae = C.build_vae("sd15")
        te = C.build_text_encoder("sd15")
        ref = C.build_controlnet(unet, "sd15")
        dpt = DPTForDepthEstimation(DPTConfig(is_hybrid=True, backbone_featmap_shape=[1, 1024, 24, 24],
                                              neck_hidden_sizes=[256, 512, 768, 768], embedding_type="vit_hybrid"))
        sal = U2Net("u2net")
        rf = RFNet(RFNetConfig())
    with default_dtype(torch.float32):
        cn = C.build_controlnet(unet.float() if not measures else unet, "sd15").float()
    built = _rss_gib()
    pipe = AdInpaintPipeline(unet=unet, controlnet=ref, vae=vae, text_encoder=te, tokenizer=tok,
                             scheduler=C.build_scheduler())
    cn.train().requires_grad_(True)
    if measures:
        from rfft.memory import checkpoint_vae_decoder

        cn.enable_gradient_checkpointing()
        unet.enable_gradient_checkpointing()
        checkpoint_vae_decoder(vae)
    cap_tok = build_tokenizer(["Vela teal perfume 15ml 青色香水"])
    judge = DifferentiableJudge(rf, cap_tok, TransformersDepth(dpt, 384), U2NetSalience(sal))
    if measures:
        from rfft.memory import checkpoint_judge

        checkpoint_judge(judge)
    reg = "none" if name == "plain" else "cc"
    obj = RFFTObjective(pipe, cn, ref, judge, RFFTConfig(num_inference_steps=2, grad_steps_window=1, reg=reg))
    a = np.zeros((160, 100, 4), np.uint8)
    a[10:150, 10:90] = (40, 120, 200, 255)
    ex = Example(place(Image.fromarray(a, "RGBA"), size, 0.6), "a perfume on a marble table", "blurry",
                 "Vela teal perfume 15ml")
    if measures:
        from rfft.optim import LowMemoryAdamW

        pipe.cache_prompts([ex.prompt, ex.negative_prompt, ""], release_text_encoder=True)
        del te

        # float8 moments, no stored gradients
        opt = LowMemoryAdamW(cn.parameters(), lr=1e-5, state_dtype="float8", step_in_backward=True)
        opt.init_state()
    else:
        opt = torch.optim.AdamW(cn.parameters(), lr=1e-5)
        for p_ in cn.parameters():  # the moments a run holds from its second step on
            st = opt.state[p_]
            st["step"], st["exp_avg"], st["exp_avg_sq"] = torch.zeros(()), torch.zeros_like(p_), torch.zeros_like(p_)
    if trace:
        trace_backward(sampler, {"unet": unet, "controlnet": cn, "vae.decoder": vae.decoder, "depth": dpt,
                                 "salience": sal, "rfnet": rf})
    sampler.phase = "ready"
    t0 = time.time()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False) if measures else contextlib.nullcontext()
    sampler.phase = "forward"
    with ctx:
        loss, logs = obj([ex], torch.Generator().manual_seed(0))
    sampler.phase = "backward"
    loss.backward()
    sampler.phase = "step"
    opt.step()
    dt = time.time() - t0
    phases = sampler.stop()
    return {"variant": name, "size": size, "peak_gib": round(_rss_gib(), 2), "after_build_gib": round(built, 2),
            "step_s": round(dt, 1), "loss": round(float(logs["loss"]), 4), "reg": reg, "phase_peaks_gib": phases}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=["plain", "cc-plain", "cc-measures"])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--out", default="bench_out/rfft_step")
    p.add_argument("--trace", action="store_true",
                   help="report backward's peak per module (the module whose backward was running)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print("RESULT " + json.dumps(run_variant(a.one, a.size, a.trace)), flush=True)
        return 0
    import torch

    rows = []
    for v in a.variants:
        r = subprocess.run([sys.executable, __file__, "--one", v, "--size", str(a.size)] + (["--trace"] if a.trace else []), capture_output=True, text=True)
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        row = json.loads(line[0][7:]) if line else {"variant": v, "error": (r.stderr or r.stdout)[-800:]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    res = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                      f"torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"), "rows": rows}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
