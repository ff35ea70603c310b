"""Which fields of an example are metrics (averaged) and which are details (kept as they are).

A number is a metric unless its name says it is an id, a label, a class or
a prediction (``question_id``, ``label``, ``y_pred``), or the options say
otherwise (``metrics=[...]``, ``details=[...]``).
"""

from __future__ import annotations

import re

from ..common.options import Settings

#: The last word of a field name that makes it a detail, not a metric, even when its values are numbers.
LABEL_WORDS = frozenset((
    "id", "ids", "idx", "index", "indices", "indexes", "uid", "uuid", "key", "keys", "label", "labels", "class",
    "classes", "cls", "category", "categories", "target", "targets", "gold", "pred", "preds", "prediction",
    "predictions", "predicted", "answer", "answers", "reference", "references", "ref", "refs",
))  # fmt: skip


def is_metric(name: str, settings: Settings) -> bool:
    """Whether a numeric field is averaged: named in ``metrics`` (when given), not named in ``details``,
    and not called like an id, a label, a class or a prediction (``question_id``, ``label``, ``y_pred``)."""
    if name in settings.details:
        return False
    if settings.metrics:
        return name in settings.metrics
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)  # camelCase: sampleID, questionId
    words = [w for w in re.split(r"[^0-9a-z]+", spaced.lower()) if w]
    if not words:
        return True
    return words[-1] not in LABEL_WORDS and words not in (["y", "true"], ["y", "pred"], ["y", "hat"], ["y"])
