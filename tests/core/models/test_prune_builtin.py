"""scripts/prune_builtin.py: the decoder thinning keeps the strongest channels and the thinned
weights load into a network of the thinner widths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from napari_segqc.core.models.registry import ModelConfig, build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
prune = pytest.importorskip("prune_builtin")

WIDE = ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(32, 16, 8))


def _weights(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = build_model(WIDE)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    for key in weights:  # distinct batch-norm scales, so the choice is well defined
        if key.endswith(".1.weight") and key.startswith("decoder"):
            weights[key] = torch.rand(weights[key].shape) + 0.1
    return weights


def test_same_widths_keep_every_weight():
    weights = _weights()
    thinned = prune.thinned_decoder(weights, (32, 16, 8))
    assert thinned.keys() == weights.keys()
    for key in weights:
        assert torch.equal(thinned[key], weights[key]), key


def test_thinned_weights_load_and_keep_the_strongest_channels():
    weights = _weights()
    thinned = prune.thinned_decoder(weights, (16, 8, 4))
    model = build_model(
        ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4))
    )
    model.load_state_dict(thinned)  # strict: every shape fits
    out = model.eval()(torch.rand(1, 1, 64, 64))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()

    # the first block's first convolution kept its 16 channels of largest effective scale
    conv, bn = "decoder.blocks.0.conv1.0.weight", "decoder.blocks.0.conv1.1"
    scale = weights[f"{bn}.weight"].abs() / torch.sqrt(weights[f"{bn}.running_var"] + 1e-5)
    score = scale * weights[conv].abs().sum(dim=(1, 2, 3))
    kept = torch.sort(torch.topk(score, 16).indices).values
    assert torch.equal(thinned[conv], weights[conv][kept])
    assert torch.equal(thinned[f"{bn}.running_mean"], weights[f"{bn}.running_mean"][kept])
    # the next convolution reads exactly those channels
    conv2 = "decoder.blocks.0.conv2.0.weight"
    assert thinned[conv2].shape[1] == 16
    # the second block reads the first block's kept outputs, then the whole skip connection
    skip = weights["decoder.blocks.1.conv1.0.weight"].shape[1] - 32
    assert thinned["decoder.blocks.1.conv1.0.weight"].shape[1] == 16 + skip
