import pytest
import torch
from conftest import tiny_config

from rfnet.model import RFNet
from rfnet.weights import WeightsNotFoundError, find_file, load_state_dict


def test_missing_file_error_names_file_folders_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("RF_MODELS_DIR", str(tmp_path / "models_a"))
    with pytest.raises(WeightsNotFoundError) as e:
        find_file("resnet50.safetensors", [tmp_path / "extra"], where_to_get="https://example.org/r50")
    msg = str(e.value)
    assert "resnet50.safetensors" in msg
    assert str(tmp_path / "extra") in msg and str(tmp_path / "models_a") in msg
    assert "https://example.org/r50" in msg


def test_find_file_searches_folders_in_order(tmp_path, monkeypatch):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "w.safetensors").write_bytes(b"x")
    monkeypatch.setenv("RF_MODELS_DIR", str(tmp_path / "b"))
    assert find_file("w.safetensors", [tmp_path / "a"]) == tmp_path / "b" / "w.safetensors"


def test_pretrained_image_backbone_from_a_local_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ref = timm.create_model("resnet10t", pretrained=False)  # with its classifier head, as published
    save_file(ref.state_dict(), str(tmp_path / "r10t.safetensors"))
    torch.save(ref.state_dict(), tmp_path / "r10t.pth")
    for f in ("r10t.safetensors", "r10t.pth"):
        m = RFNet(tiny_config())
        done = m.load_pretrained_backbones(image_weights=tmp_path / f)
        assert done and f in done[0]
        assert torch.equal(m.image_encoder.conv1[0].weight, ref.conv1[0].weight)


def test_pretrained_backbone_mismatch_is_explained(tmp_path):
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet18").state_dict(), str(tmp_path / "r18.safetensors"))
    with pytest.raises(ValueError, match="does not fit resnet10t"):
        RFNet(tiny_config()).load_pretrained_backbones(image_weights=tmp_path / "r18.safetensors")


def test_pretrained_caption_encoder_from_a_local_folder(tmp_path):
    from conftest import TINY_CAPTION
    from transformers import AutoConfig, AutoModel

    cfg = dict(TINY_CAPTION)
    torch.manual_seed(2)
    ref = AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    ref.save_pretrained(tmp_path / "roberta")
    m = RFNet(tiny_config())
    m.load_pretrained_backbones(caption_weights=tmp_path / "roberta")
    assert torch.equal(m.caption_encoder.embeddings.word_embeddings.weight, ref.embeddings.word_embeddings.weight)
    with pytest.raises(WeightsNotFoundError, match="hfl/chinese-roberta-wwm-ext"):
        m.load_pretrained_backbones(caption_weights="hfl/chinese-roberta-wwm-ext")


def test_unknown_weight_format(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported weight file type"):
        load_state_dict(tmp_path / "w.npz")
