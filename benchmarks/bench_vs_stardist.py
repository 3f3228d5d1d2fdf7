"""Segmentation speed on the CPU: our default path against StarDist's ``predict_instances``.

The same 2048 x 2048 uint8 mosaic of real DSB 2018 nuclei crops (:func:`bench_predict.mosaic`,
written once to a temporary ``.npy``), same machine, one run, turn about (ours, StarDist,
StarDist tiled, ours, ...) so that both see the same machine load:

* **ours**: ``segment(load_model("nuclei"), image)``, all defaults: the model as
  ``load_model`` gives it on the CPU (its int8 ONNX companion on onnxruntime when installed,
  else torch with bf16 autocast; ``--backend torch`` forces torch), percentile normalisation,
  diameter ``"auto"`` (a pass at the image's scale, a check pass at a quarter of it, a rescaled
  pass if needed), tiles of at most 1024 pixels, seeded-watershed decoding; default threads.
* **StarDist**: csbdeep ``normalize(img, 1, 99.8)`` then ``predict_instances(img_norm)`` as
  StarDist's examples do, both timed: by default (``n_tiles=None``: the whole image in one
  network call) and with the tiles of ``model._guess_n_tiles(img)`` (StarDist's own guess, used
  in ``optimize_thresholds``: (4, 4) here); TensorFlow's default threads. The model is a
  ``StarDist2D`` (default config: 32 rays, grid (2, 2), patches of 256) trained briefly on
  ``../shared/data/dsb2018/train`` the first time (30 epochs of 40 steps, ~13 minutes on two
  cores; 5 epochs left a model that found 65 of ~1,500 nuclei, which made its NMS look free)
  and cached (``--stardist-model``), with thresholds optimised: only its cost matters, but
  its object count (drives the NMS) is printed and should be near ours.

Times are the best (and median) of ``--repeat`` runs after a warm-up; MPix/s and the ratio
ours / StarDist (above 1: ours is faster). ``--profile`` instead splits our path into stages
(normalisation, tiles, network, blending, rescaling, size estimate, each decoding step;
``segment_profile.py``). ``--sizes 512,2048,8192`` instead runs each side once per size, each
in a fresh process (after a warm-up), with its peak resident memory.

StarDist is never a dependency of napari-segqc: its side runs in a child process in its own
environment (this file, hidden ``--stardist-worker`` flag; numpy and stardist only)::

    python3.11 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install -r benchmarks/requirements-stardist-tf.txt
    .venv/bin/python benchmarks/bench_vs_stardist.py [--repeat 3] [--size 2048]
    .venv/bin/python benchmarks/bench_vs_stardist.py --profile
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DSB_TRAIN = ROOT.parent / "shared" / "data" / "dsb2018" / "train"
STARDIST_MODEL = Path("/work/runs/stardist_bench_model")
STARDIST_PYTHON = "/work/bench-venv/bin/python"


# --- StarDist side: runs in the StarDist environment (numpy, tifffile, stardist only) ---


def dsb_split():
    """DSB 2018 training images (normalised) and filled label images: (train, validation)."""
    import tifffile
    from csbdeep.utils import normalize
    from stardist import fill_label_holes

    files = sorted((DSB_TRAIN / "images").glob("*.tif"))
    if not files:
        sys.exit(f"no training images in {DSB_TRAIN / 'images'}")
    x = [normalize(tifffile.imread(f), 1, 99.8) for f in files]
    y = [fill_label_holes(tifffile.imread(DSB_TRAIN / "masks" / f.name)) for f in files]
    order = np.random.default_rng(0).permutation(len(files))
    return [([x[i] for i in part], [y[i] for i in part]) for part in (order[24:], order[:24])]


def train_stardist(model_dir: Path, epochs: int, steps: int):
    """A StarDist2D with the default config, trained briefly on DSB 2018 (only for timing),
    then its thresholds optimised on the validation images as StarDist's notebooks do (the
    short training leaves probabilities too low for the default 0.5: no objects at all)."""
    from stardist.models import Config2D, StarDist2D

    model = None
    if (model_dir / "config.json").is_file() and any(model_dir.glob("weights_*.h5")):
        model = StarDist2D(None, name=model_dir.name, basedir=str(model_dir.parent))
        if (model_dir / "thresholds.json").is_file():
            return model, False
    (x, y), val = dsb_split()
    if model is None:
        sizes = {"train_patch_size": (256, 256), "train_epochs": epochs}
        config = Config2D(n_rays=32, grid=(2, 2), train_tensorboard=False, **sizes)
        model = StarDist2D(config, name=model_dir.name, basedir=str(model_dir.parent))
        model.train(x, y, validation_data=val, seed=0, steps_per_epoch=steps)
    model.optimize_thresholds(*val)
    return model, True


def stardist_worker(args: argparse.Namespace) -> None:
    """Child process: load (or train) the model, warm up, then answer the parent's commands
    (one a line on stdin: ``default``, ``tiled``, ``net``, ``quit``) with JSON lines."""
    proto, sys.stdout = sys.stdout, sys.stderr  # library output goes to stderr
    import tensorflow as tf
    from csbdeep.utils import normalize

    def reply(**data) -> None:
        proto.write(json.dumps(data) + "\n")
        proto.flush()

    model_dir = Path(args.stardist_model)
    t0 = time.perf_counter()
    model, trained = train_stardist(model_dir, args.train_epochs, args.train_steps)
    train_s = time.perf_counter() - t0
    img = np.load(args.image)
    tiles = model._guess_n_tiles(img)

    def run(n_tiles):
        t = time.perf_counter()
        norm = normalize(img, 1, 99.8)
        labels, _ = model.predict_instances(norm, n_tiles=n_tiles, show_tile_progress=False)
        return time.perf_counter() - t, int(labels.max())

    io = ("intra_op", "inter_op")
    run(None)  # warm-up (graph tracing, numba/C extension first use)
    if not args.only_default:
        run(tiles)
    reply(
        trained=trained,
        seconds=train_s,
        tiles=list(tiles),
        thresholds=dict(model.thresholds._asdict()),
        tf=tf.__version__,
        threads=[getattr(tf.config.threading, f"get_{k}_parallelism_threads")() for k in io],
    )
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command == "net":  # normalisation and the network alone (dense maps, no NMS)
            t = time.perf_counter()
            norm = normalize(img, 1, 99.8)
            t_norm = time.perf_counter() - t
            model.predict(norm)
            reply(normalise=t_norm, network=time.perf_counter() - t - t_norm)
            continue
        seconds, objects = run(tiles if command == "tiled" else None)
        reply(seconds=seconds, objects=objects, peak_mib=peak_rss_mib())


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- our side: the project environment ---


def load_ours(args):
    """The built-in model as ``load_model`` gives it (or with ``--backend``), and the mosaic."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_predict import mosaic
    from napari_segqc.core.predict.loading import load_model

    loaded = load_model("nuclei", **({"backend": args.backend} if args.backend else {}))
    print(f"{machine_note()}\nours: {loaded.path.name} on {loaded.backend}, torch threads", end="")
    print(f" {torch.get_num_threads()} (onnxruntime: as many intra-op threads)")
    return loaded, mosaic(args.size, args.seed)


def run_ours(loaded, image) -> tuple[float, int]:
    from napari_segqc.core.predict.segmentation import segment

    t = time.perf_counter()
    labels, _ = segment(loaded, image)
    return time.perf_counter() - t, int(labels.max())


def machine_note() -> str:
    load = os.getloadavg()[0]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"{stamp}; {os.cpu_count()} CPUs, load average {load:.2f} before the run"


def start_stardist(args: argparse.Namespace, path: Path, *extra: str):
    """The StarDist worker on the image saved at ``path``, and a function asking it a
    command (None: its first message) for the JSON answer."""
    cmd = [args.stardist_python, str(Path(__file__).resolve()), "--stardist-worker"]
    cmd += ["--image", str(path), "--stardist-model", str(args.stardist_model)]
    cmd += ["--train-epochs", str(args.train_epochs), "--train-steps", str(args.train_steps)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    worker = subprocess.Popen(
        [*cmd, *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )

    def ask(command: str | None = None) -> dict:
        if command:
            worker.stdin.write(command + "\n")
            worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            sys.exit(f"the StarDist worker ended (exit {worker.wait()}); see its messages")
        return json.loads(line)

    return worker, ask


def ours_child(args: argparse.Namespace) -> None:
    """Child process: our default path once on a ``--size`` mosaic after a warm-up run on it
    (as the StarDist worker warms up); prints seconds, objects and peak memory as JSON."""
    loaded, image = load_ours(args)
    run_ours(loaded, image)
    seconds, objects = run_ours(loaded, image)
    print(json.dumps({"seconds": seconds, "objects": objects, "peak_mib": peak_rss_mib()}))


def by_size(args: argparse.Namespace) -> None:
    """Each size: ours in a fresh process, then StarDist (whole image, its default) in a
    fresh worker; one timed run each after a warm-up run on the same image; peak memory of
    each process."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_predict import mosaic

    print(machine_note())
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--ours-child"]
        cmd += ["--size", str(size), "--seed", str(args.seed)]
        if args.backend:
            cmd += ["--backend", args.backend]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        ours = json.loads(out.strip().splitlines()[-1])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mosaic.npy"
            np.save(path, mosaic(size, args.seed))
            worker, ask = start_stardist(args, path, "--only-default")
            ask()
            theirs = ask("default")
            worker.communicate("quit\n")
        rows.append((size, ours, theirs))
        print(f"{size}: ours {ours}, StarDist {theirs}", flush=True)
    print(
        "\n| size | ours s | ours MPix/s | ours peak GiB | objects | StarDist s | "
        "StarDist MPix/s | StarDist peak GiB | objects | ours / StarDist |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, ours, theirs in rows:
        mp = size * size / 1e6
        print(
            f"| {size}² | {ours['seconds']:.2f} | {mp / ours['seconds']:.2f} | "
            f"{ours['peak_mib'] / 1024:.2f} | {ours['objects']} | {theirs['seconds']:.2f} | "
            f"{mp / theirs['seconds']:.2f} | {theirs['peak_mib'] / 1024:.2f} | "
            f"{theirs['objects']} | {theirs['seconds'] / ours['seconds']:.2f} |"
        )


def compare(args: argparse.Namespace) -> None:
    loaded, image = load_ours(args)
    mp = image.size / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mosaic.npy"
        np.save(path, image)
        worker, ask = start_stardist(args, path)

        run_ours(loaded, image)  # warm-up, while the worker loads its model (or trains it)
        info = ask()
        how = "trained / thresholds optimised now" if info["trained"] else "loaded from cache"
        print(
            f"StarDist model {args.stardist_model} ({how}, {info['seconds']:.0f} s; "
            f"SHORT-TRAINED, for timing only), thresholds {info['thresholds']}, TF "
            f"{info['tf']} threads (intra, inter; 0 = default) {info['threads']}"
        )
        times: dict[str, list[float]] = {"ours": [], "default": [], "tiled": []}
        objects: dict[str, int] = {}
        for _ in range(args.repeat):  # turn about
            seconds, objects["ours"] = run_ours(loaded, image)
            times["ours"].append(seconds)
            for key in ("default", "tiled"):
                answer = ask(key)
                times[key].append(answer["seconds"])
                objects[key] = answer["objects"]
        net = ask("net")
        worker.communicate("quit\n")

    names = {
        "ours": f'ours: segment(load_model("nuclei"), image), {loaded.backend}',
        "default": "StarDist: normalize + predict_instances (n_tiles=None, default)",
        "tiled": f"StarDist: normalize + predict_instances (n_tiles={tuple(info['tiles'])})",
    }
    speed = {k: mp / min(v) for k, v in times.items()}
    print(f"\n{image.shape[0]} x {image.shape[1]} mosaic ({mp:.2f} MPix), best of {args.repeat}")
    print("| method | best s | median s | MPix/s | objects | ours / this |")
    print("|---|---|---|---|---|---|")
    for key, name in names.items():
        t = times[key]
        print(
            f"| {name} | {min(t):.2f} | {np.median(t):.2f} | {speed[key]:.3f} | "
            f"{objects[key]} | {speed['ours'] / speed[key]:.2f} |"
        )
    print(
        f"StarDist alone (once): normalize {net['normalise']:.2f} s, network (model.predict, "
        f"whole image) {net['network']:.2f} s; the rest of predict_instances is candidate "
        "selection + polygon NMS + rendering labels"
    )
    print(
        f"ours {speed['ours']:.3f} MPix/s, StarDist {speed['default']:.3f} MPix/s, "
        f"ratio {speed['ours'] / speed['default']:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--seed", type=int, default=1, help="mosaic seed")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="only the profile of our path")
    p.add_argument("--backend", help="load_model's backend (default: its default)")
    p.add_argument("--stardist-python", default=STARDIST_PYTHON)
    p.add_argument("--stardist-model", type=Path, default=STARDIST_MODEL)
    p.add_argument("--train-epochs", type=int, default=30, help="if the model is not cached")
    p.add_argument("--train-steps", type=int, default=40, help="steps (batches of 4) per epoch")
    p.add_argument(
        "--sizes",
        help="instead: one run of each side per size, e.g. 512,2048,8192, each in a fresh "
        "process, with its peak resident memory",
    )
    p.add_argument("--stardist-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ours-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--only-default", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stardist_worker:
        stardist_worker(args)
    elif args.ours_child:
        ours_child(args)
    elif args.profile:
        from segment_profile import profile

        profile(args, *load_ours(args))
    elif args.sizes:
        by_size(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
