"""A hostile-but-fair user's corpus of bad input for training: ``python -m rfft.train``,
``python -m rfsynth.make``, the RFFT Train node and the Feedback node.

Every case is built here, by code. Each asserts the message a user reads (a key phrase), the
exit code (2 for a CLI's refusal, one line, no traceback) and that nothing else was lost: no
output folder for a refused run, the dataset already there untouched, the last good
checkpoint still loading, each step once in metrics.csv, nothing written outside the output
folder. No case may end in SystemExit inside a node: in ComfyUI that ends the worker thread and
no later prompt runs.
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pack_loader import import_pack

from rfft import train as rtrain
from rfft.generate import EXAMPLES
from rfnet import checkpoints
from rfnet.errors import InputError
from rfsynth import make as rmake

ROOT = Path(__file__).resolve().parents[1]
PACK = import_pack()
# diffusers and transformers give their loggers a handler on the sys.stderr of the moment they
# first log; made now, it is pytest's, not a capsys stream that a later test finds closed
for _lib in ("diffusers", "transformers"):
    __import__(f"{_lib}.utils.logging", fromlist=["get_logger"]).get_logger(_lib)
host = sys.modules["reliable_ad_under_test.nodes.host"]
M = PACK.NODE_CLASS_MAPPINGS
PROMPTS = [{"prompt": "a {product} on a marble table, beige wall", "negative_prompt": "", "image_scale": 0.5}]
# the cheapest run that still trains: 2 denoising steps, the gradient at the last
CHEAP = ["--num_inference_steps", "2", "--grad_steps_window", "1", "--learning_rate", "1e-3", "--seed", "3"]


@pytest.fixture(autouse=True)
def cli_logging_undone():
    """main() configures logging (basicConfig) on the stderr that capsys swaps in; left in place,
    a later test's log line would go to that closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ---------------------------------------------------------------------------------------------
# Building the corpus
# ---------------------------------------------------------------------------------------------
def products_dir(root: Path, *, good: int = 1, corrupt: int = 0) -> Path:
    """A product folder: ``good`` example cutouts and ``corrupt`` files that only look like images."""
    d = root / "products"
    d.mkdir(parents=True, exist_ok=True)
    for n in ("05_perfume.png", "00_lipstick.png")[:good]:
        shutil.copy(EXAMPLES / "products" / n, d / n)
    for i in range(corrupt):
        (d / f"broken_{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    return d


def prompts_file(root: Path, text: str | None = None) -> Path:
    p = root / "prompts.json"
    p.write_text(json.dumps(PROMPTS) if text is None else text)
    return p


def truncate(path: Path, keep: int = 1000) -> None:
    with open(path, "r+b") as f:
        f.truncate(keep)


def garbage_copy(src: Path, dst: Path, rel: str, how: str) -> Path:
    """A copy of the model folder ``src`` with the file ``rel`` made garbage (``json``: not
    JSON; ``truncate``: cut short, as an interrupted download)."""
    shutil.copytree(src, dst)
    f = dst / rel
    if how == "json":
        f.write_text("{ this is not json")
    else:
        truncate(f)
    return dst


def run_cli(main, argv, capsys) -> tuple[int, str]:
    """``main(argv)`` in-process; its exit code and its stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


def assert_one_line_refusal(code, err, prog, phrase):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(lines) == 1 and phrase in lines[0], err


def metric_steps(out: Path) -> list[int]:
    with open(out / "metrics.csv") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def state_of(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes: what 'untouched' means."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# rfft.train: refused before any model loads (one line, exit 2, no output folder)
# ---------------------------------------------------------------------------------------------
def _no_products(tmp):
    return ["--products", str(products_dir(tmp / "empty", good=0))]


def _only_corrupt_products(tmp):
    return ["--products", str(products_dir(tmp / "bad", good=0, corrupt=2))]


def _a_file_as_generator(tmp):
    (tmp / "sd15.safetensors").write_bytes(b"\0" * 64)
    return ["--pretrained_model_name_or_path", str(tmp / "sd15.safetensors")]


def _empty_generator_folder(tmp):
    (tmp / "gen").mkdir()
    return ["--pretrained_model_name_or_path", str(tmp / "gen")]


EARLY = [
    # (id, argv builder, key phrase)
    ("checkpointing_steps=0", lambda t: ["--checkpointing_steps", "0"], "--checkpointing_steps must be at least 1"),
    ("batch=0", lambda t: ["--train_batch_size", "0"], "--train_batch_size must be at least 1"),
    ("max_train_steps<0", lambda t: ["--max_train_steps", "-3"], "--max_train_steps must be at least 1"),
    ("accumulation=0", lambda t: ["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1"),
    ("max_steps_this_run=0", lambda t: ["--max_steps_this_run", "0"], "--max_steps_this_run must be at least 1"),
    ("lr=nan", lambda t: ["--learning_rate", "nan"], "--learning_rate must be a finite number"),
    ("lr<0", lambda t: ["--learning_rate=-1e-5"], "--learning_rate must be positive"),
    ("beta=inf", lambda t: ["--beta", "inf"], "--beta must be a finite number"),
    ("beta<0", lambda t: ["--beta", "-0.5"], "--beta must be 0 or more"),
    ("window>steps", lambda t: ["--num_inference_steps", "4", "--grad_steps_window", "5"],
     "--grad_steps_window (5) must not exceed --num_inference_steps (4)"),
    ("step_in_backward+accumulation", lambda t: ["--optimizer", "adamw_8bit", "--step_in_backward",
                                                 "--gradient_accumulation_steps", "2"],
     "--step_in_backward needs --gradient_accumulation_steps 1"),
    ("missing rfnet", lambda t: ["--rfnet", str(t / "no_rfnet")], "no_rfnet: no config.json there"),
    ("missing controlnet", lambda t: ["--controlnet_model_name_or_path", str(t / "no_cn")], "no_cn: no config.json"),
    ("embedded-rfft not shipped", lambda t: ["--controlnet_model_name_or_path", "embedded-rfft"],
     "--controlnet_model_name_or_path embedded-rfft: config.json, diffusion_pytorch_model.safetensors missing"),
    ("missing generator", lambda t: ["--pretrained_model_name_or_path", str(t / "no_gen")], "no_gen: not found"),
    ("generator is a file", _a_file_as_generator, "sd15.safetensors is a file"),
    ("empty generator folder", _empty_generator_folder, "model_index.json is missing; not a diffusers SD1.5 folder"),
    ("no product image", _no_products, "no usable product image (the folder has no image file)"),
    ("only corrupt products", _only_corrupt_products, "broken_0.png"),
    ("missing products folder", lambda t: ["--products", str(t / "nowhere")], "not a folder of product images"),
    ("prompts not JSON", lambda t: ["--prompts", str(prompts_file(t, "[{oops"))], "cannot read the prompt config"),
    ("prompts not a list", lambda t: ["--prompts", str(prompts_file(t, "42"))], "expected a JSON list"),
]


@pytest.mark.parametrize("build,phrase", [c[1:] for c in EARLY], ids=[c[0] for c in EARLY])
def test_rfft_train_refuses_early_in_one_line(tmp_path, capsys, build, phrase):
    out = tmp_path / "run"
    argv = ["--output_dir", str(out), "--products", str(products_dir(tmp_path)),
            "--prompts", str(prompts_file(tmp_path)), *build(tmp_path)]
    code, err = run_cli(rtrain.main, argv, capsys)
    assert_one_line_refusal(code, err, "python -m rfft.train", phrase)
    assert not out.exists()  # nothing started: no folder, no args.json, no checkpoint


def test_rfft_train_bad_flag_type_is_argparse_exit_2(tmp_path, capsys):
    code, err = run_cli(rtrain.main, ["--output_dir", str(tmp_path / "o"), "--max_train_steps", "many"], capsys)
    assert code == 2 and "invalid int value: 'many'" in err and "Traceback" not in err
    # the library parser the node uses raises instead of exiting
    with pytest.raises(InputError, match="invalid int value"):
        rtrain.parse_args(["--output_dir", "o", "--max_train_steps", "many"], exit_on_error=False)
    with pytest.raises(InputError, match="required: --output_dir"):
        rtrain.parse_args([], exit_on_error=False)


# Folders that exist but hold garbage: found only when loading, still one line naming them
# (the loader's own message where it has one, else "cannot load it")
GARBAGE = [
    ("rfnet config not JSON", "--rfnet", "rfnet", "config.json", "json", "config.json"),
    ("rfnet weights truncated", "--rfnet", "rfnet", "model.safetensors", "truncate", "model.safetensors"),
    ("controlnet config not JSON", "--controlnet_model_name_or_path", "controlnet", "config.json", "json",
     "cannot load it"),
    ("controlnet weights truncated", "--controlnet_model_name_or_path", "controlnet",
     "diffusion_pytorch_model.safetensors", "truncate", "cannot load it"),
    ("unet weights truncated", "--pretrained_model_name_or_path", "generator",
     "unet/diffusion_pytorch_model.safetensors", "truncate", "cannot load it"),
]


@pytest.mark.parametrize("flag,what,rel,how,phrase", [c[1:] for c in GARBAGE], ids=[c[0] for c in GARBAGE])
def test_rfft_train_names_a_garbage_model_folder(tmp_path, capsys, tiny_generator, flag, what, rel, how, phrase):
    from rfnet.embedded import embedded_path

    src = {"rfnet": embedded_path("rfnet"), "controlnet": tiny_generator / "controlnet", "generator": tiny_generator}[what]
    bad = garbage_copy(src, tmp_path / f"bad_{what}", rel, how)
    gen = bad if what == "generator" else tiny_generator
    argv = ["--output_dir", str(tmp_path / "run"), "--products", str(products_dir(tmp_path)),
            "--prompts", str(prompts_file(tmp_path)), "--pretrained_model_name_or_path", str(gen)]
    if what != "generator":
        argv += [flag, str(bad)]
    code, err = run_cli(rtrain.main, argv, capsys)
    assert_one_line_refusal(code, err, "python -m rfft.train", phrase)
    assert f"error: {flag}" in err and str(bad) in err
    assert not (tmp_path / "run" / "args.json").exists() and not list((tmp_path / "run").glob("checkpoint-*"))


# ---------------------------------------------------------------------------------------------
# rfft.train: resume, broken checkpoints, non-finite loss (a few real steps of the tiny model)
# ---------------------------------------------------------------------------------------------
def _train(tmp, gen, out, *extra) -> int:
    argv = ["--pretrained_model_name_or_path", str(gen), "--products", str(products_dir(tmp)),
            "--prompts", str(prompts_file(tmp)), "--output_dir", str(out), *CHEAP, *extra]
    return rtrain.main(argv)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(next(folder.glob("*.safetensors"))))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory, tiny_generator):
    """A finished 2-step run, a checkpoint after each step: the run a broken resume must redo."""
    tmp = tmp_path_factory.mktemp("two_steps")
    assert _train(tmp, tiny_generator, tmp / "run", "--max_train_steps", "2", "--checkpointing_steps", "1") == 0
    assert metric_steps(tmp / "run") == [1, 2]
    return tmp / "run"


def test_resume_skips_a_truncated_latest_and_a_stray_folder(tmp_path, tiny_generator, two_steps, caplog):
    """checkpoint-2 truncated, a checkpoint-foo/ beside it: resume warns, naming both, takes
    checkpoint-1, redoes step 2 to the same weights, and metrics.csv has each step once."""
    out = tmp_path / "run"
    shutil.copytree(two_steps, out)
    shutil.rmtree(out / "controlnet")
    truncate(out / "checkpoint-2" / "model.safetensors")
    (out / "checkpoint-foo").mkdir()
    (out / "checkpoint-foo" / "notes.txt").write_text("mine")
    with caplog.at_level("WARNING", logger="rfft.train"):
        assert _train(tmp_path, tiny_generator, out, "--max_train_steps", "2", "--checkpointing_steps", "1",
                      "--resume_from_checkpoint", "latest") == 0
    assert "ignoring checkpoint-foo" in caplog.text
    assert "skipped checkpoint-2 (model.safetensors is truncated (1000 of" in caplog.text
    assert _same(_weights(out / "controlnet"), _weights(two_steps / "controlnet"))
    assert metric_steps(out) == [1, 2]
    assert (out / "checkpoint-foo" / "notes.txt").read_text() == "mine"  # not ours: left alone
    assert checkpoints.broken(out / "checkpoint-2") is None  # rewritten whole


def _drop(name):
    return lambda ck: (ck / name).unlink()


def _legacy_without(name):
    def brk(ck):
        (ck / checkpoints.MANIFEST).unlink()
        (ck / name).unlink()
    return brk


BROKEN = [
    ("intact", lambda ck: None, None),
    ("truncated weights", lambda ck: truncate(ck / "model.safetensors"), "model.safetensors is truncated"),
    ("missing optimizer.bin", _drop("optimizer.bin"), "optimizer.bin is missing"),
    ("missing random states", _drop("random_states_0.pkl"), "random_states_0.pkl is missing"),
    ("manifest not JSON", lambda ck: (ck / checkpoints.MANIFEST).write_text("{"), "unreadable checkpoint_manifest.json"),
    ("old checkpoint, no optimizer", _legacy_without("optimizer.bin"), "optimizer.bin is missing or empty"),
    ("old checkpoint, no weights", _legacy_without("model.safetensors"), "no model weights"),
]


@pytest.mark.parametrize("brk,phrase", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_what_makes_a_checkpoint_broken(tmp_path, two_steps, brk, phrase):
    ck = tmp_path / "checkpoint-2"
    shutil.copytree(two_steps / "checkpoint-2", ck)
    brk(ck)
    why = checkpoints.broken(ck)
    assert why is None if phrase is None else phrase in why


def test_an_explicitly_named_broken_checkpoint_is_refused(tmp_path, capsys, tiny_generator, two_steps):
    out = tmp_path / "run"
    shutil.copytree(two_steps, out)
    truncate(out / "checkpoint-2" / "optimizer.bin")
    before = state_of(out)
    code, err = run_cli(rtrain.main, ["--pretrained_model_name_or_path", str(tiny_generator), "--products",
                                      str(products_dir(tmp_path)), "--prompts", str(prompts_file(tmp_path)),
                                      "--output_dir", str(out), *CHEAP, "--max_train_steps", "3",
                                      "--resume_from_checkpoint", "checkpoint-2"], capsys)
    assert_one_line_refusal(code, err, "python -m rfft.train", "not an intact checkpoint (optimizer.bin is truncated")
    assert state_of(out) == before  # nothing written, nothing removed


def test_a_beta_that_blows_up_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, tiny_generator, two_steps):
    """--beta 1e38, resumed after step 1: step 2's gradient is inf. Training stops before the
    optimizer steps, in one line; checkpoint-1 is untouched, no weight file is written."""
    out = tmp_path / "run"
    shutil.copytree(two_steps, out)
    shutil.rmtree(out / "checkpoint-2")
    shutil.rmtree(out / "controlnet")
    ck1 = state_of(out / "checkpoint-1")
    code, err = run_cli(lambda argv: _train(tmp_path, tiny_generator, out, *argv),
                        ["--beta", "1e38", "--max_train_steps", "2", "--checkpointing_steps", "1",
                         "--resume_from_checkpoint", "latest"], capsys)
    assert_one_line_refusal(code, err, "python -m rfft.train", "became non-finite at step 2")
    assert "checkpoint-1) is kept" in err and "--beta (1e+38)" in err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"] and not (out / "controlnet").exists()
    assert state_of(out / "checkpoint-1") == ck1 and checkpoints.broken(out / "checkpoint-1") is None
    assert metric_steps(out) == [1]


@pytest.mark.slow
def test_a_learning_rate_that_blows_up_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, tiny_generator):
    """A learning rate of 1e30 from the start: step 1 is finite, its update makes step 2's loss
    NaN. Training stops there with one line, checkpoint-1 stays and loads, no NaN is written."""
    out = tmp_path / "run"
    code, err = run_cli(lambda argv: _train(tmp_path, tiny_generator, out, *argv),
                        ["--learning_rate", "1e30", "--max_train_steps", "3", "--checkpointing_steps", "1"], capsys)
    assert_one_line_refusal(code, err, "python -m rfft.train", "became non-finite at step 2")
    assert "checkpoint-1) is kept" in err and "Lower --learning_rate (1e+30)" in err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert not (out / "controlnet").exists()
    assert all(bool(torch.isfinite(v).all()) for v in _weights(out / "checkpoint-1").values())
    assert metric_steps(out) == [1]


# ---------------------------------------------------------------------------------------------
# rfsynth.make: refused in one line with exit 2, before the output folder is made
# ---------------------------------------------------------------------------------------------
MAKE = [
    ("splits no '='", ["--splits", "train"], "expected name=fraction"),
    ("splits not a number", ["--splits", "train=abc"], "'abc' is not a number"),
    ("splits negative", ["--splits", "train=-1"], "must be a finite number, 0 or more"),
    ("splits no name", ["--splits", "=0.5"], "expected name=fraction"),
    ("splits all zero", ["--splits", "train=0,val=0"], "with a positive total"),
    ("splits twice", ["--splits", "train=0.5,train=0.5"], "named twice"),
    ("splits nan", ["--splits", "train=nan"], "must be a finite number"),
    ("priors unknown class", ["--priors", "Available=0.5,Pretty=0.5"], "unknown class 'Pretty'"),
    ("priors not a number", ["--priors", "Available=lots"], "'lots' is not a number"),
    ("priors all zero", ["--priors", "Available=0,Unsuitable=0"], "every weight is 0"),
    ("priors negative", ["--priors", "Available=1,Unsuitable=-1"], "must be a finite number, 0 or more"),
    ("priors no weight", ["--priors", "Available"], "expected Class=weight"),
    ("num_samples 0", ["--num_samples", "0"], "--num_samples must be at least 1"),
    ("num_samples negative", ["--num_samples", "-5"], "--num_samples must be at least 1"),
    ("workers 0", ["--workers", "0"], "--workers must be at least 1"),
    ("seed negative", ["--seed", "-1"], "--seed must be 0 or more"),
]


@pytest.mark.parametrize("extra,phrase", [c[1:] for c in MAKE], ids=[c[0] for c in MAKE])
def test_rfsynth_make_refuses_in_one_line(tmp_path, capsys, extra, phrase):
    out = tmp_path / "ds"
    code, err = run_cli(rmake.main, ["--out", str(out), "--num_samples", "2", "--no_progress", *extra], capsys)
    assert_one_line_refusal(code, err, "python -m rfsynth.make", phrase)
    assert not out.exists()  # no partial dataset


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("rfsynth") / "ds"
    assert rmake.main(["--out", str(out), "--num_samples", "2", "--size", "64", "--workers", "1", "--no_progress"]) == 0
    return out


@pytest.mark.parametrize("extra", [["--splits", "train=x"], ["--priors", "Nope=1"], ["--workers", "0"]],
                         ids=["splits", "priors", "workers"])
def test_a_refused_rerun_leaves_the_dataset_as_it_was(small_dataset, capsys, extra):
    before = state_of(small_dataset)
    code, err = run_cli(rmake.main, ["--out", str(small_dataset), "--num_samples", "4", "--size", "64",
                                     "--no_progress", *extra], capsys)
    assert code == 2 and "Traceback" not in err
    assert state_of(small_dataset) == before


# ---------------------------------------------------------------------------------------------
# The RFFT Train node: every bad input a normal exception (ComfyUI shows it, the queue goes on)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def comfy(tmp_path, monkeypatch, tiny_generator):
    (tmp_path / "input").mkdir()
    dirs = {"diffusers": [tiny_generator.parent], "controlnet": [tmp_path / "models" / "controlnet"], "rfnet": []}
    monkeypatch.setattr(host, "model_dirs", lambda kind: dirs.get(kind, []))
    monkeypatch.setattr(host, "input_dir", lambda: tmp_path / "input")
    monkeypatch.setattr(host, "output_dir", lambda: tmp_path / "output")
    return tmp_path


def node_kw(gen, **over):
    kw = dict(generator=gen.name, controlnet="(the generator's own)", rfnet="embedded", products="products",
              prompts=json.dumps(PROMPTS), name="net", steps=2, learning_rate=1e-3, reg="cc", beta=1.0,
              num_inference_steps=4, grad_steps_window=2, batch_size=1, seed=0, checkpointing_steps=1)
    kw.update(over)
    return kw


NODE = [
    # (id, product folder builder, widget overrides, exception, key phrase)
    ("empty product folder", dict(good=0), {}, ValueError, "no usable product image"),
    ("only unreadable products", dict(good=0, corrupt=1), {}, ValueError, "broken_0.png"),
    ("folder outside input", dict(), {"products": "../.."}, ValueError, "not found inside ComfyUI's input folder"),
    ("prompts not JSON", dict(), {"prompts": "a perfume on a table"}, ValueError, "prompts is not valid JSON"),
    ("steps 0 (API prompt)", dict(), {"steps": 0}, InputError, "--max_train_steps must be at least 1"),
    ("batch 0", dict(), {"batch_size": 0}, InputError, "--train_batch_size must be at least 1"),
    ("checkpointing 0", dict(), {"checkpointing_steps": 0}, InputError, "--checkpointing_steps must be at least 1"),
    ("lr nan", dict(), {"learning_rate": float("nan")}, InputError, "--learning_rate must be a finite number"),
    ("unknown reg", dict(), {"reg": "l2"}, InputError, "--reg must be one of cc, kl, none, not 'l2'"),
    ("window > steps", dict(), {"grad_steps_window": 9}, InputError, "must not exceed --num_inference_steps"),
]


@pytest.mark.parametrize("prods,over,exc,phrase", [c[1:] for c in NODE], ids=[c[0] for c in NODE])
def test_rfft_train_node_raises_a_normal_exception(comfy, tiny_generator, prods, over, exc, phrase):
    products_dir(comfy / "input", **prods)
    with pytest.raises(exc, match=phrase.replace("(", r"\(").replace(")", r"\)")) as e:
        M["RFFTTrain"]().run(**node_kw(tiny_generator, **over))
    assert not isinstance(e.value, SystemExit)
    assert not (comfy / "models" / "controlnet" / "net").exists()
    assert not list((comfy / "output").glob("rfft_runs/*/checkpoint-*"))


def test_rfft_train_node_turns_a_stray_system_exit_into_an_error(comfy, tiny_generator, monkeypatch):
    """Whatever raises SystemExit below the node (a library's argparse, a sys.exit), the node
    raises a RuntimeError instead: ComfyUI's worker thread survives."""
    products_dir(comfy / "input")

    def exits(*a, **k):
        raise SystemExit("error: something below called sys.exit")

    monkeypatch.setattr(rtrain, "train", exits)
    with pytest.raises(RuntimeError, match="something below called sys.exit"):
        M["RFFTTrain"]().run(**node_kw(tiny_generator))


# ---------------------------------------------------------------------------------------------
# The Feedback node: labels checked before anything is written; names stay inside the folder
# ---------------------------------------------------------------------------------------------
def _images(n=2, side=32):
    return torch.rand(n, side, side, 3, generator=torch.Generator().manual_seed(n))


FEEDBACK = [
    ("unknown label", dict(label="Great"), "unknown label 'Great'"),
    ("unknown label in list", dict(labels="Available, Pretty"), "unknown label 'Pretty'"),
    ("coarse label", dict(labels="Available, Unavailable"), "unknown label 'Unavailable'"),
    ("label number out of range", dict(labels="0, 9"), "unknown label '9'"),
    ("too few labels", dict(labels="Available"), "names 1 labels for 2 images"),
    ("empty batch", dict(images=torch.zeros(0, 32, 32, 3)), "the 'images' batch is empty"),
    ("a MASK as images", dict(images=torch.zeros(2, 32, 32)), "'images' must be an IMAGE batch"),
    ("empty product", dict(product=torch.zeros(0, 32, 32, 3)), "the 'product' batch is empty"),
]


@pytest.mark.parametrize("over,phrase", [c[1:] for c in FEEDBACK], ids=[c[0] for c in FEEDBACK])
def test_feedback_refuses_before_writing(tmp_path, monkeypatch, over, phrase):
    monkeypatch.setattr(host, "output_dir", lambda: tmp_path / "output")
    kw = dict(images=_images(), product=_images(1), label="Available", dataset="fb", caption="c", prompt="p")
    kw.update(over)
    with pytest.raises(ValueError, match=phrase):
        M["RFFeedback"]().record(**kw)
    assert not (tmp_path / "output").exists()  # not even an empty dataset folder


@pytest.mark.parametrize("name,folder", [("../../escape", "escape"), ("/etc", "etc"), ("..", "feedback"),
                                         ("a/../../b", "a_.._.._b"), ("..\\..\\win", "win"), ("", "feedback")])
def test_feedback_names_never_leave_the_output_folder(tmp_path, monkeypatch, name, folder):
    monkeypatch.setattr(host, "output_dir", lambda: tmp_path / "output")
    out = M["RFFeedback"]().record(_images(), _images(1), "Available", name, "c", "p", labels="0, space")
    root = tmp_path / "output" / "rf_feedback" / folder
    assert str(root) in out["result"][0] and "(Available, Space Mismatch)" in out["result"][0]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(root in p.parents for p in written)
    from rfnet.data import SkipReport, read_records

    _, recs, _ = read_records(root, SkipReport())
    assert [r["label"] for r in recs] == ["Available", "Space Mismatch"]  # canonical names written


# ---------------------------------------------------------------------------------------------
# Slow: a run killed by SIGKILL mid-training, then resumed
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_mid_training_then_resume_is_exact_with_each_step_logged_once(tmp_path, tiny_generator):
    """The real thing: ``python -m rfft.train`` (a checkpoint every 2 steps) killed with SIGKILL
    during step 4, after step 3 was logged but never checkpointed; then resumed with 'latest'.
    Step 3's row is dropped and run again: the result equals an uninterrupted run's weights
    exactly and metrics.csv has steps 1..4 once each."""
    base = ["--pretrained_model_name_or_path", str(tiny_generator), "--products", str(products_dir(tmp_path)),
            "--prompts", str(prompts_file(tmp_path)), *CHEAP, "--max_train_steps", "4", "--checkpointing_steps", "2"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert subprocess.run([sys.executable, "-m", "rfft.train", *base, "--output_dir", str(ref)], env=env,
                          capture_output=True, timeout=900).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "rfft.train", *base, "--output_dir", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        try:
            if 3 in metric_steps(out):  # step 3 logged: step 4 is running, no checkpoint since step 2
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert not (out / "controlnet").exists(), "the run finished before it could be killed"
    assert metric_steps(out)[:3] == [1, 2, 3] and not (out / "checkpoint-4").exists()
    assert subprocess.run([sys.executable, "-m", "rfft.train", *base, "--output_dir", str(out),
                           "--resume_from_checkpoint", "latest"], env=env, capture_output=True,
                          timeout=900).returncode == 0
    assert _same(_weights(out / "controlnet"), _weights(ref / "controlnet"))
    assert metric_steps(out) == [1, 2, 3, 4]
    assert not list(out.glob("checkpoint-*.tmp"))


@pytest.mark.slow
def test_a_truncated_checkpoint_without_a_manifest_is_skipped_too(tmp_path, tiny_generator, two_steps, caplog):
    """Checkpoints from before the manifest: a truncated weight file shows only when it is
    loaded; resume then falls back to the previous one and still ends exact."""
    out = tmp_path / "run"
    shutil.copytree(two_steps, out)
    shutil.rmtree(out / "controlnet")
    for ck in out.glob("checkpoint-*"):
        (ck / checkpoints.MANIFEST).unlink()
    truncate(out / "checkpoint-2" / "model.safetensors")
    with caplog.at_level("WARNING", logger="rfft.train"):
        assert _train(tmp_path, tiny_generator, out, "--max_train_steps", "2", "--checkpointing_steps", "1",
                      "--resume_from_checkpoint", "latest") == 0
    assert "skipped checkpoint-2 (cannot load it" in caplog.text
    assert _same(_weights(out / "controlnet"), _weights(two_steps / "controlnet"))
    assert metric_steps(out) == [1, 2]


def test_checkpoints_written_before_the_shared_module_still_count(tmp_path):
    """rfft.train named its manifest rfft_checkpoint.json; such checkpoints resume as before."""
    ck = tmp_path / "checkpoint-3"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(b"x" * 10)
    (ck / "rfft_checkpoint.json").write_text(json.dumps({"step": 3, "files": {"model.safetensors": 10}}))
    assert checkpoints.broken(ck) is None and checkpoints.list_checkpoints(tmp_path) == [ck]
    (ck / "model.safetensors").write_bytes(b"x" * 4)
    assert checkpoints.broken(ck) == "model.safetensors is truncated (4 of 10 bytes)"


def test_an_rfnet_checkpoint_from_before_the_manifest_still_counts(tmp_path):
    """rfnet.train registers its scheduler for checkpointing: accelerate saves it as
    custom_checkpoint_0.pkl, not scheduler.bin."""
    ck = tmp_path / "checkpoint-6"
    ck.mkdir()
    for f in ("model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl", "random_states_0.pkl"):
        (ck / f).write_bytes(b"x" * 8)
    assert checkpoints.broken(ck) is None
    (ck / "custom_checkpoint_0.pkl").unlink()
    assert checkpoints.broken(ck) == "scheduler.bin is missing or empty"


def test_plain_trainers_write_and_choose_checkpoints_the_same_way(tmp_path, caplog):
    """rfnet.train_maps and rfft.train_generator (no accelerate) write PREFIX-N folders with the
    same manifest; the newest intact one is taken, a damaged one is skipped by name, the oldest
    beyond the limit go, and a folder from before the manifest counts if its files are there."""
    def write(step):
        return lambda d: (d / "state.json").write_text(json.dumps({"step": step}) + " " * step)

    for step in (1, 2, 3):
        checkpoints.save_plain(tmp_path, step, write(step), limit=2, prefix="vae-checkpoint")
    found = checkpoints.list_checkpoints(tmp_path, "vae-checkpoint")
    assert [p.name for p in found] == ["vae-checkpoint-2", "vae-checkpoint-3"]
    assert checkpoints.list_checkpoints(tmp_path) == []  # "checkpoint-N" is another trainer's
    assert not list(tmp_path.glob("*.tmp"))
    truncate(tmp_path / "vae-checkpoint-3" / "state.json", keep=2)
    with caplog.at_level("WARNING", logger="rfnet.checkpoints"):
        assert checkpoints.latest_intact(tmp_path, "vae-checkpoint", ("state.json",)) == found[0]
    assert "vae-checkpoint-3: state.json is truncated" in caplog.text
    old = tmp_path / "vae-checkpoint-7"
    old.mkdir()
    (old / "state.json").write_text("{}")
    assert checkpoints.latest_intact(tmp_path, "vae-checkpoint", ("state.json",)) == old
    (old / "state.json").write_text("")
    assert checkpoints.broken(old, ("state.json",)) == "state.json missing or empty"

