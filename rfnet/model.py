"""RFNet, the multi-modal inspector of section 4.2 (Du et al., ECCV 2024).

    e_o, e_g, e_d, e_s = ImageEncoder(I_o, I_g, I_d, I_s)       one shared encoder, one batched pass
    e_c                = CaptionEncoder(Cap)
    e_f                = FFM^N1(e_o, e_c)                          eq. 3
    h                  = SelfAttention^N2(Concat(e_f, e_g, e_d, e_s))   eq. 4
    p                  = softmax(FC(pool(h)))

Images enter as float tensors in 0..1 at any size (resized here to ``image_size``); depth and
salience are single-channel and are repeated to three channels before the same normalization,
so an ImageNet-pretrained encoder sees them as grey images. The caption enters as token ids of
the caption encoder's tokenizer.

Choices the paper leaves open, made here and kept in the config: feature maps become tokens
(one per position) projected to ``width``; tokens carry a fixed 2-D sine position code and a
learned modality embedding, so that the attention layers know where and from which image each
token comes; the classifier reads the mean of the final tokens.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .labels import label_names

MODALITIES = ("product", "generated", "depth", "salience", "caption")
PRODUCT_INPUTS = ("cutout", "placed")

# hfl/chinese-roberta-wwm-ext, the paper's caption encoder, is a BERT-architecture model.
PAPER_CAPTION_CONFIG = dict(
    model_type="bert", vocab_size=21128, hidden_size=768, num_hidden_layers=12,
    num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
    type_vocab_size=2,
)


@dataclass
class RFNetConfig:
    """Everything needed to rebuild an RFNet; saved as config.json next to the weights."""

    label_set: str = "paper5"
    # "rfnet", or "single_image": a plain timm classifier of the generated image alone, the
    # paper's Table 1 baselines (only use_generated then).
    architecture: str = "rfnet"
    image_backbone: str = "resnet50"
    image_size: int = 384
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # A transformers config as a dict (with "model_type"), so the caption encoder is rebuilt
    # from this file alone; weights come from the safetensors next to it.
    caption_config: dict[str, Any] = field(default_factory=lambda: dict(PAPER_CAPTION_CONFIG))
    caption_max_length: int = 64
    width: int = 384
    num_heads: int = 8
    num_filter_layers: int = 1  # N1
    num_attention_layers: int = 3  # N2
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    # Table 2 ablation switches.
    use_product: bool = True
    use_generated: bool = True
    use_depth: bool = True
    use_salience: bool = True
    use_caption: bool = True
    # The P(Available) at or above which an image is accepted, chosen on validation data for a
    # target precision (rfnet.calibrate); None: accept when Available is the most probable class.
    acceptance_threshold: float | None = None
    acceptance_calibration: dict[str, Any] | None = None  # target, precision, recall, data it came from
    # Oracle measures predicted beside the label while training (rfsynth.measures; empty: none).
    # Only training reads them; an inspector's verdict is the label head's alone.
    aux_targets: tuple[str, ...] = ()
    # What the product input shows: "cutout", the product alone (cropped to its alpha and
    # resized to the input); or "placed", the product on white where it stands in the generated
    # image, on a canvas of the generated image's size, so that its tokens share position codes
    # with the generated image's (the paper's white-background product shot, whose background
    # is inpainted). A "placed" inspector needs the placement wherever it is used.
    product_input: str = "cutout"
    # Inspection averages the probabilities of each sample and of its left-right mirror (the
    # product, image and maps mirrored together; every defect is the same defect in a mirror).
    # Only in eval mode: training sees each sample once. Twice the encoder work at inspection.
    # Only for an inspector trained with mirrors (rfnet.train --hflip): one trained without them
    # calls mirrored one-way-round products damaged, and averaging then hurts (docs/RESULTS.md).
    mirror_average: bool = False
    # The image encoder reads a fourth channel: where the product stands. For the generated
    # image and its depth and salience maps it is the product's alpha at its placement (so the
    # encoder sees the product's outline at full resolution, where a 64-px input leaves it a
    # fraction of one token of the last 2 x 2 map); for the product cutout it is empty. Like
    # product_input "placed", such an inspector needs the placement wherever it is used.
    mask_input: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        return label_names(self.label_set)

    @property
    def image_inputs(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES[:4] if getattr(self, f"use_{m}"))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)  # for readers of the JSON; ignored on load
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RFNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known - {"labels", "_class_name"}
        if unknown:
            raise ValueError(f"unknown RFNet config keys: {sorted(unknown)}")
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("image_mean", "image_std", "aux_targets"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def __post_init__(self):
        label_names(self.label_set)
        if self.architecture not in ("rfnet", "single_image"):
            raise ValueError(f"architecture must be rfnet or single_image, not {self.architecture!r}")
        if self.architecture == "single_image" and self.image_inputs != ("generated",):
            raise ValueError("a single_image classifier reads the generated image only: set "
                             "use_product, use_depth, use_salience and use_caption to False")
        if not self.image_inputs and not self.use_caption:
            raise ValueError("RFNet needs at least one input; every use_* switch is off")
        if self.architecture == "single_image" and self.aux_targets:
            raise ValueError("auxiliary targets are for the rfnet architecture, not single_image")
        if self.architecture == "single_image" and self.mirror_average:
            raise ValueError("mirror_average is for the rfnet architecture, not single_image")
        if self.product_input not in PRODUCT_INPUTS:
            raise ValueError(f"product_input must be one of {', '.join(PRODUCT_INPUTS)}, not {self.product_input!r}")
        if self.mask_input and (self.architecture != "rfnet" or not self.use_generated):
            raise ValueError("mask_input is for the rfnet architecture with the generated image")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")


@dataclass
class RFNetOutput:
    logits: torch.Tensor  # (B, C)
    probs: torch.Tensor  # (B, C), softmax
    p_available: torch.Tensor  # (B,), probs[:, 0]: Available is first in every label set
    aux: torch.Tensor | None = None  # (B, len(config.aux_targets)) when the model has them


def safe_probs(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in float32, safe for non-finite rows. A NaN image (a generator run with guidance
    nan) gives NaN logits; the argmax of NaN probabilities is class 0, Available, so garbage
    would pass. Such a row gets no Available mass instead, spread evenly over the defects."""
    probs = logits.float().softmax(-1)
    bad = ~torch.isfinite(probs).all(-1, keepdim=True)
    none_available = torch.full_like(probs, 1.0 / max(probs.shape[-1] - 1, 1))
    none_available[..., 0] = 0.0
    return torch.where(bad, none_available, probs)


def sincos_2d(h: int, w: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 2-D sine-cosine position code (h*w, dim), as in MAE; works at any map size. timm's
    (columns: sin y, cos y, sin x, cos x; bit-equal to the hand-written code it replaced, the
    trained models depend on that order)."""
    from timm.layers import build_sincos2d_pos_embed

    if dim % 4:
        raise ValueError(f"position code needs a width divisible by 4, got {dim}")
    return build_sincos2d_pos_embed([h, w], dim, interleave_sin_cos=True, device=device).to(dtype)


class FeatureFilter(nn.Module):
    """Feature Filter Module, eq. 3: e_f = Conv(Conv(CA(q=e_o, k=v=e_c)) * Conv(e_o)) + e_o.

    The convolutions are 1x1 over the product's feature map; on tokens (one per map position)
    a 1x1 convolution is the same per-token linear map, which is how it is computed here.
    """

    def __init__(self, width: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(width, num_heads, dropout=dropout, batch_first=True)
        self.conv_attn = nn.Linear(width, width)  # Conv(CA(...))
        self.conv_product = nn.Linear(width, width)  # Conv(e_o)
        self.conv_out = nn.Linear(width, width)  # the outer Conv

    def forward(self, e_o: torch.Tensor, e_c: torch.Tensor, caption_padding: torch.Tensor | None):
        a, _ = self.cross_attn(e_o, e_c, e_c, key_padding_mask=caption_padding, need_weights=False)
        return self.conv_out(self.conv_attn(a) * self.conv_product(e_o)) + e_o


class _Persistent(nn.Module):
    """config.json + model.safetensors for the inspector models."""

    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors, both written atomically."""
        from .fileio import write_json
        from .weights import save_file_atomic

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        save_file_atomic(state, d / "model.safetensors", metadata={"format": "pt", "model": "RFNet"})
        write_json(d / "config.json", {"_class_name": type(self).__name__, **self.config.to_dict()})

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location="cpu"):
        from safetensors.torch import load_file

        from .weights import WeightsNotFoundError

        d = Path(directory)
        cfg_path, w_path = d / "config.json", d / "model.safetensors"
        for p in (cfg_path, w_path):
            if not p.exists():
                raise WeightsNotFoundError(p.name, [d], "train one with `python -m rfnet.train`")
        cfg = RFNetConfig.from_dict(json.loads(cfg_path.read_text()))
        model = (SingleImageClassifier if cfg.architecture == "single_image" else RFNet)(cfg) \
            if cls is _Persistent else cls(cfg)
        model.load_state_dict(load_file(str(w_path), device=str(map_location)))
        return model.eval()

    # ---- pretrained backbones -------------------------------------------------------------
    def load_pretrained_backbones(
        self,
        image_weights: str | Path | None = None,
        caption_weights: str | Path | None = None,
        allow_download: bool = False,
    ) -> list[str]:
        """Pretrained weights into the image and caption encoders; returns what was loaded.

        image_weights: a timm checkpoint file (.safetensors, or .pth/.bin read with
        weights_only=True); with allow_download and no file, timm's hub weights.
        caption_weights: a transformers model folder or hub id (hub only with allow_download).
        """
        from .weights import find_file, load_state_dict

        done = []
        c = self.config
        if hasattr(self, "image_encoder") and (image_weights or allow_download):
            if image_weights:
                path = find_file(image_weights, where_to_get=_timm_hint(c.image_backbone))
                state = load_state_dict(path)
                src = str(path)
            else:
                import timm

                ref = timm.create_model(c.image_backbone, pretrained=True, num_classes=0)
                state, src = ref.state_dict(), f"timm hub: {c.image_backbone}"
            own = self.image_encoder.state_dict()
            if c.mask_input:  # the mask's input channel is not in an RGB checkpoint: it starts at zero
                state, _ = _pad_mask_channel(state, own)
            state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
            head = getattr(self.image_encoder, "pretrained_cfg", {}).get("classifier", "fc")
            missing = sorted(k for k in set(own) - set(state) if not k.startswith(f"{head}."))
            if missing:
                raise ValueError(
                    f"{src} does not fit {c.image_backbone}: {len(missing)} tensors missing "
                    f"(first: {missing[:3]}). Is it a checkpoint of that timm model?"
                )
            self.image_encoder.load_state_dict(state, strict=False)
            done.append(f"image encoder <- {src}")
        if hasattr(self, "caption_encoder") and caption_weights:
            from transformers import AutoModel

            local = Path(caption_weights).expanduser()
            if not local.exists() and not allow_download:
                from .weights import WeightsNotFoundError

                raise WeightsNotFoundError(
                    str(caption_weights), [local.resolve()],
                    f"https://huggingface.co/{caption_weights} (a transformers model folder); "
                    "or allow downloads",
                )
            ref = AutoModel.from_pretrained(str(caption_weights), local_files_only=not allow_download)
            missing, _ = self.caption_encoder.load_state_dict(ref.state_dict(), strict=False)
            missing = [k for k in missing if "pooler" not in k]
            if missing:
                raise ValueError(f"{caption_weights} does not fit the caption encoder: {missing[:3]}")
            done.append(f"caption encoder <- {caption_weights}")
        return done


def with_mask_input(model: "RFNet") -> "RFNet":
    """A copy of ``model`` with ``mask_input`` on: the image encoder's first convolution gets a
    fourth input channel whose weights are zero, so the copy gives the model's outputs exactly
    until training moves them."""
    cfg = RFNetConfig.from_dict({**model.config.to_dict(), "mask_input": True})
    new = RFNet(cfg)
    state, widened = _pad_mask_channel(model.state_dict(), new.state_dict())
    if len(widened) != 1:
        raise ValueError(f"cannot add a mask channel to {cfg.image_backbone}: expected one first convolution "
                         f"to widen, found {widened[:3]}")
    new.load_state_dict(state)  # strict: any other difference in shape is refused here
    return new.train(model.training)


def _pad_mask_channel(state: dict, want: dict) -> tuple[dict, list[str]]:
    """``state`` with each convolution weight that ``want`` has with one more input channel
    (the mask's) padded with a zero channel last; and the names of those padded."""
    out, padded = dict(state), []
    for k, v in state.items():
        w = want.get(k)
        if w is not None and v.dim() == 4 and w.dim() == 4 and w.shape[0] == v.shape[0] \
                and w.shape[1] == v.shape[1] + 1 and w.shape[2:] == v.shape[2:]:
            out[k] = torch.cat([v, v.new_zeros(v.shape[0], 1, *v.shape[2:])], 1)
            padded.append(k)
    return out, padded


def create_model(config: "RFNetConfig"):
    """A new model of ``config.architecture`` with random weights."""
    return (SingleImageClassifier if config.architecture == "single_image" else RFNet)(config)


def load_model(directory: str | Path, map_location="cpu"):
    """An RFNet or a single-image classifier, whichever the folder's config.json describes."""
    return _Persistent.from_pretrained(directory, map_location)


class _FeatureExtractor(nn.Module):
    """A timm model's forward_features as a module's forward (what torch.fx traces)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone.forward_features(x)


class RFNet(_Persistent):
    def __init__(self, config: RFNetConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = RFNetConfig()
        elif isinstance(config, dict):
            config = RFNetConfig.from_dict(config)
        self.config = config
        c = config
        w = c.width
        if c.image_inputs:
            import timm

            # Random weights here; pretrained ones come from load_pretrained_backbones().
            self.image_encoder = timm.create_model(
                c.image_backbone, pretrained=False, num_classes=0, global_pool="",
                in_chans=4 if c.mask_input else 3,
            )
            self.image_proj = nn.Linear(self.image_encoder.num_features, w)
            self.register_buffer("mean", torch.tensor(c.image_mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(c.image_std).view(1, 3, 1, 1), persistent=False)
        if c.use_caption:
            from transformers import AutoConfig, AutoModel

            cfg = dict(c.caption_config)
            tcfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
            self.caption_encoder = AutoModel.from_config(tcfg, add_pooling_layer=False) \
                if tcfg.model_type in ("bert", "roberta", "xlm-roberta") else AutoModel.from_config(tcfg)
            self.caption_proj = nn.Linear(tcfg.hidden_size, w)
        if c.use_product and c.use_caption:
            self.filters = nn.ModuleList(
                FeatureFilter(w, c.num_heads, c.dropout) for _ in range(c.num_filter_layers)
            )
        # One learned vector per token source: product (after the FFM), generated, depth,
        # salience, and caption (used as tokens of its own only when the product is dropped).
        self.modality_embed = nn.Parameter(torch.zeros(len(MODALITIES), w))
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.attention = nn.ModuleList(
            nn.TransformerEncoderLayer(
                w, c.num_heads, int(w * c.mlp_ratio), c.dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            for _ in range(c.num_attention_layers)
        )
        self.norm = nn.LayerNorm(w)
        self.classifier = nn.Linear(w, len(c.labels))
        if c.aux_targets:
            self.add_aux_head()

    def add_aux_head(self) -> None:
        """A linear head for ``config.aux_targets`` on the pooled features (fine-tuning a model
        that had none adds it with fresh weights)."""
        self.aux_head = nn.Linear(self.config.width, len(self.config.aux_targets))

    # ---- encoders -------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images (B, 1 or 3, H, W) in 0..1, got {tuple(x.shape)}")
        s = self.config.image_size
        if x.shape[-2:] != (s, s):  # resized as the training data was (rfnet.data)
            if x.shape[1] == 3:  # images: Pillow's bicubic there
                from .images import resize_rgb

                x = resize_rgb(x, (s, s)).to(x.dtype)
            else:  # maps: bilinear there
                x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # single-channel maps seen as grey images
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def _prepare_mask(self, m: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """The fourth channel, in -1..1: the product's mask resized as maps are, or empty (-1)."""
        s = self.config.image_size
        if m is None:
            return torch.full((like.shape[0], 1, s, s), -1.0, dtype=like.dtype, device=like.device)
        if m.dim() != 4 or m.shape[1] != 1 or m.shape[0] != like.shape[0]:
            raise ValueError(f"expected a product mask ({like.shape[0]}, 1, H, W) in 0..1, one per image, "
                             f"got {tuple(m.shape)}")
        m = m.to(like.device).float()
        if m.shape[-2:] != (s, s):
            m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return (m * 2 - 1).to(like.dtype)

    def encode_images(self, images: list[torch.Tensor],
                      masks: list[torch.Tensor | None] | None = None) -> list[torch.Tensor]:
        """All images through the shared encoder in ONE batched pass; a token sequence each.
        ``masks``: with ``mask_input``, each image's fourth channel (None: empty)."""
        b = images[0].shape[0]
        prepared = [self._prepare(i.float()) for i in images]
        if self.config.mask_input:
            masks = masks or [None] * len(images)
            prepared = [torch.cat([x, self._prepare_mask(m, x)], dim=1) for x, m in zip(prepared, masks)]
        x = torch.cat(prepared, dim=0)
        x = x.to(self.image_proj.weight.dtype)
        if getattr(self, "_channels_last", False):
            x = x.contiguous(memory_format=torch.channels_last)
        fast = getattr(self, "_fast_encoder", None)
        if fast is None:
            f = self.image_encoder.forward_features(x)
        else:  # inference path (to_inference): folded batch norm, chunks of images
            n = self._encoder_chunk or x.shape[0]
            f = torch.cat([fast(c) for c in x.split(n)]) if x.shape[0] > n else fast(x)
        if f.dim() == 4:  # CNN map (N, C, h, w) -> tokens with a 2-D position code
            h, wd = f.shape[-2:]
            tok = self.image_proj(f.flatten(2).transpose(1, 2))
            tok = tok + sincos_2d(h, wd, tok.shape[-1], tok.device, tok.dtype)
        else:  # ViT-like (N, L, C): timm already added its own position embedding
            tok = self.image_proj(f)
        return list(tok.split(b, dim=0))

    def encode_caption(self, input_ids, attention_mask):
        out = self.caption_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.caption_proj(out.last_hidden_state)

    # ---- forward --------------------------------------------------------------------------
    def forward(
        self,
        product: torch.Tensor | None = None,
        generated: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        salience: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> RFNetOutput:
        """``mask``: (B, 1, H, W), the product's alpha where it stands in the generated image;
        only for an RFNet with ``mask_input``."""
        c = self.config
        given = dict(product=product, generated=generated, depth=depth, salience=salience)
        for name in c.image_inputs:
            if given[name] is None:
                raise ValueError(f"this RFNet uses the {name} image; pass {name}=...")
        if c.mask_input:
            if mask is None:
                raise ValueError("this RFNet reads where the product stands (mask_input); pass mask=..., "
                                 "the product's alpha at its placement on a canvas of the image's size")
            given["mask"] = mask
        if c.use_caption and input_ids is None:
            raise ValueError("this RFNet uses the caption; pass input_ids (and attention_mask)")
        if not (c.mirror_average and not self.training):
            logits, aux = self._logits(given, input_ids, attention_mask)
            probs = safe_probs(logits)
            return RFNetOutput(logits=logits, probs=probs, p_available=probs[:, 0], aux=aux)
        # One pass over the batch and its mirror (augment.hflip_batch: the inputs that show the
        # scene, mirrored together, as in training), stacked; then the mean of the two softmaxes.
        from .augment import hflip_batch

        n = (given[c.image_inputs[0]] if c.image_inputs else input_ids).shape[0]
        mirrored = hflip_batch(given, torch.ones(n, dtype=torch.bool))
        both = {k: None if t is None else torch.cat([t, mirrored[k]]) for k, t in given.items()}
        ids, att = (None if t is None else torch.cat([t, t]) for t in (input_ids, attention_mask))
        logits, aux = self._logits(both, ids, att)
        p = safe_probs(logits)
        probs = (p[:n] + p[n:]) / 2
        # logits whose softmax is the averaged probabilities, for callers that take a softmax
        logits = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
        aux = None if aux is None else (aux[:n] + aux[n:]) / 2
        return RFNetOutput(logits=logits, probs=probs, p_available=probs[:, 0], aux=aux)

    def _logits(self, given: dict, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(class logits, auxiliary measures or None) of one pass; inputs already checked."""
        c = self.config
        tokens: dict[str, torch.Tensor] = {}
        if c.image_inputs:
            # the product's mask goes with the images of the scene, not with the cutout
            masks = [None if n == "product" else given.get("mask") for n in c.image_inputs]
            encoded = self.encode_images([given[n] for n in c.image_inputs], masks)
            tokens = dict(zip(c.image_inputs, encoded))
        pad = None
        if c.use_caption:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            if not bool(attention_mask.any(1).all()):
                # A caption with no tokens would leave attention with nothing to attend to
                # (NaN); let it attend to its first (padding) position instead.
                attention_mask = attention_mask.clone()
                attention_mask[~attention_mask.any(1), 0] = 1
            e_c = self.encode_caption(input_ids, attention_mask)
            pad = attention_mask == 0
            if c.use_product:
                for ffm in self.filters:  # eq. 3, N1 times
                    tokens["product"] = ffm(tokens["product"], e_c, pad)
            else:
                tokens["caption"] = e_c

        seq, keep = [], []
        for i, name in enumerate(MODALITIES):
            if name not in tokens:
                continue
            t = tokens[name] + self.modality_embed[i].to(tokens[name].dtype)
            seq.append(t)
            m = torch.ones(t.shape[:2], dtype=torch.bool, device=t.device)
            keep.append(~pad if name == "caption" else m)
        h = torch.cat(seq, dim=1)  # eq. 4: Concat(e_f, e_g, e_d, e_s)
        keep_mask = torch.cat(keep, dim=1)
        key_pad = None if bool(keep_mask.all()) else ~keep_mask
        for layer in self.attention:
            h = layer(h, src_key_padding_mask=key_pad)
        h = self.norm(h)
        km = keep_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * km).sum(1) / km.sum(1)
        logits = self.classifier(pooled)
        aux = self.aux_head(pooled) if hasattr(self, "aux_head") else None
        return logits, aux

    def to_inference(self, dtype: torch.dtype = torch.float32, channels_last: bool | None = None,
                     fold_bn: bool = True, encoder_chunk: int | None = 4,
                     compile: bool = False) -> "RFNet":
        """Make this model fast for inspection (never for training or saving afterwards).

        dtype: bfloat16 runs several times faster than float32 on CPUs with AMX or
          AVX512-BF16 and on tensor cores, with the same verdicts (docs/BENCHMARKS.md).
        channels_last: convolutions in the memory layout oneDNN and cuDNN prefer (default:
          on for reduced precision).
        fold_bn: batch norm folded into the preceding convolution (torch.fx), when the
          backbone can be traced; the stored weights are unchanged.
        encoder_chunk: at most this many images per encoder call; large batches thrash the
          CPU's caches (the default, 4 images: one sample, is the fastest in docs/BENCHMARKS.md). None: one call.
        compile: torch.compile the encoder (tens of seconds once, faster afterwards).
        """
        self.eval()
        fast = None
        if fold_bn and hasattr(self, "image_encoder"):
            try:  # fold in float32 (a deep copy), then cast
                from torch.fx.experimental.optimization import fuse

                fast = fuse(_FeatureExtractor(self.image_encoder).float())
            except Exception as e:  # noqa: BLE001 - tracing is an optimisation, not a need
                import logging

                logging.getLogger(__name__).info("batch norm not folded (%s); running as is", e)
        self.to(dtype)
        if hasattr(self, "mean"):  # normalisation stays in float32, before the cast
            self.mean, self.std = self.mean.float(), self.std.float()
        self._channels_last = dtype != torch.float32 if channels_last is None else channels_last
        self._encoder_chunk = encoder_chunk
        if not hasattr(self, "image_encoder"):
            return self
        fast = _FeatureExtractor(self.image_encoder) if fast is None else fast.to(dtype)
        if self._channels_last:
            self.image_encoder.to(memory_format=torch.channels_last)
            fast.to(memory_format=torch.channels_last)
        if compile:
            fast = torch.compile(fast)
        object.__setattr__(self, "_fast_encoder", fast)  # not a submodule: not in state_dict
        return self

class SingleImageClassifier(_Persistent):
    """The paper's Table 1 baselines: a timm classifier (ResNet, ResNeXt, ViT, ...) of the
    generated image alone. Same inputs, outputs and files as RFNet, so the same trainer,
    evaluation and inspector serve it."""

    def __init__(self, config: RFNetConfig | dict):
        super().__init__()
        if isinstance(config, dict):
            config = RFNetConfig.from_dict(config)
        self.config = config
        import timm

        kw = {"img_size": config.image_size} if "vit" in config.image_backbone else {}
        self.image_encoder = timm.create_model(config.image_backbone, pretrained=False,
                                               num_classes=len(config.labels), **kw)
        self.register_buffer("mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)

    _prepare = RFNet._prepare

    def forward(self, generated: torch.Tensor | None = None, **ignored) -> RFNetOutput:
        if generated is None:
            raise ValueError("pass generated=... (the image to classify)")
        logits = self.image_encoder(self._prepare(generated.float()).to(self.mean.dtype))
        probs = safe_probs(logits)
        return RFNetOutput(logits=logits, probs=probs, p_available=probs[:, 0])

    def to_inference(self, dtype: torch.dtype = torch.float32, **ignored):
        return self.eval().to(dtype)


def _timm_hint(name: str) -> str:
    return (
        f"https://huggingface.co/timm/{name}.a1_in1k or another timm '{name}' checkpoint "
        "(model.safetensors or pytorch_model.bin)"
    )
