"""A smaller network from the built-in ``nuclei`` model, to be fine-tuned: the resnet34 encoder
cut to a resnet18 (two blocks per stage), the decoder kept or thinned.

    python scripts/prune_builtin.py --out RUN_init.safetensors [--blocks first-last]
        [--decoder 64,32,16,16]

A resnet34 stage has 3, 4, 6 (and 3) residual blocks, a resnet18 stage 2 each: the student
keeps the first block of each stage (it changes the width and stride) and, by ``--blocks``,
the second (``first-second``) or the last (``first-last``) one. Every other weight (stem,
decoder, segmentation head) is copied. ``--decoder`` thins the decoder to these widths: each
decoder convolution keeps the output channels of largest effective scale (batch-norm
``|gamma| / sqrt(var)`` times the filter's L1 norm), the next layer's inputs follow, and the skip
connections stay whole. With ``--train RUN`` the pruned network is
fine-tuned as the model was trained (same images, same seeded 15 % validation split, same
targets, loss and augmentation; ``--epochs``, ``--lr``), so that it can be compared with the
model on equal terms. ``--compare N`` prints how far each choice's maps are from the model's
on N validation images.

    python scripts/prune_builtin.py --out RUN_init.safetensors --train RUN --epochs 40
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from train_builtin_v2 import DATA, split_names

from napari_segqc.core.models.builtin import resolve_model_path
from napari_segqc.core.models.registry import build_model
from napari_segqc.core.models.weights import load_weights, save_weights
from napari_segqc.core.train.augment import with_zoom
from napari_segqc.core.train.config import TrainConfig

STAGE_BLOCKS = {"layer1": 3, "layer2": 4, "layer3": 6, "layer4": 3}


def pruned_weights(weights: dict, blocks: str) -> dict:
    """resnet34-encoder weights renamed to resnet18's: stage blocks (0, 1) or (0, last)."""
    out = {}
    for key, value in weights.items():
        parts = key.split(".")
        if parts[0] == "encoder" and parts[1] in STAGE_BLOCKS:
            index, last = int(parts[2]), STAGE_BLOCKS[parts[1]] - 1
            keep = {0: 0, 1: 1} if blocks == "first-second" else {0: 0, last: 1}
            if index not in keep:
                continue
            parts[2] = str(keep[index])
            key = ".".join(parts)
        out[key] = value
    return out


def zoomed(config: TrainConfig, text: str) -> TrainConfig:
    """``config`` with the random zoom range ``"LOW,HIGH"`` (``--zoom``)."""
    low, high = (float(v) for v in text.split(","))
    return replace(config, augment=with_zoom(config.augment, (low, high)))


def _kept_channels(weights: dict, conv: str, width: int, inputs: torch.Tensor) -> torch.Tensor:
    """Slices ``conv`` (a decoder Conv2dReLU's prefix) in place to ``inputs`` and the ``width``
    output channels of largest effective scale; returns the kept output indices (sorted)."""
    w = weights[f"{conv}.0.weight"][:, inputs]
    bn = f"{conv}.1"
    scale = weights[f"{bn}.weight"].abs() / torch.sqrt(weights[f"{bn}.running_var"] + 1e-5)
    keep = torch.sort(torch.topk(scale * w.abs().sum(dim=(1, 2, 3)), width).indices).values
    weights[f"{conv}.0.weight"] = w[keep].clone()
    for name in ("weight", "bias", "running_mean", "running_var"):
        weights[f"{bn}.{name}"] = weights[f"{bn}.{name}"][keep].clone()
    return keep


def thinned_decoder(weights: dict, widths: tuple[int, ...]) -> dict:
    """Decoder (and head) weights cut to ``widths`` channels per block (see the module text)."""
    weights = dict(weights)
    previous, previous_width = None, 0  # kept outputs of the block before, its original width
    for i, width in enumerate(widths):
        block = f"decoder.blocks.{i}"
        n_in = weights[f"{block}.conv1.0.weight"].shape[1]
        if previous is None:  # the encoder's deepest features, all kept
            inputs = torch.arange(n_in)
        else:  # the upsampled block before first, then the skip connection, kept whole
            inputs = torch.cat([previous, torch.arange(previous_width, n_in)])
        previous_width = weights[f"{block}.conv2.0.weight"].shape[0]
        kept = _kept_channels(weights, f"{block}.conv1", width, inputs)
        previous = _kept_channels(weights, f"{block}.conv2", width, kept)
    head = "segmentation_head.0.weight"
    weights[head] = weights[head][:, previous].clone()
    return weights


def student(blocks: str, source: str = "nuclei", decoder: tuple[int, ...] | None = None):
    """(model, config, weights) of the pruned network."""
    weights, meta = load_weights(resolve_model_path(source))
    config = TrainConfig.from_dict(meta["config"])
    model_config = replace(config.model, encoder="resnet18")
    if decoder is not None:
        model_config = replace(model_config, decoder_channels=tuple(decoder))
    config = replace(config, model=model_config, init=None)
    model = build_model(config.model)
    pruned = pruned_weights({k: v.float() for k, v in weights.items()}, blocks)
    if decoder is not None:
        pruned = thinned_decoder(pruned, tuple(decoder))
    model.load_state_dict(pruned)
    return model.eval(), config, pruned


def compare(names: list[str], decoder: tuple[int, ...] | None = None) -> None:
    from napari_segqc.core.io import read_image
    from napari_segqc.core.models.normalize import normalize_image
    from napari_segqc.core.predict.loading import load_model

    teacher = load_model("nuclei", torch.device("cpu"), backend="torch").model.float().eval()
    folder = DATA / "dsb2018" / "train"
    for blocks in ("first-second", "first-last"):
        model = student(blocks, decoder=decoder)[0]
        errors = []
        for name in names:
            image = normalize_image(read_image(folder / "images" / f"{name}.tif"))
            h, w = (s // 32 * 32 for s in image.shape[1:])
            x = torch.from_numpy(np.ascontiguousarray(image[None, :, :h, :w]))
            with torch.inference_mode():
                a, b = torch.sigmoid(teacher(x)), torch.sigmoid(model(x))
            errors.append(float((a - b).abs().mean()))
        print(f"{blocks}: mean |maps - model's maps| {np.mean(errors):.4f} on {len(names)} images")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--blocks", choices=("first-second", "first-last"), default="first-last")
    p.add_argument("--decoder", help="thin the decoder to these widths, e.g. 64,32,16,16")
    p.add_argument("--compare", type=int, default=0, help="validation images to compare on")
    p.add_argument("--train", type=Path, help="fine-tune into this run folder")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--zoom", help="random zoom range LOW,HIGH (default: the model's)")
    p.add_argument("--start", type=Path, help="fine-tune from these weights instead of --out")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    decoder = tuple(int(v) for v in args.decoder.split(",")) if args.decoder else None
    if args.compare:
        names = split_names("dsb2018", "val")[: args.compare]
        compare(names, decoder)
    if args.out:
        _, config, weights = student(args.blocks, decoder=decoder)
        note = f"resnet18 cut from the built-in nuclei model's resnet34 ({args.blocks} blocks)"
        if decoder:
            note += f", decoder thinned to {list(decoder)}"
        save_weights(args.out, weights, {"note": note, "config": config.to_dict()})
        print(f"wrote {args.out}")
    if args.train:
        from train_builtin_model import print_epochs

        from napari_segqc.core.train.data import load_training_data
        from napari_segqc.core.train.loop import iter_train

        config = TrainConfig.from_dict(load_weights(args.out, tensors=False)[1]["config"])
        config = replace(
            config,
            init=str(args.start or args.out),
            lr=args.lr,
            epochs=args.epochs,
            checkpoint_every=5,
        )
        if args.zoom:
            config = zoomed(config, args.zoom)
        samples = load_training_data(DATA / "dsb2018" / "train")
        print_epochs(iter_train(config, samples, args.train, resume=args.resume))
    return 0


if __name__ == "__main__":
    sys.exit(main())
