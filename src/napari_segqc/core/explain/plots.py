"""The figures of loss landscapes and LR range tests, drawn on a matplotlib ``Figure``.

Nothing here uses pyplot: the functions draw on any :class:`matplotlib.figure.Figure`, a plain
one (headless, saved with :func:`save_figure`) or the one of a Qt canvas in a dock widget.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import SegQCError
from ..io import write_atomic
from ..train.lr_find import LRFindResult
from .landscape import Landscape

#: Colours span at least this ratio (max / min, all positive) before they go log-scaled.
_DECADES = 10.0
_LEVELS = 20


def _spans_decades(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() >= _DECADES


def _colorbar(figure, ax, filled, label: str, log: bool) -> None:
    from matplotlib import ticker

    bar = figure.colorbar(filled, ax=ax, shrink=0.85)
    bar.locator = ticker.LogLocator(subs=(1.0, 2.0, 5.0)) if log else ticker.MaxNLocator(5)
    bar.formatter = ticker.FormatStrFormatter("%.3g")
    bar.update_ticks()
    bar.ax.tick_params(labelsize="small")
    bar.set_label(label, fontsize="small")


def _contour(figure, ax, alphas, betas, grid: np.ndarray, name: str) -> None:
    from matplotlib.colors import LogNorm

    z = np.ma.masked_invalid(np.asarray(grid, float).T)  # rows: beta, columns: alpha
    finite = z.compressed()
    if finite.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    elif finite.min() == finite.max():  # flat: contourf cannot make levels
        ax.pcolormesh(alphas, betas, z, shading="nearest")
    else:
        log = _spans_decades(finite)
        space = np.geomspace if log else np.linspace
        levels = space(finite.min(), finite.max(), _LEVELS + 1)
        norm = LogNorm() if log else None
        filled = ax.contourf(alphas, betas, z, levels=levels, norm=norm, cmap="viridis")
        ax.contour(alphas, betas, z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
        _colorbar(figure, ax, filled, name + (" (log scale)" if log else ""), log)
    ax.plot([0], [0], marker="*", color="red", markersize=10, linestyle="none")
    ax.set_title(f"{name} loss (★ trained)", fontsize="medium")
    ax.set_xlabel("α (direction 1)", fontsize="small")
    ax.set_ylabel("β (direction 2)", fontsize="small")
    ax.tick_params(labelsize="small")
    ax.set_aspect("equal")


def _grid_shape(figure, panels: int) -> tuple[int, int]:
    """Rows and columns that keep ``panels`` about square on the figure."""
    width, height = figure.get_size_inches()
    cols = int(np.clip(round(np.sqrt(panels * width / height)), 1, panels))
    return -(-panels // cols), cols


def draw_landscape(figure, landscape: Landscape, loss: str | None = None) -> None:
    """Draw ``landscape`` on ``figure`` (cleared first): a filled contour plot per loss (or
    only ``loss``), the trained weights marked at the centre, colours log-scaled where the
    values span a decade or more; plus a panel of the path from the initial weights (t = 0)
    to the trained ones (t = 1) when the landscape has it. Panels are laid out in a grid that
    fits the figure's shape."""
    names = list(landscape.values)
    if loss is not None:
        if loss not in landscape.values:
            raise SegQCError(f"the landscape has no {loss!r} loss; it has {', '.join(names)}")
        names = [loss]
    path = landscape.path_t is not None and landscape.path_values is not None
    figure.clear()
    figure.set_layout_engine("constrained")
    panels = len(names) + int(path)
    rows, cols = _grid_shape(figure, panels)
    for k, name in enumerate(names):
        ax = figure.add_subplot(rows, cols, k + 1)
        _contour(figure, ax, landscape.alphas, landscape.betas, landscape.values[name], name)
    if path:
        ax = figure.add_subplot(rows, cols, panels)
        shown = np.concatenate([np.asarray(landscape.path_values[n], float) for n in names])
        for name in names:
            ax.plot(landscape.path_t, landscape.path_values[name], marker=".", label=name)
        if _spans_decades(shown):
            ax.set_yscale("log")
        ax.set_xlabel("t (0 = initial, 1 = trained)", fontsize="small")
        ax.set_ylabel("loss", fontsize="small")
        ax.tick_params(labelsize="small")
        ax.set_title("path from the initial weights", fontsize="medium")
        ax.legend(fontsize="small")
    figure.suptitle(
        f"loss landscape on {landscape.images} image{'s' * (landscape.images != 1)} "
        f"(seed {landscape.seed})",
        fontsize="medium",
    )


def draw_lr_find(figure, result: LRFindResult) -> None:
    """Draw an LR range test on ``figure`` (cleared first): the raw loss (faint) and the
    smoothed one against the learning rate on a log axis, the suggested rate marked."""
    figure.clear()
    figure.set_layout_engine("constrained")
    ax = figure.add_subplot(1, 1, 1)
    if len(result.lrs) == 0:
        ax.text(0.5, 0.5, "no steps", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=2, label="smoothed")
    ax.set_xscale("log")
    k = int(np.argmin(np.abs(np.log(result.lrs) - np.log(result.suggested))))
    ax.axvline(result.suggested, color="tab:red", linestyle="--", linewidth=1)
    ax.plot(
        [result.suggested],
        [result.smoothed[k]],
        marker="o",
        color="tab:red",
        linestyle="none",
        label=f"suggested {result.suggested:.1e}",
    )
    smooth = result.smoothed[np.isfinite(result.smoothed)]
    raw = result.losses[np.isfinite(result.losses)]
    if smooth.size and raw.size:  # the blow-up at the end must not squash the rest
        low, high = float(min(raw.min(), smooth.min())), float(smooth.max())
        pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    title = "LR range test" + (" (stopped: the loss diverged)" if result.diverged else "")
    ax.set_title(title)
    ax.legend(fontsize="small")


def save_figure(figure, path: str | os.PathLike) -> None:
    """Save ``figure`` as a PNG at ``path``, atomically (a temporary file renamed into place)."""
    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
