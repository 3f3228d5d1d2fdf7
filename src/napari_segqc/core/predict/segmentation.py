"""Segmentation in one call: the network's maps of an image (tile by tile, at the model's
scale), decoded into instance labels with the model's decoding settings or overrides."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import numpy as np

from ..instances.decoding import decode_labels, decoding_config
from .inference import iter_predict_probs, run_to_end
from .loading import LoadedModel
from .scale import (
    REFINE_PASSES,
    REFINE_TOLERANCE,
    SCALE_TOLERANCE,
    SHRINK_TOLERANCE,
    ScaleInfo,
    clamp_factor,
    estimate_diameter,
    looks_small,
    parse_diameter,
    scale_factor,
)

#: The scale of the check pass for images whose objects look small.
QUARTER = 0.25


def quarter_overrides(found: float, coarse: float | None, config) -> bool:
    """Whether the quarter-size pass's diameter ``coarse`` (image pixels) replaces the first
    pass's ``found``: when it is much larger and its objects, at the quarter scale, are large
    enough for the network to measure. Objects that look small to the model there (under
    its diameter / :data:`SCALE_TOLERANCE`) are not measured reliably: on DSB 2018 validation
    images with nuclei of 4-11 px, the quarter pass saw blobs of 18-31 px and overrode a right
    estimate (halved images: the estimate was over 1.5x off for 9 of 106, 1 with this rule)."""
    return bool(
        coarse and coarse > found * SCALE_TOLERANCE and not looks_small(coarse * QUARTER, config)
    )


def iter_scaled_maps(
    loaded: LoadedModel, image, *, diameter="auto", tile: int = 1024, overlap: int = 64, **kwargs
) -> Generator[tuple[int, int], None, tuple[np.ndarray, ScaleInfo]]:
    """The network's maps of ``image`` at the input's size, with the object size handled as
    :mod:`.scale` says: ``diameter`` is ``"auto"``, a number of pixels or None (no scaling).

    A generator like :func:`.inference.iter_predict_probs` (progress of each network pass;
    ``kwargs`` go there); returns ``(maps, ScaleInfo)``.
    """
    config = loaded.config
    diameter = parse_diameter(diameter)
    model_d = float(config.diameter or 0.0)

    def run(factor: float, size: float | None, **more):
        return iter_predict_probs(
            loaded,
            image,
            tile=tile,
            overlap=overlap,
            scale=factor,
            diameter=None if size is None else size * factor,
            **kwargs,
            **more,
        )

    if diameter != "auto":
        factor = scale_factor(diameter, config)
        maps = yield from run(factor, diameter)
        return maps, ScaleInfo(diameter, False, factor, model_d)
    # estimate at the image's scale; far from the model's, objects the network sees badly
    # (big ones split, holes) bias the estimate: re-estimate at the new scale, up to twice
    # tiles with context for objects up to the size kept without rescaling: larger ones are
    # rescaled and run again with context for their size (the first pass only measures them)
    maps = yield from run(1.0, model_d * SHRINK_TOLERANCE if model_d else None)
    found = estimate_diameter(maps)
    if found and model_d:
        # big textured nuclei can look like many small pieces at full size; at a quarter of
        # the size (1/16 of the pixels, ~6 % more time) they look like nuclei again
        quarter = yield from run(QUARTER, None, foreground_only=True)
        coarse = estimate_diameter(quarter)
        if quarter_overrides(found, coarse, config):
            found = coarse
        del quarter
    factor, target = 1.0, scale_factor(found, config)
    for _ in range(1 + REFINE_PASSES):
        if abs(math.log(target / factor)) < math.log(REFINE_TOLERANCE):
            break
        factor = target
        maps = yield from run(factor, found)
        found = estimate_diameter(maps) or found
        target = clamp_factor(model_d / found)
    return maps, ScaleInfo(found, True, factor, model_d)


def segment(
    loaded: LoadedModel,
    image,
    *,
    diameter="auto",
    threshold: float | None = None,
    min_size: int | None = None,
    split_height: float | None = None,
    min_object_prob: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    return_scale: bool = False,
    **kwargs,
):
    """Instance labels (int32) and the network's maps of a 2-D image or a stack.

    ``diameter`` is the objects' size in pixels, ``"auto"`` (estimated from a first pass) or
    None (the image as it is); see :mod:`.scale`. The decoding settings (see
    :func:`decode_labels`) default to the model's config; ``kwargs`` go to
    :func:`.inference.iter_predict_probs`. Re-decode the maps with :func:`decode_labels` to
    try other settings without running the network again. Returns ``(labels, maps)``, plus
    the :class:`.scale.ScaleInfo` with ``return_scale``.
    """
    config = decoding_config(  # bad settings fail before the network runs
        loaded.config,
        threshold=threshold,
        min_size=min_size,
        split_height=split_height,
        min_object_prob=min_object_prob,
    )
    gen = iter_scaled_maps(loaded, image, diameter=diameter, **kwargs)
    probs, info = run_to_end(gen, progress, stop)
    labels = decode_labels(probs, config, scale=info.factor)
    return (labels, probs, info) if return_scale else (labels, probs)


def segment_auto(image, *, rgb: bool | None = None, models=None, **kwargs):
    """:func:`segment` with the built-in model that fits ``image`` (:mod:`.auto`).

    Returns ``(labels, maps, choice, scale)``: the :class:`.auto.ModelChoice` says which model
    and why, the :class:`.scale.ScaleInfo` the object size. ``models`` (a
    :class:`.auto.BuiltinModels`) keeps loaded models between calls; ``kwargs`` go to
    :func:`segment`.
    """
    from .auto import BuiltinModels, choose_model, input_for_model

    choice = choose_model(image, rgb=rgb)
    loaded = (models or BuiltinModels()).get(choice.model)
    data = input_for_model(image, loaded.config.model.in_channels, rgb=rgb, invert=choice.invert)
    labels, maps, info = segment(loaded, data, return_scale=True, **kwargs)
    return labels, maps, choice, info
