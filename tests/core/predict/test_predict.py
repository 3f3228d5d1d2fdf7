"""Tiled prediction: seams, sizes, lazy input, stacks, bad images and settings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_segqc.core.errors import SegQCError, Stopped
from napari_segqc.core.instances.decoding import decode_labels
from napari_segqc.core.predict.inference import PredictWarning, image_layout, predict_probs_tiled
from napari_segqc.core.predict.loading import LoadedModel, export_model, load_model
from napari_segqc.core.predict.segmentation import segment
from napari_segqc.core.predict.tiling import TILE_ALIGN, blend_window, fit_tile, tile_starts


@pytest.fixture(scope="module")
def loaded(tiny_model_file):
    return load_model(tiny_model_file.parent)  # a run folder resolves to best.safetensors


def test_tile_starts_cover_the_image():
    assert tile_starts(100, 128, 32) == [0]
    for size, tile, overlap in itertools.product(
        (300, 1000, 2048, 4099), (128, 256, 1024), (0, 32, 64)
    ):
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile >= size > starts[-1]  # covered, none idle
        assert all(s % TILE_ALIGN == 0 for s in starts)  # one pixel grid for every tile
        assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))
        fitted = fit_tile(size, tile, overlap)  # smaller tiles where as many tiles suffice
        assert fitted % 32 == 0 and fitted <= tile
        assert len(tile_starts(size, fitted, overlap)) == len(tile_starts(size, tile, overlap))
    assert fit_tile(520, 1024, 64) == 544 and fit_tile(4096, 1024, 64) == 896
    w = blend_window(64, 96, 16)
    assert w.shape == (64, 96) and w.min() > 0 and w[32, 48] == 1.0


def _column_jumps(probs: np.ndarray) -> np.ndarray:
    """Mean absolute change between neighbouring columns, one value per column boundary."""
    return np.abs(np.diff(probs, axis=2)).mean(axis=(0, 1))


def test_blending_leaves_no_seams(loaded, sample_pair):
    image, _ = sample_pair  # 256 x 256: tiles of 128 start at x = 0, 96, 128 (overlap 32)
    blended = _column_jumps(predict_probs_tiled(loaded, image, tile=128, overlap=32, batch=3))
    interior = blended[8:-8]
    assert interior.max() < 3 * np.median(blended)  # no column stands out: no seam
    # the same check sees the seam of plain stitching (overlap 0: tiles meet at x = 128)
    hard = _column_jumps(predict_probs_tiled(loaded, image, tile=128, overlap=0))
    assert hard[126:128].max() > 3 * np.median(hard)


def test_images_smaller_than_a_tile_and_odd_sizes(loaded, sample_pair):
    image, _ = sample_pair
    small = image[:50, :77]
    probs = predict_probs_tiled(loaded, small, tile=256, overlap=32)
    assert probs.shape == (3, 50, 77) and np.isfinite(probs).all()
    assert probs.min() >= 0 and probs.max() <= 1


def test_dask_input_is_read_lazily_and_matches(loaded, sample_pair):
    import dask.array as da

    image, _ = sample_pair
    lazy = da.from_array(image, chunks=(64, 64))
    a = predict_probs_tiled(loaded, lazy, tile=128, overlap=32)
    b = predict_probs_tiled(loaded, image, tile=128, overlap=32)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_progress_and_stop(loaded, sample_pair):
    image, _ = sample_pair
    seen = []
    predict_probs_tiled(
        loaded, image, tile=128, overlap=32, batch=2, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1][0] == seen[-1][1] == 9  # 3 x 3 tiles
    with pytest.raises(Stopped):
        predict_probs_tiled(loaded, image, tile=128, overlap=32, stop=lambda: True)


def test_channel_mismatch_is_explained(loaded):
    with pytest.raises(SegQCError, match=r"expects grey \(1 channel\).*RGB \(3 channels\)"):
        predict_probs_tiled(
            loaded,
            np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8),
            tile=64,
            overlap=0,
        )
    with pytest.raises(SegQCError, match="NaN"):
        predict_probs_tiled(loaded, np.full((64, 64), np.nan, np.float32), tile=64, overlap=0)


def test_nan_anywhere_in_a_big_image_is_refused(loaded):
    """Past 4 MP the percentiles come from a strided sample; a NaN off it is still caught."""
    image = np.zeros((2050, 2050), np.float32)
    image[1001, 1001] = np.nan  # odd row and column: not in the stride-2 sample
    with pytest.raises(SegQCError, match="NaN or infinite"):
        predict_probs_tiled(loaded, image, tile=1024, overlap=64)


def test_image_bigger_than_memory_is_refused_before_any_tile(loaded, monkeypatch):
    import dask.array as da

    import napari_segqc.core.predict.inference as inference

    huge = da.zeros((300_000, 300_000), dtype=np.uint8, chunks=4096)  # lazy: 90 GB of pixels
    with pytest.raises(SegQCError, match=r"needs about \d+\.\d GiB .* available"):
        segment(loaded, huge)
    monkeypatch.setattr(inference, "available_memory", lambda: 10 * 2**20)  # 10 MiB free
    with pytest.raises(SegQCError, match="segment it in parts"):
        predict_probs_tiled(loaded, np.zeros((2, 512, 512), np.uint8))
    monkeypatch.setattr(inference, "available_memory", lambda: None)  # unknown: no check
    assert predict_probs_tiled(
        loaded, np.zeros((64, 64), np.uint8), tile=128, overlap=32
    ).shape == (3, 64, 64)


def test_bad_tile_settings(loaded):
    image = np.zeros((64, 64), np.uint8)
    with pytest.raises(SegQCError, match="multiple of 32"):
        predict_probs_tiled(loaded, image, tile=100)
    with pytest.raises(SegQCError, match="overlap"):
        predict_probs_tiled(loaded, image, tile=128, overlap=64)


def _blobs(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(20, 3, (size, size))
    yy, xx = np.mgrid[:size, :size]
    for cy, cx in rng.integers(10, size - 10, (6, 2)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 100
    return image.astype(np.float32)


def test_stack_is_predicted_slice_by_slice(loaded):
    """A (T, Z, H, W) stack gives (T, Z, K, H, W) maps equal to each slice on its own."""
    stack = np.stack([np.stack([_blobs(t * 2 + z) for z in range(2)]) for t in range(2)])
    progress = []
    probs = predict_probs_tiled(
        loaded, stack, tile=64, overlap=16, batch=2, progress=lambda d, n: progress.append((d, n))
    )
    assert probs.shape == (2, 2, 3, 96, 96)
    single = predict_probs_tiled(loaded, stack[1, 0], tile=64, overlap=16, batch=2)
    np.testing.assert_allclose(probs[1, 0], single, atol=1e-6)
    done = [d for d, _ in progress]
    assert done == sorted(done) and progress[-1][0] == progress[-1][1] == 4 * 4  # 4 tiles/slice
    labels, _ = segment(loaded, stack, tile=64, overlap=16)
    assert labels.shape == (2, 2, 96, 96) and labels.dtype == np.int32
    # each slice decoded on its own, ids continuing across slices (unique in the stack)
    alone = decode_labels(probs[0, 1], loaded.config)
    offset = int(labels[0, 0].max())
    np.testing.assert_array_equal(labels[0, 1], np.where(alone > 0, alone + offset, 0))
    counts = [len(np.unique(s)) - 1 for s in labels.reshape(-1, 96, 96)]
    assert labels.max() == sum(counts) == len(np.unique(labels)) - 1


def test_rgb_stack_and_layout_rules():
    assert image_layout((5, 64, 64), 1) == ((5,), 1)
    assert image_layout((64, 64, 3), 3) == ((), 3)
    assert image_layout((4, 64, 64, 3), 3) == ((4,), 3)
    assert image_layout((2, 3, 64, 64), 1) == ((2, 3), 1)
    with pytest.raises(SegQCError, match="expects grey"):
        image_layout((64, 64, 3), 1)
    with pytest.raises(SegQCError, match="expects RGB"):
        image_layout((5, 64, 64), 3)
    with pytest.raises(SegQCError, match="at least 2"):
        image_layout((64,), 1)


def test_flip_tta_is_equivariant(loaded):
    """With flip TTA, predicting a mirrored image gives the mirrored maps."""
    image = _blobs(3)
    plain = predict_probs_tiled(loaded, image, tile=96, overlap=0, dtype=None)
    tta = predict_probs_tiled(loaded, image, tile=96, overlap=0, tta=True, dtype=None)
    mirrored = predict_probs_tiled(
        loaded, image[:, ::-1].copy(), tile=96, overlap=0, tta=True, dtype=None
    )
    np.testing.assert_allclose(mirrored[:, :, ::-1], tta, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-4  # the untrained net is not symmetric: TTA did run


class _OutOfMemoryAbove(torch.nn.Module):
    """Wraps a model; raises a CUDA-style out-of-memory error for tiles wider than ``limit``."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit, self.calls = model, limit, []

    def forward(self, x):
        self.calls.append(x.shape[-1])
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.model(x)


def test_out_of_memory_retries_with_smaller_tiles(loaded):
    image = _blobs(4, 256)
    small = LoadedModel(_OutOfMemoryAbove(loaded.model, 128), loaded.config, loaded.path)
    with pytest.warns(PredictWarning, match="retrying with 128-pixel tiles"):
        probs = predict_probs_tiled(small, image, tile=256, overlap=32)
    assert small.model.calls[0] == 256 and set(small.model.calls[1:]) == {128}
    reference = predict_probs_tiled(loaded, image, tile=128, overlap=32)
    np.testing.assert_allclose(probs, reference, atol=1e-5)
    never = LoadedModel(_OutOfMemoryAbove(loaded.model, 64), loaded.config, loaded.path)
    with pytest.raises(torch.OutOfMemoryError), pytest.warns(PredictWarning):
        predict_probs_tiled(never, image, tile=256, overlap=32)  # 128 is the floor


def test_export_half_precision_with_decoding_settings(loaded, tiny_model_file, tmp_path):
    out = export_model(
        tiny_model_file,
        tmp_path / "shipped.safetensors",
        decoding={"threshold": 0.45, "seed_threshold": 0.5},
        card={"data": "test"},
    )
    assert out.stat().st_size < 0.55 * tiny_model_file.stat().st_size  # float16 weights
    shipped = load_model(out)
    assert shipped.config.threshold == 0.45 and shipped.config.seed_threshold == 0.5
    assert next(shipped.model.parameters()).dtype == torch.float32  # cast back on load
    image = _blobs(5)
    a = predict_probs_tiled(loaded, image, tile=96, overlap=0)
    b = predict_probs_tiled(shipped, image, tile=96, overlap=0)
    assert np.abs(a - b).max() < 2e-2  # float16 rounding of the weights only
    with pytest.raises(SegQCError, match="seed threshold"):
        export_model(tiny_model_file, tmp_path / "bad.safetensors", decoding={"seed_threshold": 2})
    assert not (tmp_path / "bad.safetensors").exists()


def test_grey_saved_as_rgb_is_accepted_by_a_grey_model(loaded):
    grey = _blobs(6).astype(np.uint8)
    as_rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    np.testing.assert_array_equal(
        predict_probs_tiled(loaded, as_rgba, tile=96, overlap=0),
        predict_probs_tiled(loaded, grey, tile=96, overlap=0),
    )
    coloured = as_rgba.copy()
    coloured[10, 10, 1] += 1  # one pixel differs: a colour image, refused
    with pytest.raises(SegQCError, match="expects grey"):
        predict_probs_tiled(loaded, coloured, tile=96, overlap=0)


def test_builtin_model_is_bundled_and_documented():
    from napari_segqc.core.models.builtin import BUILTIN_MODELS
    from napari_segqc.core.models.weights import load_weights

    for name, channels in (("nuclei", 1), ("nuclei-stained", 3)):
        path = BUILTIN_MODELS[name]
        assert path.is_file() and path.stat().st_size <= 25_000_000
        _, meta = load_weights(path)
        card = meta["card"]
        assert "DSB 2018" in card["data"] and "test" in card["splits"]
        for split in ("validation", "test"):
            scores = card["scores"][split]
            assert 0.0 < scores["0.7"]["accuracy"] < scores["0.5"]["accuracy"] <= 1.0
        loaded = load_model(name)
        config = loaded.config
        assert config.model.in_channels == channels and config.target_mode == "instance"
        for setting, value in card["tuned_decoding"]["settings"].items():
            assert getattr(config, setting) == value


def test_decoding_overrides_are_checked_before_the_network(loaded, monkeypatch):
    """Bad decoding settings fail with a clear message before any tile is predicted."""
    import napari_segqc.core.predict.segmentation as segment_module

    def no_network(*_args, **_kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(segment_module, "iter_predict_probs", no_network)
    image = _blobs(7)
    for bad, match in (
        ({"split_height": 1.5}, "split height"),
        ({"threshold": 0.0}, "threshold"),
        ({"min_size": -1}, "minimum size"),
        ({"min_object_prob": float("nan")}, "minimum object probability"),
    ):
        with pytest.raises(SegQCError, match=match):
            segment(loaded, image, **bad)
        with pytest.raises(SegQCError, match=match):
            decode_labels(np.zeros((3, 8, 8), np.float32), loaded.config, **bad)


def test_split_height_override_changes_only_the_decoding(loaded):
    yy, xx = np.mgrid[:64, :96]
    r = [np.hypot(yy - 32, xx - cx) for cx in (40, 56)]
    probs = np.stack(
        [
            (np.minimum(*r) < 12) * 0.95,
            np.zeros((64, 96)),
            np.maximum(np.clip(1 - r[0] / 12, 0, 1), 0.95 * np.clip(1 - r[1] / 12, 0, 1)),
        ]
    ).astype(np.float32)
    assert loaded.config.split_height == 0.2 and loaded.config.seed_threshold == 0.3
    assert decode_labels(probs, loaded.config).max() == 2
    assert decode_labels(probs, loaded.config, split_height=0).max() == 1
    stack = decode_labels(np.stack([probs, probs]), loaded.config, split_height=0)
    assert stack.shape == (2, 64, 96) and stack.max() == 2  # one object per slice, ids 1, 2
    probs[0, :, 48:] *= 0.6  # the right one: mean foreground probability ~0.57
    assert decode_labels(probs, loaded.config, min_object_prob=0.7).max() == 1


def test_builtin_model_on_held_out_images(shared_data):
    """The shipped model on 10 of the test images (splits/dsb2018_test.txt), which it was
    never trained on and which chose nothing."""
    from pathlib import Path

    from napari_segqc.core.qc.matching import match_objects
    from napari_segqc.core.train.data import load_folder

    loaded = load_model("nuclei")
    names = (Path(__file__).parents[3] / "splits" / "dsb2018_test.txt").read_text().split()
    folder = shared_data / "dsb2018" / "train"
    test = load_folder(folder / "images", folder / "masks", names[:10])
    counts = np.zeros(3)
    for sample in test:
        labels, _ = segment(loaded, sample.image[0])
        r = match_objects(sample.labels, labels)["0.50"]
        counts += [r["tp"], r["fp"], r["fn"]]
    assert counts[0] / counts.sum() > 0.75, counts


@pytest.mark.parametrize("shape", [(20, 20), (7, 300), (300, 7), (1, 1), (32, 32), (2, 20, 20)])
def test_small_images_are_segmented(loaded, shape):
    """Images of 32 px or less on a side: one padded tile, no overlap blending along it."""
    image = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    labels, probs = segment(loaded, image)  # default tile 1024, overlap 64
    assert labels.shape == shape and probs.shape == (*shape[:-2], 3, *shape[-2:])
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
    if len(shape) == 2 and max(shape) <= 32:  # one tile either way: the padded image
        other = predict_probs_tiled(loaded, image, tile=64, overlap=16)
        np.testing.assert_allclose(other, probs, atol=1e-5)
