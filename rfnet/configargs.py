"""Training configurations as dataclasses, parsed from the command line by transformers'
HfArgumentParser (one flag per field, as diffusers' and transformers' training scripts do).
The CLIs parse them; the ComfyUI nodes build them directly, with no argv list in between."""
from __future__ import annotations

from dataclasses import MISSING, field, fields

from .errors import InputError


def arg(default=MISSING, help: str = "", choices=None, factory=None):
    """A dataclass field with its command-line help and choices (HfArgumentParser passes the
    metadata to argparse's add_argument). No default and no factory: a required flag."""
    meta = {"help": help} if help else {}
    if choices is not None:
        meta["choices"] = choices
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta) if default is not MISSING else field(metadata=meta)


def parse_config(cls, argv=None, prog: str | None = None, description: str | None = None,
                 exit_on_error: bool = True):
    """``argv`` parsed into a ``cls``. ``exit_on_error=False`` (library callers): a bad or
    unknown argument raises InputError instead of argparse's SystemExit."""
    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        def error(self, message):
            if exit_on_error:
                super().error(message)
            raise InputError(f"{self.prog}: {message}")

    p = Parser(cls, prog=prog, description=description)
    cfg, rest = p.parse_args_into_dataclasses(argv, return_remaining_strings=True, look_for_args_file=False)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    return cfg


def check_choices(cfg, cls=None) -> None:
    """The command line's choice checks, for a configuration built in code (a node) too;
    ``cls`` when ``cfg`` is another object with the same attributes (an argparse Namespace)."""
    for f in fields(cls or cfg):
        v = getattr(cfg, f.name)
        choices = f.metadata.get("choices")
        if choices is None or v is None:
            continue
        for x in v if isinstance(v, list) else [v]:
            if x not in choices:
                raise InputError(f"--{f.name} must be one of {', '.join(map(str, choices))}, not {x!r}")
