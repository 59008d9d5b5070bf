import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rfnet import evaluate, train
from rfnet.model import RFNet

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "tiny", "--image_size", "32", "--width", "32", "--train_batch_size", "8",
        "--learning_rate", "1e-3", "--no_progress", "--report_to", "none"]


def _args(data, out, *extra):
    return train.parse_args(["--train_data", str(data), "--output_dir", str(out), *FAST, *extra])


def _weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def _split_size(data, split):
    return sum(json.loads(line)["split"] == split for line in (data / "manifest.jsonl").read_text().splitlines())


def _same(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a) == 0.0


def test_train_then_evaluate(toy_dataset, tmp_path):
    out = tmp_path / "run"
    train.train(_args(toy_dataset, out, "--num_train_epochs", "2", "--lr_decay_epoch", "1", "--logging_steps", "1",
                      "--learning_rate", "1e-4", "--checkpointing_steps", "3",
                      "--checkpoints_total_limit", "2", "--report_to", "tensorboard"))
    for f in ("model.safetensors", "config.json", "tokenizer/tokenizer.json", "train_args.json",
              "skipped.json", "logs/train_log.csv"):
        assert (out / f).exists(), f
    assert len(list(out.glob("checkpoint-*"))) == 2  # the total limit holds
    assert list((out / "logs").rglob("events.out.tfevents*"))  # TensorBoard
    rows = list(csv.DictReader(open(out / "logs" / "train_log.csv")))
    # 47 train samples / batch 8 = 6 steps an epoch; the lr is divided by 10 at epoch 1
    assert -(-_split_size(toy_dataset, "train") // 8) == 6
    lrs = {int(r["step"]): float(r["lr"]) for r in rows if r["lr"]}
    assert lrs[5] == pytest.approx(1e-4) and lrs[10] == pytest.approx(1e-5)
    assert any(r["val_ap"] for r in rows)
    model = RFNet.from_pretrained(out)
    assert model.config.image_size == 32 and model.config.label_set == "paper5"

    ev = tmp_path / "eval"
    report = evaluate.evaluate(evaluate.parse_args(
        ["--model", str(out), "--data", str(toy_dataset), "--output_dir", str(ev)]))
    for f in ("metrics.json", "predictions.jsonl", "pr_curve.png", "confusion_matrix.png"):
        assert (ev / f).exists(), f
    saved = json.loads((ev / "metrics.json").read_text())
    n_test = _split_size(toy_dataset, "test")
    assert saved["available"] == report["available"] and saved["n"] == n_test > 0
    preds = [json.loads(l) for l in (ev / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == n_test and all(abs(sum(p["probs"].values()) - 1) < 1e-4 for p in preds)


def test_resume_continues_exactly(toy_dataset, tmp_path):
    common = ["--checkpointing_steps", "4", "--lr_decay_epoch", "1"]
    train.train(_args(toy_dataset, tmp_path / "a", "--max_train_steps", "14", *common))
    train.train(_args(toy_dataset, tmp_path / "b", "--max_train_steps", "6", *common))
    # as if the run had died after checkpoint-4: the newest checkpoint and final files gone
    import shutil
    shutil.rmtree(tmp_path / "b" / "checkpoint-6")
    (tmp_path / "b" / "model.safetensors").unlink()
    train.train(_args(toy_dataset, tmp_path / "b", "--max_train_steps", "14",
                      "--resume_from_checkpoint", "latest", *common))
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    # and the run without a resume really differs from one that restarted from scratch
    train.train(_args(toy_dataset, tmp_path / "c", "--max_train_steps", "14", "--seed", "1", *common))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_gradient_accumulation_and_balanced_options_run(toy_dataset, tmp_path):
    for opt in (["--gradient_accumulation_steps", "2", "--balance", "loss"], ["--balance", "sampler"]):
        out = tmp_path / opt[-1]
        train.train(_args(toy_dataset, out, "--max_train_steps", "3", "--validation_split", "none", *opt))
        assert (out / "model.safetensors").exists()


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    s = train.EpochSampler(20, seed=3)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(1)
    b = list(s)
    s2 = train.EpochSampler(20, seed=3)
    s2.set_epoch(1)
    assert sorted(a) == list(range(20)) and a != b and list(s2) == b
    # class-balanced: weights 1/count make a 1:9 set draw both classes about equally
    labels = [0] * 2 + [1] * 18
    w = [1 / 2 if y == 0 else 1 / 18 for y in labels]
    bal = train.EpochSampler(20, seed=0, weights=w)
    draws = []
    for e in range(50):
        bal.set_epoch(e)
        draws += [labels[i] for i in bal]
    assert 0.4 < sum(1 for y in draws if y == 0) / len(draws) < 0.6


def _run_cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "rfnet.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_sigkill_then_resume_gives_the_same_weights(toy_dataset, tmp_path):
    common = ["--train_data", str(toy_dataset), *FAST, "--max_train_steps", "40",
              "--checkpointing_steps", "3", "--validation_split", "none", "--lr_decay_epoch", "3"]
    p = _run_cli([*common, "--output_dir", str(tmp_path / "killed")])
    deadline = time.time() + 240
    while not (tmp_path / "killed" / "checkpoint-6").exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() < deadline
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model.safetensors").exists()  # it really died early
    r = _run_cli([*common, "--output_dir", str(tmp_path / "killed"), "--resume_from_checkpoint", "latest"])
    assert r.wait() == 0, r.stdout.read()
    train.train(train.parse_args([*common, "--output_dir", str(tmp_path / "whole")]))
    assert _same(_weights(tmp_path / "killed"), _weights(tmp_path / "whole"))


@pytest.mark.parametrize("module", ["rfnet.train", "rfnet.evaluate", "rfnet.inspect"])
def test_cli_help(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0 and "usage: python -m " + module in r.stdout


def test_paper_preset_explains_missing_caption_encoder(toy_dataset, tmp_path):
    from rfnet.errors import InputError

    with pytest.raises(InputError) as e:  # not SystemExit: that would end ComfyUI's worker thread
        train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(tmp_path),
                                      "--preset", "paper"]))
    assert "hfl/chinese-roberta-wwm-ext" in str(e.value) and "--caption_encoder" in str(e.value)


def test_paper_preset_explains_missing_pretrained_weights(toy_dataset, tmp_path):
    with pytest.raises((ValueError, OSError)) as e:  # InputError is a ValueError
        train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(tmp_path),
                                      "--preset", "paper", "--caption_encoder", "scratch"]))
    assert "--image_weights" in str(e.value)


def test_single_image_baseline_trains_and_evaluates(toy_dataset, tmp_path):
    """The paper's Table 1 baselines: a plain timm classifier of the generated image."""
    from rfnet.model import SingleImageClassifier, load_model

    out = tmp_path / "single"
    train.train(_args(toy_dataset, out, "--architecture", "single_image", "--image_backbone", "resnet18",
                      "--max_train_steps", "2", "--validation_split", "none"))
    m = load_model(out)
    assert isinstance(m, SingleImageClassifier) and m.config.image_inputs == ("generated",)
    assert not (out / "tokenizer").exists()
    report = evaluate.evaluate(evaluate.parse_args(
        ["--model", str(out), "--data", str(toy_dataset), "--output_dir", str(tmp_path / "ev")]))
    assert report["n"] == _split_size(toy_dataset, "test") > 0
    g = torch.rand(2, 3, 32, 32)
    assert torch.allclose(m(generated=g).probs, m(generated=g, product=torch.rand(2, 3, 32, 32)).probs)


def test_init_from_fine_tunes_the_given_model_on_several_datasets(toy_dataset, tmp_path):
    """--init_from starts from that model's weights, tokenizer and config (its acceptance
    threshold dropped: new weights need a new calibration); several --train_data are one set."""
    from conftest import write_small_rfsynth

    base = tmp_path / "base"
    train.train(_args(toy_dataset, base, "--max_train_steps", "2", "--label_set", "rf1m6"))
    cfg = json.loads((base / "config.json").read_text())
    cfg["acceptance_threshold"] = 0.7
    (base / "config.json").write_text(json.dumps(cfg))
    other = tmp_path / "other"
    write_small_rfsynth(other, 16, seed=9)
    out = tmp_path / "tuned"
    # lr so small that one step cannot move a weight visibly: the result is the start point
    args = train.parse_args(["--train_data", str(toy_dataset), str(other), "--output_dir", str(out),
                             "--init_from", str(base), "--max_train_steps", "1", "--learning_rate", "1e-12",
                             "--train_batch_size", "8", "--no_progress", "--report_to", "none",
                             "--image_size", "64", "--width", "8"])  # model flags are ignored, but the input size
    train.train(args)
    a, b = _weights(base), _weights(out)
    params = [k for k in a if "running_" not in k and "num_batches" not in k]  # BatchNorm statistics move
    assert len(params) > 50
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in params) < 1e-6
    tuned = json.loads((out / "config.json").read_text())
    assert tuned["image_size"] == 64 and tuned["width"] == 32 and tuned["label_set"] == "rf1m6"
    assert tuned["acceptance_threshold"] is None
    assert (out / "tokenizer" / "tokenizer.json").read_text() == (base / "tokenizer" / "tokenizer.json").read_text()

    from rfnet.extractors import make_extractor

    model = RFNet.from_pretrained(base)
    ex = (make_extractor("depth", "fallback"), make_extractor("salience", "fallback"))
    roots = [str(toy_dataset), str(other)]
    part = train.load_sets(model.config, roots, "train", *ex, True, None, [5, 0])
    sets = train.load_sets(model.config, roots, "train", *ex, True, None)
    one = [train.load_sets(model.config, [d], "train", *ex, True, None) for d in roots]
    assert len(one[0]) > 5 and len(one[1]) > 0
    assert len(sets) == len(one[0]) + len(one[1]) and sets.labels == one[0].labels + one[1].labels
    assert len(part) == 5 + len(one[1]) and part.labels == one[0].labels[:5] + one[1].labels


def test_init_from_missing_model_is_refused(toy_dataset, tmp_path):
    with pytest.raises(train.InputError, match="no config.json or model.safetensors"):
        train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(tmp_path / "o"),
                                      "--init_from", str(tmp_path)]))


def test_calibration_model_card_progress_and_cancel(toy_dataset, tmp_path):
    """What the Train RFNet node relies on: a progress call per step, a cancel that keeps the last
    checkpoint, and at the end the calibrated threshold (as rfnet.calibrate finds it from
    rfnet.evaluate's predictions) and a model card listing the data."""
    from rfnet.dataformat import SkipReport, read_records
    from rfnet.metrics import threshold_for_precision

    out = tmp_path / "run"
    argv = ["--max_train_steps", "5", "--checkpointing_steps", "2", "--label_set", "rf1m6",
            "--calibrate_precision", "0.6", "--resume_from_checkpoint", "latest"]
    seen = []

    class Stop(Exception):
        pass

    def cancel_at_3(step, total, status):
        seen.append((step, total, status["loss"]))
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        train.train(_args(toy_dataset, out, *argv), on_step=cancel_at_3)
    assert [s for s, _, _ in seen] == [1, 2, 3] and {t for _, t, _ in seen} == {5}
    assert all(np.isfinite(loss) for _, _, loss in seen)
    assert (out / "checkpoint-2").exists() and not (out / "model.safetensors").exists()
    seen.clear()
    train.train(_args(toy_dataset, out, *argv), on_step=lambda s, t, st: seen.append(s))
    assert seen == [3, 4, 5]  # resumed from checkpoint-2

    cfg = json.loads((out / "config.json").read_text())
    ev = tmp_path / "eval"
    evaluate.evaluate(evaluate.parse_args(["--model", str(out), "--data", str(toy_dataset), "--split", "val",
                                           "--output_dir", str(ev)]))
    preds = [json.loads(x) for x in (ev / "predictions.jsonl").read_text().splitlines()]
    want = threshold_for_precision([p["label"] == "Available" for p in preds], [p["p_available"] for p in preds], 0.6)
    assert cfg["acceptance_threshold"] == pytest.approx(want["threshold"], abs=1e-5)
    assert cfg["acceptance_calibration"]["accepted"] == want["accepted"]
    card = (out / "MODEL_CARD.md").read_text()
    _, recs, _ = read_records(toy_dataset, SkipReport())
    n_avail = sum(r["label"] == "Available" and r.get("split", "train") == "train" for r in recs)
    assert str(toy_dataset) in card and f"Available {n_avail}," in card and "Acceptance threshold" in card


def test_the_cli_and_code_build_the_same_configuration(toy_dataset, tmp_path):
    """RFNetTrainConfig is what ``python -m rfnet.train`` parses and what the Train RFNet node and
    the demo build; lists, flags and choices mean the same either way, and a value the command
    line refuses is refused in code too, in one line, before any model is built."""
    from rfnet.errors import InputError

    cli = train.parse_args(["--train_data", "a", "b", "--train_samples", "5", "0", "--output_dir", "o",
                            "--drop", "depth", "caption", "--ignore_stored_maps", "--calibrate_precision", "0.85"])
    code = train.RFNetTrainConfig(train_data=["a", "b"], train_samples=[5, 0], output_dir="o", drop=["depth", "caption"],
                                  ignore_stored_maps=True, calibrate_precision=0.85)
    assert cli == code and cli.preset == "paper" and cli.learning_rate == 1e-4 and cli.validation_data is None
    with pytest.raises(InputError, match="--drop must be one of .*, not 'colour'"):
        train.check_args(train.RFNetTrainConfig(train_data=[str(toy_dataset)], output_dir=str(tmp_path), drop=["colour"]))
    with pytest.raises(InputError, match="--balance must be one of none, loss, sampler, not 'weights'"):
        train.check_args(train.RFNetTrainConfig(train_data=[str(toy_dataset)], output_dir=str(tmp_path), balance="weights"))
    with pytest.raises(InputError, match="unrecognized arguments: --epochs 3"):
        train.parse_args(["--train_data", "a", "--output_dir", "o", "--epochs", "3"], exit_on_error=False)
    with pytest.raises(InputError, match="required: --train_data"):
        train.parse_args(["--output_dir", "o"], exit_on_error=False)
