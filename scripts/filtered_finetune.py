"""Is the judge what keeps RFFT from raising the true available rate? Fine-tune on judged samples.

RFFT (ReFL, KL, CC) follows the inspector's gradient, so it can only be as right as the
inspector. This experiment takes the gradient out: the ControlNet is fine-tuned with the plain
denoising loss on the generator's own images that a judge accepted (reward-filtered fine-tuning,
"RAFT", Dong et al. 2023; not in the paper). With the oracle as the judge it asks what a perfect
judge would deliver with this generator; with the embedded inspector, what ours delivers; with
every image kept, what fine-tuning on its own samples does by itself.

    python scripts/filtered_finetune.py collect --out runs/filtered/data --jobs 900 --shard 0/2   # and 1/2
    python scripts/filtered_finetune.py train --data runs/filtered/data --keep oracle --out runs/filtered/oracle
    python -m rfft.evaluate --controlnet runs/filtered/oracle/controlnet --products 300 --seed 31337 \
        --out runs/filtered/eval_oracle.json
    python scripts/filtered_finetune.py table runs/filtered/eval_original.json runs/filtered/eval_oracle.json ...

``collect`` draws RFFT's training jobs (``rfft.evaluate.draw_job`` with seed 4242: the products
and prompts ``rfft.train`` sees, never the held-out 31337), two images per job with the paper's
sampler, and records the oracle's label and the embedded inspector's verdict of each; it resumes
from its rows file. ``train`` fine-tunes the embedded ControlNet (everything else frozen) on the
kept images: epsilon-prediction MSE on the generated region of the latent (the product's region is
always replaced, eq. 2), 10% empty prompts as classifier-free guidance needs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from rfft_experiments import TRAIN_SEED  # noqa: E402  (rfft.train's products and prompts; scripts/ is on the path)

KEEP = ("oracle", "rfnet", "all")


def image_seed(seed: int, job: int, k: int) -> int:
    """Image k of job ``job``: away from rfft.evaluate's image seeds (seed * 100,000 onwards)."""
    return seed * 100_000 + 20_000 + 2 * job + k


def rows_of(data: Path) -> list[dict]:
    rows = []
    for f in sorted(data.glob("rows_*.jsonl")):
        rows += [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    return sorted(rows, key=lambda r: (r["job"], r["k"]))


def kept(rows: list[dict], keep: str) -> list[dict]:
    if keep not in KEEP:
        raise ValueError(f"--keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if keep == "oracle":
        return [r for r in rows if r["oracle"] == "Available"]
    if keep == "rfnet":
        return [r for r in rows if r["accepted"]]
    return list(rows)


def cmd_collect(a) -> int:
    from rfft.evaluate import draw_job, draw_job_images
    from rfft.pipeline import AdInpaintPipeline
    from rfnet.embedded import embedded_path
    from rfnet.fileio import save_image
    from rfnet.inspect import Inspector
    from rfsynth.oracle import judge

    k_shard, m = (int(x) for x in a.shard.split("/"))
    out = Path(a.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows_file = out / f"rows_{k_shard}.jsonl"
    meta = {"seed": a.seed, "images_per_job": a.images_per_job}
    if (out / "meta.json").exists() and json.loads((out / "meta.json").read_text()) != meta:
        raise SystemExit(f"{out} was collected with {(out / 'meta.json').read_text()}: give another --out")
    (out / "meta.json").write_text(json.dumps(meta))
    done = {r["job"] for r in rows_of(out)}
    pipe = AdInpaintPipeline.load("embedded")
    pipe.set_progress_bar_config(disable=True)
    inspector = Inspector.from_pretrained(embedded_path("rfnet"))
    t0, n = time.time(), 0
    for i in range(k_shard, a.jobs, m):
        if i in done:
            continue
        job = draw_job(a.seed, i)
        seeds = [image_seed(a.seed, i, k) for k in range(a.images_per_job)]
        pl, imgs = draw_job_images(pipe, job, seeds)
        lines = []
        for k, (s, img) in enumerate(zip(seeds, imgs)):
            name = f"images/{i:05d}_{k}.png"
            save_image(out / name, img)
            v = judge(img, pl.cutout, pl.box, job["category"], damage=None)
            r = inspector(pl.cutout, img, job["caption"])[0]
            lines.append(json.dumps({"job": i, "k": k, "image_seed": s, "image": name, "prompt": job["prompt"],
                                     "oracle": v.label, "rfnet": r.label, "p_available": round(r.p_available, 5),
                                     "accepted": bool(r.accepted)}, ensure_ascii=False))
        with open(rows_file, "a", encoding="utf-8") as fh:  # a job's rows together: resuming redoes a cut job
            fh.write("".join(x + "\n" for x in lines))
        n += 1
        if n % 20 == 0:
            print(f"shard {a.shard}: {n} jobs, {(time.time() - t0) / n:.1f} s/job", flush=True)
    print(f"shard {a.shard}: done, {n} new jobs in {time.time() - t0:.0f} s", flush=True)
    return 0


def _examples(pipe, data: Path, rows: list[dict], seed: int):
    """Latents, controls, generated-region masks and prompt embeddings of the kept images."""
    import torch
    from PIL import Image

    from rfft.evaluate import draw_job
    from rfft.placement import place

    size = pipe.unet.config.sample_size * pipe.latent_factor
    z, ctrl, mask, prompts = [], [], [], []
    with torch.no_grad():
        for r in rows:
            job = draw_job(seed, r["job"])
            pl = place(job["cutout"], size, job["scale"])
            z.append(pipe.encode_image(Image.open(data / r["image"])))
            ctrl.append(pipe.control_tensor(pl, 1))
            mask.append(pipe.latent_mask(pl))
            prompts.append(r["prompt"])
        uniq = sorted(set(prompts))
        emb = pipe.encode_prompt(uniq)
        where = {p: j for j, p in enumerate(uniq)}
        text = emb[[where[p] for p in prompts]]
        empty = pipe.encode_prompt([""])
    return torch.cat(z), torch.cat(ctrl), torch.cat(mask), text, empty


def cmd_train(a) -> int:
    import torch

    from rfft.pipeline import AdInpaintPipeline
    from rfft.train import _save_controlnet

    data, out = Path(a.data), Path(a.out)
    rows = kept(rows_of(data), a.keep)
    if len(rows) < a.batch:
        raise SystemExit(f"{a.keep!r} keeps {len(rows)} images of {data}, fewer than a batch ({a.batch}): collect more jobs")
    out.mkdir(parents=True, exist_ok=True)
    pipe = AdInpaintPipeline.load("embedded")
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.requires_grad_(False)
    cn = pipe.controlnet.float().train().requires_grad_(True)  # the pipeline loads every part frozen
    z0, ctrl, mask, text, empty = _examples(pipe, data, rows, json.loads((data / "meta.json").read_text())["seed"])
    T = pipe.scheduler.config.num_train_timesteps
    opt = torch.optim.AdamW(cn.parameters(), lr=a.lr, weight_decay=0.0)
    log = open(out / "log.jsonl", "w", encoding="utf-8")
    t0 = time.time()
    for step in range(a.steps):
        g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        idx = torch.randint(len(rows), (a.batch,), generator=g)
        noise = torch.randn(z0[idx].shape, generator=g)
        t = torch.randint(0, T, (a.batch,), generator=g)
        zt = pipe.scheduler.add_noise(z0[idx], noise, t)
        drop = (torch.rand(a.batch, generator=g) < a.empty_prompt_p)[:, None, None]
        h = torch.where(drop, empty.expand(a.batch, -1, -1), text[idx])
        eps = _batched_noise(pipe, cn, zt, t, h, ctrl[idx])
        loss = masked_mse(eps, noise, mask[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cn.parameters(), 1.0)
        opt.step()
        log.write(json.dumps({"step": step + 1, "loss": round(loss.item(), 6)}) + "\n")
        if (step + 1) % 50 == 0:
            log.flush()
            print(f"step {step + 1}/{a.steps} loss {loss.item():.4f} ({(time.time() - t0) / (step + 1):.2f} s/step)", flush=True)
    log.close()
    _save_controlnet(cn, out / "controlnet")
    (out / "train.json").write_text(json.dumps({**vars(a), "images": len(rows), "seconds": round(time.time() - t0)},
                                               indent=1, default=str))
    print(f"{out / 'controlnet'}: {a.steps} steps on {len(rows)} images ({a.keep}) in {time.time() - t0:.0f} s")
    return 0


def masked_mse(pred, target, mask):
    """Mean squared error over the generated region only (``mask`` 1 there, broadcast over channels):
    the product's latents are replaced at every step (eq. 2), so what is predicted there never counts."""
    w = mask.expand_as(pred)
    return ((pred - target) ** 2 * w).sum() / w.sum().clamp_min(1)


def _batched_noise(pipe, cn, zt, t, h, ctrl):
    """The UNet + ControlNet's noise prediction with a timestep per sample (predict_noise takes one
    scalar timestep; the scheduler's scale_model_input is the identity for DDIM)."""
    down, mid = cn(zt, t, encoder_hidden_states=h, controlnet_cond=ctrl, return_dict=False)
    return pipe.unet(zt, t, encoder_hidden_states=h, down_block_additional_residuals=list(down),
                     mid_block_additional_residual=mid).sample


def cmd_table(a) -> int:
    from rfft.evaluate import paired_difference

    base = json.loads(Path(a.evals[0]).read_text())
    ok0 = [r["oracle"] == "Available" for r in base["rows"]]
    div0 = [r["diversity"] for r in base["rows"]]
    print("| run | oracle-available | paired difference [95%] | RFNet-accepted | wall colour | diversity (paired difference) | detail |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p in a.evals:
        e = json.loads(Path(p).read_text())
        if [r["prompt"] for r in e["rows"]] != [r["prompt"] for r in base["rows"]] or e["seed"] != base["seed"]:
            raise SystemExit(f"{p} is not an evaluation of the same jobs as {a.evals[0]} (seed and --products must match)")
        ok = [r["oracle"] == "Available" for r in e["rows"]]
        diff, ddiv = "(baseline)", ""
        if p != a.evals[0]:
            d, lo, hi = paired_difference(ok, ok0)
            diff = f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            d, lo, hi = paired_difference([r["diversity"] for r in e["rows"]], div0)
            ddiv = f" ({d:+.1f} [{lo:+.1f}, {hi:+.1f}])"
        print(f"| {Path(p).parent.name}/{Path(p).stem} | {100 * e['available_rate_oracle']:.1f}% ({sum(ok)}/{len(ok)}) | {diff} | "
              f"{100 * e['available_rate_rfnet']:.1f}% | {100 * e['wall_colour_match']:.1f}% | "
              f"{e['background_diversity']:.1f}{ddiv} | {e['background_detail']:.1f} |")
    return 0


def cmd_stats(a) -> int:
    rows = rows_of(Path(a.data))
    n = len(rows)
    o = sum(r["oracle"] == "Available" for r in rows)
    acc = [r for r in rows if r["accepted"]]
    prec = sum(r["oracle"] == "Available" for r in acc)
    print(f"{n} images of {len({r['job'] for r in rows})} jobs: oracle-Available {o} ({100 * o / max(n, 1):.1f}%); "
          f"the inspector accepts {len(acc)}, of which oracle-Available {prec} "
          f"({100 * prec / max(len(acc), 1):.1f}%, recall {100 * prec / max(o, 1):.1f}%)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/filtered_finetune.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--out", required=True)
    c.add_argument("--jobs", type=int, default=900)
    c.add_argument("--seed", type=int, default=TRAIN_SEED)
    c.add_argument("--images_per_job", type=int, default=2)
    c.add_argument("--shard", default="0/1", help="K/M: jobs K, K+M, ... (one process per core)")
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--keep", choices=KEEP, required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=0, help="the batches, noise and timesteps")
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--empty_prompt_p", type=float, default=0.1)
    tb = sub.add_parser("table")
    tb.add_argument("evals", nargs="+", help="rfft.evaluate outputs of the same jobs; the first is the baseline")
    s = sub.add_parser("stats")
    s.add_argument("--data", required=True)
    a = p.parse_args(argv)
    return {"collect": cmd_collect, "train": cmd_train, "table": cmd_table, "stats": cmd_stats}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
