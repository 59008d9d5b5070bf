import pytest
import torch

from rfnet.extractors import (
    GroundPlaneDepth,
    SpectralResidualSalience,
    TransformersDepth,
    U2NetSalience,
    make_extractor,
)
from rfnet.u2net import U2Net
from rfnet.weights import WeightsNotFoundError


def test_u2net_matches_the_published_architecture():
    # Parameter counts of the authors' u2net.pth (176.3 MB) and u2netp.pth (4.7 MB).
    def n(m):
        return sum(p.numel() for p in m.parameters())

    assert n(U2Net("u2net")) == 44_009_869
    assert n(U2Net("u2netp")) == 1_131_181
    keys = U2Net("u2netp").state_dict().keys()
    for k in ("stage1.rebnconvin.conv_s1.weight", "stage1.rebnconv7.bn_s1.running_mean",
              "stage1.rebnconv6d.conv_s1.weight", "stage5.rebnconv4.conv_s1.weight",
              "stage5d.rebnconv3d.bn_s1.weight", "side6.weight", "outconv.bias"):
        assert k in keys
    # dilations of RSU-4F as in the paper: 1, 2, 4, 8
    s5 = U2Net("u2netp").stage5
    assert [s5.rebnconv1.conv_s1.dilation[0], s5.rebnconv2.conv_s1.dilation[0],
            s5.rebnconv3.conv_s1.dilation[0], s5.rebnconv4.conv_s1.dilation[0]] == [1, 2, 4, 8]


def test_u2net_salience_from_a_pth_file(tmp_path):
    torch.manual_seed(0)
    ref = U2Net("u2netp").eval()
    torch.save({"model": ref.state_dict()}, tmp_path / "u2netp.pth")  # wrapped, as training saves it
    ex = make_extractor("salience", str(tmp_path / "u2netp.pth"))
    assert isinstance(ex, U2NetSalience) and ex.name.startswith("u2netp:u2netp.pth@") and not ex.is_fallback
    x = torch.rand(2, 3, 50, 70)
    out = ex(x)
    assert out.shape == (2, 1, 50, 70)
    assert out.amin() == 0 and out.amax() == pytest.approx(1.0)
    # the same as running the network by hand
    import torch.nn.functional as F
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    xi = F.interpolate(x, size=(320, 320), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        s = F.interpolate(ref((xi - mean) / std), size=(50, 70), mode="bilinear", align_corners=False)
    s = (s - s.amin((1, 2, 3), keepdim=True)) / (s.amax((1, 2, 3), keepdim=True) - s.amin((1, 2, 3), keepdim=True))
    with torch.no_grad():
        assert torch.allclose(ex(x), s, atol=1e-5)


def test_u2net_wrong_file_and_missing_file(tmp_path):
    torch.save(U2Net("u2netp").state_dict(), tmp_path / "small.pth")
    with pytest.raises(ValueError, match="not a u2net checkpoint"):
        make_extractor("salience", "u2net:" + str(tmp_path / "small.pth"))
    with pytest.raises(WeightsNotFoundError) as e:
        make_extractor("salience", str(tmp_path / "nope" / "u2net.pth"))
    assert "u2net.pth" in str(e.value) and "U-2-Net" in str(e.value) and "searched" in str(e.value)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": torch.zeros(1), "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        make_extractor("salience", str(tmp_path / "evil.pth"))


def _tiny_dpt(path):
    from transformers import DPTConfig, DPTForDepthEstimation

    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                    image_size=64, patch_size=16, neck_hidden_sizes=[16, 16, 32, 32],
                    fusion_hidden_size=16, backbone_out_indices=[0, 1, 2, 3])
    torch.manual_seed(0)
    DPTForDepthEstimation(cfg).save_pretrained(path)


def test_transformers_depth_from_a_local_folder(tmp_path):
    _tiny_dpt(tmp_path / "dpt")
    ex = make_extractor("depth", str(tmp_path / "dpt"))
    assert isinstance(ex, TransformersDepth) and ex.name.startswith("dpt:")
    out = ex(torch.rand(2, 3, 40, 60))
    assert out.shape == (2, 1, 40, 60) and out.amin() == 0 and out.amax() == pytest.approx(1.0)


def test_depth_anything_from_a_local_folder(tmp_path):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    bc = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                      image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                      reshape_hidden_states=False)
    DepthAnythingForDepthEstimation(DepthAnythingConfig(
        backbone_config=bc, neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16,
        head_hidden_size=8, reassemble_hidden_size=32)).save_pretrained(tmp_path / "da")
    ex = make_extractor("depth", str(tmp_path / "da"))
    assert ex.input_size % 14 == 0
    assert ex(torch.rand(1, 3, 30, 30)).shape == (1, 1, 30, 30)


def test_missing_depth_model_names_where_to_get_it(tmp_path):
    with pytest.raises(WeightsNotFoundError) as e:
        make_extractor("depth", "Intel/dpt-large")
    assert "Intel/dpt-large" in str(e.value) and "huggingface.co/Intel/dpt-large" in str(e.value)


def test_fallbacks_are_named_as_such():
    d, s = make_extractor("depth", "fallback"), make_extractor("salience", "fallback")
    assert d.is_fallback and s.is_fallback
    assert d.name.startswith("fallback:") and s.name.startswith("fallback:")


def test_ground_plane_depth_is_near_at_the_bottom():
    out = GroundPlaneDepth()(torch.rand(1, 3, 10, 4))
    assert out[0, 0, -1, 0] == 1 and out[0, 0, 0, 0] == 0
    assert torch.all(out[0, 0, 1:, 0] > out[0, 0, :-1, 0])


def test_spectral_residual_finds_the_odd_object():
    img = torch.full((1, 3, 96, 96), 0.5)
    img[:, :, 40:56, 60:76] = 1.0  # one bright patch on a flat background
    sal = SpectralResidualSalience()(img)[0, 0]
    assert sal.shape == (96, 96) and float(sal.max()) == pytest.approx(1.0)
    inside = sal[40:56, 60:76].mean()
    outside = torch.cat([sal[:, :30].flatten(), sal[75:, :].flatten()]).mean()
    assert inside > 3 * outside


def test_extractors_refuse_wrong_shapes():
    with pytest.raises(ValueError, match="B, 3, H, W"):
        GroundPlaneDepth()(torch.rand(1, 1, 8, 8))
