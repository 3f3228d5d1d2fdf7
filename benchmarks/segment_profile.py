"""Where the time of our default segmentation path goes: ``segment(load_model("nuclei"),
image)`` split into stages (normalisation, tiles, network, blending, rescaling, size estimate)
and the decoding step by step. Run through ``bench_vs_stardist.py --profile``."""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np


def decode_steps(maps: np.ndarray, config) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """:func:`decode_labels` of one block, step by step, with the wall time of each step (the
    seed mask by decoding's own ``_seed_mask``; its Gaussian timed apart and subtracted)."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from napari_segqc.core.instances import decoding

    steps, t = [], [time.perf_counter()]

    def done(name: str) -> None:
        t.append(time.perf_counter())
        steps.append((name, t[-1] - t[-2]))

    fg = maps[0] > config.threshold
    boundary, distance = maps[1].astype(np.float32), maps[2].astype(np.float32)
    done("decode: foreground threshold (+ map copies)")
    core = distance * (1 - boundary)
    done("decode: core score")
    ndi.gaussian_filter(core, decoding.SEED_SMOOTHING)
    done("decode: seed smoothing (Gaussian)")
    per_region = "fg" in decoding._seed_mask.__code__.co_varnames
    extra = (fg,) if per_region else ()
    seed_mask = decoding._seed_mask(core, config.seed_threshold, config.split_height, *extra)
    done("decode: h-maxima" + (" (per foreground region)" if per_region else ""))
    steps[-1] = (steps[-1][0], max(steps[-1][1] - steps[-2][1], 0.0))
    seeds, n = ndi.label(fg & seed_mask)
    done("decode: seed labelling")
    labels = watershed(boundary - distance, markers=seeds, mask=fg)
    done("decode: watershed")
    rest, _ = ndi.label(fg & (labels == 0))
    labels = np.where(rest > 0, rest + n, labels).astype(np.int32)
    done("decode: unseeded blobs")
    labels = decoding.filter_objects(labels, config.min_size, maps[0], config.min_object_prob)
    done("decode: min-size / object-prob filter + relabel")
    return labels, steps


def profile(args: argparse.Namespace, loaded, image: np.ndarray) -> None:
    """Print the stages of our default path on ``image`` (best of ``args.repeat`` runs)."""
    import napari_segqc.core.predict.inference as inference
    import napari_segqc.core.predict.segmentation as segmentation
    from napari_segqc.core.instances.decoding import DECODE_BLOCK, decode_labels, decoding_config

    events: list[tuple[float, str, str]] = []  # (time, event, pass)
    current = {"pass": ""}

    def mark(event: str) -> None:
        events.append((time.perf_counter(), event, current["pass"]))

    def wrap(module, name: str, event: str) -> None:
        original = getattr(module, name)

        def wrapped(*a, **k):
            mark(event + ">")
            try:
                return original(*a, **k)
            finally:
                mark(event + "<")

        setattr(module, name, wrapped)

    wrap(inference, "_percentiles", "pct")
    wrap(inference, "_forward", "fwd")
    wrap(inference, "resize_plane", "rsz")
    wrap(inference, "resize_maps", "rmaps")
    wrap(segmentation, "estimate_diameter", "est")
    wrap(segmentation, "decode_labels", "dec")
    passes = segmentation.iter_predict_probs

    def one_pass(*a, **k):
        current["pass"] = f"pass x{k.get('scale', 1.0):.2f}"
        return (yield from passes(*a, **k))

    segmentation.iter_predict_probs = one_pass
    names = {"pct>": "percentile normalisation", "fwd>": "network forward (model(x))"}
    names |= {"fwd<": "blending", "rsz>": "rescale image", "rmaps>": "rescale maps back"}
    names |= {"est>": "size estimate", "tiles": "tile cutting + batching"}

    def stage(event: str, following: str, where: str) -> str:
        if event in ("pct<", "batch<"):  # cut tiles until the forward, else divide by weights
            event = "tiles" if following == "fwd>" else "fwd<"
        if event == "dec>":
            return "decoding (total)"
        return f"{where}: {names[event]}" if event in names else "other (checks, setup)"

    best = None
    for i in range(args.repeat + 1):  # the first run warms up
        events.clear()
        mark("start")
        labels, maps, info = segmentation.segment(
            loaded, image, return_scale=True, progress=lambda *_: mark("batch<")
        )
        mark("end")
        total = events[-1][0] - events[0][0]
        if i and (best is None or total < best[0]):
            best = (total, list(events))
    total, events = best
    table: dict[str, float] = {}
    for (t0, event, where), (t1, following, _) in itertools.pairwise(events):
        name = stage(event, following, where)
        table[name] = table.get(name, 0.0) + t1 - t0
    config = decoding_config(loaded.config)
    if max(maps.shape[-2:]) <= DECODE_BLOCK:
        t = time.perf_counter()
        reference = decode_labels(maps, config)
        t_ref = time.perf_counter() - t
        steps_labels, steps = decode_steps(maps, config)
        same = "same" if np.array_equal(steps_labels, reference) else "DIFFERENT"
        note = f"step by step: {same} labels as decode_labels ({t_ref:.2f} s)"
    else:
        steps, note = [], f"image larger than DECODE_BLOCK ({DECODE_BLOCK}): decoded in blocks"
    print(
        f"\nprofile of segment(load_model('nuclei'), image), {image.shape[0]} x {image.shape[1]}, "
        f"best of {args.repeat}: {total:.2f} s ({image.size / 1e6 / total:.3f} MPix/s), "
        f"{int(labels.max())} objects; {info.describe()}"
    )
    print_table("stages in order:", [*table.items(), ("**total**", total)], total)
    by_kind: dict[str, float] = {}
    for name, seconds in table.items():
        by_kind[name.split(": ", 1)[-1]] = by_kind.get(name.split(": ", 1)[-1], 0.0) + seconds
    print_table("all passes together:", sorted(by_kind.items(), key=lambda kv: -kv[1]), total)
    print_table(f"decoding, {note}:", steps, sum(s for _, s in steps) or 1, "share of decoding")


def print_table(title: str, rows, whole: float, share: str = "share") -> None:
    print(f"\n{title}\n| stage | seconds | {share} |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / whole:.1%} |")
