"""Model registry: every architecture builds offline; bad names list the valid ones."""

import json

import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.models.registry import ARCHITECTURES, ModelConfig, build_model


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_architectures_build_without_downloads(arch):
    model = build_model(ModelConfig(arch=arch, encoder="resnet18", in_channels=3, classes=2))
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 128, 128))
    assert out.shape == (1, 2, 128, 128)


@pytest.mark.parametrize("encoder", ["efficientnet-b0", "tu-hrnet_w18_small"])
def test_other_encoders(encoder):
    model = build_model(ModelConfig(encoder=encoder, in_channels=1, classes=3)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ModelConfig(arch="resnet"), "unknown architecture 'resnet'; choose one of: unet"),
        (ModelConfig(encoder="resnet35"), "unknown encoder 'resnet35'; choose e.g. resnet18"),
        (ModelConfig(in_channels=0), "must be >= 1"),
    ],
)
def test_bad_names_list_valid_ones(config, message):
    with pytest.raises(SegQCError, match=message):
        build_model(config)


def test_config_round_trip_and_unknown_keys():
    config = ModelConfig(arch="fpn", encoder="resnet34", in_channels=3, classes=1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(SegQCError, match="unknown keys"):
        ModelConfig.from_dict({**config.to_dict(), "evil": 1})


def test_triton_is_kept_out_without_a_gpu():
    """smp pulls in torch._dynamo -> triton, whose LLVM crashes napari under Mesa (Xvfb)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; "
        "from napari_segqc.core.models.registry import build_model, ModelConfig; "
        "build_model(ModelConfig(encoder='resnet18')); "
        "print(torch.cuda.is_available(), sys.modules.get('triton', 'absent'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cuda, triton = out.stdout.split()[:2]
    if cuda == "False":
        assert triton == "None"  # marked absent: never imported


def test_shallower_model_drops_unused_stages_and_round_trips():
    config = ModelConfig(encoder="resnet18", encoder_depth=4, decoder_channels=(64, 32, 16, 8))
    model = build_model(config)
    names = {k.split(".")[1] for k in model.state_dict() if k.startswith("encoder.")}
    assert "layer4" not in names and "layer3" in names  # 1/32-scale stage never runs: gone
    full = build_model(ModelConfig(encoder="resnet18"))
    n = sum(p.numel() for p in model.parameters())
    assert n < 0.4 * sum(p.numel() for p in full.parameters())
    out = model(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 3, 64, 64)
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config  # JSON lists come back as tuples


def test_bad_depth_settings():
    with pytest.raises(SegQCError, match="encoder depth"):
        build_model(ModelConfig(encoder_depth=6))
    with pytest.raises(SegQCError, match="one width per encoder stage"):
        build_model(ModelConfig(encoder_depth=4, decoder_channels=(64, 32)))
