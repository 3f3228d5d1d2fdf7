"""Options that several commands share, worded once."""

from __future__ import annotations

import argparse

from ..core.device import PRECISIONS


def add_device_options(parser: argparse.ArgumentParser, *, precision: bool = True) -> None:
    """``--device`` (and ``--precision``): where the network runs, and in which precision."""
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
            help="autocast precision (auto: bf16 on the CPU and recent GPUs, else fp16)",
        )
