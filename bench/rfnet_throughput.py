"""RFNet forward throughput and peak memory at the paper's size, on this machine.

    python bench/rfnet_throughput.py [--batch_sizes 1 2 4 8] [--reps 3] [--out bench_out]

Builds the paper-config RFNet (ResNet50 at 384x384, a Chinese-RoBERTa-shaped caption encoder,
width 384, 8 heads, N1=1, N2=3) with random weights: nothing is downloaded. Measures, all in
one run on the same machine:

- the floor: the FLOP/s this machine reaches in a large matrix product (4096^3), float32 and
  bfloat16; FLOPs per sample from torch's FLOP counter;
- ``naive-fp32``: the four images through the encoder in four separate passes, float32;
- ``batched-fp32``: RFNet as trained: one batched encoder pass, float32;
- ``inference-fp32``: after ``RFNet.to_inference()``: batch norm folded into the convolutions,
  the encoder called on chunks of at most 4 images;
- ``inference-bf16``: ``RFNet.to_inference(torch.bfloat16)``: the same in bfloat16 with
  channels-last convolutions (what the Inspector uses on CPUs with bfloat16 support);
- ``inference-bf16-compile`` (only when asked for with --variants): plus torch.compile;
- ``resnet50-alone-bf16``: the image encoder by itself on the same four images, the same way:
  the reference for how close the whole model comes to its backbone's efficiency;

each at several batch sizes, in a fresh subprocess: its resident memory once the model is
built, and the peak during the timed forward passes (Linux: the peak is reset after warm-up); and the largest difference in probabilities between bfloat16 and float32 on the same
inputs and weights, with how often the verdict (argmax) agrees. Writes results.json and a
Markdown table to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAPTION_TOKENS = 64  # RFNet's caption_max_length: long e-commerce titles fill it


def matmul_rate(dtype, n: int = 4096, reps: int = 8) -> float:
    import torch

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def build(variant: str, seed: int = 0):
    import torch

    from rfnet.model import RFNet, RFNetConfig

    torch.manual_seed(seed)
    model = RFNet(RFNetConfig())  # the paper's configuration, random weights
    if variant == "naive-fp32":
        def encode_separately(images, _m=model):
            # The straightforward version: one encoder pass per image.
            out = []
            for im in images:
                f = _m.image_encoder.forward_features(_m._prepare(im.float()))
                h, w = f.shape[-2:]
                from rfnet.model import sincos_2d

                tok = _m.image_proj(f.flatten(2).transpose(1, 2))
                out.append(tok + sincos_2d(h, w, tok.shape[-1], tok.device, tok.dtype))
            return out

        model.encode_images = encode_separately
        return model.eval()
    if variant == "batched-fp32":  # the model as trained: one encoder pass, float32
        return model.eval()
    if variant == "inference-fp32":  # to_inference: folded batch norm, chunks of 4 images
        return model.to_inference(torch.float32)
    if variant == "inference-bf16":  # the same in bfloat16, channels-last
        return model.to_inference(torch.bfloat16)
    if variant == "inference-bf16-compile":
        return model.to_inference(torch.bfloat16, compile=True)
    if variant == "resnet50-alone-bf16":  # the reference: the image encoder by itself
        return model.to_inference(torch.bfloat16)
    raise ValueError(variant)


def inputs(batch: int, seed: int = 1):
    import torch

    g = torch.Generator().manual_seed(seed)
    s = 384
    return dict(
        product=torch.rand(batch, 3, s, s, generator=g),
        generated=torch.rand(batch, 3, s, s, generator=g),
        depth=torch.rand(batch, 1, s, s, generator=g),
        salience=torch.rand(batch, 1, s, s, generator=g),
        input_ids=torch.randint(5, 21128, (batch, CAPTION_TOKENS), generator=g),
        attention_mask=torch.ones(batch, CAPTION_TOKENS, dtype=torch.long),
    )


def child(variant: str, batch: int, reps: int) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    model = build(variant)
    x = inputs(batch)
    run = lambda: model(**x)  # noqa: E731
    if variant == "resnet50-alone-bf16":
        images = [x[k] for k in ("product", "generated", "depth", "salience")]
        run = lambda: model.encode_images(images)  # noqa: E731
    with torch.inference_mode():
        run()  # warm-up: oneDNN picks and caches its kernels here (and compile compiles)
        run()
        model_rss = _status_kb("VmRSS")
        reset = _reset_peak_rss()  # so the peak below is the forward's, not the model build's
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    peak = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "batch": batch, "seconds": min(times), "all_seconds": times,
            "peak_rss_mb": peak / 1024, "model_rss_mb": model_rss / 1024,
            "forward_extra_mb": (peak - model_rss) / 1024, "peak_is_forward_only": reset}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def flops_per_sample() -> tuple[float, float]:
    """FLOPs of one sample through the whole RFNet, and through its image encoder alone."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build("batched-fp32")
    x = inputs(1)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(**x)
    with torch.inference_mode(), FlopCounterMode(display=False) as fe:
        model.encode_images([x[k] for k in ("product", "generated", "depth", "salience")])
    return float(fc.get_total_flops()), float(fe.get_total_flops())


def agreement(batch: int = 8) -> dict:
    import torch

    m32 = build("batched-fp32")
    m16 = build("inference-bf16")  # same seed: same weights, then folded and cast
    x = inputs(batch, seed=7)
    with torch.inference_mode():
        p32 = m32(**x).probs
        p16 = m16(**x).probs
    return {"max_abs_prob_diff": float((p32 - p16).abs().max()),
            "verdict_agreement": float((p32.argmax(1) == p16.argmax(1)).float().mean()),
            "n": batch, "max_prob_fp32": float(p32.max())}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--variants", nargs="+",
                   default=["naive-fp32", "batched-fp32", "inference-fp32", "inference-bf16",
                            "resnet50-alone-bf16"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", default="bench_out/rfnet_throughput")
    p.add_argument("--child", nargs=3, metavar=("VARIANT", "BATCH", "REPS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return 0

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
    }
    print("machine:", machine, flush=True)
    peak32 = matmul_rate(torch.float32)
    peak16 = matmul_rate(torch.bfloat16)
    print(f"matmul floor: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s", flush=True)
    fps, fps_enc = flops_per_sample()
    print(f"RFNet (paper config): {fps / 1e9:.1f} GFLOP per sample, "
          f"{fps_enc / 1e9:.1f} of them in the image encoder", flush=True)
    rows = []
    for variant in args.variants:
        for b in args.batch_sizes:
            r = subprocess.run([sys.executable, __file__, "--child", variant, str(b), str(args.reps)],
                               capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{variant} batch {b} failed")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res["samples_per_s"] = b / res["seconds"]
            flops = fps_enc if variant == "resnet50-alone-bf16" else fps
            res["gflops"] = flops * b / res["seconds"] / 1e9
            res["pct_fp32_floor"] = 100 * res["gflops"] * 1e9 / peak32
            res["pct_bf16_floor"] = 100 * res["gflops"] * 1e9 / peak16
            rows.append(res)
            print(f"{variant:>13} b={b}: {res['samples_per_s']:.2f} samples/s, {res['gflops']:.0f} GFLOP/s "
                  f"({res['pct_bf16_floor']:.0f}% of bf16 floor), peak RSS {res['peak_rss_mb']:.0f} MB",
                  flush=True)
    base = {r["batch"]: r["samples_per_s"] for r in rows if r["variant"] == "naive-fp32"}
    for r in rows:
        comparable = r["batch"] in base and r["variant"] != "resnet50-alone-bf16"
        r["speedup_vs_naive_fp32"] = r["samples_per_s"] / base[r["batch"]] if comparable else None
    agree = agreement()
    print("bf16 vs fp32:", agree, flush=True)
    result = {"machine": machine, "matmul_gflops": {"fp32": peak32 / 1e9, "bf16": peak16 / 1e9},
              "gflop_per_sample": fps / 1e9, "encoder_gflop_per_sample": fps_enc / 1e9, "rows": rows, "bf16_vs_fp32": agree,
              "caption_tokens": CAPTION_TOKENS, "command": " ".join(sys.argv)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    lines = ["| variant | batch | samples/s | GFLOP/s | % of fp32 floor | % of bf16 floor | x naive fp32 "
             "| RSS with model (MB) | peak RSS in forward (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['batch']} | {r['samples_per_s']:.2f} | {r['gflops']:.0f} | "
                     f"{r['pct_fp32_floor']:.0f}% | {r['pct_bf16_floor']:.0f}% | "
                     f"{_fmt(r['speedup_vs_naive_fp32'])} | {r['model_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
