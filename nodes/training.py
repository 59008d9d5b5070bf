"""RFFT Train: fine-tune a ControlNet with RFNet's feedback from the graph. The result is a
diffusers ControlNet in models/controlnet/NAME/ (ComfyUI's ControlNet loader lists its
safetensors file); training state lives in output/rfft_runs/NAME, so a cancelled run resumes."""
from __future__ import annotations

import io
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image

from . import host

host.require("timm", "transformers", "safetensors", "cv2", "diffusers")

FROM_GENERATOR = "(the generator's own)"


@contextmanager
def _no_system_exit(node: str):
    """The engine raises exceptions, but a SystemExit from anything below (argparse, a third-
    party library) must never reach ComfyUI: it ends the worker thread and no later prompt
    runs. It becomes a RuntimeError, which ComfyUI shows as this node's error."""
    try:
        yield
    except SystemExit as e:
        raise RuntimeError(f"{node} stopped: {e.code if e.code is not None else 'exit'}") from None


def _figure_image(fig) -> Image.Image:
    """A matplotlib figure as an RGB image (the nodes' curve outputs)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return Image.open(buf).convert("RGB")


def loss_curve(rows: list[dict]) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    steps = [r["step"] for r in rows]
    for key in ("loss", "f_ac", "reg"):
        if rows and key in rows[0]:
            ax.plot(steps, [r[key] for r in rows], label=key)
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
    return _figure_image(fig)


class RFFTTrain:
    DESCRIPTION = ("Fine-tunes the ControlNet with RFNet's feedback and Consistent Condition regularization (RFFT). "
                   "The generator is a diffusers SD1.5 folder in models/diffusers (or the embedded one); products "
                   "come from a folder in ComfyUI's input; prompts are the paper's release config (JSON). The "
                   "result goes to models/controlnet/NAME. Cancelling keeps the last checkpoint; queue again to resume.")
    CATEGORY = "Reliable AD/training"
    RETURN_TYPES = ("STRING", "IMAGE")
    RETURN_NAMES = ("controlnet_path", "loss_curve")
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        gens = ["embedded"] + host.list_models("diffusers", ("model_index.json",))
        cns = [FROM_GENERATOR] + host.list_models("controlnet", ("config.json",))
        rfs = ["embedded"] + host.list_models("rfnet", ("config.json",))
        return {"required": {
            "generator": (gens, {"tooltip": "a diffusers SD1.5 folder in models/diffusers, or the embedded generator"}),
            "controlnet": (cns, {"tooltip": "the canny ControlNet to start from (a diffusers folder in models/controlnet)"}),
            "rfnet": (rfs, {"tooltip": "the inspector whose feedback trains the ControlNet: the embedded one or a folder in models/rfnet (Train RFNet writes one from your labels)"}),
            "products": ("STRING", {"default": "products", "tooltip": "a folder of cutouts inside ComfyUI's input folder"}),
            "prompts": ("STRING", {"default": "[{\"prompt\": \"a {product} on a marble table, beige wall, soft daylight\", "
                                              "\"negative_prompt\": \"\", \"image_scale\": 0.5}]", "multiline": True,
                                   "tooltip": "the paper's release prompt config (a JSON list)"}),
            "name": ("STRING", {"default": "rfft_controlnet", "tooltip": "output folder name in models/controlnet"}),
            "steps": ("INT", {"default": 200, "min": 1, "max": 100000}),
            "learning_rate": ("FLOAT", {"default": 1e-5, "min": 1e-8, "max": 1e-2, "step": 1e-6}),
            "reg": (["cc", "kl", "none"], {"default": "cc", "tooltip": "cc: Consistent Condition; kl; none: ReFL"}),
            "beta": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01}),
            "num_inference_steps": ("INT", {"default": 40, "min": 2, "max": 200}),
            "grad_steps_window": ("INT", {"default": 10, "min": 1, "max": 200}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
            # the front end gives the seed a control widget set to randomize, which would train a
            # resumed run with a new seed when the designer queues again: web/reliable_ad.js sets a
            # fresh node's control to rf_control_default (a string here would rename the widget)
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": True,
                             "rf_control_default": "fixed",
                             "tooltip": "training seed; keep it fixed so that queueing again resumes the same run"}),
            "checkpointing_steps": ("INT", {"default": 25, "min": 1, "max": 100000}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, generator, controlnet, rfnet, products, prompts, name, steps, learning_rate, reg, beta,
            num_inference_steps, grad_steps_window, batch_size, seed, checkpointing_steps, unique_id=None):
        import csv
        import json

        from rfft.train import RFFTTrainConfig, train
        from rfnet.fileio import write_text

        safe = host.safe_name(name, "rfft_controlnet")
        prods = host.safe_join(host.input_dir(), products)
        if prods is None or not prods.is_dir():
            raise ValueError(f"product folder {products!r} not found inside ComfyUI's input folder")
        try:
            json.loads(prompts)
        except json.JSONDecodeError as e:
            raise ValueError(f"prompts is not valid JSON ({e}); give a list of {{prompt, negative_prompt, image_scale}}") from None
        run_dir = host.output_dir() / "rfft_runs" / safe
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "prompts.json", prompts)
        # the CLI's own configuration, built directly; train() checks every value (an API prompt
        # skips the widgets' limits) and raises InputError, never argparse's SystemExit, which
        # would end ComfyUI's worker thread and stall the queue
        args = RFFTTrainConfig(
            output_dir=str(run_dir), products=str(prods), prompts=str(run_dir / "prompts.json"),
            max_train_steps=steps, learning_rate=learning_rate, reg=reg, beta=beta,
            num_inference_steps=num_inference_steps, grad_steps_window=grad_steps_window,
            train_batch_size=batch_size, seed=seed, checkpointing_steps=checkpointing_steps,
            resume_from_checkpoint="latest",
            pretrained_model_name_or_path="embedded" if generator == "embedded" else str(host.resolve_model("diffusers", generator)),
            controlnet_model_name_or_path=None if controlnet == FROM_GENERATOR else str(host.resolve_model("controlnet", controlnet)),
            rfnet="embedded" if rfnet == "embedded" else str(host.resolve_model("rfnet", rfnet)))
        bar = host.Progress(steps, unique_id)

        def on_step(step, total, row):
            bar.update(1)
            host.progress_text(f"step {step}/{total}: loss {row['loss']:.4f}, P(Available) {row['p_available']:.2f}", unique_id)
            host.check_cancel()  # raises on cancel; the last checkpoint stays, a new run resumes it

        # ComfyUI runs every node under inference mode; training needs gradients.
        with torch.inference_mode(False), torch.enable_grad(), _no_system_exit("RFFT Train"):
            train(args, on_step)
        dst = None
        for d in host.model_dirs("controlnet")[:1]:
            dst = host.safe_join(d, safe)
        if dst is None:
            dst = run_dir / "controlnet_export"
        if (run_dir / "controlnet").exists():
            import shutil

            from rfnet.fileio import atomic_dir

            with atomic_dir(dst) as tmp:
                shutil.copytree(run_dir / "controlnet", tmp, dirs_exist_ok=True)
        rows = []
        if (run_dir / "metrics.csv").exists():
            with open(run_dir / "metrics.csv") as f:
                for r in csv.DictReader(f):
                    try:  # a row torn by a kill is not worth failing a finished run for
                        rows.append({k: float(v) for k, v in r.items()})
                    except (TypeError, ValueError):
                        continue
        curve = loss_curve(rows)
        img = torch.from_numpy(np.asarray(curve, np.float32) / 255.0)[None]
        return {"ui": {"text": [f"ControlNet written to {dst}"]}, "result": (str(dst), img)}




# The learning curve on RF-Gen (docs/RESULTS.md, issue 16): below about a hundred labelled images
# fine-tuning moves nothing that acceptance depends on, so a run needs at least this many images
# on each side of the decision, Available and defects.
MIN_LABELS_PER_SIDE = 50


def count_labels(root) -> dict[str, int]:
    from rfnet.dataformat import SkipReport, read_records

    counts: dict[str, int] = {}
    for r in read_records(root, SkipReport())[1]:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    return counts


def check_enough_labels(counts: dict[str, int], where) -> None:
    avail = counts.get("Available", 0)
    defects = sum(v for k, v in counts.items() if k != "Available")
    if avail < MIN_LABELS_PER_SIDE or defects < MIN_LABELS_PER_SIDE:
        have = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no labels"
        raise ValueError(
            f"{where} has {avail} Available and {defects} defect labels ({have}); Train RFNet needs at least "
            f"{MIN_LABELS_PER_SIDE} of each (below about a hundred labels fine-tuning does not change what is "
            f"accepted). Label more with Review & Label, then queue again.")


def accuracy_curve(rows: list[dict]) -> Image.Image:
    """Training loss and validation accuracy against the step, from rfnet.train's train_log.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    tr = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
    va = [(r["step"], r["val_accuracy"]) for r in rows if r.get("val_accuracy") is not None]
    if tr:
        ax.plot(*zip(*tr), label="training loss")
    ax.set_xlabel("step")
    if va:
        ax2 = ax.twinx()
        ax2.plot(*zip(*va), "o-", color="tab:green", label="validation accuracy")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _figure_image(fig)


def _read_log(path) -> list[dict]:
    import csv

    rows = []
    if path.exists():
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                row = {}
                for k, v in r.items():
                    try:
                        row[k] = float(v) if v not in ("", None) else None
                    except ValueError:
                        row[k] = None
                rows.append(row)
    return rows


class TrainRFNet:
    DESCRIPTION = ("Fine-tunes an RFNet on the images you labelled (Review & Label or Feedback write them to "
                   "output/rf_feedback/DATASET), with RF-Synth scenes mixed in so that it keeps what it knew. The "
                   "result, with its calibrated acceptance threshold and a model card, goes to models/rfnet/NAME; "
                   "pick it in Load RFNet. Cancelling keeps the last checkpoint; queue again to resume.")
    CATEGORY = "Reliable AD/training"
    RETURN_TYPES = ("STRING", "IMAGE")
    RETURN_NAMES = ("rfnet_path", "curve")
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        rfs = ["embedded"] + host.list_models("rfnet", ("config.json",))
        return {"required": {
            "dataset": ("STRING", {"default": "feedback", "tooltip": "your labels: a folder name under output/rf_feedback"}),
            "init_from": (rfs, {"tooltip": "the RFNet to start from: the embedded one or a folder in models/rfnet"}),
            "mix_rfsynth": ("INT", {"default": 1000, "min": 0, "max": 100000,
                                    "tooltip": "RF-Synth scenes mixed in (made once, kept in output/rf_feedback)"}),
            "name": ("STRING", {"default": "my_rfnet", "tooltip": "output folder name in models/rfnet"}),
            "steps": ("INT", {"default": 300, "min": 1, "max": 100000}),
            "learning_rate": ("FLOAT", {"default": 5e-4, "min": 1e-7, "max": 1e-2, "step": 1e-5}),
            "batch_size": ("INT", {"default": 16, "min": 1, "max": 256}),
            "target_precision": ("FLOAT", {"default": 0.9, "min": 0.5, "max": 1.0, "step": 0.01,
                                          "tooltip": "the acceptance threshold keeps this share of accepted "
                                                     "validation images Available"}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": True,
                             "rf_control_default": "fixed",
                             "tooltip": "training seed; keep it fixed so that queueing again resumes the same run"}),
            "checkpointing_steps": ("INT", {"default": 50, "min": 1, "max": 100000}),
        }, "optional": {
            "extra_data": ("STRING", {"default": "", "tooltip": "another RF dataset folder under output/ to mix in, "
                                                              "e.g. RF-Gen images (optional)"}),
            "mirror": ("BOOLEAN", {"default": True,
                                   "tooltip": "also train on left-right mirrors of the images, so that a product "
                                              "shown the other way round (a mug's handle on the left) is not "
                                              "called damaged"}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, dataset, init_from, mix_rfsynth, name, steps, learning_rate, batch_size, target_precision, seed,
            checkpointing_steps, extra_data="", mirror=True, unique_id=None):
        from rfnet.embedded import embedded_path
        from rfnet.train import RFNetTrainConfig, train

        out_root = host.output_dir()
        labels = host.safe_join(out_root / "rf_feedback", host.safe_name(dataset))
        if labels is None or not (labels / "manifest.jsonl").is_file():
            raise ValueError(f"no labelled images in output/rf_feedback/{host.safe_name(dataset)}: label some with "
                             "Review & Label (or Feedback) first")
        check_enough_labels(count_labels(labels), f"output/rf_feedback/{labels.name}")
        data, samples = [str(labels)], [0]
        if extra_data.strip():
            extra = host.safe_join(out_root, extra_data.strip())
            if extra is None or not (extra / "manifest.jsonl").is_file():
                raise ValueError(f"extra_data {extra_data!r}: no RF dataset (manifest.jsonl) there inside ComfyUI's output")
            data.append(str(extra))
            samples.append(0)
        if mix_rfsynth:
            data.append(str(self.rfsynth_mix(out_root, mix_rfsynth)))
            samples.append(mix_rfsynth)
        init = str(embedded_path("rfnet")) if init_from == "embedded" else str(host.resolve_model("rfnet", init_from))
        safe = host.safe_name(name, "my_rfnet")
        run_dir = out_root / "rfnet_runs" / safe
        args = RFNetTrainConfig(
            train_data=data, train_samples=samples, validation_data=[str(labels)], output_dir=str(run_dir),
            init_from=init, max_train_steps=steps, learning_rate=learning_rate, lr_decay_epoch=0,
            train_batch_size=batch_size, seed=seed, hflip=0.5 if mirror else 0.0,
            checkpointing_steps=checkpointing_steps, checkpoints_total_limit=2,
            resume_from_checkpoint="latest", calibrate_precision=target_precision, depth_model="embedded",
            salience_model="embedded", ignore_stored_maps=True, report_to="none", no_progress=True, logging_steps=1)
        bar = host.Progress(steps, unique_id)

        def on_step(step, total, status):
            bar.set(step)
            acc = status.get("val_accuracy")
            host.progress_text(f"step {step}/{total}: loss {status['loss']:.4f}"
                               + (f", validation accuracy {acc:.1%}" if acc is not None else ""), unique_id)
            host.check_cancel()  # raises on cancel; the last checkpoint stays, a new run resumes it

        with torch.inference_mode(False), torch.enable_grad(), _no_system_exit("Train RFNet"):
            train(args, on_step)
        dst = None
        for d in host.model_dirs("rfnet")[:1]:
            dst = host.safe_join(d, safe)
        if dst is None:
            dst = run_dir / "rfnet_export"
        import shutil

        from rfnet.fileio import atomic_dir

        with atomic_dir(dst) as tmp:
            for item in ("config.json", "model.safetensors", "inspector.json", "MODEL_CARD.md", "tokenizer"):
                src = run_dir / item
                if src.is_dir():
                    shutil.copytree(src, tmp / item)
                elif src.exists():
                    shutil.copy2(src, tmp / item)
        curve = accuracy_curve(_read_log(run_dir / "logs" / "train_log.csv"))
        img = torch.from_numpy(np.asarray(curve, np.float32) / 255.0)[None]
        return {"ui": {"text": [f"RFNet written to {dst}; pick it in Load RFNet (press R to refresh)"]},
                "result": (str(dst), img)}

    @staticmethod
    def rfsynth_mix(out_root, n: int):
        """RF-Synth scenes to mix in, made once per count and world version (seed 0, the newest
        version: hard mattes and printed labels among them, as a designer's products have)."""
        from rfsynth.make import make
        from rfsynth.scene import VERSION

        root = out_root / "rf_feedback" / f"_rfsynth_v{VERSION}_{n}"
        if not (root / "dataset.json").is_file() or not (root / "manifest.jsonl").is_file():
            make(root, n, size=128, seed=0, splits="train=1", workers=1, progress=False, version=VERSION)
        return root


NODE_CLASS_MAPPINGS = {"RFFTTrain": RFFTTrain, "RFTrainRFNet": TrainRFNet}
NODE_DISPLAY_NAME_MAPPINGS = {"RFFTTrain": "RFFT Train (ControlNet)", "RFTrainRFNet": "Train RFNet (from your labels)"}
