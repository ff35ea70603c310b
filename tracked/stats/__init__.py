"""Error bars and comparisons: one run's intervals (``intervals``, ``bootstrap``), two runs (``comparisons``).

The layer above ``common``: pure numbers, no files, no ClearML. Every choice and its reference is on the
docs' statistics page.
"""

from .comparisons import Estimate, Paired, better, independent_p, paired, worse
from .intervals import Z95, group_stats, is_proportion, metric_stats, t_quantile, wilson

__all__ = [
    "Z95",
    "Estimate",
    "Paired",
    "better",
    "group_stats",
    "independent_p",
    "is_proportion",
    "metric_stats",
    "paired",
    "t_quantile",
    "wilson",
    "worse",
]
