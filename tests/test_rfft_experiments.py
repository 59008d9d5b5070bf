"""scripts/rfft_experiments.py names each run's folder from its settings: every stage (train,
evaluate, fig6, table) finds a run by that name and skips work already done, so two settings
must never share a folder, and a default setting must keep the name earlier rounds wrote."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "rfft_experiments", Path(__file__).resolve().parents[1] / "scripts" / "rfft_experiments.py")
exp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exp)


def test_default_settings_keep_the_names_of_earlier_rounds():
    assert [exp.name_of(c, b) for c, b in (("original", 0), ("none", 0), ("cc", 0.1), ("kl", 1.0))] == \
        ["original", "none", "cc_b0.1", "kl_b1"]
    assert exp.name_of("cc", 1.0, "wall_colour") == "cc_b1+wall_colour"
    assert exp.name_of("cc", 1.0, steps=exp.STEPS, lr=exp.LR, rfnet="embedded") == "cc_b1"


def test_each_setting_that_changes_training_gets_its_own_folder():
    names = [exp.name_of("cc", 0.1), exp.name_of("cc", 0.1, lr=1e-3), exp.name_of("cc", 0.1, steps=450),
             exp.name_of("cc", 0.1, rfnet="runs/rfnet_v3"), exp.name_of("cc", 0.1, lr=1e-3, steps=450, rfnet="x/v3")]
    assert names == ["cc_b0.1", "cc_b0.1@lr0.001", "cc_b0.1@450steps", "cc_b0.1~rfnet_v3", "cc_b0.1@lr0.001@450steps~v3"]


def test_untrained_configurations_are_one_run_whatever_the_training_settings():
    # the original and the negative prompt train nothing: their images are the same in every round
    for c in ("original", "negprompt"):
        assert {exp.name_of(c, 0, lr=1e-3, steps=450, rfnet="runs/rfnet_v3"), exp.name_of(c, 0)} == {c}
