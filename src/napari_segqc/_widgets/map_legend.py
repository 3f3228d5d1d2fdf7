"""The legends of the QC maps in the dock: the error map's classes (from ``ERROR_CLASSES``) and
a gradient with its range for each image map (object IoU, SSIM, RSE)."""

from __future__ import annotations

import numpy as np

from ..core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from .layers import GREY_MAPS, MAP_TITLES, iou_colormap, ssim_colormap

#: Cells of a gradient in the legend.
GRADIENT_STEPS = 16
#: Colormap and range text of each image map (RSE's top is the map's maximum).
IMAGE_MAPS = {
    "object_iou": (iou_colormap, "0 missed", "1"),
    "ssim": (ssim_colormap, "−1", "1 same"),
    "rse": (None, "0", "max"),
}


def nobreak(text: str) -> str:
    return text.replace(" ", "&nbsp;").replace("-", "&#8209;")


def error_legend_html() -> str:
    """The error map's colours as a small two-column HTML table (background left out)."""
    cells = [
        f'<td><span style="color:{ERROR_COLORS[v][:7]}">&#9632;</span>&nbsp;{nobreak(name)}</td>'
        for v, name in ERROR_CLASSES.items()
        if v
    ]
    rows = ["<tr>" + "".join(cells[i : i + 2]) + "</tr>" for i in range(0, len(cells), 2)]
    return "<b>Error map</b><table cellspacing=2>" + "".join(rows) + "</table>"


def _hex_colors(kind: str) -> list[str]:
    factory = IMAGE_MAPS[kind][0]
    values = np.linspace(0.0, 1.0, GRADIENT_STEPS)
    if factory is None:  # napari's "inferno"
        from napari.utils.colormaps import ensure_colormap

        rgba = ensure_colormap("inferno").map(values)
    else:
        rgba = factory().map(values)
    return ["#{:02x}{:02x}{:02x}".format(*(np.round(c[:3] * 255).astype(int))) for c in rgba]


def gradient_legend_html(grey_maps: bool = True) -> str:
    """One line per image map: its name, low end, colour gradient, high end."""
    rows = []
    for kind, (_, low, high) in IMAGE_MAPS.items():
        if kind in GREY_MAPS and not grey_maps:
            continue
        bar = "".join(
            f'<td style="background-color:{c}" width=6>&nbsp;</td>' for c in _hex_colors(kind)
        )
        rows.append(
            f"<tr><td>{nobreak(MAP_TITLES[kind])}&nbsp;</td><td align=right>{nobreak(low)}</td>"
            f"<td><table cellspacing=0 cellpadding=0><tr>{bar}</tr></table></td>"
            f"<td>{nobreak(high)}</td></tr>"
        )
    return "<table cellspacing=2>" + "".join(rows) + "</table>"


def legend_html(grey_maps: bool = True) -> str:
    """The whole legend: error classes, then the image maps' gradients."""
    return error_legend_html() + gradient_legend_html(grey_maps)
