"""Training on several processes: the ranks' seeds and agreements, rank 0 alone writing and
validating, and two real gloo ranks (DistributedDataParallel) training one model.

The end-to-end runs under torchrun are in tests/cli/test_cli_train_distributed.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.models.registry import ModelConfig
from napari_segqc.core.models.weights import load_weights
from napari_segqc.core.train import distributed, loop
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import PatchSampler, load_training_data
from napari_segqc.core.train.distributed import (
    Ranks,
    check_nproc,
    patch_seed,
    start,
    torchrun_env,
)
from napari_segqc.core.train.loop import EpochReport, iter_train

TINY = TrainConfig(
    model=ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4)),
    epochs=2,
    steps_per_epoch=3,
    batch=1,
    patch=64,
    val_fraction=0.25,
    device="cpu",
    precision="fp32",
)
#: Steps the two real ranks train before rank 0 stops them (of 2 x 3).
STEPS = 5
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """No torchrun around (whatever the environment), one thread (a shared machine)."""
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def samples(sample_dir):
    return load_training_data(sample_dir)


def drain(gen):
    reports = []
    while True:
        try:
            reports.append(next(gen))
        except StopIteration as done:
            return reports, done.value


def test_rank_seeds_differ_and_rank_0_keeps_the_one_process_seed(samples):
    assert patch_seed(7, 3) == patch_seed(7, 3, rank=0) == 7 * 100_003 + 3
    seeds = {patch_seed(0, epoch, rank) for epoch in range(200) for rank in range(8)}
    assert len(seeds) == 200 * 8  # no two (epoch, rank) pairs share a seed
    targets = [make_targets(s.labels, "instance") for s in samples]

    def first_patches(rank):
        sampler = PatchSampler(samples, targets, 64, seed=patch_seed(0, 0, rank))
        return hashlib.sha1(sampler.sample(4)[0].tobytes()).hexdigest()

    assert first_patches(0) == first_patches(0)  # seeded: the same again
    assert len({first_patches(rank) for rank in range(4)}) == 4  # each rank its own patches


def test_an_automatic_epoch_is_one_pass_shared_by_the_ranks(samples):
    config = replace(TINY, steps_per_epoch=0)
    one, two = (loop._auto_steps(samples, config, n) for n in (1, 2))
    assert one == loop._auto_steps(samples, config) > 8 and two == -(-one // 2)


def test_torchrun_environment(monkeypatch):
    assert torchrun_env() == (0, 1, 0)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert torchrun_env() == (1, 2, 1) and distributed.under_torchrun()
    with pytest.raises(SegQCError, match="is already rank 1 of 2"):
        check_nproc(2, "cpu")
    check_nproc(1, "cpu")  # one process: trains in this one
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SegQCError, match="WORLD_SIZE='two' is not a number"):
        torchrun_env()
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(SegQCError, match="do not fit"):
        torchrun_env()


def test_nproc_below_one_is_refused():
    for n in (0, -2):
        with pytest.raises(SegQCError, match="--nproc must be at least 1"):
            check_nproc(n)


def test_one_process_needs_no_group():
    ranks, device = start("cpu")
    assert type(ranks) is Ranks and device.type == "cpu" and ranks.is_main
    model = torch.nn.Linear(2, 2)
    assert ranks.wrap(model) is model
    assert ranks.mean(torch.tensor(3.0), 2) == 1.5
    assert ranks.decide(True) and not ranks.decide(False)
    assert ranks.share({"a": 1.0}, ("a",)) == {"a": 1.0}


def test_gloo_listens_on_loopback_only_for_a_local_rendezvous(monkeypatch):
    names = {name for _, name in socket.if_nameindex()}
    if "lo" not in names and "lo0" not in names:
        pytest.skip("no loopback interface named lo or lo0")
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "192.0.2.1")  # another machine (TEST-NET, never used)
    distributed._gloo_on_loopback()
    assert "GLOO_SOCKET_IFNAME" not in os.environ
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    distributed._gloo_on_loopback()
    assert os.environ["GLOO_SOCKET_IFNAME"] in ("lo", "lo0")
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "eth7")  # the user's choice stays
    distributed._gloo_on_loopback()
    assert os.environ["GLOO_SOCKET_IFNAME"] == "eth7"


#: Rank 0's validation scores, as :class:`FakeRanks` makes them up for rank 1.
SHARED = {"val_loss": 1.0, "val_iou": 0.25, "val_f1": 0.5}


class FakeRanks(Ranks):
    """Rank ``rank`` of two, alone: rank 0's broadcasts are made up, sums are this rank's."""

    world_size = 2

    def __init__(self, device, rank):
        super().__init__(device)
        self.rank = rank

    def decide(self, flag):
        return bool(flag) if self.rank == 0 else False  # rank 0 wants to go on

    def share(self, values, keys):
        return dict(values) if self.rank == 0 else dict(SHARED)


def test_a_rank_other_than_0_writes_nothing_and_follows_rank_0(samples, tmp_path, monkeypatch):
    device = torch.device("cpu")
    monkeypatch.setattr(loop, "start", lambda name: (FakeRanks(device, 1), device))

    def no_validation(*args):
        raise AssertionError("rank 1 validated")

    monkeypatch.setattr(loop, "validate", no_validation)
    out = tmp_path / "run"
    # its own stop() says stop, rank 0 says go on: it trains every step of every epoch
    reports, _ = drain(iter_train(TINY, samples, out, stop=lambda: True))
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert [r.epoch for r in epochs] == [0, 1] and not any(r.stopped for r in epochs)
    assert all(r.val_f1 == SHARED["val_f1"] for r in epochs)  # rank 0's scores
    assert not out.exists()  # no folder, no config, no weights, no history


def test_rank_0_writes_the_run_and_counts_the_global_batch(samples, tmp_path, monkeypatch):
    device = torch.device("cpu")
    monkeypatch.setattr(loop, "start", lambda name: (FakeRanks(device, 0), device))
    out = tmp_path / "run"
    reports, best = drain(iter_train(TINY, samples, out))
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert best == out / "best.safetensors" and len(epochs) == 2
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "history.csv", "init.safetensors", "state.safetensors"} <= names
    # two ranks of batch 1: 2 images a step (the rate in the history is the whole group's)
    rate = [r.images_per_s * r.seconds / TINY.steps_per_epoch for r in epochs]
    assert rate == pytest.approx([2.0, 2.0])


# -- two real ranks ------------------------------------------------------------------------


def _checksum(tensors: dict) -> str:
    digest = hashlib.sha1()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _worker(rank: int, world: int, store: str, data: str, out: str, result: str) -> None:
    """One rank of a gloo group (a file store: nothing listens), training ``TINY``."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    names = {name for _, name in socket.if_nameindex()}
    loopback = next((n for n in ("lo", "lo0") if n in names), None)
    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    models, patches, losses, validated = [], [], [], []
    wrap = distributed.GroupRanks.wrap

    def recording_wrap(self, model):
        models.append(model)
        return wrap(self, model)

    class RecordingSampler(PatchSampler):
        def sample(self, batch_size):
            images, targets = super().sample(batch_size)
            patches.append(hashlib.sha1(images.tobytes()).hexdigest())
            return images, targets

    train_step, validate = loop._train_step, loop.validate

    def recording_step(*args):
        loss = train_step(*args)
        losses.append(float(loss.detach()))
        return loss

    def recording_validate(*args):
        validated.append(1)
        return validate(*args)

    distributed.GroupRanks.wrap = recording_wrap
    loop.PatchSampler, loop._train_step, loop.validate = (
        RecordingSampler,
        recording_step,
        recording_validate,
    )
    # rank 0 stops after 5 steps (the second of epoch 2); rank 1 has no stop of its own
    stop = (lambda: len(losses) >= STEPS) if rank == 0 else None
    reports, _ = drain(iter_train(TINY, load_training_data(data), out, stop=stop))
    assert dist.is_initialized()  # the caller's group is left open
    model = models[0]
    mine = {
        "params": _checksum(dict(model.named_parameters())),
        "patches": patches,
        "losses": losses,
        "validated": len(validated),
        "epochs": [
            [r.train_loss, r.val_loss, r.val_iou, r.val_f1, r.stopped]
            for r in reports
            if isinstance(r, EpochReport)
        ],
    }
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    if rank == 0:
        Path(result).write_text(json.dumps(everyone))
    # both ranks reach the end before either tears gloo down, and neither runs the interpreter's
    # finalisation after it: a rank torn down while its peer's gloo threads still ran aborted
    # once in CI ("terminate called without an active exception", exit -6)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


def test_two_gloo_ranks_train_one_model(sample_dir, tmp_path):
    out, result = tmp_path / "run", tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in TORCHRUN_VARS:
        env.pop(name, None)
    args = [str(tmp_path / "store"), str(sample_dir), str(out), str(result)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(rank), "2", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:  # a hung rank must not outlive the test
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)
    rank0, rank1 = json.loads(result.read_text())
    # DistributedDataParallel: every rank ends with the same weights ...
    assert rank0["params"] == rank1["params"]
    # ... and rank 0 saved them (names without DDP's "module." prefix)
    saved, _ = load_weights(out / "last.safetensors")
    assert not any(k.startswith("module.") for k in saved)
    params = {k: v for k, v in saved.items() if "running_" not in k and "num_batches" not in k}
    assert _checksum(params) == rank0["params"]
    # rank 0's stop stopped both after the same step; they drew different patches every step
    assert len(rank0["patches"]) == len(rank1["patches"]) == STEPS
    assert [row[-1] for row in rank0["epochs"]] == [False, True]
    assert not set(rank0["patches"]) & set(rank1["patches"])
    # rank 0 alone validated; both report the same epochs: the loss is the mean of all steps
    assert (rank0["validated"], rank1["validated"]) == (TINY.epochs, 0)
    assert rank0["epochs"] == rank1["epochs"]
    n = TINY.steps_per_epoch
    for epoch, row in enumerate(rank0["epochs"]):
        steps = slice(epoch * n, (epoch + 1) * n)
        both = rank0["losses"][steps] + rank1["losses"][steps]
        assert row[0] == pytest.approx(np.mean(both), rel=1e-6)
    assert len(list(out.glob("*.safetensors"))) == 4 and not list(out.glob(".*"))


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:7])
