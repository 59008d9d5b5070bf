"""rfnet.ood: the novelty score against a direct computation, edge softness, and an Inspector
that says 'outside the inspector's training data' instead of a confident defect."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from rfnet import ood


def test_distance_is_pca_mahalanobis_plus_whitened_residual_by_hand():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(400, 12, generator=g) * torch.linspace(0.2, 3, 12)
    held = torch.randn(300, 12, generator=g) * torch.linspace(0.2, 3, 12)
    n = ood.fit(train, held, k=4, quantile=0.9)
    x = train.double().numpy()
    m = x.mean(0)
    _, s, vt = np.linalg.svd(x - m, full_matrices=False)
    v, var = vt[:4], s[:4] ** 2 / (len(x) - 1)
    res = (x - m) - (x - m) @ v.T @ v
    rvar = (res ** 2).sum(1).mean() / 8
    q = held.double().numpy() - m
    z = q @ v.T
    want = np.sqrt((z ** 2 / var).sum(1) + ((q - z @ v) ** 2).sum(1) / (rvar * 8))
    assert np.allclose(n.distance(held).numpy(), want, rtol=1e-4)
    assert abs(float(n.outside(held).float().mean()) - 0.1) < 0.01  # the quantile sets the flag rate
    assert bool(n.outside(train.mean(0, keepdim=True) + 40).all())  # far away is flagged


def _disk(size=64, soft=True):
    im = Image.new("L", (size * 4, size * 4), 0)
    ImageDraw.Draw(im).ellipse([40, 30, size * 4 - 40, size * 4 - 30], fill=255)
    a = np.asarray(im.resize((size, size), Image.LANCZOS if soft else Image.NEAREST))
    return a


def test_edge_softness():
    assert ood.edge_softness(_disk(soft=False)) == 0.0  # hard matting: no anti-aliased border
    assert 0.6 < ood.edge_softness(_disk(soft=True)) < 1.6  # one anti-aliased pixel around
    assert ood.edge_softness(np.full((8, 8), 255)) is None and ood.edge_softness(np.zeros((8, 8))) is None
    rgba = Image.new("RGBA", (4, 4))
    assert ood.alphas([rgba, rgba.convert("RGB")])[1] is None
    t = torch.zeros(2, 4, 5, 5)
    t[:, 3, 1:4, 1:4] = 1.0
    assert ood.alphas(t)[0].max() == 255


@pytest.fixture(scope="module")
def model_with_stats(tmp_path_factory):
    from rfnet.embedded import embedded_path
    from rfsynth.make import make

    root = tmp_path_factory.mktemp("ood")
    data = root / "data"
    make(data, 160, size=64, seed=3, splits="train=1", workers=1, progress=False)
    folder = root / "rfnet"
    shutil.copytree(embedded_path("rfnet"), folder)
    assert ood.main(["--rfnet", str(folder), "--data", str(data), "--components", "16"]) == 0
    return folder, data


def test_the_inspector_says_outside_for_hard_matting_and_keeps_the_models_label(model_with_stats):
    from rfnet.dataformat import SkipReport, read_records
    from rfnet.inspect import OUTSIDE, Inspector

    folder, data = model_with_stats
    stats = ood.load(folder)
    assert set(stats) == {"product", "generated", "edges"}
    base, recs, _ = read_records(data, SkipReport())
    r = next(x for x in recs if x["label"] != "Unsuitable")
    product = Image.open(base / r["product"]).convert("RGBA")
    image = Image.open(base / r["image"]).convert("RGB")
    hard = np.asarray(product).copy()
    hard[..., 3] = np.where(hard[..., 3] >= 128, 255, 0)
    hard = Image.fromarray(hard, "RGBA")
    with_stats = Inspector.from_pretrained(folder)
    plain = Inspector.from_pretrained(folder)
    plain.novelty = None
    soft_v, hard_v = with_stats(product, [image], r["caption"])[0], with_stats(hard, [image], r["caption"])[0]
    base_v = plain(hard, [image], r["caption"])[0]
    # the soft-edged product is inside (the image may fall past a threshold set on 32 held-out samples)
    assert soft_v.note is None or "product" not in soft_v.note
    assert hard_v.note.startswith(OUTSIDE) and "matting" in hard_v.note and not hard_v.accepted
    assert hard_v.label == base_v.label and hard_v.probs == pytest.approx(base_v.probs)  # not turned into a defect
