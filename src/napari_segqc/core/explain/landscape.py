"""Loss landscapes: the training losses on a plane through the trained weights.

The plane is spanned by two random directions, each normalised filter by filter to the norms
of the model's own filters, so that the surface's shape can be compared between networks and
is not an artefact of the weights' scale (filter normalisation; biases and BatchNorm parameters
stay put). Every grid point is evaluated on one fixed batch of images (:func:`qc_batch`), all
losses from one forward pass. When the run kept its initial weights (``init.safetensors``,
written by :func:`napari_segqc.core.train.loop.iter_train`), the straight line from them to
the trained weights is evaluated too: a barrier on that path, or none, says how easy the
optimisation was.

References
----------
Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets",
NeurIPS. Goodfellow, Vinyals & Saxe (2015), "Qualitatively characterizing neural network
optimization problems", ICLR (the 1-D path between initial and trained weights).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SegQCError, Stopped
from ..instances.targets import make_targets
from ..models.builtin import BUILTIN_MODELS
from ..models.weights import load_weights
from ..predict.inference import run_to_end
from ..train.config import TrainConfig
from ..train.data import Sample
from ..train.losses import make_loss

#: Losses a landscape can show (those of :mod:`napari_segqc.core.train.losses`, by name).
LANDSCAPE_LOSSES = ("bce", "dice", "focal")
#: Images per forward pass: bounds the memory of a large QC batch (eval mode, so batching
#: does not change the result).
_CHUNK = 4


@dataclass
class Landscape:
    """Loss values on a grid around the trained weights (and on the path from the initial ones).

    ``values[name][i, j]`` is the loss at ``alphas[i]`` along direction 1 and ``betas[j]``
    along direction 2; the centre ``(0, 0)`` is the trained model itself.
    """

    alphas: np.ndarray
    betas: np.ndarray
    values: dict[str, np.ndarray]
    seed: int
    images: int
    path_t: np.ndarray | None = None
    path_values: dict[str, np.ndarray] | None = None
    seconds: float = 0.0

    def rows(self) -> list[dict]:
        """One row ``{"loss", "alpha", "beta", "value"}`` per grid point and loss."""
        return [
            {"loss": name, "alpha": float(a), "beta": float(b), "value": float(grid[i, j])}
            for name, grid in self.values.items()
            for i, a in enumerate(self.alphas)
            for j, b in enumerate(self.betas)
        ]

    def path_rows(self) -> list[dict]:
        """One row ``{"loss", "t", "value"}`` per point of the 1-D path (none without it)."""
        if self.path_t is None or self.path_values is None:
            return []
        return [
            {"loss": name, "t": float(t), "value": float(v)}
            for name, values in self.path_values.items()
            for t, v in zip(self.path_t, values, strict=True)
        ]


def _pad(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad the last two axes up to ``height`` x ``width`` (evenly on both sides)."""
    extra = (height - x.shape[-2], width - x.shape[-1])
    if not any(extra):
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(e // 2, e - e // 2) for e in extra]
    mode = "reflect" if min(x.shape[-2:]) > 1 else "edge"
    return np.pad(x, widths, mode=mode)


def qc_batch(
    samples: list[Sample], config: TrainConfig, *, patch: int = 256, max_images: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch a landscape is evaluated on: ``(images (B, C, H, W), targets (B, K, H,
    W))`` float32 CPU tensors.

    Up to ``max_images`` samples, evenly spread over the list, each cut to its centre
    ``patch`` x ``patch`` crop; targets are made from the whole label image
    (``config.target_mode``) and cut alike. Crops smaller than the batch's size (a multiple of
    32, at most ``patch``) are mirrored out to it, images and targets together. Deterministic.
    """
    if not samples:
        raise SegQCError("no images to evaluate the landscape on")
    if patch < 32 or patch % 32:
        raise SegQCError(f"patch size must be a multiple of 32 (>= 32), got {patch}")
    if max_images < 1:
        raise SegQCError(f"max images must be at least 1, got {max_images}")
    expected = config.model.in_channels
    for s in samples:
        if s.image.shape[0] != expected:
            raise SegQCError(
                f"{s.name}: the model expects {expected}-channel images, this one has "
                f"{s.image.shape[0]}"
            )
    n = len(samples)
    picks = np.unique(np.round(np.linspace(0, n - 1, min(n, max_images))).astype(int))
    crops = []
    for s in (samples[i] for i in picks):
        h, w = s.labels.shape
        ch, cw = min(patch, h), min(patch, w)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        box = (slice(None), slice(y0, y0 + ch), slice(x0, x0 + cw))
        crops.append((s.image[box], make_targets(s.labels, config.target_mode)[box]))
    height = min(patch, 32 * math.ceil(max(c.shape[-2] for c, _ in crops) / 32))
    width = min(patch, 32 * math.ceil(max(c.shape[-1] for c, _ in crops) / 32))
    images = np.stack([_pad(c, height, width) for c, _ in crops]).astype(np.float32)
    targets = np.stack([_pad(t, height, width) for _, t in crops]).astype(np.float32)
    return torch.from_numpy(images), torch.from_numpy(targets)


def filter_normalized_directions(model, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Two random directions in weight space, one tensor per ``model.parameters()`` entry.

    Gaussian (a CPU ``torch.Generator`` seeded with ``seed``: the same seed gives the same
    directions on any device), then every filter (a slice ``[k]`` along the output channels
    of a weight with more than one dimension) rescaled to the norm of the same filter of the
    model. Parameters of one dimension or less (biases, BatchNorm) get zero: they are not
    moved.
    """
    gen = torch.Generator().manual_seed(int(seed))
    params = list(model.parameters())
    directions = []
    for _ in range(2):
        out = []
        for p in params:
            w = p.detach().float()
            if w.dim() <= 1:
                out.append(torch.zeros_like(w))
                continue
            d = torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.device)
            d_norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
            w_norm = w.flatten(1).norm(dim=1)
            out.append(d * (w_norm / d_norm).view(-1, *([1] * (w.dim() - 1))))
        directions.append(out)
    return directions[0], directions[1]


def _check(losses: Sequence[str], steps: int, span: float, path_steps: int) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(str(n).strip().lower() for n in losses))
    unknown = [n for n in names if n not in LANDSCAPE_LOSSES]
    if unknown or not names:
        raise SegQCError(
            f"unknown loss{'es' * (len(unknown) > 1)} {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(LANDSCAPE_LOSSES)}"
        )
    if steps < 3 or steps % 2 == 0:
        raise SegQCError(
            f"steps must be odd and at least 3 (the centre is the trained model), got {steps}"
        )
    if not (math.isfinite(span) and span > 0):
        raise SegQCError(f"span must be a positive number, got {span}")
    if path_steps < 2:
        raise SegQCError(f"path steps must be at least 2, got {path_steps}")
    return names


def _grid(steps: int, span: float) -> np.ndarray:
    """``steps`` points from -span to span, the middle one exactly 0."""
    half = steps // 2
    return span * (np.arange(steps) - half) / half


def _evaluate(model, x, y, loss_fns: dict) -> dict[str, float]:
    """Every loss from one forward pass (float32, in chunks of images)."""
    logits = torch.cat([model(x[i : i + _CHUNK]).float() for i in range(0, len(x), _CHUNK)])
    return {name: float(fn(logits, y)) for name, fn in loss_fns.items()}


def _fitting_init(model, init_state: dict) -> dict[str, torch.Tensor]:
    """The floating-point entries of ``init_state`` for the model's state, checked."""
    own = model.state_dict()
    floats = {k: v for k, v in own.items() if v.is_floating_point()}
    missing = [k for k in floats if k not in init_state]
    wrong = [k for k in floats if k in init_state and init_state[k].shape != floats[k].shape]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise SegQCError(
            f"the initial weights do not fit this model ({len(missing)} missing, "
            f"{len(wrong)} of another shape, e.g. {first})"
        )
    return {k: init_state[k].to(floats[k].device, floats[k].dtype) for k in floats}


def iter_landscape(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    losses: Sequence[str] = LANDSCAPE_LOSSES,
    steps: int = 11,
    span: float = 1.0,
    seed: int = 0,
    init_state: dict | None = None,
    path_steps: int = 21,
    stop: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, Landscape]:
    """Evaluate ``losses`` of ``model`` on ``(x, y)`` over a ``steps`` x ``steps`` grid.

    The grid spans ``[-span, span]`` along the two filter-normalised directions of
    :func:`filter_normalized_directions` (``seed``); with ``init_state`` (a state_dict of the
    initial weights) the line from them (t = 0) to the trained weights (t = 1) is added at
    ``path_steps`` points, BatchNorm statistics interpolated too. A generator: yields (points
    done, points in all) after every point and returns the :class:`Landscape`. The model
    runs in eval mode without gradients in float32; its weights (and mode) are restored
    exactly at the end, also when ``stop()`` turns true (a :class:`Stopped` error is raised
    then) or anything fails.
    """
    names = _check(losses, steps, span, path_steps)
    params = list(model.parameters())
    if not params:
        raise SegQCError("the model has no weights to move")
    device = params[0].device
    x = x.to(device, torch.float32)
    y = y.to(device, torch.float32)
    init = _fitting_init(model, init_state) if init_state is not None else None
    loss_fns = {name: make_loss(name).to(device) for name in names}
    alphas = betas = _grid(steps, span)
    path_t = np.linspace(0.0, 1.0, path_steps) if init is not None else None
    total = steps * steps + (path_steps if init is not None else 0)
    live = model.state_dict()  # shares storage with the model: copy_ into it moves the model
    saved = {k: v.detach().clone() for k, v in live.items()}
    was_training = model.training
    t0 = time.perf_counter()
    values = {name: np.full((steps, steps), np.nan) for name in names}
    path_values = (
        {name: np.full(path_steps, np.nan) for name in names} if init is not None else None
    )
    model.eval()
    try:
        with torch.no_grad():
            d1, d2 = filter_normalized_directions(model, seed)
            base = [p.detach().clone() for p in params]
            done = 0
            for i, a in enumerate(alphas):
                for j, b in enumerate(betas):
                    if stop is not None and stop():
                        raise Stopped("loss landscape stopped")
                    for p, p0, u, v in zip(params, base, d1, d2, strict=True):
                        p.copy_(p0 + float(a) * u.to(p.dtype) + float(b) * v.to(p.dtype))
                    for name, value in _evaluate(model, x, y, loss_fns).items():
                        values[name][i, j] = value
                    done += 1
                    yield done, total
            if init is not None:
                for k, t in enumerate(path_t):
                    if stop is not None and stop():
                        raise Stopped("loss landscape stopped")
                    for key, start in init.items():
                        live[key].copy_(start * (1.0 - t) + saved[key] * t)
                    for name, value in _evaluate(model, x, y, loss_fns).items():
                        path_values[name][k] = value
                    done += 1
                    yield done, total
    finally:
        with torch.no_grad():
            for key, value in saved.items():
                live[key].copy_(value)
        model.train(was_training)
    return Landscape(
        alphas=alphas,
        betas=betas,
        values=values,
        seed=int(seed),
        images=int(x.shape[0]),
        path_t=path_t,
        path_values=path_values,
        seconds=time.perf_counter() - t0,
    )


def landscape(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs,
) -> Landscape:
    """:func:`iter_landscape` run to its end; ``progress(done, total)`` after every point,
    ``stop()`` polled before each (raises :class:`Stopped`)."""
    return run_to_end(iter_landscape(model, x, y, stop=stop, **kwargs), progress)


def initial_weights(source: str | os.PathLike) -> dict | None:
    """The initial weights (``init.safetensors``) of the run a model comes from: ``source`` a
    run folder or a ``.safetensors`` file inside one. None when there are none (built-in
    models, exported files, runs trained before initial weights were kept)."""
    if str(source) in BUILTIN_MODELS:
        return None
    path = Path(source)
    if path.is_dir():
        folder = path
    elif path.is_file() and path.suffix == ".safetensors":
        folder = path.parent
    else:
        return None
    init = folder / "init.safetensors"
    if not init.is_file():
        return None
    weights, _ = load_weights(init)
    return weights
