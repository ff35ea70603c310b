"""What the call's arguments tell about the run: model size and dataset size.

The model and the dataset are recognised by parameter name (settings
``model_arg``, default ``model``; ``dataset_arg``, default ``dataset``),
whether passed by position or by keyword. Nothing is imported to measure
them: a torch module is recognised by its ``parameters()``/``buffers()``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from .options import Settings
from .secrets import REDACTED, looks_secret, scrub, without_url_passwords

if TYPE_CHECKING:
    import inspect


@dataclass(frozen=True)
class CallInfo:
    #: The function yields examples (a generator form).
    yields: bool
    model_size_bytes: int | None = None
    dataset_num_eval: int | None = None
    #: Simple arguments (numbers, strings, booleans, paths) by name, secret-looking ones redacted.
    params: dict[str, str] = field(default_factory=dict)
    #: Each simple argument's type as ClearML's ``Task.connect`` records it: int, float, bool or str.
    param_types: dict[str, str] = field(default_factory=dict)
    #: What tells one model (dataset) from another for ``resume``: its path, or its type and size.
    model_id: str | None = None
    dataset_id: str | None = None
    #: The model's content fingerprint (``resume=True`` calls only); ``UNIDENTIFIED...`` when it has none.
    model_fingerprint: str | None = None
    #: The model in words, for the resume line or the refusal to resume.
    model_described: str | None = None
    #: The ClearML model (dataset) evaluated, by id: the ``model_id`` (``dataset_id``) option, or the argument
    #: when it is a ClearML ``Model``/``InputModel`` (``Dataset``); "" for none.
    clearml_model: str = ""
    clearml_dataset: str = ""

    @property
    def model_unidentified(self) -> bool:
        """``resume=True`` with a model that has no stable identity: this run is never continued."""
        return (self.model_fingerprint or "").startswith(UNIDENTIFIED)


#: The fingerprint of a model with no stable identity: made unique per call, so no later call matches it.
UNIDENTIFIED = "unidentified:"


@functools.lru_cache(maxsize=512)
def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    import inspect

    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def bound_arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter name -> argument, or {} when the call does not bind (the call itself will say why)."""
    signature = _signature(func)
    if signature is None:
        return dict(kwargs)
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {}
    bound.apply_defaults()  # a default is as much a setting of the run as an argument
    return dict(bound.arguments)


def describe_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], settings: Settings, yields: bool
) -> CallInfo:
    arguments = bound_arguments(func, args, kwargs)
    model = arguments.get(settings.model_arg)
    dataset = arguments.get(settings.dataset_arg)
    size = None if model is None else model_size_bytes(model)
    digest, described = None, None
    if model is not None and settings.resume:  # reading the weights costs a pass: only when resume may use it
        from .fingerprint import fingerprint

        digest, described = fingerprint(model)
        if digest is None:
            import uuid

            digest = f"{UNIDENTIFIED}{uuid.uuid4().hex}"
    return CallInfo(
        yields=yields,
        model_size_bytes=size,
        dataset_num_eval=None if dataset is None else dataset_length(dataset),
        params=simple_params(arguments, skip={settings.model_arg, settings.dataset_arg}),
        param_types=param_types(arguments, skip={settings.model_arg, settings.dataset_arg}),
        model_id=None if model is None else identity(model, size),
        dataset_id=None if dataset is None else identity(dataset, None),
        model_fingerprint=digest,
        model_described=described,
        clearml_model=settings.model_id or clearml_id(model),
        clearml_dataset=settings.dataset_id or clearml_id(dataset),
    )


def clearml_id(value: Any) -> str:
    """The id of a ClearML object (``Model``, ``InputModel``, ``Dataset``), known without importing ClearML."""
    if value is None or not type(value).__module__.startswith("clearml"):
        return ""
    try:
        found = value.id
    except Exception:  # noqa: BLE001 - a property that asks the server may fail any way
        return ""
    return found if isinstance(found, str) else ""


def identity(value: Any, size: int | None) -> str:
    """A path names itself; an object is known by its type (and size): two checkpoints of one architecture
    are told apart only by a path or an argument (``resume`` says so in the README)."""
    if isinstance(value, (str, PurePath)):
        return str(value)
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" + ("" if size is None else f":{size}")


_SIMPLE = (bool, int, float, str, PurePath)
_MAX_PARAM_CHARS = 1000


def simple_params(arguments: Mapping[str, Any], skip: set[str]) -> dict[str, str]:
    """The arguments worth comparing runs by, as text; models, datasets and objects are left out."""
    params: dict[str, str] = {}
    for name, value in arguments.items():
        if name in skip or not isinstance(value, _SIMPLE):
            continue
        text = REDACTED if looks_secret(name) else without_url_passwords(scrub(str(value)))
        params[name] = text[:_MAX_PARAM_CHARS]
    return params


def param_types(arguments: Mapping[str, Any], skip: set[str]) -> dict[str, str]:
    """The type ``Task.connect`` would record for each simple argument; a path or a redacted value is text."""
    types: dict[str, str] = {}
    for name, value in arguments.items():
        if name in skip or not isinstance(value, _SIMPLE):
            continue
        kind = next((t for t in (bool, int, float) if isinstance(value, t)), str)  # bool first: it is an int
        types[name] = "str" if looks_secret(name) else kind.__name__
    return types


def model_size_bytes(model: Any) -> int | None:
    """Bytes of a torch module (parameters + buffers), an array, or a file/folder on disk."""
    if isinstance(model, (str, os.PathLike)):
        return _disk_size(Path(model))
    if callable(getattr(model, "parameters", None)) and callable(getattr(model, "buffers", None)):
        try:
            tensors = [*model.parameters(), *model.buffers()]
            return sum(int(t.numel()) * int(t.element_size()) for t in tensors)
        except Exception:  # noqa: BLE001 - a duck-typed model may fail any way; size is optional
            return None
    nbytes = getattr(model, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(model, (bytes, bytearray, memoryview)):
        return len(model)
    return None


def _disk_size(path: Path) -> int | None:
    try:
        if path.is_file():
            return path.stat().st_size
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return None
    return None


def dataset_length(dataset: Any) -> int | None:
    """The number of examples, or None when it is not known for sure.

    A tuple of arrays (scikit-learn's ``(X, y)``) is rows, not 2: its parts'
    common length; parts of different lengths leave the number out.
    """
    try:
        length = len(dataset)
    except Exception:  # noqa: BLE001 - generators and streams have no length
        return None
    if _array_tuple(dataset):
        lengths = {dataset_length(part) for part in dataset}
        return lengths.pop() if len(lengths) == 1 else None
    return length


def columns(dataset: Any) -> bool:
    """A tuple of equal-length arrays (scikit-learn's ``(X, y)``): its rows are the examples, not its parts."""
    return _array_tuple(dataset) and dataset_length(dataset) is not None


def _array_tuple(dataset: Any) -> bool:
    return isinstance(dataset, tuple) and 2 <= len(dataset) <= 4 and all(_array_like(part) for part in dataset)


def _array_like(value: Any) -> bool:
    """A column of examples (numpy array, tensor, DataFrame, list), not a scalar or a string."""
    return (hasattr(value, "shape") and len(getattr(value, "shape", ())) >= 1) or isinstance(value, list)
