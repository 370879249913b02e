"""Task plug-ins: one module per task (``mner``, ``mre``, ``mae``), found here by name.

Code outside this package asks the task object (``get_task(name)``) instead of branching on the name.
"""

from __future__ import annotations

from cotdistill.errors import InputError
from cotdistill.records import Answer
from cotdistill.tasks import mae, mner, mre
from cotdistill.tasks.base import Task, TaskSpec, is_no_relation, value_key

TASK_PLUGINS: dict[str, Task] = {t.name: t for t in (mner.TASK, mre.TASK, mae.TASK)}
METRICS = {name: t.metric for name, t in TASK_PLUGINS.items()}


def get_task(name: str) -> Task:
    """The plug-in of a task by name; an unknown name is an error that lists the known ones."""
    try:
        return TASK_PLUGINS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown task {name!r}; expected one of {', '.join(TASK_PLUGINS)}") from None


def answer_items(task: str, answer: Answer | None) -> set:
    """The scored items of one answer (see ``Task.items``)."""
    return get_task(task).items(answer)


def item_label(task: str, item: tuple) -> str:
    """The type / relation label / attribute an item is counted under."""
    return get_task(task).item_label(item)


__all__ = [
    "METRICS",
    "TASK_PLUGINS",
    "Task",
    "TaskSpec",
    "answer_items",
    "get_task",
    "is_no_relation",
    "item_label",
    "value_key",
]
