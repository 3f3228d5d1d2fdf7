"""Training on several processes (``torchrun``): the process group, what the ranks agree on,
and a launcher for one machine.

Under ``torchrun`` (``WORLD_SIZE`` above 1 in the environment) :func:`start` joins the process
group: gloo on the CPU, nccl on CUDA GPUs, each process on the GPU of its local rank
(``cuda:LOCAL_RANK``). A process group made by the caller (``init_process_group`` before
training) is used as it is, and left open. Without either, training is one process and nothing
here talks to anyone (:class:`Ranks`).

What the loop asks of the ranks (:class:`GroupRanks`):

* the model is wrapped in ``DistributedDataParallel`` (gradients averaged over the ranks; the
  weights broadcast from rank 0 when wrapped; BatchNorm keeps per-rank batch statistics, and
  its running statistics are rank 0's);
* every rank draws its own patches (:func:`patch_seed`);
* the train loss reported is the mean over all ranks' steps (:meth:`GroupRanks.mean`);
* validation runs on rank 0, its scores are broadcast (:meth:`GroupRanks.share`), so early
  stopping and the schedule decide alike everywhere; stopping is rank 0's decision, broadcast
  (:meth:`GroupRanks.decide`), so every rank stops after the same step;
* only rank 0 writes files.

:func:`launch_local` starts ``N`` processes on this machine with torchrun, its rendezvous store
listening on 127.0.0.1 only (plain torchrun's store listens on every interface).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta

import numpy as np

from ..errors import SegQCError

#: How long a rank waits for the others (rank 0's validation and writes included).
TIMEOUT = timedelta(minutes=60)
#: The module that torchrun runs in each process for ``segqc train --nproc``.
CLI_MODULE = "napari_segqc.cli"


def torchrun_env() -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` as torchrun sets them; ``(0, 1, 0)`` without it."""
    values = []
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        text = os.environ.get(name, "").strip()
        try:
            values.append(int(text) if text else default)
        except ValueError:
            raise SegQCError(f"environment variable {name}={text!r} is not a number") from None
    rank, world, local = values
    if world < 1 or not 0 <= rank < world or local < 0:
        raise SegQCError(f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} do not fit")
    return rank, world, local


def under_torchrun() -> bool:
    """Whether this process is one of several started by torchrun."""
    return torchrun_env()[1] > 1


def patch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of a rank's patches and augmentation in an epoch. Rank 0's is a one-process
    run's (``seed * 100_003 + epoch``); the other ranks' are drawn from it and the rank, so no
    two ranks (nor epochs) share one."""
    base = seed * 100_003 + epoch
    if rank == 0:
        return base
    return int(np.random.SeedSequence([base, rank]).generate_state(1)[0])


class Ranks:
    """One process: every agreement is its own value, nothing is sent."""

    rank = 0
    world_size = 1

    def __init__(self, device) -> None:
        self.device = device

    @property
    def is_main(self) -> bool:
        """Whether this rank writes files and validates (rank 0)."""
        return self.rank == 0

    def wrap(self, model):
        """The model to train (``DistributedDataParallel`` around it on several ranks)."""
        return model

    def mean(self, total, done: int) -> float:
        """The mean loss of the steps of all ranks (``total`` summed over ``done`` steps)."""
        return float(total) / done

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every rank."""
        return bool(flag)

    def share(self, values: dict[str, float] | None, keys: Sequence[str]) -> dict[str, float]:
        """Rank 0's ``values`` (floats under ``keys``), on every rank."""
        return dict(values)

    def barrier(self) -> None:
        """Wait until every rank is here."""

    def close(self) -> None:
        """Leave the process group if this module joined it."""


class GroupRanks(Ranks):
    """One rank of a process group (``torch.distributed``)."""

    def __init__(self, device, *, owned: bool) -> None:
        import torch.distributed as dist

        super().__init__(device)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.owned = owned
        nccl = dist.get_backend() == "nccl"
        self._comm = device if nccl else None  # where the tensors sent live (nccl: the GPU)

    def _tensor(self, values):
        import torch

        return torch.tensor(values, dtype=torch.float64, device=self._comm or "cpu")

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def mean(self, total, done: int) -> float:
        import torch.distributed as dist

        sums = self._tensor([float(total), float(done)])
        dist.all_reduce(sums)
        return float(sums[0] / sums[1])

    def decide(self, flag: bool) -> bool:
        import torch.distributed as dist

        value = self._tensor([1.0 if flag else 0.0])
        dist.broadcast(value, src=0)
        return bool(value[0] > 0)

    def share(self, values: dict[str, float] | None, keys: Sequence[str]) -> dict[str, float]:
        import torch.distributed as dist

        sent = self._tensor([float(values[k]) for k in keys] if self.is_main else [0.0] * len(keys))
        dist.broadcast(sent, src=0)
        return {k: float(v) for k, v in zip(keys, sent.tolist(), strict=True)}

    def barrier(self) -> None:
        import torch.distributed as dist

        if self._comm is not None:
            dist.barrier(device_ids=[self._comm.index])
        else:
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def start(device_name: str = "auto"):
    """The ranks and the device of this process: :class:`GroupRanks` in a process group (the
    caller's, or one joined here under torchrun), else :class:`Ranks` on ``device_name``.
    Returns ``(ranks, device)``; call ``ranks.close()`` when done, also after an error."""
    import torch
    import torch.distributed as dist

    from ..device import pick_device

    device = pick_device(device_name)
    joined = dist.is_available() and dist.is_initialized()
    _, world, local = torchrun_env()
    if not joined and world == 1:
        return Ranks(device), device
    if not dist.is_available():
        raise SegQCError("this torch has no torch.distributed: train in one process")
    if device.type not in ("cpu", "cuda"):
        raise SegQCError(
            f"training on several processes runs on the CPU or CUDA GPUs, not on {device.type} "
            "(use --device cpu)"
        )
    if device.type == "cuda":  # process k of a machine on GPU k (a caller's group: its own)
        if joined and "LOCAL_RANK" not in os.environ:
            local = torch.cuda.current_device()
        count = torch.cuda.device_count()
        if local >= count:
            raise SegQCError(
                f"process {local} on this machine has no GPU ({count} visible): start at most "
                f"{count} processes per machine"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not joined:
        if device.type == "cpu":
            _gloo_on_loopback()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return GroupRanks(device, owned=not joined), device


def _gloo_on_loopback() -> None:
    """Let gloo listen on the loopback interface when every rank is on this machine (the
    rendezvous address is a loopback address) and the user chose no interface."""
    if os.environ.get("GLOO_SOCKET_IFNAME"):
        return
    try:
        address = socket.gethostbyname(os.environ.get("MASTER_ADDR", ""))
        local = ipaddress.ip_address(address).is_loopback
    except (OSError, ValueError):
        return
    names = {name for _, name in socket.if_nameindex()} if local else set()
    loopback = next((n for n in ("lo", "lo0") if n in names), None)
    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback


def check_nproc(nproc: int, device_name: str = "auto") -> None:
    """Refuse a number of processes to start that cannot work: below 1, several from within a
    torchrun process, several on Apple MPS, more than the GPUs visible on CUDA."""
    import torch

    from ..device import pick_device

    if nproc < 1:
        raise SegQCError(f"--nproc must be at least 1, got {nproc}")
    if nproc == 1:
        return
    rank, world, _ = torchrun_env()
    if world > 1:
        raise SegQCError(
            f"--nproc {nproc}: this is already rank {rank} of {world} processes started by "
            "torchrun; leave out --nproc"
        )
    device = pick_device(device_name)
    if device.type not in ("cpu", "cuda"):
        raise SegQCError(
            f"--nproc {nproc}: several processes train on the CPU or CUDA GPUs, not on "
            f"{device.type}"
        )
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise SegQCError(
            f"--nproc {nproc}: one process per GPU, and {torch.cuda.device_count()} are visible"
        )


def launch_local(nproc: int, args: Sequence[str], module: str = CLI_MODULE) -> int:
    """Run ``python -m module *args`` in ``nproc`` processes on this machine under torchrun
    (rendezvous on 127.0.0.1, a free port); return the exit code (a failed rank's, if any).

    Every process gets ``cpu_count // nproc`` threads unless ``OMP_NUM_THREADS`` is set.
    Ctrl-C reaches the processes, which stop after their current step and save."""
    if nproc < 1:
        raise SegQCError(f"the number of processes must be at least 1, got {nproc}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    command = [sys.executable, "-m", __name__, "--nproc-per-node", str(nproc)]
    command += ["-m", module, *args]
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:  # Ctrl-C goes to the whole process group: torchrun and the ranks handle it
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def torchrun_on_loopback(argv: Sequence[str]) -> int:
    """torchrun (``torch.distributed.run``) with ``argv``, its rendezvous store listening on
    127.0.0.1 only, at a port held from the start; return the first failed rank's exit code
    (128 + N for a rank killed by signal N) or 0."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import static_tcp_rendezvous as static

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    store = getattr(static, "TCPStore", None)
    handed = store is not None and "master_listen_fd" in (store.__init__.__doc__ or "")
    if handed:  # torchrun's static rendezvous makes its store here: it gets our socket
        static.TCPStore = functools.partial(store, master_listen_fd=listener.fileno())
    try:
        torchrun.main(["--master-addr", "127.0.0.1", "--master-port", str(port), *argv])
    except ChildFailedError as exc:
        code = exc.get_first_failure()[1].exitcode
        return code if code > 0 else 128 - code if code < 0 else 1
    except SignalException as exc:
        return 128 + int(exc.sigval)
    finally:
        if handed:
            static.TCPStore = store
            listener.detach()  # the store owns the socket (and has closed it)
        else:
            listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(torchrun_on_loopback(sys.argv[1:]))
