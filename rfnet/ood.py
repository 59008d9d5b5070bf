"""Is a product, or a generated image, unlike anything the inspector was trained on?
``python -m rfnet.ood``.

    python -m rfnet.ood --rfnet runs/rfnet --data data/rfgen_train data/rfsynth_s0_128 --samples 2000 2000

An RFNet judges confidently even what it never saw: real matted cutouts (hard alpha edges), a
photo where RF-Synth has flat colours. This module describes the training data in the RFNet's own
image features (its encoder's pooled output) and measures how far a new product or image lies
from it: the Mahalanobis distance within the top principal components plus the whitened residual
outside them (PCA with the squared prediction error, a standard novelty score). The threshold is
the ``--quantile`` (0.995) of the distances of held-out training samples, so about one in two
hundred images like the training data is flagged.

It writes ``ood.safetensors`` into the model folder. rfnet.inspect (and so rfft.generate and the
nodes) then adds a note "outside the inspector's training data" to such a verdict: the image is
not accepted automatically, and the designer is pointed to Review & Label and Train RFNet.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import fileio
from .badge import OUTSIDE
from .errors import InputError, cli_errors

PROG = "python -m rfnet.ood"
FILE = "ood.safetensors"
KINDS = ("product", "generated")
NOTE = OUTSIDE + " ({what} unlike any it was trained on): label it with Review & Label"


@torch.no_grad()
def features(model, x: torch.Tensor) -> torch.Tensor:
    """(B, D) pooled image-encoder features of RGB images (B, 3, H, W) in 0..1, as the model sees them."""
    enc = model.image_encoder
    p = next(enc.parameters())
    f = enc.forward_features(model._prepare(x.float()).to(p.device, p.dtype))
    return (f.mean((2, 3)) if f.dim() == 4 else f.mean(1)).float().cpu()


def model_size(model) -> tuple[int, int]:
    """The side the model resizes every image to: batches are resized straight to it, as one
    image alone would be (not through the first image's shape)."""
    s = model.config.image_size
    return (s, s)


def image_features(model, images: list, batch: int = 64) -> torch.Tensor:
    """(N, D) :func:`features` of PIL images of any sizes, each resized once, straight to the
    model's input (as one image alone is), ``batch`` at a time."""
    from .images import to_batch

    return torch.cat([features(model, to_batch(images[i:i + batch], size=model_size(model)))
                      for i in range(0, len(images), batch)])


@dataclass
class Novelty:
    """PCA novelty score of one kind of image (product or generated)."""
    mean: torch.Tensor  # (D,)
    components: torch.Tensor  # (K, D), orthonormal rows
    variances: torch.Tensor  # (K,)
    residual_var: torch.Tensor  # () mean squared residual per dimension outside the K components
    threshold: torch.Tensor  # () distance at the quantile of held-out training samples

    def distance(self, f: torch.Tensor) -> torch.Tensor:
        c = f.float() - self.mean
        z = c @ self.components.T
        r = c - z @ self.components
        d = f.shape[-1] - self.components.shape[0]
        score = (z ** 2 / self.variances).sum(-1) + (r ** 2).sum(-1) / (self.residual_var * max(d, 1))
        return score.sqrt()

    def outside(self, f: torch.Tensor) -> torch.Tensor:
        return self.distance(f) > self.threshold


def edge_softness(alpha) -> float | None:
    """Anti-aliased border pixels per border pixel of a cutout's alpha (0..255): about 1 for
    RF-Synth's cutouts, 0 for hard matting (binary alpha), several for a wide feather. None when
    there is no cut-out shape to measure (no alpha, or an opaque or empty one)."""
    a = np.asarray(alpha, dtype=np.int32)
    inside = a >= 128
    if inside.all() or not inside.any():
        return None
    pad = np.pad(inside, 1, constant_values=False)
    border = inside & (~pad[:-2, 1:-1] | ~pad[2:, 1:-1] | ~pad[1:-1, :-2] | ~pad[1:-1, 2:])
    return float(((a > 12) & (a < 243)).sum() / max(int(border.sum()), 1))


def edge_range(train: list[float], quantile: float = 0.995) -> torch.Tensor:
    """[low, high] edge softness of the training cutouts, widened by a quarter on each side."""
    v = torch.tensor([x for x in train if x is not None], dtype=torch.float64)
    lo, hi = torch.quantile(v, 1 - quantile), torch.quantile(v, quantile)
    return torch.stack([lo * 0.75, hi * 1.25]).float()


def alphas(product) -> list:
    """Each product's alpha (H, W) in 0..255, or None where it has none, from what rfnet.inspect
    takes: PIL images (or a list of them), or an RGBA tensor batch in 0..1."""
    if torch.is_tensor(product):
        x = product if product.dim() == 4 else product[None]
        if x.shape[1] != 4:
            return [None] * x.shape[0]
        return [(t[3].float().cpu().numpy() * 255).round() for t in x]
    items = product if isinstance(product, (list, tuple)) else [product]
    return [np.asarray(im.getchannel("A")) if getattr(im, "mode", "") in ("RGBA", "LA") else None for im in items]


def fit(train: torch.Tensor, held_out: torch.Tensor, k: int = 64, quantile: float = 0.995) -> Novelty:
    """Fit on ``train`` features (N, D); the threshold comes from ``held_out`` (never seen by the fit)."""
    if train.shape[0] < 2 * k:
        raise InputError(f"{train.shape[0]} training samples are too few to describe {k} components; give at "
                         f"least {2 * k}")
    x = train.double()
    mean = x.mean(0)
    u, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0] - 1)
    var = (s[:k] ** 2 / (x.shape[0] - 1)).clamp_min(1e-12)
    comps = vt[:k]
    rest = (x - mean) - ((x - mean) @ comps.T) @ comps
    d = x.shape[1] - k
    rvar = ((rest ** 2).sum(1).mean() / max(d, 1)).clamp_min(1e-12)
    nov = Novelty(mean.float(), comps.float(), var.float(), rvar.float(), torch.tensor(0.0))
    nov.threshold = torch.quantile(nov.distance(held_out.float()), quantile)
    return nov


def save(folder: str | Path, stats: dict[str, Novelty], meta: dict) -> Path:
    from safetensors.torch import save_file

    tensors = {f"{kind}.{name}": getattr(n, name).contiguous() for kind, n in stats.items() if kind in KINDS
               for name in ("mean", "components", "variances", "residual_var", "threshold")}
    if "edges" in stats:
        tensors["product.edge_range"] = stats["edges"].contiguous()
    path = Path(folder) / FILE
    with fileio.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"rfnet_ood": json.dumps(meta, ensure_ascii=False)})
    return path


def load(folder: str | Path) -> dict[str, Novelty] | None:
    """The model folder's novelty statistics, or None when it has none."""
    from safetensors import safe_open

    path = Path(folder) / FILE
    if not path.is_file():
        return None
    out = {}
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        for kind in KINDS:
            names = ("mean", "components", "variances", "residual_var", "threshold")
            if all(f"{kind}.{n}" in keys for n in names):
                out[kind] = Novelty(*(f.get_tensor(f"{kind}.{n}").float() for n in names))
        if "product.edge_range" in keys:
            out["edges"] = f.get_tensor("product.edge_range").float()
    return out or None


def _images(records, base: Path, key: str) -> list:
    from PIL import Image

    ims = []
    for r in records:
        with Image.open(base / r[key]) as im:
            ims.append(im.convert("RGBA") if key == "product" else im.convert("RGB"))
    return ims


def dataset_features(model, roots: list[str], samples: list[int], split: str, batch: int = 64):
    """Features of each kind over the datasets' records (the first N of each; 0: all)."""
    from .dataformat import SkipReport, read_records

    recs = []
    for root, n in zip(roots, samples):
        base, rs, _ = read_records(root, SkipReport())
        rs = [r for r in rs if split == "all" or r.get("split", "train") == split]
        recs += [(base, r) for r in (rs[:n] if n else rs)]
    if not recs:
        raise InputError(f"no records in {', '.join(roots)} (split {split})")
    out = {k: [] for k in KINDS}
    edges = []
    for i in range(0, len(recs), batch):
        chunk = recs[i:i + batch]
        ims = {kind: [_images([r], b, "product" if kind == "product" else "image")[0] for b, r in chunk]
               for kind in KINDS}
        edges += [edge_softness(a) for a in alphas(ims["product"])]
        if model.config.product_input == "placed":  # as the inspector reads them
            from .data import placed_on_canvas

            ims["product"] = [placed_on_canvas(p, r["source"]["placement"], g.size)
                              for (_, r), p, g in zip(chunk, ims["product"], ims["generated"])]
        for kind in KINDS:
            out[kind].append(image_features(model, ims[kind]))
    return {k: torch.cat(v) for k, v in out.items()}, edges


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--rfnet", "--model", dest="model", required=True, help="the RFNet folder that receives ood.safetensors")
    p.add_argument("--data", nargs="+", required=True, help="the datasets it was trained on")
    p.add_argument("--samples", nargs="+", type=int, default=None, help="the first N records of each (0: all)")
    p.add_argument("--split", default="train")
    p.add_argument("--components", type=int, default=64)
    p.add_argument("--quantile", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    with cli_errors(PROG):
        from .loading import load_model_and_tokenizer

        if not 0.5 <= a.quantile < 1:
            raise InputError(f"--quantile must be in [0.5, 1), not {a.quantile}")
        samples = a.samples or [0] * len(a.data)
        if len(samples) != len(a.data):
            raise InputError(f"--samples gives {len(samples)} counts for {len(a.data)} datasets")
        model, _ = load_model_and_tokenizer(a.model)
        if model.config.mask_input:  # its features depend on a mask that inspection does not pass yet
            raise InputError(f"{a.model} was trained with --mask_input, which inspection does not support yet; "
                             "out-of-distribution statistics are for inspectors")
        model.eval()
        feats, edges = dataset_features(model, a.data, samples, a.split)
        g = torch.Generator().manual_seed(a.seed)
        stats, lines = {}, []
        for kind, f in feats.items():
            perm = torch.randperm(f.shape[0], generator=g)
            cut = int(0.8 * len(perm))  # 80% describe the data, 20% set the threshold
            stats[kind] = fit(f[perm[:cut]], f[perm[cut:]], a.components, a.quantile)
            lines.append(f"{kind}: threshold {float(stats[kind].threshold):.3f} from {len(perm) - cut} held-out samples")
        stats["edges"] = edge_range(edges, a.quantile)
        lines.append(f"product edges: softness {float(stats['edges'][0]):.2f} to {float(stats['edges'][1]):.2f}")
        meta = {"data": a.data, "samples": samples, "split": a.split, "quantile": a.quantile,
                "components": a.components, "seed": a.seed}
        path = save(a.model, stats, meta)
    print("; ".join(lines) + f"; written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
