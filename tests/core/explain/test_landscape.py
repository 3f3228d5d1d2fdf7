"""Loss landscapes: the minimum of a convex problem at the centre, seeding, weights restored,
filter-normalised directions, the path from the initial weights, the QC batch, the figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from napari_segqc.core.errors import SegQCError, Stopped
from napari_segqc.core.explain.landscape import (
    LANDSCAPE_LOSSES,
    filter_normalized_directions,
    initial_weights,
    iter_landscape,
    landscape,
    qc_batch,
)
from napari_segqc.core.explain.plots import draw_landscape, save_figure
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data, samples_from_arrays
from napari_segqc.core.train.losses import make_loss

TINY = ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4))
CONFIG = TrainConfig(model=TINY, patch=64)


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(TINY).eval()
    with torch.no_grad():  # BatchNorm statistics of a trained model, not the fresh (0, 1)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def batch(sample_dir):
    return qc_batch(load_training_data(sample_dir), CONFIG, patch=64, max_images=2)


def losses_of(model, x, y) -> dict[str, float]:
    with torch.no_grad():
        logits = model.eval()(x)
    return {name: float(make_loss(name)(logits, y)) for name in LANDSCAPE_LOSSES}


def test_centre_is_the_minimum_of_a_convex_problem():
    # one linear conv layer on BCE: convex in the weights; soft targets made by the same layer
    # put the optimum exactly at its weights
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        y = torch.sigmoid(model(x))
    result = landscape(model, x, y, losses=("bce",), steps=5, span=1.0)
    grid = result.values["bce"]
    assert list(result.values) == ["bce"] and grid.shape == (5, 5)
    assert result.alphas[2] == 0.0 and result.betas[2] == 0.0
    others = np.delete(grid.ravel(), 12)
    assert (others > grid[2, 2] + 1e-4).all()
    with torch.no_grad():
        direct = float(make_loss("bce")(model(x), y))
    assert grid[2, 2] == pytest.approx(direct, abs=1e-6)
    assert result.images == 2 and result.path_t is None and result.seconds > 0


def test_same_seed_same_surface_other_seed_another(batch):
    x, y = batch
    model = tiny_model()
    first = landscape(model, x, y, losses=("bce", "dice"), steps=3, seed=3)
    again = landscape(model, x, y, losses=("bce", "dice"), steps=3, seed=3)
    other = landscape(model, x, y, losses=("bce", "dice"), steps=3, seed=4)
    for name in ("bce", "dice"):
        np.testing.assert_array_equal(first.values[name], again.values[name])
        assert not np.allclose(first.values[name], other.values[name])
        assert first.values[name][1, 1] == other.values[name][1, 1]  # the trained model
    centre = losses_of(model, x, y)
    assert first.values["dice"][1, 1] == pytest.approx(centre["dice"], abs=1e-6)
    rows = first.rows()
    assert len(rows) == 2 * 9 and set(rows[0]) == {"loss", "alpha", "beta", "value"}
    assert first.path_rows() == []


def test_weights_and_mode_are_restored_exactly(batch):
    x, y = batch
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def same():
        return all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    model.train()
    landscape(model, x, y, steps=3)
    assert same() and model.training
    calls = []
    with pytest.raises(Stopped):
        landscape(model, x, y, steps=3, stop=lambda: calls.append(1) or len(calls) > 4)
    assert same() and model.training

    def fail(*_):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("boom")

    calls.clear()
    hook = model.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        landscape(model, x, y, steps=3, init_state=tiny_model(1).state_dict())
    hook.remove()
    assert same()
    gen = iter_landscape(model, x, y, steps=3, init_state=tiny_model(1).state_dict())
    next(gen), next(gen)
    gen.close()  # abandoned half-way (a GUI's Stop): put back too
    assert same()


def test_directions_are_filter_normalised():
    model = tiny_model()
    d1, d2 = filter_normalized_directions(model, seed=5)
    again, _ = filter_normalized_directions(model, seed=5)
    params = list(model.parameters())
    assert len(d1) == len(d2) == len(params)
    moved = 0
    for p, u, v, w in zip(params, d1, d2, again, strict=True):
        assert u.shape == p.shape and torch.equal(u, w)
        if p.dim() <= 1:
            assert not u.any() and not v.any()
            continue
        moved += 1
        norms = p.detach().flatten(1).norm(dim=1)
        torch.testing.assert_close(u.flatten(1).norm(dim=1), norms, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(v.flatten(1).norm(dim=1), norms, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(u, v)
    assert moved > 5


def test_path_runs_from_the_initial_to_the_trained_weights(batch):
    x, y = batch
    trained, init = tiny_model(0), tiny_model(1)
    result = landscape(
        trained, x, y, steps=3, init_state=init.state_dict(), path_steps=4, losses=("bce", "focal")
    )
    assert list(result.path_t) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    start, end = losses_of(init, x, y), losses_of(trained, x, y)
    for name in ("bce", "focal"):
        values = result.path_values[name]
        assert values[0] == pytest.approx(start[name], rel=1e-5)
        assert values[-1] == pytest.approx(end[name], rel=1e-5)
        assert values[-1] == pytest.approx(result.values[name][1, 1], rel=1e-6)
        assert values[0] != pytest.approx(values[-1], rel=1e-3)
    rows = result.path_rows()
    assert len(rows) == 2 * 4 and set(rows[0]) == {"loss", "t", "value"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 4}, "odd"),
        ({"steps": 1}, "odd and at least 3"),
        ({"span": 0.0}, "span must be a positive"),
        ({"span": float("nan")}, "span must be a positive"),
        ({"losses": ("bce", "hinge", "iou")}, "unknown losses hinge, iou; choose from"),
        ({"losses": ()}, "unknown loss"),
        ({"path_steps": 1, "init_state": {}}, "path steps"),
        ({"init_state": {"x": torch.zeros(2)}}, "initial weights do not fit"),
    ],
)
def test_bad_arguments_are_clear(batch, kwargs, message):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(SegQCError, match=message):
        landscape(model, *batch, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_qc_batch_crops_pads_and_checks(sample_dir):
    samples = load_training_data(sample_dir)  # 256 x 256 (two), 360 x 360, 520 x 696
    x, y = qc_batch(samples, CONFIG, patch=64, max_images=3)
    assert x.shape == (3, 1, 64, 64) and y.shape == (3, 3, 64, 64) and x.dtype == torch.float32
    again, _ = qc_batch(samples, CONFIG, patch=64, max_images=3)
    assert torch.equal(x, again)
    # evenly spread picks: the first, a middle one and the last; centre crops
    expected = samples[-1].image[:, 228:292, 316:380]
    np.testing.assert_array_equal(x[-1].numpy(), expected)
    binary, yb = qc_batch(samples, TrainConfig(model=TINY, target_mode="binary"), patch=64)
    assert binary.shape[0] == 4 and yb.shape[1] == 1
    labels = np.zeros((40, 50), np.int32)
    labels[10:20, 10:30] = 1
    small = samples_from_arrays(labels * 100.0, labels, name="small")
    xs, ys = qc_batch(small, CONFIG, patch=256)
    assert xs.shape == (1, 1, 64, 64) and ys.shape == (1, 3, 64, 64)
    mirrored = np.pad(labels > 0, ((12, 12), (7, 7)), mode="reflect")  # image and targets alike
    np.testing.assert_array_equal(ys[0, 0].numpy(), mirrored)
    np.testing.assert_array_equal(xs[0, 0].numpy() > xs.mean().item(), mirrored)
    rgb = TrainConfig(model=ModelConfig(in_channels=3))
    with pytest.raises(SegQCError, match="expects 3-channel images"):
        qc_batch(samples, rgb)
    with pytest.raises(SegQCError, match="multiple of 32"):
        qc_batch(samples, CONFIG, patch=100)
    with pytest.raises(SegQCError, match="no images"):
        qc_batch([], CONFIG)


def test_initial_weights_of_a_run(tmp_path):
    state = {"w": torch.ones(2, 3)}
    save_weights(tmp_path / "best.safetensors", state, {})
    assert initial_weights(tmp_path) is None
    assert initial_weights(tmp_path / "best.safetensors") is None
    save_weights(tmp_path / "init.safetensors", {"w": torch.zeros(2, 3)}, {})
    for source in (tmp_path, tmp_path / "best.safetensors", str(tmp_path)):
        assert torch.equal(initial_weights(source)["w"], torch.zeros(2, 3))
    assert initial_weights("nuclei") is None
    assert initial_weights(tmp_path / "model.onnx") is None


def test_figures(tmp_path):
    alphas = np.linspace(-1, 1, 5)
    bowl = 0.01 + np.add.outer(alphas**2, alphas**2) * 100  # spans decades: log colours
    flat = np.full((5, 5), 0.5)
    result = landscape_of({"bce": bowl, "dice": flat}, alphas)
    figure = Figure(figsize=(9, 4))
    draw_landscape(figure, result)
    assert len([ax for ax in figure.axes if ax.get_label() != "<colorbar>"]) == 2
    draw_landscape(figure, result, loss="dice")
    assert len(figure.axes) == 1
    with pytest.raises(SegQCError, match="no 'focal' loss"):
        draw_landscape(figure, result, loss="focal")
    result.path_t = np.linspace(0, 1, 3)
    result.path_values = {"bce": np.array([3.0, 1.0, 0.5]), "dice": np.array([0.9, 0.8, 0.7])}
    draw_landscape(figure, result)
    assert figure.axes[-1].get_title() == "path from the initial weights"
    save_figure(figure, tmp_path / "landscape.png")
    data = (tmp_path / "landscape.png").read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["landscape.png"]  # no temporary file left


def landscape_of(values, alphas):
    from napari_segqc.core.explain.landscape import Landscape

    return Landscape(alphas=alphas, betas=alphas, values=values, seed=0, images=1)
