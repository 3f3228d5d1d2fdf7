"""Options that several commands share, worded once."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..core.device import PRECISIONS
from ..core.errors import SegQCError


def add_device_options(
    parser: argparse.ArgumentParser, *, precision: bool = True, backend: bool = False
) -> None:
    """``--device`` (and ``--precision``, ``--backend``): where the network runs, in which
    precision, on what."""
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps",
    )
    if precision:
        parser.add_argument(
            "--precision",
            default="auto",
            choices=PRECISIONS,
            help="autocast precision of torch models (auto: bf16 on the CPU and recent GPUs, "
            "else fp16)",
        )
    if backend:
        from ..core.predict.loading import BACKENDS

        parser.add_argument(
            "--backend",
            default="auto",
            choices=BACKENDS,
            help="what runs the network: auto (built-in models on the CPU: their int8 ONNX "
            "version on onnxruntime, same accuracy, faster; else torch), torch, or onnx",
        )


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """The folder an option names, checked without creating it (writers create it when they
    write): a file there, or a folder that cannot be created, is a one-line
    :class:`SegQCError` in our words rather than a raw ``[Errno 17]`` later."""
    out = Path(path)
    if out.exists():
        if not out.is_dir():
            raise SegQCError(f"{option} {out} is a file, not a folder: name a folder")
        if not os.access(out, os.W_OK | os.X_OK):
            raise SegQCError(f"{option} {out}: this folder is not writable")
        return out
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SegQCError(f"{option} {out}: cannot create this folder ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SegQCError(f"{option} {out}: cannot create this folder ({parent} is not writable)")
    return out


def every_tenth(say: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """A progress callback for :func:`napari_segqc.core.predict.inference.run_to_end` that
    calls ``say(done, total)`` each time another tenth of the work is done."""
    shown = [0]

    def progress(done: int, total: int) -> None:
        if total and done * 10 // total > shown[0]:
            shown[0] = done * 10 // total
            say(done, total)

    return progress


def add_cluster_options(parser: argparse.ArgumentParser, *, readable: str = "models and images"):
    """``--scheduler`` / ``--workers`` (one or the other): where a dask cluster runs the work;
    returns the option group, for a command's own cluster options (e.g. ``--block``)."""
    cluster = parser.add_argument_group("dask cluster (scale out)")
    where = cluster.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing dask cluster: its scheduler's address (tcp://HOST:PORT) or "
        f"scheduler file; {readable} must be readable by its workers (default: none, the "
        "work runs in this process)",
    )
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run on a local dask cluster of N worker processes on this machine (127.0.0.1; "
        "default: none, the work runs in this process)",
    )
    return cluster
