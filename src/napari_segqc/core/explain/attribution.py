"""Attribution maps: how much each input pixel adds to an output of the network over a target.

The target is a rectangle or an object (:class:`Target`) of one output channel (foreground,
boundary or distance); its value is the sum, over the target pixels, of that channel's sigmoid
probability as the tiled prediction computes it (:mod:`napari_segqc.core.predict.inference`:
the same percentile normalisation, tiles, mirrored padding and blend weights, but float32 with
no autocast). Captum computes the maps:

* ``integrated_gradients``: gradients averaged along the straight path from a baseline to the
  image, times the difference; the map sums to F(image) - F(baseline) (completeness; the gap
  left by the quadrature is reported). The baseline is zero in normalised input space, i.e.
  an image at its 1st-percentile intensity everywhere (an empty background);
* ``gradient_x_input``: the gradient times the normalised input (one backward pass);
* ``saliency``: the absolute gradient (one backward pass);
* ``occlusion``: how much the target drops when a square window of the image (all channels
  together) is set to the baseline, spread over the window's pixels.

The target is a sum of tile shares (each tile's output times its blend weight over the weight
sum), and every method is linear in the function it explains, so the map of the whole target
is the sum of the tiles' maps. Only tiles holding target pixels are computed; pixels outside
them get 0. Saliency is the absolute value of the summed signed gradients. Maps are computed at
the image's own scale (no rescaling by object diameter) on one 2-D image, grey or colour.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SegQCError
from ..instances.targets import TARGET_CHANNELS, check_target_mode
from ..predict.auto import input_for_model, looks_rgb
from ..predict.inference import (
    MAX_BATCH_PIXELS,
    _percentiles,
    grey_if_equal_channels,
    image_layout,
    run_to_end,
)
from ..predict.loading import LoadedModel
from ..predict.scale import context_tiles
from ..predict.tiling import blend_window, fit_tile, reflect_fill, tile_starts

METHODS = ("integrated_gradients", "gradient_x_input", "saliency", "occlusion")
#: Integrated-gradients baselines: "zeros" is 0 in normalised input space (the image's
#: 1st-percentile intensity); occlusion fills its windows with the same value.
BASELINES = ("zeros",)
#: Integrated-gradients steps by default: on the built-in model 32 steps left completeness
#: gaps up to 35 % on some regions, 64 steps at most 4 %.
IG_STEPS = 64
#: Most pixels in one backward batch (integrated-gradients steps of a tile): backward passes
#: keep every activation, so they take a quarter of prediction's batch.
GRAD_BATCH_PIXELS = MAX_BATCH_PIXELS // 4
#: Output channel names of all target modes (a model has those of its own mode).
OUTPUTS = tuple(dict.fromkeys(name for names in TARGET_CHANNELS.values() for name in names))


@dataclass(frozen=True, eq=False)
class Target:
    """What to explain: one output channel summed over a rectangle ``region`` (y0, x0, y1, x1;
    ends exclusive, image pixels) or over the pixels of ``mask`` (bool ``(H, W)``; ``label``
    is the object's id, for the record). Exactly one of ``region`` and ``mask`` is set.
    Compared by identity (a mask is an array)."""

    output: str = "foreground"
    region: tuple[int, int, int, int] | None = None
    mask: np.ndarray | None = None
    label: int | None = None

    @property
    def pixels(self) -> int:
        """Target pixels (of the region or the mask; a region is not clipped here)."""
        if self.region is not None:
            y0, x0, y1, x1 = self.region
            return max(0, y1 - y0) * max(0, x1 - x0)
        return 0 if self.mask is None else int(np.count_nonzero(self.mask))

    def describe(self) -> dict:
        """JSON-able: the output, the region (or the object's label) and the pixel count."""
        where = {"region": list(self.region)} if self.region is not None else {"label": self.label}
        return {"output": self.output, **where, "pixels": self.pixels}


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise SegQCError(f"unknown output {output!r}; use one of: {', '.join(OUTPUTS)}")
    return output


def region_target(region: Sequence[int], output: str = "foreground") -> Target:
    """A :class:`Target` over the rectangle ``region`` = (y0, x0, y1, x1), ends exclusive;
    the image's bounds are checked when the map is computed."""
    values = tuple(region)
    if len(values) != 4 or not all(float(v).is_integer() for v in values):
        raise SegQCError(f"a region is four integers y0, x0, y1, x1; got {values}")
    y0, x0, y1, x1 = (int(v) for v in values)
    if min(y0, x0) < 0 or y0 >= y1 or x0 >= x1:
        raise SegQCError(
            f"region (y0, x0, y1, x1) = {(y0, x0, y1, x1)} must have 0 <= y0 < y1 and "
            "0 <= x0 < x1 (ends exclusive)"
        )
    return Target(_check_output(output), region=(y0, x0, y1, x1))


def label_target(labels: np.ndarray, label: int, output: str = "foreground") -> Target:
    """A :class:`Target` over the object ``label`` of the instance labels ``labels`` (H, W)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise SegQCError(
            f"labels must be a 2-D integer image, got shape {labels.shape} ({labels.dtype})"
        )
    if int(label) != label or label <= 0:
        raise SegQCError(
            f"label must be an object id (an integer >= 1; 0 is the background), got {label}"
        )
    mask = labels == int(label)
    if not mask.any():
        raise SegQCError(f"label {int(label)} is not in the labels (largest id: {labels.max()})")
    return Target(_check_output(output), mask=mask, label=int(label))


@dataclass
class Attribution:
    """An attribution map and what it explains (see the module)."""

    map: np.ndarray  #: float32 (H, W), the image's size, summed over the input channels
    method: str
    target: dict  #: :meth:`Target.describe`
    output_value: float  #: F(image): the target's sigmoid output summed over its pixels
    baseline_value: float  #: F(baseline) for integrated gradients, else nan
    #: integrated gradients only (else nan): |sum(map) - (F(x) - F(b))| / |F(x) - F(b)|
    completeness_gap: float
    tiles: int  #: tiles computed (those holding target pixels)
    tiles_total: int  #: tiles the image has
    seconds: float

    def to_json(self) -> dict:
        """Everything but the map, JSON-able (nan becomes None)."""
        out = {
            "method": self.method,
            "target": self.target,
            "output_value": self.output_value,
            "baseline_value": self.baseline_value,
            "completeness_gap": self.completeness_gap,
            "tiles": self.tiles,
            "tiles_total": self.tiles_total,
            "seconds": self.seconds,
        }
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}


def torch_network(model):
    """The torch module of a :class:`LoadedModel` (or a module as it is); an ONNX model has
    no gradients or layers to look at and is refused."""
    if isinstance(model, LoadedModel):
        if model.backend != "torch":
            raise SegQCError(
                f"{model.path.name}: runs on onnxruntime; this needs the torch weights; load "
                "with backend='torch' (a .safetensors file, run folder or bioimage.io package)"
            )
        model = model.model
    return model


def explain_input(image, config) -> np.ndarray:
    """``image`` as a model of ``config`` takes it: ``(H, W)`` grey or ``(H, W, 3)`` colour
    (a grey image becomes three equal channels for a colour model, equal colour channels one
    for a grey model, alpha is dropped). Stacks are refused: pick one slice."""
    in_channels = config.model.in_channels
    if len(image.shape) < 2:
        raise SegQCError(f"need a 2-D image, got shape {tuple(image.shape)}")
    if in_channels == 3 and not looks_rgb(image):
        image = input_for_model(image, 3)
    image = grey_if_equal_channels(image, in_channels)
    lead, channels = image_layout(image.shape, in_channels)
    if lead:
        raise SegQCError(
            f"attribution explains one 2-D image; this is a stack of shape "
            f"{tuple(image.shape)}: pick one slice"
        )
    return image if len(image.shape) == 2 else image[..., :channels]


def target_mask(target: Target, shape: tuple[int, int]) -> np.ndarray:
    """The target's pixels in an image of ``shape`` (H, W) as a bool mask; a region past the
    image, a mask of another shape or an empty target is refused."""
    h, w = shape
    if (target.region is None) == (target.mask is None):
        raise SegQCError("a target needs a region or an object mask (exactly one of them)")
    if target.region is not None:
        y0, x0, y1, x1 = region_target(target.region, target.output).region
        if y1 > h or x1 > w:
            raise SegQCError(
                f"region (y0, x0, y1, x1) = {(y0, x0, y1, x1)} lies outside the image "
                f"({h} x {w} pixels: y < {h}, x < {w})"
            )
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = True
        return mask
    mask = np.asarray(target.mask)
    if mask.shape != (h, w):
        raise SegQCError(f"the target mask is {mask.shape}, the image {(h, w)}: they must match")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise SegQCError("the target has no pixels")
    return mask


def output_index(output: str, config) -> int:
    """The index of output channel ``output`` in the maps of a model of ``config``."""
    names = check_target_mode(config.target_mode)
    if output not in names:
        raise SegQCError(f"unknown output {output!r}; this model has: {', '.join(names)}")
    return names.index(output)


def check_settings(
    method: str, steps: int, tile: int, overlap: int, window: int | None, baseline: str = "zeros"
) -> None:
    """Refuse settings :func:`iter_attribution` cannot use (before any model is loaded)."""
    if method not in METHODS:
        raise SegQCError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")
    if baseline not in BASELINES:
        raise SegQCError(f"unknown baseline {baseline!r}; use one of: {', '.join(BASELINES)}")
    if steps < 1:
        raise SegQCError(f"integrated gradients needs at least 1 step, got {steps}")
    if tile < 64 or tile % 32:
        raise SegQCError(f"tile size must be a multiple of 32 (>= 64), got {tile}")
    if not 0 <= overlap < tile // 2:
        raise SegQCError(f"overlap must be in [0, tile/2), got {overlap} for tile {tile}")
    if window is not None and window < 1:
        raise SegQCError(f"occlusion window must be at least 1 pixel, got {window}")


def iter_attribution(
    loaded: LoadedModel,
    image,
    target: Target,
    *,
    method: str = "integrated_gradients",
    steps: int = IG_STEPS,
    tile: int = 512,
    overlap: int = 64,
    window: int | None = None,
    baseline: str = "zeros",
) -> Generator[tuple[int, int], None, Attribution]:
    """The attribution map of ``target`` on ``image`` (see the module), tile by tile.

    A generator: yields (tiles done, tiles to do) before the first tile and after each, so a
    GUI can show progress and cancel between tiles; returns the :class:`Attribution`.
    ``steps``: integrated-gradients steps (Gauss-Legendre); sharp trained networks may need
    64 or more, which a completeness gap of more than a few % shows. ``tile``/``overlap`` as in
    prediction (raised like it for the model's object sizes). ``window``: occlusion's square
    window (default: 1/8 of the tile side, at least 8 pixels), slid by half of it.
    """
    start = time.perf_counter()
    network = torch_network(loaded)
    check_settings(method, steps, tile, overlap, window, baseline)
    plane = explain_input(image, loaded.config)
    h, w = (int(n) for n in plane.shape[:2])
    channels = 1 if len(plane.shape) == 2 else int(plane.shape[2])
    k = output_index(target.output, loaded.config)
    mask = target_mask(target, (h, w))
    lo, hi = _percentiles(plane, channels)
    scale = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
    tile, overlap = context_tiles(tile, overlap, None, loaded.config)
    th, tw = fit_tile(h, tile, overlap), fit_tile(w, tile, overlap)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    blend = blend_window(th, tw, (overlap if len(ys) > 1 else 0, overlap if len(xs) > 1 else 0))
    boxes = [(y, x) for y in ys for x in xs]
    weight = np.zeros((h, w), np.float32)
    for y, x in boxes:
        weight[y : y + th, x : x + tw] += blend[: min(th, h - y), : min(tw, w - x)]
    todo = [(y, x) for y, x in boxes if mask[y : y + th, x : x + tw].any()]
    window = window or max(8, min(th, tw) // 8)
    out = np.zeros((h, w), np.float32)
    value = base = 0.0
    yield 0, len(todo)
    for i, (y, x) in enumerate(todo):
        raw = np.asarray(plane[y : y + th, x : x + tw], dtype=np.float32)
        raw = raw[..., None] if raw.ndim == 2 else raw
        if not np.isfinite(raw).all():
            raise SegQCError(
                f"the image contains NaN or infinite values (in the tile at y={y}, x={x})"
            )
        norm = ((raw - lo) / scale).transpose(2, 0, 1)
        hh, ww = norm.shape[1:]
        share = np.zeros((th, tw), np.float32)
        share[:hh, :ww] = (
            mask[y : y + hh, x : x + ww] * blend[:hh, :ww] / weight[y : y + hh, x : x + ww]
        )
        f = _tile_function(network, k, share, (hh, ww))
        attr, v, b = _explain_tile(method, f, norm, steps=steps, window=window)
        out[y : y + hh, x : x + ww] += attr
        value, base = value + v, base + b
        yield i + 1, len(todo)
    gap = math.nan
    if method == "integrated_gradients":
        change = value - base
        gap = abs(float(out.sum(dtype=np.float64)) - change) / max(abs(change), 1e-6)
    else:
        base = math.nan
    if method == "saliency":
        out = np.abs(out)
    return Attribution(
        map=out,
        method=method,
        target=target.describe(),
        output_value=float(value),
        baseline_value=float(base),
        completeness_gap=float(gap),
        tiles=len(todo),
        tiles_total=len(boxes),
        seconds=time.perf_counter() - start,
    )


def attribute(
    loaded: LoadedModel,
    image,
    target: Target,
    *,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs,
) -> Attribution:
    """:func:`iter_attribution` run to the end; ``progress(done, total)`` after every tile,
    ``stop`` polled before the next one (raises :class:`~napari_segqc.core.errors.Stopped`)."""
    return run_to_end(iter_attribution(loaded, image, target, **kwargs), progress, stop)


def _tile_function(network, k: int, share: np.ndarray, size: tuple[int, int]) -> Callable:
    """The tile's share of the target as a function of the tile's image pixels ``(B, C, hh,
    ww)``: mirrored into the padded tile as prediction does (so the pad's gradients land on the
    pixels it mirrors), then output ``k``'s sigmoid weighted by ``share`` and summed: ``(B,)``."""
    import torch

    device = next(network.parameters()).device
    th, tw = share.shape
    share_t = torch.from_numpy(share).to(device)
    index = None
    if size != (th, tw):
        flat = np.arange(size[0] * size[1]).reshape(1, *size)
        index = torch.from_numpy(reflect_fill(flat, th, tw).ravel()).to(device)

    def share_of_target(x):
        if index is not None:
            x = x.flatten(2)[:, :, index].unflatten(2, (th, tw))
        x = x.contiguous(memory_format=torch.channels_last)
        probs = torch.sigmoid(network(x).float()[:, k])
        return (probs * share_t).sum(dim=(1, 2))

    share_of_target.device, share_of_target.pixels = device, th * tw
    return share_of_target


def _explain_tile(method: str, f, norm: np.ndarray, *, steps: int, window: int):
    """One tile's map ``(hh, ww)`` (summed over channels, signed), F(tile), F(baseline)."""
    import torch
    from captum.attr import InputXGradient, IntegratedGradients, Occlusion, Saliency

    x = torch.from_numpy(np.ascontiguousarray(norm))[None].to(f.device).requires_grad_()
    c, hh, ww = norm.shape
    zero = torch.zeros_like(x)
    with torch.no_grad():
        values = f(torch.cat([x, zero]) if method == "integrated_gradients" else x).tolist()
    with torch.enable_grad():
        if method == "integrated_gradients":
            batch = max(1, GRAD_BATCH_PIXELS // f.pixels)  # the network sees padded tiles
            attr = IntegratedGradients(f).attribute(
                x, baselines=zero, n_steps=steps, internal_batch_size=batch
            )
        elif method == "gradient_x_input":
            attr = InputXGradient(f).attribute(x)
        elif method == "saliency":
            attr = Saliency(f).attribute(x, abs=False)
        else:
            side = min(window, hh, ww)
            stride = max(1, side // 2)
            attr = Occlusion(f).attribute(
                x,
                sliding_window_shapes=(c, side, side),
                strides=(c, stride, stride),
                baselines=0.0,
                perturbations_per_eval=max(1, MAX_BATCH_PIXELS // f.pixels),
            )
    attr = attr.detach()[0].sum(dim=0).float().cpu().numpy()
    return attr, values[0], values[1] if len(values) > 1 else math.nan
