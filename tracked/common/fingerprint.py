"""A model's content fingerprint, so ``resume`` never continues one model's run with another's examples.

Two model objects of one type and size (two checkpoints of one
architecture) are different evaluations: what tells them apart is their
content. Reading it costs one pass over the weights, so it is taken only
for ``resume=True`` calls. Nothing is imported to recognise a model: a
torch module by its ``state_dict``, a scikit-learn estimator by
``get_params``, a ClearML model by its id, a configuration (a mapping or
list of plain values) by its JSON.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import pickle
import types
from pathlib import Path, PurePath
from typing import Any, NamedTuple

_CHUNK = 1 << 20


class Fingerprint(NamedTuple):
    #: The content hash (or id); None when the model has no stable identity.
    digest: str | None
    #: What the model is, in words, for the resume line or the refusal: "torch module Linear, sha256 1a2b3c4d".
    described: str


def fingerprint(model: Any) -> Fingerprint:
    """The model's content fingerprint, or ``digest=None`` with what it is, when it has none."""
    kind = type(model)
    name = f"{kind.__module__}.{kind.__qualname__}"
    try:
        if isinstance(model, (str, PurePath)):
            return _path_or_name(model)
        if kind.__module__.split(".")[0] == "clearml" and isinstance(getattr(model, "id", None), str):
            return Fingerprint(f"clearml:{model.id}", f"ClearML model {model.id}")
        if callable(getattr(model, "state_dict", None)) and callable(getattr(model, "parameters", None)):
            return _done(_torch(model), f"torch module {kind.__qualname__}")
        if callable(getattr(model, "get_params", None)) and callable(getattr(model, "fit", None)):
            # An estimator's pickle holds its parameters and every fitted attribute.
            return _done(hashlib.sha256(pickle.dumps(model, protocol=4)).hexdigest(), f"estimator {name}")
        if kind.__module__ == "numpy" and hasattr(model, "tobytes"):
            digest = hashlib.sha256(f"{model.dtype}{model.shape}".encode() + model.tobytes()).hexdigest()
            return _done(digest, f"array {model.shape}")
        if isinstance(model, types.FunctionType) and not model.__closure__:  # a function: its code
            code = marshal.dumps(model.__code__) + name.encode() + model.__qualname__.encode()
            return _done(hashlib.sha256(code).hexdigest(), f"function {model.__qualname__}")
        if isinstance(model, (dict, list, tuple)):  # a configuration ({"name": "gpt-4o", "temperature": 0})
            try:
                text = json.dumps(model, sort_keys=True, ensure_ascii=True, allow_nan=True)
            except (TypeError, ValueError):  # holds objects: no identity of its own
                return Fingerprint(None, f"a {kind.__name__} holding objects that are not JSON")
            # Described by its size, never its values: a configuration may hold an API key.
            return _done(hashlib.sha256(text.encode()).hexdigest(), f"{kind.__name__} of {len(model)} items")
        if isinstance(model, (bytes, bytearray, memoryview)):
            return _done(hashlib.sha256(model).hexdigest(), f"{len(model):,} bytes")
    except Exception as exc:  # noqa: BLE001 - a model that cannot be read has no fingerprint; the caller says so
        return Fingerprint(None, f"a {name} whose content could not be read ({type(exc).__name__}: {exc})")
    return Fingerprint(None, f"a {name}")


def _done(digest: str, what: str) -> Fingerprint:
    return Fingerprint(digest, f"{what}, sha256 {digest[:12]}")


def _path_or_name(value: str | PurePath) -> Fingerprint:
    """A file or folder by its content; any other text (an API model's name) names itself."""
    path = Path(value)
    try:
        if path.is_file():
            return _done(_file_hash(path, hashlib.sha256()).hexdigest(), f"file {value}")
        if path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(os.fsencode(file.relative_to(path)) + b"\0")
                _file_hash(file, digest)
            return _done(digest.hexdigest(), f"folder {value}")
    except OSError:
        pass  # unreadable: it is known by its name, as a name that is no path is
    return Fingerprint(f"name:{value}", f"{value!s}")


def _file_hash(path: Path, digest: Any) -> Any:
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest


def _torch(module: Any) -> str:
    """Every tensor of the state dict: its name, dtype, shape and bytes (moved to the host one at a time)."""
    import torch  # already imported: the module is a torch module

    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            digest.update(f"{key}={tensor!r};".encode())
            continue
        host = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}:{host.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(host.view(torch.uint8).numpy().data if host.numel() else b"")
    return digest.hexdigest()
