"""Fine-tune the ControlNet on a judge's preferences between two images of the same job (Diffusion-DPO).

Reward-filtered fine-tuning (scripts/filtered_finetune.py) keeps the images a judge accepts and
fits them with the plain denoising loss: with a perfect judge (the oracle) it moved the true
available rate no more than keeping every image did. Most of what that loss learns is what the
generator already draws; the judge's signal, which of two images of the same product, prompt and
placement is the usable one, is a small part of it. Diffusion-DPO (Wallace et al. 2023; not in
the paper) trains on exactly that signal: for each pair it lowers the denoising loss of the
preferred image and raises the other's, each measured against a frozen copy of the original
ControlNet, so that the model moves only as far as the preference needs:

    loss = -log sigmoid(-beta / 2 * [(L_w - Lref_w) - (L_l - Lref_l)])

with L the masked denoising error of the policy and Lref the reference's, at the same timestep and
noise for both images of a pair.

    python scripts/preference_finetune.py train --data runs/filtered/data --judge oracle --out runs/dpo/oracle
    python -m rfft.evaluate --generator embedded --controlnet runs/dpo/oracle/controlnet --products 300 \
        --seed 31337 --out runs/dpo/eval_oracle.json
    python scripts/filtered_finetune.py table runs/filtered/eval_original.json runs/dpo/eval_oracle.json

The pairs come from ``filtered_finetune.py collect`` (two images a job). ``--judge oracle``: the
pairs where exactly one image is Available by the oracle. ``--judge rfnet``: the pairs whose
inspector P(Available) differ by at least ``--margin``, the higher preferred (what a designer's
inspector can give). A tenth of the jobs is held out, and the share of those pairs the policy
ranks right (the implicit accuracy) is logged as training goes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from filtered_finetune import _batched_noise, _examples, rows_of  # noqa: E402  (scripts/ is on the path)

JUDGES = ("oracle", "rfnet")


def pairs(rows: list[dict], judge: str, margin: float = 0.2) -> list[tuple[dict, dict]]:
    """(preferred, other) for every job whose two images the judge tells apart, in job order."""
    if judge not in JUDGES:
        raise ValueError(f"--judge must be one of {', '.join(JUDGES)}, got {judge!r}")
    by_job: dict[int, list[dict]] = {}
    for r in rows:
        by_job.setdefault(r["job"], []).append(r)
    out = []
    for job in sorted(by_job):
        rs = sorted(by_job[job], key=lambda r: r["k"])
        if len(rs) != 2:
            continue
        a, b = rs
        if judge == "oracle":
            ok_a, ok_b = a["oracle"] == "Available", b["oracle"] == "Available"
            if ok_a != ok_b:
                out.append((a, b) if ok_a else (b, a))
        elif abs(a["p_available"] - b["p_available"]) >= margin:
            out.append((a, b) if a["p_available"] > b["p_available"] else (b, a))
    return out


def held_out(job: int, share: float = 0.1) -> bool:
    """Whether a job is held out: a hash of its number, the same in every run and for every judge."""
    return zlib.crc32(str(job).encode()) % 1000 < share * 1000


def masked_mse_each(pred, target, mask):
    """Each sample's mean squared error over its generated region (``mask`` 1 there)."""
    w = mask.expand_as(pred)
    return ((pred - target) ** 2 * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)


def dpo_loss(model_w, model_l, ref_w, ref_l, beta: float):
    """Diffusion-DPO's loss (Wallace et al. 2023, eq. 14 as their code computes it) from the
    per-pair denoising errors; also the term inside the sigmoid, > 0 where the pair is ranked right."""
    import torch.nn.functional as F

    inside = -0.5 * beta * ((model_w - ref_w) - (model_l - ref_l))
    return -F.logsigmoid(inside).mean(), inside


def ranked_right(inside) -> float:
    """The share of pairs the policy ranks right (the term inside the sigmoid above 0); a tie, as
    every pair is before training, counts a half."""
    return ((inside > 0).float() + 0.5 * (inside == 0).float()).mean().item()


def cmd_train(a) -> int:
    import torch

    from rfft.pipeline import AdInpaintPipeline
    from rfft.train import _save_controlnet

    data, out = Path(a.data), Path(a.out)
    every = pairs(rows_of(data), a.judge, a.margin)
    train = [p for p in every if not held_out(p[0]["job"])]
    test = [p for p in every if held_out(p[0]["job"])]
    if len(train) < a.batch:
        raise SystemExit(f"{a.judge!r} tells apart {len(train)} training pairs of {data}, fewer than a batch "
                         f"({a.batch}): collect more jobs")
    out.mkdir(parents=True, exist_ok=True)
    pipe = AdInpaintPipeline.load("embedded")
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.requires_grad_(False)
    ref = pipe.controlnet.float().eval()
    cn = AdInpaintPipeline.load("embedded").controlnet.float().train().requires_grad_(True)
    seed = json.loads((data / "meta.json").read_text())["seed"]
    flat = [r for p in train + test for r in p]  # winner, loser, winner, loser, ...
    z0, ctrl, mask, text, empty = _examples(pipe, data, flat, seed)
    W, L = torch.arange(0, len(flat), 2), torch.arange(1, len(flat), 2)
    n_train = len(train)
    T = pipe.scheduler.config.num_train_timesteps

    def errors(model, idx, t, noise, h):
        """Denoising errors of the winners and losers of pairs ``idx`` (same t and noise for both)."""
        both = torch.cat([W[idx], L[idx]])
        zt = pipe.scheduler.add_noise(z0[both], torch.cat([noise, noise]), torch.cat([t, t]))
        eps = _batched_noise(pipe, model, zt, torch.cat([t, t]), torch.cat([h, h]), ctrl[both])
        e = masked_mse_each(eps, torch.cat([noise, noise]), mask[both])
        return e[: len(idx)], e[len(idx):]

    def held_out_accuracy() -> tuple[float, float]:
        """Implicit accuracy and loss on the held-out pairs, with fixed timesteps and noise."""
        if not test:
            return float("nan"), float("nan")
        g = torch.Generator().manual_seed(12345)
        idx = torch.arange(n_train, len(W))
        accs, losses = [], []
        with torch.no_grad():
            for _ in range(4):  # four draws of (t, noise) per pair
                t = torch.randint(0, T, (len(idx),), generator=g)
                noise = torch.randn(z0[W[idx]].shape, generator=g)
                mw, ml = errors(cn, idx, t, noise, text[W[idx]])
                rw, rl = errors(ref, idx, t, noise, text[W[idx]])
                loss, inside = dpo_loss(mw, ml, rw, rl, a.beta)
                accs.append(ranked_right(inside))
                losses.append(loss.item())
        return sum(accs) / len(accs), sum(losses) / len(losses)

    opt = torch.optim.AdamW(cn.parameters(), lr=a.lr, weight_decay=0.0)
    log = open(out / "log.jsonl", "w", encoding="utf-8")
    t0 = time.time()
    acc0, loss0 = held_out_accuracy()
    log.write(json.dumps({"step": 0, "held_out_accuracy": acc0, "held_out_loss": loss0}) + "\n")
    print(f"{n_train} training pairs, {len(test)} held out ({a.judge}); held-out loss {loss0:.4f}", flush=True)
    for step in range(a.steps):
        g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        idx = torch.randint(n_train, (a.batch,), generator=g)
        noise = torch.randn(z0[W[idx]].shape, generator=g)
        t = torch.randint(0, T, (a.batch,), generator=g)
        drop = (torch.rand(a.batch, generator=g) < a.empty_prompt_p)[:, None, None]
        h = torch.where(drop, empty.expand(a.batch, -1, -1), text[W[idx]])
        with torch.no_grad():
            rw, rl = errors(ref, idx, t, noise, h)
        mw, ml = errors(cn, idx, t, noise, h)
        loss, inside = dpo_loss(mw, ml, rw, rl, a.beta)
        if not torch.isfinite(loss):
            log.close()
            raise SystemExit(f"the loss is not finite at step {step + 1}: lower --lr or --beta ({a.lr}, {a.beta}); "
                             f"nothing was saved from this run")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cn.parameters(), 1.0)
        opt.step()
        row = {"step": step + 1, "loss": round(loss.item(), 6), "accuracy": ranked_right(inside),
               "winner_vs_ref": round((mw - rw).mean().item(), 7), "loser_vs_ref": round((ml - rl).mean().item(), 7)}
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            row["held_out_accuracy"], row["held_out_loss"] = held_out_accuracy()
            print(f"step {step + 1}/{a.steps} loss {loss.item():.4f} held-out accuracy {row['held_out_accuracy']:.3f} "
                  f"loss {row['held_out_loss']:.4f} ({(time.time() - t0) / (step + 1):.2f} s/step)", flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()
    log.close()
    _save_controlnet(cn, out / "controlnet")
    (out / "train.json").write_text(json.dumps({**vars(a), "pairs": n_train, "held_out_pairs": len(test),
                                                "seconds": round(time.time() - t0)}, indent=1, default=str))
    print(f"{out / 'controlnet'}: {a.steps} steps on {n_train} pairs ({a.judge}) in {time.time() - t0:.0f} s")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/preference_finetune.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True, help="a filtered_finetune.py collect folder (two images a job)")
    t.add_argument("--judge", choices=JUDGES, required=True)
    t.add_argument("--margin", type=float, default=0.2, help="--judge rfnet: the least P(Available) difference")
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=0, help="the batches, noise and timesteps")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch", type=int, default=8, help="pairs a step")
    t.add_argument("--lr", type=float, default=1e-5)
    t.add_argument("--beta", type=float, default=2000.0, help="Diffusion-DPO's beta (5000 in the paper, for SD1.5)")
    t.add_argument("--empty_prompt_p", type=float, default=0.1)
    t.add_argument("--eval_every", type=int, default=50)
    a = p.parse_args(argv)
    return {"train": cmd_train}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
