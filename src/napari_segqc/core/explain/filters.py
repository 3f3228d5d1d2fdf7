"""Convolution kernels and feature maps: what the network's layers respond to.

:func:`conv_layers` names the network's 2-D convolutions in the order the forward pass runs
them, :func:`kernels` reads one layer's weights, :func:`kernel_spectra` gives their amplitude
spectra (which spatial frequencies a kernel passes: a blur is bright in the centre, an edge
detector away from it) and :func:`kernel_grid` lays a stack out as one image for display.
:func:`feature_maps` is a layer's output for an image, prepared as prediction prepares it.
ONNX models have no layers to read: these need the torch weights.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SegQCError
from ..predict.inference import _percentiles
from ..predict.loading import LoadedModel
from ..predict.tiling import TILE_ALIGN, reflect_fill
from .attribution import explain_input, torch_network

#: Side of the blank input that finds the order in which the convolutions run.
PROBE_SIDE = 64


class _Captured(Exception):
    """Raised by the feature-map hook once it has its layer's output: the rest of the forward
    pass is not needed."""


def _is_conv(module) -> bool:
    import torch

    # TorchScript modules keep their class name apart from their (script) type
    name = getattr(module, "original_name", None)
    return isinstance(module, torch.nn.Conv2d) or name == "Conv2d"


def _convs(network) -> dict:
    """The network's Conv2d modules by name, in the order they were registered."""
    return {name: m for name, m in network.named_modules() if name and _is_conv(m)}


def _call_order(network, convs: dict, channels: list[int]) -> list[str]:
    """Names of ``convs`` in the order a forward pass of a blank image calls them; the image
    has the first of ``channels`` that the network takes. Empty for TorchScript (no hooks) or
    a network no probe fits."""
    import torch

    if isinstance(network, torch.jit.ScriptModule) or not convs:
        return []
    device = next(network.parameters()).device
    order: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_, name=name: order.append(name))
        for name, m in convs.items()
    ]
    try:
        for c in channels:
            x = torch.zeros(1, c, PROBE_SIDE, PROBE_SIDE, device=device)
            try:
                with torch.no_grad():
                    network(x.contiguous(memory_format=torch.channels_last))
            except Exception:  # another input: try the next channel count
                order.clear()
                continue
            return list(dict.fromkeys(order))
        return []
    finally:
        for hook in hooks:
            hook.remove()


def conv_layers(model) -> list[str]:
    """Names of the ``torch.nn.Conv2d`` layers of ``model`` (a :class:`LoadedModel` or a
    module) in forward order, the first convolution first; layers a forward pass does not
    reach (and all of a TorchScript model's) follow in the order they were registered."""
    network = torch_network(model)
    convs = _convs(network)
    channels = [m.in_channels for m in convs.values()]
    if isinstance(model, LoadedModel):
        channels.insert(0, model.config.model.in_channels)
    order = _call_order(network, convs, list(dict.fromkeys(channels)))
    return order + [name for name in convs if name not in order]


def _layer_name(names: list[str], layer: str | None) -> str:
    if not names:
        raise SegQCError("this model has no convolution layers")
    if layer is None:
        return names[0]
    if layer not in names:
        few = ", ".join(names[:4]) + (f" ... ({len(names)} layers)" if len(names) > 4 else "")
        raise SegQCError(f"no convolution layer {layer!r}; this model has: {few}")
    return layer


def kernels(model, layer: str | None = None) -> np.ndarray:
    """The weights of convolution ``layer`` (a name from :func:`conv_layers`; None: the first
    convolution) as float32 ``(out, in, kh, kw)``."""
    network = torch_network(model)
    name = _layer_name(conv_layers(model), layer)
    weight = dict(network.named_modules())[name].weight
    return weight.detach().float().cpu().numpy().astype(np.float32, copy=False)


def kernel_spectra(kernels: np.ndarray, size: int = 16) -> np.ndarray:
    """Amplitude spectra of kernels ``(out, in, kh, kw)``: ``|FFT2|`` of each kernel
    zero-padded to ``size`` x ``size``, shifted so that zero frequency is at the centre
    (``[size // 2, size // 2]``); float32 ``(out, in, size, size)``. A delta kernel's spectrum
    is flat, a constant (blurring) kernel's peaks at the centre."""
    stack = np.asarray(kernels, dtype=np.float32)
    if stack.ndim != 4:
        raise SegQCError(f"kernels must be (out, in, kh, kw), got shape {stack.shape}")
    if size < max(stack.shape[-2:]):
        raise SegQCError(
            f"spectrum size {size} is smaller than the kernels ({stack.shape[-2]} x "
            f"{stack.shape[-1]}): use at least their size"
        )
    spectra = np.abs(np.fft.fft2(stack, s=(size, size), axes=(-2, -1)))
    return np.fft.fftshift(spectra, axes=(-2, -1)).astype(np.float32)


def kernel_grid(stack: np.ndarray, gap: int = 1) -> np.ndarray:
    """A stack ``(out, in, h, w)`` (kernels or spectra) laid out as one float32 image: row
    ``r`` holds output channel ``r``, its input channels side by side left to right, each
    ``h`` x ``w`` tile ``gap`` pixels from the next; shape ``(out * (h + gap) - gap,
    in * (w + gap) - gap)``. Values are kept as they are (NaN and infinities become 0); the
    gaps are 0."""
    data = np.asarray(stack, dtype=np.float32)
    if data.ndim != 4:
        raise SegQCError(f"need a stack (out, in, h, w), got shape {data.shape}")
    if gap < 0:
        raise SegQCError(f"gap must be >= 0 pixels, got {gap}")
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    o, i, h, w = data.shape
    padded = np.pad(data, ((0, 0), (0, 0), (0, gap), (0, gap)))
    grid = padded.transpose(0, 2, 1, 3).reshape(o * (h + gap), i * (w + gap))
    return np.ascontiguousarray(grid[: o * (h + gap) - gap, : i * (w + gap) - gap])


def feature_maps(
    loaded, image, layer: str | None = None, *, max_side: int = 1024
) -> tuple[np.ndarray, float]:
    """The output of ``layer`` (a module name, see :func:`conv_layers`; None: the first
    convolution) for a 2-D ``image``, normalised and mirror-padded to a multiple of 32 as
    prediction does, in float32: ``(C, h, w)`` cut to the image's extent (the padding's
    features dropped), and the layer's stride (image pixels per feature pixel): scale the maps
    by it, from the top-left corner, to lay them on the image. The image runs whole, in one
    pass: one larger than ``max_side`` pixels on a side is refused (crop it first)."""
    import torch

    network = torch_network(loaded)
    if isinstance(network, torch.jit.ScriptModule):
        raise SegQCError(
            "feature maps need the model's torch weights (TorchScript takes no hooks): load "
            "its .safetensors file, run folder or bioimage.io package"
        )
    modules = dict(network.named_modules())
    if layer is None or layer not in modules or not layer:
        layer = _layer_name(conv_layers(loaded), layer)
    plane = explain_input(image, loaded.config)
    h, w = (int(n) for n in plane.shape[:2])
    if max(h, w) > max_side:
        raise SegQCError(
            f"the image is {h} x {w} pixels; feature maps take at most {max_side} pixels a "
            "side: crop the part to look at"
        )
    channels = 1 if len(plane.shape) == 2 else int(plane.shape[2])
    lo, hi = _percentiles(plane, channels)
    scale = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
    raw = np.asarray(plane, dtype=np.float32)
    raw = raw[..., None] if raw.ndim == 2 else raw
    norm = ((raw - lo) / scale).transpose(2, 0, 1)
    ph, pw = (-(-n // TILE_ALIGN) * TILE_ALIGN for n in (h, w))
    norm = reflect_fill(norm, ph, pw) if (ph, pw) != (h, w) else norm
    device = next(network.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(norm))[None].to(device)
    captured = []

    def hook(_module, _inputs, output):
        captured.append(output)
        raise _Captured

    handle = modules[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            network(x.contiguous(memory_format=torch.channels_last))
    except _Captured:
        pass
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], torch.Tensor) or captured[0].ndim != 4:
        raise SegQCError(f"layer {layer!r} does not output one stack of feature maps")
    maps = captured[0][0].float().cpu().numpy()
    stride = ph / maps.shape[-2]
    fh, fw = math.ceil(h / stride), math.ceil(w / stride)
    return np.ascontiguousarray(maps[:, :fh, :fw], dtype=np.float32), float(stride)
