"""The teacher's plausibility check on entity-substituted posts (``student.augment_check``), with the only
real LM teacher that runs here: SmolLM2-135M-Instruct on vLLM's CPU build.

1. The copies the teacher-free student trains on (``entity_substitution``, one per Twitter-2017 training post
   with entities, seed 0: the copies of route ``ka`` in teacher_free.py) and, as a control, the original posts
   are judged with the ``mner.plausibility`` template (greedy).
2. A judge worth its calls says "plausible" more often for the real posts than for the swapped ones: the
   rates of both are reported (on the first ``--posts`` of each, 200 by default; 0 for all).
3. With ``--train`` (and ``--posts 0``), route ``ka`` is trained again on the copies the judge kept (seed 0)
   and compared on dev with ``ka`` from ``--runs-log`` (teacher_free.py's runs; its frozen teacher-tags
   student under ``--work/teachers``).

    python benchmarks/plausibility_check.py --work /work/tfwork [--posts N] [--train]
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
from common import converted_smollm2, data_dir, minilm_dir, write_result  # noqa: E402

DATASET = "twitter2017"


def judge(examples, out: Path, model: Path) -> dict:
    """Each example's verdict (True, False or None when unreadable or failed) from SmolLM2 on vLLM."""
    from cotdistill.distill.backends import Sampling, make_backend
    from cotdistill.distill.runner import ShardStore, run_generation
    from cotdistill.prompts import PromptLibrary
    from cotdistill.student.teacher_free import parse_plausible
    from cotdistill.tasks import TaskSpec

    spec = TaskSpec.from_examples("mner", examples)
    backend = make_backend("vllm", str(model), max_model_len=2048, max_num_seqs=64, seed=0)
    start = time.perf_counter()
    stats = run_generation(
        examples,
        ["mner.plausibility"],
        PromptLibrary(),
        spec,
        backend,
        out,
        sampling=Sampling(0.0, 1.0, 24, 0),
        batch_size=64,
        sees_images=False,
    )
    seconds = time.perf_counter() - start
    gens = {g.example_id: g for g in ShardStore(out).load().values()}
    verdicts = {ex.id: parse_plausible(gens[ex.id].text) if ex.id in gens else None for ex in examples}
    texts = {ex.id: gens[ex.id].text if ex.id in gens else None for ex in examples}
    return {
        "verdicts": verdicts,
        "texts": texts,
        "seconds": round(seconds, 1),
        "completion_tokens": stats.completion_tokens,
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
    parser.add_argument("--work", required=True, help="teacher_free.py's --work folder")
    parser.add_argument("--runs-log", default=None, help="teacher_free.py's runs (default: WORK/runs.jsonl)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--posts", type=int, default=200, help="judge the first N posts and copies (0: all)")
    parser.add_argument("--train", action="store_true", help="train ka on the kept copies (needs --posts 0)")
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
    keep = [c.id for c in copies if verdicts[c.id] is True]
    result["copies_kept"] = len(keep)
    replies = Counter(" ".join((g or "").split()[:2]) for g in judged["texts"].values())
    result["most_common_replies"] = dict(replies.most_common(5))
    print(json.dumps(result, indent=2), flush=True)
    if args.train:
        if args.posts:
            sys.exit("--train needs every copy judged: pass --posts 0")
        import encoder_quality as eq

        runs_log = Path(args.runs_log or work / "runs.jsonl")
        eq.RUNS_LOG = str(runs_log)
        (out / "keep.json").write_text(json.dumps(keep))
        done = {
            (r["dataset"], r["condition"], r["seed"]): r
            for r in map(json.loads, runs_log.read_text().splitlines())
        }
        if (DATASET, "kac", 0) not in done:
            spec = {
                "model": minilm_dir(),
                "data_dir": str(root),
                "predictions_dir": None,
                "epochs": 2,
                "lr": 1e-4,
                "batch_size": 32,
                "max_length": 256,
                "crf": False,
                "dataset": DATASET,
                "condition": "kac",
                "seed": 0,
                "keep_copies": str(out / "keep.json"),
                "config": {
                    "kd_temperature": 2.0,
                    "kd_weight": 1.0,
                    "augment_copies": 1,
                    "distill_from": str(work / "teachers" / DATASET),
                    "use_knowledge": False,
                    "teacher_tags": False,
                    "conditional_distillation": False,
                },
            }
            (out / "logs").mkdir(parents=True, exist_ok=True)
            done[(DATASET, "kac", 0)] = eq.launch(spec, out / "logs")
        for cond, name in (("ka", "ka_all_copies"), ("kac", "ka_judged_copies"), ("a", "text_only")):
            r = done.get((DATASET, cond, 0))
            if r is not None:
                result[name] = {s: round(r[k]["f1"] * 100, 2) for s, k in (("dev", "dev"), ("test", "test"))}
    command = " ".join(["python", "benchmarks/plausibility_check.py", *sys.argv[1:]])
    write_result(args.out, result, command)


if __name__ == "__main__":
    main()
