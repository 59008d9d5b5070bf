"""RFFT: the loss terms against direct computations, gradients only into the ControlNet, the
step window drawn once per batch, exact resume, and an output diffusers loads."""
import json
import shutil

import pytest
import torch

from rfft.losses import consistent_condition_loss, feedback_loss, kl_loss


def test_cc_loss_is_eq8():
    g = torch.Generator().manual_seed(0)
    a, b, c, d = (torch.randn(3, 4, 8, 8, generator=g) for _ in range(4))
    want = torch.stack([torch.sqrt((((a[i] - b[i]) - (c[i] - d[i])) ** 2).sum()) for i in range(3)]).mean()
    assert torch.allclose(consistent_condition_loss(a, b, c, d), want, atol=1e-6)
    # the same guidance direction gives zero even when the predictions differ
    assert consistent_condition_loss(a + 1, b + 1, a, b).item() == pytest.approx(0, abs=1e-4)
    # gradients flow into the trained terms only
    a.requires_grad_(True)
    c.requires_grad_(True)
    consistent_condition_loss(a, b, c, d).backward()
    assert a.grad is not None and c.grad is None


def test_cc_loss_score_form_divides_each_sample_by_its_sigma():
    g = torch.Generator().manual_seed(2)
    a, b, c, d = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(4))
    alphabar = torch.tensor([0.99, 0.5])
    sigma = (1 - alphabar).sqrt()
    # by hand: the score is -eps / sigma, so each direction's difference is the eps one over sigma
    want = torch.stack([torch.sqrt(((((a[i] - b[i]) - (c[i] - d[i])) / sigma[i]) ** 2).sum()) for i in range(2)]).mean()
    assert torch.allclose(consistent_condition_loss(a, b, c, d, sigma), want, atol=1e-5)
    # one timestep for the batch: a scalar sigma
    s0 = float(sigma[0])
    assert consistent_condition_loss(a, b, c, d, s0).item() == pytest.approx(
        consistent_condition_loss(a, b, c, d).item() / s0, rel=1e-5)


def test_cc_form_is_checked():
    from rfft.trainer import RFFTConfig

    assert RFFTConfig().cc_form == "score"
    with pytest.raises(ValueError, match="cc_form"):
        RFFTConfig(cc_form="epsilon")


def test_kl_and_feedback_terms():
    g = torch.Generator().manual_seed(1)
    e, r = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    assert torch.allclose(kl_loss(e, r), ((e - r) ** 2).mean())
    logits = torch.randn(5, 6, generator=g)
    want = -torch.log_softmax(logits, -1)[:, 0].mean()
    assert torch.allclose(feedback_loss(logits), want)


@pytest.fixture(scope="module")
def objective(tiny_generator):
    from rfft.generate import EXAMPLES
    from rfft.pipeline import AdInpaintPipeline, load_parts
    from rfft.placement import load_product, place
    from rfft.trainer import DifferentiableJudge, Example, RFFTConfig, RFFTObjective

    parts = load_parts(tiny_generator)
    cn = parts.pop("controlnet")
    import copy

    ref = copy.deepcopy(cn)
    pipe = AdInpaintPipeline(controlnet=ref, **parts)
    cn.train().requires_grad_(True)
    judge = DifferentiableJudge.from_pretrained("embedded")
    obj = RFFTObjective(pipe, cn, ref, judge, RFFTConfig(num_inference_steps=6, grad_steps_window=3, reg="cc"))
    # two products of different shapes in one batch, as training draws them
    pl = place(load_product(EXAMPLES / "products" / "05_perfume.png"), 64, 0.5)
    pl2 = place(load_product(EXAMPLES / "products" / "00_lipstick.png"), 64, 0.4)
    assert pl.cutout.size != pl2.cutout.size
    batch = [Example(pl, "a perfume on a marble table", "blurry", "Vela teal perfume"),
             Example(pl2, "a lipstick on a oak shelf", "", "Rouge red lipstick")]
    return obj, batch


def test_gradients_reach_only_the_controlnet(objective):
    obj, batch = objective
    cn = obj.controlnet
    cn.zero_grad(set_to_none=True)
    loss, logs = obj(batch, torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in cn.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    frozen = [obj.pipe.unet, obj.pipe.vae, obj.pipe.text_encoder, obj.ref, obj.judge]
    assert all(p.grad is None and not p.requires_grad for m in frozen for p in m.parameters())
    assert {"f_ac", "reg", "loss", "p_available", "step_index"} <= set(logs)
    assert logs["loss"] == pytest.approx(logs["f_ac"] + obj.cfg.beta * logs["reg"], rel=1e-4)
    assert logs["reg"] == pytest.approx(0, abs=1e-5)  # trained == reference before any update


def test_the_gradient_step_is_drawn_once_per_batch_in_the_last_k(objective, monkeypatch):
    obj, batch = objective
    calls = []
    real = obj.draw_step
    monkeypatch.setattr(obj, "draw_step", lambda g: calls.append(real(g)) or calls[-1])
    seen = set()
    for s in range(12):
        with torch.no_grad():
            _, logs = obj(batch[:1], torch.Generator().manual_seed(s))
        seen.add(logs["step_index"])
    assert len(calls) == 12 and seen <= {3, 4, 5} and len(seen) > 1


def _train(tmp, gen, *extra):
    from rfft.generate import EXAMPLES
    from rfft.train import main

    prods = tmp / "products"
    if not prods.exists():
        prods.mkdir()
        for n in ("05_perfume.png", "00_lipstick.png"):
            shutil.copy(EXAMPLES / "products" / n, prods / n)
        (tmp / "p.json").write_text(json.dumps([{"prompt": "a {product} on a marble table, beige wall",
                                                  "negative_prompt": "", "image_scale": 0.5}]))
    return main(["--pretrained_model_name_or_path", str(gen), "--products", str(prods), "--prompts", str(tmp / "p.json"),
                 "--num_inference_steps", "4", "--grad_steps_window", "2", "--learning_rate", "1e-3",
                 "--checkpointing_steps", "2", "--seed", "3", *extra])


def test_resume_is_exact_and_the_output_loads_in_diffusers(tmp_path, tiny_generator):
    from diffusers import ControlNetModel

    assert _train(tmp_path, tiny_generator, "--output_dir", str(tmp_path / "a"), "--max_train_steps", "4") == 0
    assert _train(tmp_path, tiny_generator, "--output_dir", str(tmp_path / "b"), "--max_train_steps", "4",
                  "--max_steps_this_run", "2") == 0
    assert (tmp_path / "b" / "checkpoint-2").exists() and not (tmp_path / "b" / "controlnet").exists()
    assert _train(tmp_path, tiny_generator, "--output_dir", str(tmp_path / "b"), "--max_train_steps", "4",
                  "--resume_from_checkpoint", "latest") == 0
    a = ControlNetModel.from_pretrained(tmp_path / "a" / "controlnet").state_dict()
    b = ControlNetModel.from_pretrained(tmp_path / "b" / "controlnet").state_dict()
    start = ControlNetModel.from_pretrained(tiny_generator / "controlnet").state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 0  # it did learn something
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("f_ac,") and len(rows) == 5


def test_wall_colour_reward_against_a_direct_computation():
    from rfft.rewards import REWARDS
    from rfsynth.catalog import COLOURS
    from rfsynth.rewards import wall_colour, wall_colour_named

    assert REWARDS["wall_colour"] is wall_colour  # rfft.train's --extra_reward wall_colour

    assert wall_colour_named("a lamp on a oak shelf, Sky Blue wall, warm light") == "sky blue"
    assert wall_colour_named("a lamp on a blue table") is None
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(3, 3, 40, 40, generator=g)
    navy = torch.tensor(COLOURS["navy"][0]) / 255.0
    imgs[1, :, :4] = navy[:, None, None]  # the top 10% is exactly navy
    imgs.requires_grad_(True)
    r = wall_colour(imgs, ["x, navy wall", "x, navy wall", "a lamp on a table"])
    want0 = -(imgs[0, :, :4] - navy[:, None, None]).abs().mean()
    assert torch.allclose(r[0], want0) and r.detach()[1:].abs().sum() == 0
    assert r.detach()[0] < r.detach()[1]  # the right colour scores higher
    r.sum().backward()
    assert imgs.grad[0, :, :4].abs().sum() > 0 and imgs.grad[0, :, 4:].abs().sum() == 0 and imgs.grad[2].abs().sum() == 0


@pytest.mark.parametrize("precision", ["no", pytest.param("bf16", marks=pytest.mark.slow)])
def test_memory_flags_train_and_resume_exactly(tmp_path, tiny_generator, precision):
    """The SD1.5-scale memory measures (bf16 frozen parts, checkpointing, released text encoder,
    float8 moments stepped in backward) run the same loop, and resume exactly too. bfloat16
    autocast is slow on CPUs without bf16 units, hence slow."""
    from diffusers import ControlNetModel

    flags = ["--mixed_precision", precision, "--gradient_checkpointing", "--release_text_encoder",
             "--optimizer", "adamw_8bit", "--step_in_backward", "--max_train_steps", "2", "--checkpointing_steps", "1"]
    assert _train(tmp_path, tiny_generator, "--output_dir", str(tmp_path / "a"), *flags) == 0
    assert _train(tmp_path, tiny_generator, "--output_dir", str(tmp_path / "b"), *flags, "--max_steps_this_run", "1") == 0
    assert _train(tmp_path, tiny_generator, "--output_dir", str(tmp_path / "b"), *flags,
                  "--resume_from_checkpoint", "latest") == 0
    a = ControlNetModel.from_pretrained(tmp_path / "a" / "controlnet").state_dict()
    b = ControlNetModel.from_pretrained(tmp_path / "b" / "controlnet").state_dict()
    start = ControlNetModel.from_pretrained(tiny_generator / "controlnet").state_dict()
    assert all(a[k].dtype == torch.float32 for k in a)  # the trained weights stay float32
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 0


def test_decoder_checkpointing_block_by_block_gives_the_same_gradients(tiny_generator):
    import copy

    from diffusers import AutoencoderKL

    from rfft.memory import checkpoint_vae_decoder

    vae = AutoencoderKL.from_pretrained(tiny_generator / "vae").requires_grad_(False)
    ckpt = copy.deepcopy(vae)
    assert checkpoint_vae_decoder(ckpt) > 4 and checkpoint_vae_decoder(ckpt) == 0  # wrapped once only
    # every ResNet block keeps only SiLU's output (the measure that sets the 512 px peak): a
    # renamed attribute in diffusers would otherwise skip it without a word
    resnets = [r for b in (ckpt.decoder.mid_block, *ckpt.decoder.up_blocks) for r in b.resnets]
    assert resnets and all(getattr(r, "_rfft_norm_act_fused", False) for r in resnets)
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    grads = []
    for m in (vae, ckpt):
        x = z.clone().requires_grad_(True)
        out = m.decode(x).sample
        (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), x.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1], atol=1e-6)
    assert grads[0][1].abs().sum() > 0


def test_cached_prompts_survive_releasing_the_text_encoder(tiny_generator):
    from rfft.pipeline import AdInpaintPipeline

    pipe = AdInpaintPipeline.load(tiny_generator)
    want = pipe.encode_prompt(["a vase on a marble table", ""])
    assert pipe.cache_prompts(["a vase on a marble table", "", "a vase on a marble table"], release_text_encoder=True) == 2
    assert pipe.text_encoder is None
    assert torch.equal(pipe.encode_prompt(["a vase on a marble table", ""]), want)
    with pytest.raises(ValueError, match="cache_prompts"):
        pipe.encode_prompt(["a cup on a shelf"])


def test_optimizer_names_say_what_they_are_and_the_old_one_still_works():
    from rfft.train import parse_args

    out = ["--output_dir", "runs/x"]
    assert parse_args([*out, "--optimizer", "adamw_8bit"]).optimizer == "adamw_float8"  # the old name: float8 moments
    assert parse_args([*out, "--optimizer", "adamw_float8"]).optimizer == "adamw_float8"
    with pytest.raises(SystemExit):
        parse_args([*out, "--optimizer", "sgd"])


def test_rate_intervals_against_hand_computations():
    """Table 3's intervals: Wilson's for a rate, the paired one for a difference of two
    configurations on the same jobs."""
    import math

    from rfft.evaluate import paired_difference, wilson_interval

    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(1.96 ** 2 / (10 + 1.96 ** 2))
    lo, hi = wilson_interval(62, 100)  # its ends are the rates x with |0.62 - x| = z sqrt(x (1 - x) / n)
    for x in (lo, hi):
        assert (0.62 - x) ** 2 == pytest.approx(1.96 ** 2 * x * (1 - x) / 100)
    assert lo < 0.62 < hi and hi - lo == pytest.approx(0.187, abs=1e-3)
    d, lo, hi = paired_difference([1, 1, 0, 0], [0, 1, 0, 1])  # differences 1, 0, 0, -1
    half = 1.96 * math.sqrt(2 / 3) / 2
    assert d == 0 and (lo, hi) == pytest.approx((-half, half))
    d, lo, hi = paired_difference([1] * 30 + [0] * 70, [1] * 20 + [0] * 80)  # 10 jobs gained, none lost
    assert d == pytest.approx(0.1) and lo > 0
    with pytest.raises(ValueError):
        paired_difference([1, 0], [1])


def test_evaluate_counts_match_its_rows(tiny_generator):
    """rfft.evaluate's rates, agreements and intervals are those of the per-job rows it writes."""
    from rfft.evaluate import draw_jobs, evaluate, wilson_interval
    from rfft.pipeline import AdInpaintPipeline
    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    pipe = AdInpaintPipeline.load(str(tiny_generator))
    pipe.set_progress_bar_config(disable=True)
    insp = Inspector.from_pretrained(embedded_path("rfnet"), threshold=0.0)
    insp.novelty = None  # noise from random weights: let the threshold alone decide
    res = evaluate(pipe, insp, draw_jobs(4711, 4), (1, 100), steps=2)
    rows = res["rows"]
    assert res["jobs"] == len(rows) == 4 and [r["i"] for r in rows] == [0, 1, 2, 3]
    k = sum(r["oracle"] == "Available" for r in rows)
    assert res["available_rate_oracle"] == k / 4 and res["available_rate_oracle_ci95"] == wilson_interval(k, 4)
    assert res["available_rate_rfnet"] == sum(r["accepted"] for r in rows) / 4 == 1.0  # threshold 0
    assert res["rfnet_oracle_agreement"] == k / 4
    top = sum((r["rfnet"] == "Available") == (r["oracle"] == "Available") for r in rows) / 4
    assert res["rfnet_oracle_agreement_top_class"] == top and res["rfnet_threshold"] == 0.0


def test_evaluate_cli_judges_with_the_named_inspector_and_threshold(tiny_generator, tmp_path):
    """--rfnet DIR judges with that folder's model at its calibrated threshold; --threshold top
    accepts by the top class whatever the folder says; --threshold P wins over both."""
    from rfft import evaluate
    from rfnet.embedded import embedded_path

    model = tmp_path / "insp"
    shutil.copytree(embedded_path("rfnet"), model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["acceptance_threshold"] = 1.0  # accepts (almost) nothing
    (model / "config.json").write_text(json.dumps(cfg))

    def run(*extra):
        out = tmp_path / f"ev{len(list(tmp_path.glob('ev*')))}.json"
        assert evaluate.main(["--generator", str(tiny_generator), "--products", "3", "--seed", "5", "--steps", "2",
                              "--out", str(out), "--rfnet", str(model), *extra]) == 0
        return json.loads(out.read_text())

    calibrated, top, zero = run(), run("--threshold", "top"), run("--threshold", "0")
    assert calibrated["rfnet"] == str(model) and calibrated["rfnet_threshold"] == 1.0
    assert all(r["accepted"] == (r["p_available"] >= 1.0 and r["note"] is None) for r in calibrated["rows"])
    assert top["rfnet_threshold"] is None
    assert [r["p_available"] for r in top["rows"]] == [r["p_available"] for r in calibrated["rows"]]
    assert all(r["accepted"] == (r["rfnet"] == "Available" and not r["note"]) for r in top["rows"])
    assert zero["rfnet_threshold"] == 0.0
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--threshold", "1.5", "--products", "1"])
    assert e.value.code == 2


def test_the_node_and_the_cli_build_the_same_configuration():
    """RFFTTrainConfig is what the CLI parses and what the RFFT Train node builds; a value the
    command line would refuse is refused in code too, in one line."""
    from rfft.train import RFFTTrainConfig, parse_args, validate_args
    from rfnet.errors import InputError

    cli = parse_args(["--output_dir", "o", "--reg", "kl", "--beta", "0.5", "--max_train_steps", "7",
                      "--gradient_checkpointing", "--optimizer", "adamw_8bit"])
    code = RFFTTrainConfig(output_dir="o", reg="kl", beta=0.5, max_train_steps=7, gradient_checkpointing=True,
                           optimizer="adamw_8bit")
    assert cli == code and code.optimizer == "adamw_float8"
    with pytest.raises(InputError, match="--reg must be one of cc, kl, none, not 'ReFL'"):
        validate_args(RFFTTrainConfig(output_dir="o", reg="ReFL"))
    with pytest.raises(InputError, match="--max_train_steps must be at least 1"):
        validate_args(RFFTTrainConfig(output_dir="o", max_train_steps=0))
    with pytest.raises(InputError, match="unrecognized arguments: --bogus 1"):
        parse_args(["--output_dir", "o", "--bogus", "1"], exit_on_error=False)
