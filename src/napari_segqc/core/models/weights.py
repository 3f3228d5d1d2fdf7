"""Safe checkpoints: tensors in safetensors files, everything else as JSON. Never pickles.

* :func:`save_weights` / :func:`load_weights`: a model's ``state_dict`` with a JSON metadata
  dictionary (the run's config) inside the same ``.safetensors`` file;
* :func:`save_state` / :func:`load_state`: nested states such as an optimizer's or a
  scheduler's ``state_dict``: tensors go to safetensors, the rest to a JSON tree in its metadata.

Every write goes to a temporary file that is renamed into place (see
:func:`napari_segqc.core.io.write_atomic`), so a crash or a Stop never leaves a broken file.
Loading checks the safetensors header first: a pickle, a zip (``torch.save``) or any foreign
file is refused with a clear message before anything in it is interpreted.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from ..errors import SegQCError
from ..io import write_atomic

_META_KEY = "segqc"
_MAX_HEADER = 100 * 1024 * 1024


def check_safetensors(path: str | os.PathLike) -> Path:
    """Return ``path`` if it looks like a safetensors file; otherwise raise :class:`SegQCError`."""
    path = Path(path)
    if not path.is_file():
        raise SegQCError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        raise SegQCError(f"{path}: file is empty or truncated, not a model file")
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or not 2 <= n <= min(_MAX_HEADER, path.stat().st_size - 8):
        kind = "a pickle/PyTorch file" if head[:1] in (b"\x80", b"PK") else "not a safetensors file"
        raise SegQCError(
            f"{path}: {kind}. napari-segqc only loads .safetensors weights (it never unpickles, "
            "so a model file cannot run code on load)"
        )
    return path


def save_weights(path: str | os.PathLike, state_dict: dict, metadata: dict[str, Any]) -> Path:
    """Write a model ``state_dict`` and JSON-able ``metadata`` to ``path`` atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    meta = {_META_KEY: json.dumps(metadata)}
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_weights(path: str | os.PathLike, *, tensors: bool = True) -> tuple[dict, dict[str, Any]]:
    """Read ``(state_dict, metadata)`` written by :func:`save_weights` (CPU tensors; with
    ``tensors=False`` only the metadata is read and the state_dict is empty)."""
    from safetensors import safe_open

    path = check_safetensors(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            keys = f.keys() if tensors else []
            state_dict = {k: f.get_tensor(k) for k in keys}
    except Exception as exc:  # corrupt file
        raise SegQCError(f"{path}: corrupt safetensors file ({exc})") from None
    try:
        metadata = json.loads(meta.get(_META_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise SegQCError(f"{path}: unreadable metadata ({exc})") from None
    return state_dict, metadata


def _flatten(obj: Any, tensors: dict, prefix: str) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {
            "__dict__": [[_key(k), _flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]
        }
    if isinstance(obj, list | tuple):
        return [_flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise SegQCError(f"cannot store a {type(obj).__name__} in a checkpoint ({prefix})")


def _key(k: Any) -> list:
    return ["int", k] if isinstance(k, int) else ["str", str(k)]


def _unflatten(obj: Any, tensors: dict | None) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return None if tensors is None else tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {
            (int(v) if t == "int" else v): _unflatten(x, tensors) for (t, v), x in obj["__dict__"]
        }
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a nested state (optimizer, scheduler, counters) to one safetensors file."""
    tensors: dict = {}
    tree = _flatten(state, tensors, "s")
    return save_weights(path, tensors, {"tree": tree})


def load_state(path: str | os.PathLike, *, tensors: bool = True) -> dict[str, Any]:
    """Read a state written by :func:`save_state`; with ``tensors=False`` only its header
    (counters and settings; tensors come back as None), which is fast for big states."""
    loaded, meta = load_weights(path, tensors=tensors)
    if "tree" not in meta:
        raise SegQCError(f"{path}: not a napari-segqc training state file")
    return _unflatten(meta["tree"], loaded if tensors else None)
