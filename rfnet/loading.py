"""Loading a trained RFNet folder: checked first, so that a damaged one is refused in one line.

    folder/config.json, model.safetensors (and tokenizer/ when the model reads captions)

What rfnet.evaluate, rfnet.inspect, rfnet.train (``--init_from``) and RFFT's judge all load with.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError
from .model import load_model


def check_model_folder(folder: str | Path, what: str = "model folder"):
    """The folder's RFNetConfig, after checking, in one line each, that config.json parses
    and model.safetensors is complete: a damaged folder is refused before anything loads."""
    from safetensors import safe_open

    from .model import RFNetConfig

    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{what} {d}: no such folder (an RFNet folder holds config.json and "
                         "model.safetensors: rfnet.train's --output_dir)")
    cfg_path, w_path = d / "config.json", d / "model.safetensors"
    for f in (cfg_path, w_path):
        if not f.is_file():
            raise InputError(f"{what} {d}: no {f.name} there (not an RFNet folder? train one "
                             "with python -m rfnet.train)")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, not an object")
        cfg = RFNetConfig.from_dict(raw)
    except (ValueError, TypeError, KeyError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise InputError(f"{cfg_path} is not a valid RFNet config ({e})") from None
    try:
        with safe_open(str(w_path), "pt") as f:  # reads the header; checks the file's length
            f.keys()
    except Exception as e:  # noqa: BLE001 - SafetensorError is not exported under one name
        raise InputError(f"{w_path} is damaged or truncated ({str(e).splitlines()[0]}); "
                         "copy it again or retrain") from None
    return cfg


def load_model_and_tokenizer(folder: str | Path, allow_download: bool = False):
    """The model and its tokenizer; a damaged folder is an InputError naming the file."""
    from .text import load_tokenizer

    check_model_folder(folder)
    try:
        model = load_model(folder)
    except RuntimeError as e:  # tensors of other shapes or names than config.json describes
        raise InputError(f"{Path(folder) / 'model.safetensors'} does not fit its config.json "
                         f"({str(e).splitlines()[0]})") from None
    tok = None
    if model.config.use_caption:
        tdir = Path(folder) / "tokenizer"
        if not tdir.exists():
            from .weights import WeightsNotFoundError

            raise WeightsNotFoundError("tokenizer/", [Path(folder)],
                                       "the tokenizer folder that rfnet.train saves next to the model")
        try:
            tok = load_tokenizer(tdir, allow_download)
        except (OSError, ValueError, TypeError) as e:
            raise InputError(f"{tdir} is not a readable tokenizer folder ({str(e).splitlines()[0]})") from None
    return model, tok
