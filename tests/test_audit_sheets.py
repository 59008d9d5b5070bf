"""scripts/audit_oracle.py: the annotator's legend, shown on every audit sheet, is whole at any
sheet width (it once had a fixed height, and wide text ran off its bottom edge)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location(
    "audit_oracle", Path(__file__).resolve().parents[1] / "scripts" / "audit_oracle.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


@pytest.mark.parametrize("width", [360, 700, 1400])
def test_every_reference_swatch_is_whole_on_the_legend(width):
    img = np.asarray(audit._legend(width).convert("RGB"))
    assert img.shape[1] == width
    assert (img[-3:] == 255).all()  # a white margin below the last row: nothing cut off
    for name, ref in audit.REFERENCES.items():
        hit = (img == np.array(ref["colour"], dtype=np.uint8)).all(axis=-1)
        rows, cols = np.nonzero(hit)
        assert len(rows) >= 15 * 15, f"the {name} swatch is missing or cut"
        assert rows.max() - rows.min() >= 15 and cols.max() - cols.min() >= 15  # a whole square
