"""Caption tokenizers and encoders that work offline.

The paper's caption encoder is a pretrained Chinese RoBERTa, given here as any transformers
model folder (or hub id when downloads are allowed). For models trained from scratch on a
dataset (the embedded defaults, tests), :func:`build_tokenizer` makes a WordPiece tokenizer from
the dataset's own captions: Chinese characters become single tokens, as in BERT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Caption encoders trained from scratch: BERT-architecture configs by size.
SCRATCH_CAPTION_CONFIGS = {
    "tiny": dict(model_type="bert", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=128, max_position_embeddings=128, type_vocab_size=2),
    "paper": dict(model_type="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2),
}


def build_tokenizer(captions: Iterable[str], vocab_size: int = 2000):
    """A BERT-style WordPiece tokenizer for ``captions``, returned as a transformers fast
    tokenizer. The vocabulary is every character seen (alone and as a ``##`` continuation,
    so no word is ever unknown) plus the most frequent whole words up to ``vocab_size``, ties
    broken alphabetically: the same captions always give the same tokenizer, which a resumed
    training run relies on (tokenizers' own trainer is not deterministic)."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True,
                                            strip_accents=False, clean_text=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for c in captions:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(c or "")))
    chars = sorted({ch for w in words for ch in w})
    vocab = list(SPECIAL) + chars + [f"##{ch}" for ch in chars]
    room = max(0, vocab_size - len(vocab))
    seen = set(vocab)
    ranked = sorted((w for w in words if len(w) > 1 and w not in seen), key=lambda w: (-words[w], w))
    vocab += ranked[:room]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    # [CLS] caption [SEP], as BERT: an empty caption still has tokens to attend to.
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )


def load_tokenizer(path: str | Path, allow_download: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=not allow_download)
