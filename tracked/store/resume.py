"""``resume=True``: continue the previous run of the same evaluation where it stopped.

The same evaluation means the same project, task name, simple arguments,
model (its content fingerprint) and dataset length (the run's *key*). A
model with no stable identity is refused at the start of the first run: its
run is never continued, so another model's examples never mix in. Every run points the resume index
(``$CLEARML_CACHE_DIR/tracked-runs/resume/<key>.json``) at its journal. A
call with ``resume=True`` whose key points at a run that ended
``interrupted``, ``stopped`` or ``failed`` takes that run's examples from
its journal and hands the function its dataset argument without them: one
yielded item per dataset element, in order, is the contract. The result
then covers every example, old and new, as one uninterrupted run would.

A completed run is never resumed. A run another process is resuming
(``resume.lock`` taken) is not resumed twice: the second call gets one
warning and a fresh run. Where the done part cannot be left out (no
dataset argument, a plain function, a data loader that yields batches),
one warning, and a fresh run: never double counting.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.paths import tracked_root
from ..common.warn import warn
from . import journal
from .session import detail_types

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..common.call import CallInfo
    from ..common.options import Settings

RESUMABLE = ("interrupted", "stopped", "failed")


def key_of(settings: Settings, name: str, call: CallInfo) -> str:
    """What makes two calls the same evaluation: project, task name, simple arguments, the model (its path, or
    its type and size, and its content fingerprint), the dataset (its path, or its type) and its length."""
    identity = [
        settings.project,
        settings.task_name or name,
        sorted(call.params.items()),
        call.model_id,
        call.dataset_id,
        call.dataset_num_eval,
        *([settings.shard] if settings.shard else []),  # shard 1 never continues shard 0
        *([call.model_fingerprint] if call.model_fingerprint else []),  # model B never continues model A
    ]
    return hashlib.sha256(json.dumps(identity, ensure_ascii=True).encode()).hexdigest()[:32]


def evaluation_of(settings: Settings, name: str, call: CallInfo) -> str:
    """What makes runs shards of one evaluation: project, task name, simple arguments and the model
    (not the dataset, which each shard has its own part of)."""
    identity = [settings.project, settings.task_name or name, sorted(call.params.items()), call.model_id]
    return hashlib.sha256(json.dumps(identity, ensure_ascii=True).encode()).hexdigest()[:32]


def _index() -> Path:
    return tracked_root() / "resume"


def point_to(key: str, folder: Path) -> None:
    """Record ``folder`` as the latest run of ``key`` (atomically)."""
    index = _index()
    index.mkdir(parents=True, exist_ok=True)
    tmp = index / f".{key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"journal": str(folder)}), encoding="utf-8")
    os.replace(tmp, index / f"{key}.json")


def latest(key: str) -> Path | None:
    try:
        pointer = json.loads((_index() / f"{key}.json").read_text(encoding="utf-8"))
        return Path(pointer["journal"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Earlier:
    """The run being continued: its examples, and the claim on it (held while the new run goes)."""

    folder: Path
    count: int
    duration: float
    series: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]
    details: list[tuple[int, dict[str, str]]]
    skipped: dict[str | None, tuple[int, str]] = field(default_factory=dict)
    claim: int | None = None
    #: What the call matched the run by, in words (the resume line says it).
    matched: str = ""
    #: field -> the type its details were yielded with (``common.values.detail_kind``).
    detail_types: dict[str, str] = field(default_factory=dict)

    def mark_resumed(self, by: Path) -> None:
        """Note in the old journal which run continues it (for whoever reads it later)."""
        try:
            state = journal.read_journal(self.folder, with_data=False).state
            state["resumed_by"] = str(by)
            journal.write_state(self.folder, state)
        except (OSError, KeyError, ValueError):
            pass  # informational only

    def release(self) -> None:
        journal.release(self.claim)
        self.claim = None


def prepare(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    settings: Settings,
    name: str,
    call: CallInfo,
) -> tuple[Earlier | None, tuple[Any, ...], dict[str, Any]]:
    """The run to continue and the arguments without its done examples; (None, args, kwargs): a fresh run."""
    if call.model_unidentified:  # said now, at the start of the first run, not after its crash
        warn(
            f"{name} cannot be resumed: its model ({call.model_described}) has no stable identity to tell it from "
            "another model's run; pass a path, a torch module, a scikit-learn estimator or a ClearML model"
        )
        return None, args, kwargs
    folder = latest(key_of(settings, name, call))
    if folder is None:
        return None, args, kwargs
    try:
        old = journal.read_journal(folder, with_data=False)
        status, done = old.status, old.count
    except FileNotFoundError:  # the previous run's session was deleted: nothing to continue
        return None, args, kwargs
    except Exception as exc:  # noqa: BLE001 - a damaged journal: a fresh run, one warning
        warn(f"cannot resume {name}: its previous run's journal ({folder}) is unreadable ({exc}); starting a fresh run")
        return None, args, kwargs
    if status == journal.RUNNING:
        pid, resumed = old.state.get("pid"), old.state.get("resumed_from")
        if resumed:  # the run this call would continue is being continued already
            warn(
                f"{name}: its previous run ({resumed}) is being resumed by another process ({pid}); "
                "starting a fresh run"
            )
        else:
            warn(f"{name}: its previous run ({folder}) is still running in process {pid}; starting a new run")
        return None, args, kwargs
    if status not in RESUMABLE or done == 0:
        return None, args, kwargs
    claim = journal.try_lock(folder / journal.RESUME_LOCK)
    if claim is None:
        warn(f"{name}: its previous run ({folder}) is being resumed by another process; starting a fresh run")
        return None, args, kwargs
    fresh = f"cannot resume {name} at example {done} ({folder})"
    try:
        data = journal.read_journal(folder)
        rows = data.details  # read whole here: an unreadable line is one of the problems that stop a resume
    except Exception as exc:  # noqa: BLE001 - any damage to a file anyone can edit: a fresh run, never none
        journal.release(claim)
        warn(f"{fresh}: its journal is unreadable ({type(exc).__name__}: {exc}); starting a fresh run")
        return None, args, kwargs
    if data.problems:  # a damaged journal: resuming would lose or double examples
        journal.release(claim)
        warn(f"{fresh}: {'; '.join(data.problems)}; starting a fresh run")
        return None, args, kwargs
    if data.recounted:  # run.json claimed more than its files hold: what is on disk is what was done
        done = data.count
        fresh = f"cannot resume {name} at example {done} ({folder})"
        warn(f"{name}: resuming {folder} after the examples on disk: {data.recounted}")
    if not call.yields:
        journal.release(claim)
        warn(f"{fresh}: it yields no examples to skip; starting a fresh run")
        return None, args, kwargs
    rest = _without_done(func, args, kwargs, settings.dataset_arg, done, call.dataset_num_eval)
    if isinstance(rest, str):
        journal.release(claim)
        warn(f"{fresh}: {rest}; starting a fresh run")
        return None, args, kwargs
    try:
        skipped = {
            (k or None): (int(v[0]), str(v[1])) for k, v in dict(data.state.get("skipped", {})).items() if len(v) == 2
        }
        earlier = Earlier(
            folder=folder,
            count=done,
            duration=float(data.state.get("duration", 0.0)),
            series={
                name: (i[i < done], v[i < done]) for name, (i, v) in data.series.items()
            },  # what run.json vouches for
            details=[d for d in rows if d[0] < done],
            skipped=skipped,
            claim=claim,
            matched=_matched(settings, name, call),
            detail_types=detail_types(data.state),
        )
    except Exception as exc:  # noqa: BLE001 - an edited run.json (a duration or skipped values of no shape)
        journal.release(claim)
        warn(f"{fresh}: its journal is unreadable ({type(exc).__name__}: {exc}); starting a fresh run")
        return None, args, kwargs
    return earlier, *rest


def _matched(settings: Settings, name: str, call: CallInfo) -> str:
    """What the run was matched by: the task, the model, the dataset and its length."""
    parts = [f"task {settings.task_name or name}"]
    if call.params:
        parts.append("arguments " + ", ".join(f"{k}={v}" for k, v in sorted(call.params.items())))
    if call.model_described:
        parts.append(f"model {call.model_described}")
    if call.dataset_id is not None:
        length = "" if call.dataset_num_eval is None else f" of {call.dataset_num_eval:,} examples"
        parts.append(f"dataset {call.dataset_id}{length}")
    return "; ".join(parts)


def _without_done(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dataset_arg: str,
    done: int,
    rows: int | None = None,
) -> tuple[tuple[Any, ...], dict[str, Any]] | str:
    """The call's arguments with the dataset's first ``done`` items left out, or why that cannot be done."""
    from ..common.call import _signature, columns

    signature = _signature(func)
    if signature is None:
        return "its signature cannot be read"
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"its arguments do not bind ({exc})"
    if dataset_arg not in bound.arguments:
        return f"it has no argument {dataset_arg!r} (option dataset_arg) to leave the done examples out of"
    dataset = bound.arguments[dataset_arg]
    rest = skip(dataset, done)
    if isinstance(rest, str):
        return rest
    with contextlib.suppress(Exception):  # no length (an iterator): nothing to check
        items = rows if rows is not None and columns(dataset) else len(dataset)  # (X, y): its rows
        if done > items:  # its items made several examples each (batches): which are done is unknown
            return (
                f"it recorded {done:,} examples from a dataset of {items:,} items, so its items are not "
                "single examples (batches?) and the done ones cannot be told"
            )
    bound.arguments[dataset_arg] = rest
    return tuple(bound.args), dict(bound.kwargs)


def skip(dataset: Any, done: int) -> Any:
    """``dataset`` without its first ``done`` items, or a string saying why it cannot be left out."""
    from ..common.call import columns

    kind = type(dataset)
    module = kind.__module__.split(".")[0]
    if columns(dataset):  # (X, y): the rows of every array, together
        parts = [skip(part, done) for part in dataset]
        why = next((part for part in parts if isinstance(part, str)), None)
        return why if why is not None else tuple(parts)
    if isinstance(dataset, (list, tuple, range)):
        return dataset[done:]
    if module == "numpy" and hasattr(dataset, "shape"):
        return dataset[done:]
    if module == "pandas" and hasattr(dataset, "iloc"):
        return dataset.iloc[done:]
    if module == "datasets" and callable(getattr(dataset, "select", None)):  # Hugging Face datasets.Dataset
        return dataset.select(range(done, len(dataset)))
    if module == "torch" and kind.__name__ == "DataLoader":
        return "a DataLoader yields batches, not examples: pass the dataset and batch inside the evaluation"
    if isinstance(dataset, (str, bytes, Mapping)):
        return f"a {kind.__name__} dataset has no example order to continue"
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        return _Rest(dataset, done)
    if hasattr(dataset, "__iter__"):
        return itertools.islice(iter(dataset), done, None)
    return f"a {kind.__name__} is not a sequence or an iterable"


class _Rest:
    """A sized, indexable dataset (a torch ``Dataset``, ...) from item ``start`` on, without copying it."""

    def __init__(self, dataset: Any, start: int) -> None:
        self._dataset, self._start = dataset, start

    def __len__(self) -> int:
        return max(0, len(self._dataset) - self._start)

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._dataset[self._start + index]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)
