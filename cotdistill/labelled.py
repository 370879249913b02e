"""Few gold labels, many posts: which training posts keep their gold.

A team labels a few hundred posts and lets the teacher read the rest. ``pick_labelled`` chooses the
labelled posts reproducibly from a seed; every other post is handed on with its gold removed, so no code
after this point can read it by accident.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from cotdistill.errors import InputError
from cotdistill.records import Example
from cotdistill.tasks import get_task


class LabelledCountError(InputError):
    """``data.labelled`` is not a number of posts the training split can give."""


def labelled_count(value, available: int, where: str = "data.labelled") -> int:
    """``value`` (a positive integer or ``"all"``) as a number of posts, checked against ``available``."""
    if value == "all" or value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabelledCountError(f"{where}={value!r}: expected a positive integer or 'all'")
    if value <= 0:
        raise LabelledCountError(f"{where}={value}: expected at least 1 labelled post (or 'all')")
    if value > available:
        raise LabelledCountError(
            f"{where}={value}, but the training split has {available} posts: use at most {available} or 'all'"
        )
    return value


def without_gold(example: Example) -> Example:
    """The post with its gold answer emptied and its gold tags dropped: a post without labels, so nothing of
    its gold can reach training."""
    empty = get_task(example.task).answer_type()
    meta = {k: v for k, v in example.meta.items() if k != "tags"}
    return dataclasses.replace(example, gold=empty, meta=meta)


def pick_labelled(examples: Sequence[Example], count, seed: int) -> tuple[list[Example], list[Example]]:
    """``(labelled, unlabelled)``: ``count`` posts (or ``"all"``) chosen with ``seed``, in their file order,
    and the others with their gold removed. The choice depends only on the posts' ids, the count and the
    seed, so the same ids are picked whatever the labels say."""
    n = labelled_count(count, len(examples))
    ids = sorted(ex.id for ex in examples)
    chosen = set(random.Random(seed).sample(ids, n))
    labelled = [ex for ex in examples if ex.id in chosen]
    unlabelled = [without_gold(ex) for ex in examples if ex.id not in chosen]
    return labelled, unlabelled
