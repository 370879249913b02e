"""The teacher's plausibility check on entity-substituted posts (``student.augment_check``), with the only
real LM teacher that runs here: SmolLM2-135M-Instruct on vLLM's CPU build.

1. The copies the teacher-free student trains on (``entity_substitution``, one per Twitter-2017 training post
   with entities, seed 0: the copies of route ``ka`` in teacher_free.py) and, as a control, the original posts
   are judged with the ``mner.plausibility`` template (greedy).
2. A judge worth its calls says "plausible" more often for the real posts than for the swapped ones: the
   rates of both are reported (on the first ``--posts`` of each, 200 by default; 0 for all).
Training on the copies a judge keeps is ``student.augment_check`` in a run config; with this judge it would
keep none of them.

    python benchmarks/plausibility_check.py --work WORK [--posts N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import converted_smollm2, data_dir, write_result  # noqa: E402

DATASET = "twitter2017"


def judge(examples, out: Path, model: Path) -> dict:
    """Each example's verdict (True, False or None when unreadable or failed) from SmolLM2 on vLLM."""
    from cotdistill.distill.backends import Sampling, make_backend
    from cotdistill.prompts import PromptLibrary
    from cotdistill.run.stages.student import judge_plausibility
    from cotdistill.student.teacher_free import parse_plausible
    from cotdistill.tasks import TaskSpec

    backend = make_backend("vllm", str(model), max_model_len=2048, max_num_seqs=64, seed=0)
    start = time.perf_counter()
    gens = judge_plausibility(
        examples,
        TaskSpec.from_examples("mner", examples),
        backend,
        out,
        library=PromptLibrary(),
        sampling=Sampling(0.0, 1.0, 24, 0),
        batch_size=64,
        sees_images=False,
    )
    seconds = time.perf_counter() - start
    texts = {ex.id: gens[ex.id].text if ex.id in gens else None for ex in examples}
    return {
        "verdicts": {i: parse_plausible(t) for i, t in texts.items()},
        "texts": texts,
        "seconds": round(seconds, 1),
        "completion_tokens": sum(g.usage.completion_tokens for g in gens.values()),
    }


def rates(verdicts: dict) -> dict:
    n = len(verdicts)
    return {
        "posts": n,
        "plausible": round(sum(v is True for v in verdicts.values()) / n, 4),
        "implausible": round(sum(v is False for v in verdicts.values()) / n, 4),
        "unreadable": round(sum(v is None for v in verdicts.values()) / n, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", required=True, help="a folder for the converted model and the verdicts")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--posts", type=int, default=200, help="judge the first N posts and copies (0: all)")
    parser.add_argument("--out", default="plausibility_check", help="results name under benchmarks/results")
    args = parser.parse_args()
    work = Path(args.work)
    root = data_dir(args.data_dir)

    from cotdistill.readers import load_split
    from cotdistill.student.teacher_free import entity_substitution

    train = load_split(DATASET, root / DATASET, "train").examples
    copies, _ = entity_substitution(train, 1, 0)  # as train_encoder makes them for seed 0
    originals = [ex for ex in train if ex.gold.entities]
    if args.posts:
        copies, originals = copies[: args.posts], originals[: args.posts]
    model = converted_smollm2(work)
    out = work / "plausibility"
    judged = judge(originals + copies, out / "verdicts", model)
    verdicts = judged["verdicts"]
    result: dict = {
        "dataset": DATASET,
        "judge": "SmolLM2-135M-Instruct (bf16) on vLLM's CPU build, template mner.plausibility, greedy",
        "judge_seconds": judged["seconds"],
        "judge_completion_tokens": judged["completion_tokens"],
        "original_posts": rates({ex.id: verdicts[ex.id] for ex in originals}),
        "swapped_copies": rates({c.id: verdicts[c.id] for c in copies}),
    }
    result["copies_kept"] = sum(verdicts[c.id] is True for c in copies)
    replies = Counter(" ".join((g or "").split()[:2]) for g in judged["texts"].values())
    result["most_common_replies"] = dict(replies.most_common(5))
    print(json.dumps(result, indent=2), flush=True)
    command = " ".join(["python", "benchmarks/plausibility_check.py", *sys.argv[1:]])
    write_result(args.out, result, command)


if __name__ == "__main__":
    main()
