"""Segmentation losses: right values at the extremes, finite gradients, float32 under autocast."""

import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.train.losses import (
    LOSSES,
    BCELoss,
    DiceLoss,
    FocalLoss,
    TverskyLoss,
    make_loss,
)

NAMES = sorted(LOSSES)


def batch(seed=0, shape=(2, 3, 16, 16)):
    gen = torch.Generator().manual_seed(seed)
    targets = (torch.rand(shape, generator=gen) > 0.6).float()
    logits = torch.randn(shape, generator=gen) * 3
    return logits, targets


@pytest.mark.parametrize("name", NAMES)
def test_perfect_is_near_zero_wrong_is_large(name):
    loss = make_loss(name)
    _, targets = batch()
    perfect = loss(40 * targets - 20, targets)
    wrong = loss(20 - 40 * targets, targets)
    assert perfect.ndim == 0 and 0 <= perfect.item() < 1e-3
    assert wrong.item() > 0.1 and wrong.item() > 100 * perfect.item()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_and_pointing_the_right_way(name):
    logits, targets = batch(1)
    logits.requires_grad_(True)
    make_loss(name)(logits, targets).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # a step against the gradient lowers the loss
    with torch.no_grad():
        before = make_loss(name)(logits, targets)
        after = make_loss(name)(logits - 10 * logits.grad / logits.grad.abs().max(), targets)
    assert after < before


@pytest.mark.parametrize("name", ["dice", "bce_dice", "tversky"])
def test_empty_target_no_nan(name):
    targets = torch.zeros(2, 1, 8, 8)
    logits = torch.full_like(targets, -20.0).requires_grad_(True)
    value = make_loss(name)(logits, targets)
    value.backward()
    assert torch.isfinite(value) and value.item() < 1e-3
    assert torch.isfinite(logits.grad).all()
    assert make_loss(name)(torch.full_like(targets, 20.0), targets).item() > 0.9


@pytest.mark.parametrize("seed", range(3))
def test_focal_never_above_bce(seed):
    logits, targets = batch(seed)
    soft = targets * 0.8 + 0.1
    for t in (targets, soft):
        assert FocalLoss()(logits, t) <= BCELoss()(logits, t)
        assert FocalLoss(alpha=None)(logits, t) <= BCELoss()(logits, t)


@pytest.mark.parametrize("seed", range(3))
def test_tversky_half_half_is_dice(seed):
    logits, targets = batch(seed)
    tversky = TverskyLoss(alpha=0.5, beta=0.5)(logits, targets)
    torch.testing.assert_close(tversky, DiceLoss()(logits, targets))


def test_tversky_beta_punishes_false_negatives():
    targets = torch.ones(1, 1, 8, 8)
    under = torch.full_like(targets, -2.0)  # misses foreground
    assert TverskyLoss(alpha=0.3, beta=0.7)(under, targets) > DiceLoss()(under, targets)


def test_dice_matches_hand_computation():
    logits, targets = batch(4)
    p = torch.sigmoid(logits)
    inter = (p * targets).sum((0, 2, 3))
    dice = (2 * inter + 1) / (p.sum((0, 2, 3)) + targets.sum((0, 2, 3)) + 1)
    torch.testing.assert_close(DiceLoss()(logits, targets), (1 - dice).mean())
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(make_loss("bce_dice")(logits, targets), bce + (1 - dice).mean())


@pytest.mark.parametrize("name", NAMES)
def test_channel_weights(name):
    logits, targets = batch(5)
    per_channel = [make_loss(name)(logits[:, k : k + 1], targets[:, k : k + 1]) for k in range(3)]
    weighted = make_loss(name, weight=[1.0, 0.0, 3.0])(logits, targets)
    torch.testing.assert_close(weighted, (per_channel[0] + 3 * per_channel[2]) / 4)
    with pytest.raises(SegQCError, match="2 channel weights for 3"):
        make_loss(name, weight=[1.0, 2.0])(logits, targets)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_logits_and_autocast(name, dtype):
    logits, targets = batch(6)
    logits = (logits * 10).to(dtype).requires_grad_(True)  # large logits stress exp/log
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = make_loss(name)(logits, targets)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(logits.grad).all()
    reference = make_loss(name)(logits.detach().float(), targets)
    torch.testing.assert_close(value.detach(), reference)


def test_make_loss_bad_name_lists_choices():
    with pytest.raises(SegQCError) as info:
        make_loss("hinge")
    message = str(info.value)
    assert "unknown loss 'hinge'" in message
    assert "bce, bce_dice, dice, focal, tversky" in message


@pytest.mark.parametrize(("name", "cls"), [("BCE+Dice", "BCEDiceLoss"), ("Focal", "FocalLoss")])
def test_make_loss_is_forgiving_and_passes_options(name, cls):
    loss = make_loss(name)
    assert type(loss).__name__ == cls
    assert make_loss("focal", gamma=1.0).gamma == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(SegQCError, match="same"):
        make_loss("dice")(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
