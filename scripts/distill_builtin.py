"""Knowledge distillation: train a smaller network to give the built-in ``nuclei`` model's maps.

    python scripts/distill_builtin.py --student RUN/best.safetensors --out RUN2 \\
        [--epochs 40] [--lr 2e-4] [--weight 1.0] [--zoom 0.6,1.7] [--threads 2] \\
        [--average-from 11]

The student (a file of ``scripts/prune_builtin.py``, fine-tuned or not) is trained on the
model's own data as the model was (same 391 training images, same seed-0 15 % validation split,
same patches, augmentation, targets and loss; ``--zoom`` widens the random zoom) plus a second
term: binary cross-entropy between the student's logits and the teacher's probabilities on the
same augmented patch, times ``--weight``. The teacher sees every zoomed, rotated or dimmed patch
the student sees, so the student learns the teacher's answers at those scales too, not only the
ground truth's. Each epoch is validated as in training (object F1 at IoU 0.5 on the validation
split, the config's decoding) and the best epoch is written to ``RUN2/best.safetensors``.

``--average-from K`` also keeps the equal-weight average of the weights at the end of epochs
K..last (stochastic weight averaging), recomputes its batch-norm statistics on training patches
and writes it, validated like the epochs, to ``RUN2/averaged.safetensors``: a checkpoint fixed
before training instead of the epoch a noisy validation score picked.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from prune_builtin import zoomed
from train_builtin_v2 import DATA

from napari_segqc.core.device import autocast_dtype
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.models.registry import build_model
from napari_segqc.core.models.weights import load_weights
from napari_segqc.core.predict.loading import load_model
from napari_segqc.core.train.augment import augment_batch
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import PatchSampler, load_training_data, split_samples
from napari_segqc.core.train.distributed import patch_seed
from napari_segqc.core.train.losses import make_loss
from napari_segqc.core.train.optim import make_optimizer, make_scheduler, step_scheduler
from napari_segqc.core.train.run_folder import RunFolder
from napari_segqc.core.train.validation import validate

#: Training batches that re-estimate the averaged network's batch-norm statistics.
BN_BATCHES = 60


def network(path, config: TrainConfig):
    model = build_model(config.model)
    weights, _ = load_weights(path)
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.to(memory_format=torch.channels_last)


def batches(samples, targets, config: TrainConfig, count: int, seed: int, augment_seed=None):
    """``count`` augmented training batches ``(x, y)`` as training draws them (patches seeded
    by ``seed``, augmentation by ``augment_seed``, default ``seed``), x channels-last."""
    sampler = PatchSampler(samples, targets, config.patch, seed=seed)
    gen = torch.Generator().manual_seed(seed if augment_seed is None else augment_seed)
    for _ in range(count):
        images, y = sampler.sample(config.batch)
        x, y = augment_batch(
            torch.from_numpy(images), torch.from_numpy(y), config.augment, generator=gen
        )
        yield x.contiguous(memory_format=torch.channels_last), y


def distill(args: argparse.Namespace) -> Path:
    config = TrainConfig.from_dict(load_weights(args.student, tensors=False)[1]["config"])
    config = replace(config, lr=args.lr, epochs=args.epochs, init=str(args.student))
    if args.zoom:
        config = zoomed(config, args.zoom)
    loaded = load_model(args.teacher, torch.device("cpu"), backend="torch")
    teacher = loaded.model.float().eval().requires_grad_(False)
    teacher = teacher.to(memory_format=torch.channels_last)
    student = network(args.student, config)

    train_set, val_set = split_samples(
        load_training_data(DATA / "dsb2018" / "train"), config.val_fraction, config.seed
    )
    targets = [make_targets(s.labels, config.target_mode) for s in train_set]
    val_targets = [make_targets(s.labels, config.target_mode) for s in val_set]
    device, dtype = torch.device("cpu"), autocast_dtype(config.precision, torch.device("cpu"))
    optimizer = make_optimizer(config.optimizer, student.parameters(), lr=config.lr)
    scheduler = make_scheduler(optimizer, config.schedule, epochs=config.epochs)
    loss_fn = make_loss(config.loss)
    run = RunFolder(args.out)
    args.out.mkdir(parents=True, exist_ok=False)
    best, steps = -1.0, config.steps_per_epoch or 50
    average = None
    for epoch in range(config.epochs):
        seed = patch_seed(config.seed, epoch, 0)
        student.train()
        t0, total, soft_total = time.perf_counter(), 0.0, 0.0
        for x, y in batches(train_set, targets, config, steps, seed):
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                soft = torch.sigmoid(teacher(x).float())
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                logits = student(x).float()
            hard = loss_fn(logits, y)
            soft_loss = F.binary_cross_entropy_with_logits(logits, soft)
            (hard + args.weight * soft_loss).backward()
            optimizer.step()
            total += float(hard.detach())
            soft_total += float(soft_loss.detach())
        val = validate(student, val_set, val_targets, loss_fn, config, device, dtype)
        step_scheduler(scheduler, val["val_f1"])
        run.save_weights("last.safetensors", student, config, epoch)
        if args.average_from and epoch + 1 >= args.average_from:
            average = average or torch.optim.swa_utils.AveragedModel(student, use_buffers=False)
            average.update_parameters(student)
        mark = ""
        if val["val_f1"] > best:
            best, mark = val["val_f1"], " best"
            run.save_weights("best.safetensors", student, config, epoch)
        print(
            f"epoch {epoch + 1}/{config.epochs} loss {total / steps:.4f} "
            f"distill {soft_total / steps:.4f} val_f1 {val['val_f1']:.4f} "
            f"lr {optimizer.param_groups[0]['lr']:.2e} {time.perf_counter() - t0:.0f} s{mark}",
            flush=True,
        )
    if average is not None:
        averaged = average.module
        seed = patch_seed(config.seed, 0, 1)
        patches = batches(train_set, targets, config, BN_BATCHES, seed, augment_seed=config.seed)
        torch.optim.swa_utils.update_bn((x for x, _ in patches), averaged)
        val = validate(averaged, val_set, val_targets, loss_fn, config, device, dtype)
        run.save_weights("averaged.safetensors", averaged, config, config.epochs - 1)
        print(f"averaged epochs {args.average_from}-{config.epochs}: val_f1 {val['val_f1']:.4f}")
    return args.out / "best.safetensors"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", type=Path, required=True)
    p.add_argument("--teacher", default="nuclei", help="built-in name or .safetensors")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--weight", type=float, default=1.0, help="weight of the teacher's term")
    p.add_argument("--zoom", help="random zoom range LOW,HIGH (default: the student's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument(
        "--average-from",
        type=int,
        default=0,
        help="also write averaged.safetensors: the mean of the weights of epochs K..last",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"wrote {distill(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
