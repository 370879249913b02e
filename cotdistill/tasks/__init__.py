"""Task plug-ins: one module per task (``mner``, ``mre``, ``mae``), found here by name.

Code outside this package asks the task object (``get_task(name)``) instead of branching on the name.
"""

from __future__ import annotations

from cotdistill.records import is_no_relation, value_key
from cotdistill.tasks.base import Task
from cotdistill.tasks.registry import (
    METRICS,
    TASK_PLUGINS,
    TaskSpec,
    answer_items,
    get_task,
    item_label,
    label_counts,
    parse_answer,
    score_answers,
)

__all__ = [
    "METRICS",
    "TASK_PLUGINS",
    "Task",
    "TaskSpec",
    "answer_items",
    "get_task",
    "is_no_relation",
    "item_label",
    "label_counts",
    "parse_answer",
    "score_answers",
    "value_key",
]
