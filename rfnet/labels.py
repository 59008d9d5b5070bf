"""Label sets of RFNet and the parsing of labels as people write them.

Three sets, as in the paper and the RF1M release:

- ``paper5``: the paper's five cases (section 4.1).
- ``rf1m6``: RF1M's six labels, in the order of the RF1M README (adds Unsuitable: a broken
  product cutout). Numbered labels in RF1M's ``label.txt`` use this order.
- ``coarse``: Available / Unavailable.

Every set puts Available at index 0, so P(Available) is always ``probs[:, 0]``.
"""
from __future__ import annotations

import re

AVAILABLE = "Available"
UNAVAILABLE = "Unavailable"
UNSUITABLE = "Unsuitable"
SPACE = "Space Mismatch"
SIZE = "Size Mismatch"
INDISTINCT = "Indistinctiveness"
SHAPE = "Shape Hallucination"

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "paper5": (AVAILABLE, SPACE, SIZE, INDISTINCT, SHAPE),
    "rf1m6": (AVAILABLE, UNSUITABLE, SPACE, SIZE, INDISTINCT, SHAPE),
    "coarse": (AVAILABLE, UNAVAILABLE),
}

# Spellings seen in the wild (RF1M, the paper's figures, hand-made label files).
_ALIASES = {
    "available": AVAILABLE,
    "ava": AVAILABLE,
    "ok": AVAILABLE,
    "unavailable": UNAVAILABLE,
    "unava": UNAVAILABLE,
    "unsuitable": UNSUITABLE,
    "spacemismatch": SPACE,
    "space": SPACE,
    "sizemismatch": SIZE,
    "size": SIZE,
    "indistinctiveness": INDISTINCT,
    "indistinctive": INDISTINCT,
    "indistinct": INDISTINCT,
    "shapehallucination": SHAPE,
    "shape": SHAPE,
    "hallucination": SHAPE,
}


class UnknownLabelError(ValueError):
    pass


def label_names(label_set: str) -> tuple[str, ...]:
    try:
        return LABEL_SETS[label_set]
    except KeyError:
        raise ValueError(
            f"unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}"
        ) from None


def canonical(label: str | int, numbering: str = "rf1m6") -> str:
    """The canonical name of a label written as a name (any case, spaces, underscores or
    hyphens) or as a number in the order of ``numbering``."""
    if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
        idx = int(label)
        names = label_names(numbering)
        if not 0 <= idx < len(names):
            raise UnknownLabelError(
                f"label number {idx} is outside 0..{len(names) - 1} of the {numbering} set "
                f"({', '.join(names)})"
            )
        return names[idx]
    key = re.sub(r"[\s_\-]+", "", str(label)).lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnknownLabelError(
        f"unknown label {label!r}; expected one of {', '.join(LABEL_SETS['rf1m6'])} "
        "(any case, spaces or underscores) or a number 0-5 in that order"
    )


def to_index(label: str, label_set: str) -> int | None:
    """Index of a canonical label in ``label_set``; coarse folds every defect into
    Unavailable. None when the set has no place for it (Unsuitable in paper5)."""
    names = label_names(label_set)
    if label_set == "coarse":
        return 0 if label == AVAILABLE else 1
    return names.index(label) if label in names else None
