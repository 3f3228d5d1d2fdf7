"""The models a process or a dask worker keeps: each loaded once, on first use.

onnxruntime sessions (the built-in models on the CPU) are not picklable, and loading costs
time: workers are given a model's name or path, never the model, and load it themselves
(:func:`worker_models`: the cache of :class:`.cluster.ModelPlugin` on a worker).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

#: Name of the worker plugin holding the models.
PLUGIN = "napari-segqc-models"


#: Models a cache keeps: a worker scoring many checkpoints drops the least recently used.
CACHE_MODELS = 4


class ModelCache:
    """Loaded models by (source, device, backend), each loaded once while it is among the
    ``capacity`` most recently used (thread-safe); :attr:`loads` counts the loads."""

    def __init__(self, capacity: int = CACHE_MODELS) -> None:
        self._models: OrderedDict[tuple[str, str, str], object] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = max(1, int(capacity))
        self.loads = 0

    def get(self, source, device="auto", backend: str = "auto"):
        from ..device import pick_device
        from ..predict.loading import load_model

        key = (str(source), str(device), backend)
        with self._lock:
            if key not in self._models:
                dev = pick_device(device) if isinstance(device, str) else device
                self._models[key] = load_model(source, dev, backend)
                self.loads += 1
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]


_LOCAL = ModelCache()


def worker_models() -> ModelCache:
    """The models of the dask worker this runs on (its :class:`.cluster.ModelPlugin`), or of this
    process when not on a worker or when the plugin is missing."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return _LOCAL
    plugin = worker.plugins.get(PLUGIN)
    cache = getattr(plugin, "cache", None)
    return cache if cache is not None else _LOCAL
