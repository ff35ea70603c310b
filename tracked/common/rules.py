"""How an option's value is checked when given to the decorator, and read from its environment variable.

``Settings`` (``options``) names each field's rule in its annotation, or its type says it all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import SettingsError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
#: Longer than any evaluation; past it a timer cannot be set (and inf is no interval).
_FOREVER_S = 10**7


class Rule:
    """How an option is checked when given to the decorator, and read from its environment variable.

    The plain rule takes any value as given and reads the variable as text; the others refine it.
    """

    def check(self, name: str, value: Any) -> Any:
        return value

    def parse(self, name: str, raw: str) -> Any:
        return self.check(name, raw)


class _Flag(Rule):
    def parse(self, name: str, raw: str) -> Any:
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise SettingsError("expected one of 1/0, true/false, yes/no, on/off")


class _MaybeFlag(_Flag):
    """True, False, or None ("auto": decided when the run starts)."""

    def parse(self, name: str, raw: str) -> Any:
        return None if raw.strip().lower() in ("", "auto") else super().parse(name, raw)


class _Seconds(Rule):
    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < _FOREVER_S:
            raise SettingsError(f"{name} must be a positive, finite number of seconds, got {value!r}")
        return value

    def parse(self, name: str, raw: str) -> Any:
        try:
            number = float(raw)
        except ValueError:
            raise SettingsError("expected a number") from None
        return self.check(name, number if math.isfinite(number) else raw)


class _Count(Rule):
    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool) or value < self.minimum:
            kind = "positive" if self.minimum else "non-negative"
            raise SettingsError(f"{name} must be a {kind} integer, got {value!r}")
        return value

    def parse(self, name: str, raw: str) -> Any:
        try:
            number = int(raw)
        except ValueError:
            raise SettingsError("expected a number") from None
        return self.check(name, number)


class _Names(Rule):
    """Names (of fields, or tags): a list (or one name) given, comma-separated in the environment."""

    def __init__(self, what: str = "field names") -> None:
        self.what = what

    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{name} must be a list of {self.what}, got {value!r}")
        return tuple(value)

    def parse(self, name: str, raw: str) -> Any:
        return tuple(part.strip() for part in raw.split(",") if part.strip())


_PROGRESS = {"auto": "auto", "on": "on", "off": "off", **dict.fromkeys(_TRUE, "on"), **dict.fromkeys(_FALSE, "off")}


class _Progress(Rule):
    def check(self, name: str, value: Any) -> Any:
        word = str(value).strip().lower() if not isinstance(value, bool) else ("on" if value else "off")
        if word not in _PROGRESS:
            raise SettingsError(f"{name}={value!r}: expected auto, on or off")
        return _PROGRESS[word]


class _Shard(Rule):
    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, (tuple, list)) and len(value) == 2:
            value = f"{value[0]}/{value[1]}"
        text = str(value).strip().lower()
        if text == "slurm":
            return text
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise SettingsError(f"shard must be (index, count), 'INDEX/COUNT' or 'slurm', got {value!r}") from None
        if not 0 <= index < count:
            raise SettingsError(f"shard {index}/{count}: the index must be at least 0 and below the count")
        return f"{index}/{count}"

    def parse(self, name: str, raw: str) -> Any:
        return self.check(name, raw) if raw.strip() else ""


#: ClearML's task types (``Task.TaskTypes``), named here so that a typo is refused when the decorator is applied.
TASK_TYPES = (
    "training", "testing", "inference", "data_processing", "application", "monitor", "controller", "optimizer",
    "service", "qc", "custom",
)  # fmt: skip
#: The ``Task.init`` arguments tracked sets itself: options of their own, or hooks it keeps off.
OWN_INIT_ARGS = {
    "project_name": "project=", "task_name": "task_name=", "task_type": "task_type=", "tags": "tags=",
    "output_uri": "output_uri=", "reuse_last_task_id": None, "auto_connect_arg_parser": None,
    "auto_connect_frameworks": None, "auto_resource_monitoring": None, "auto_connect_streams": None,
}  # fmt: skip


class _TaskType(Rule):
    def check(self, name: str, value: Any) -> Any:
        text = str(getattr(value, "value", value)).strip().lower()  # Task.TaskTypes.testing, or its value
        if text not in TASK_TYPES:
            raise SettingsError(f"{name}={value!r}: expected one of {', '.join(TASK_TYPES)}")
        return text


class _OutputUri(Rule):
    """A destination (text), True (ClearML's files server) or False; "true"/"false" in the environment."""

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, (str, bool)):
            raise SettingsError(f"{name} must be a storage URI or True, got {value!r}")
        return value

    def parse(self, name: str, raw: str) -> Any:
        word = raw.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else raw.strip()


class _InitArgs(Rule):
    """Other ``Task.init`` arguments, passed through; a JSON object in the environment."""

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise SettingsError(f"{name} must be a dict of Task.init arguments, got {value!r}")
        own = sorted(k for k in value if k in OWN_INIT_ARGS)
        if own:
            options = [f"{k} (option {OWN_INIT_ARGS[k]})" if OWN_INIT_ARGS[k] else k for k in own]
            raise SettingsError(
                f"{name}: tracked sets {', '.join(options)} itself; pass the option instead, "
                "and the hooks that change your process stay off (docs: ClearML, The task)"
            )
        return dict(value)

    def parse(self, name: str, raw: str) -> Any:
        import json

        try:
            value = json.loads(raw)
        except ValueError:
            raise SettingsError("expected a JSON object") from None
        return self.check(name, value)


Seconds, Count, NonNegative, Progress, Shard = _Seconds(), _Count(1), _Count(0), _Progress(), _Shard()


class _Step(_Count):
    """A non-negative iteration, or None; empty in the environment for none."""

    def parse(self, name: str, raw: str) -> Any:
        return super().parse(name, raw) if raw.strip() else None


TaskType, Tags, OutputUri, InitArgs, Step = _TaskType(), _Names("tags"), _OutputUri(), _InitArgs(), _Step(0)
#: A field's rule where its type says it all (``Annotated`` fields name theirs).
BY_TYPE: dict[Any, Rule] = {bool: _Flag(), bool | None: _MaybeFlag(), tuple[str, ...]: _Names()}
