"""Teacher-free distillation at matched training length: does the frozen teacher-tags student help a
text-only student that is trained long enough? Dev F1 (test for the record), one seed, one dataset.

Runs (all the post alone at test time): text only for 2, 4 and 6 epochs; route k (distillation from the
frozen teacher-tags student of teacher_free.py, kept under ``--work/teachers``) for 4 epochs at a few
temperatures and weights. Finished runs are read from ``--work/runs.jsonl`` (teacher_free.py's log), so the
ones it made are not made again.

    python benchmarks/teacher_free_steps.py --work WORK [--dataset twitter2017] [--seeds 0] [--runs a a4 ...]
        [--parallel 2] [--out NAME]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import data_dir, minilm_dir, write_result  # noqa: E402
from teacher_free import UNLABELED, Sweep, teacher_folder  # noqa: E402

# condition name -> (epochs, distillation settings or None for text only, distilled from the teacher trained
# for 4 epochs); names as teacher_free.py's. "u…": route u of teacher_free.py (the other dataset's training
# posts, gold dropped).
KD = {"kd_temperature": 2.0, "kd_weight": 1.0}
RUNS = {
    "a": (2, None, False),
    "a4": (4, None, False),
    "a6": (6, None, False),
    "k4": (4, KD, False),
    "k4-T1": (4, {"kd_temperature": 1.0, "kd_weight": 1.0}, False),
    "k4-T4": (4, {"kd_temperature": 4.0, "kd_weight": 1.0}, False),
    "k4-w3": (4, {"kd_temperature": 2.0, "kd_weight": 3.0}, False),
    "u": (2, KD, False),
    "k4t": (4, KD, True),
    "u4t": (2, KD, True),
}
# the teacher-tags student for 4 epochs, kept (teacher_folder(..., long=True)) to distil from
TEACHER_RUNS = {"t4": 4}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", required=True, help="teacher_free.py's --work folder")
    parser.add_argument("--dataset", default="twitter2017")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    first = ["a", "a4", "a6", "k4", "k4-T1", "k4-T4", "k4-w3"]  # the runs of the first sweep
    parser.add_argument("--runs", nargs="+", default=first, choices=[*RUNS, *TEACHER_RUNS])
    parser.add_argument("--out", default=None, help="results name (default: teacher_free_steps_DATASET)")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--reuse", nargs="*", default=[], help="encoder_quality results with text-only runs")
    args = parser.parse_args()
    work = Path(args.work)
    runs_log = work / "runs.jsonl"
    base = {
        "model": minilm_dir(),
        "data_dir": str(data_dir()),
        "predictions_dir": None,
        "lr": 1e-4,
        "batch_size": 32,
        "max_length": 256,
        "crf": False,
        "dataset": args.dataset,
    }
    a_epochs = RUNS["a"][0]
    same = ("lr", "batch_size", "max_length", "crf")
    sweep = Sweep(
        work, runs_log, args.parallel, args.reuse, {"epochs": a_epochs} | {k: base[k] for k in same}
    )
    specs = []
    for name in args.runs:
        config, extra = {"use_knowledge": False}, {}
        if name in TEACHER_RUNS:  # the teacher-tags student itself, kept to distil from
            epochs = TEACHER_RUNS[name]
            folder = teacher_folder(work, args.dataset, long=True)
            if not (folder / "model.safetensors").is_file():  # a kept run whose folder is gone is made again
                sweep.done.pop((args.dataset, name, args.seeds[0]), None)
            config.update(teacher_tags=True, conditional_distillation=False)
            extra["save_best"] = str(folder)
        else:
            epochs, kd, long = RUNS[name]
            if kd is not None:
                frozen = teacher_folder(work, args.dataset, long)
                if not (frozen / "model.safetensors").is_file():
                    sys.exit(f"{name}: no frozen teacher at {frozen}; run t4 (or teacher_free.py) first")
                config.update(
                    kd, distill_from=str(frozen), teacher_tags=False, conditional_distillation=False
                )
            if name.startswith("u"):
                extra["unlabeled"] = UNLABELED[args.dataset]
        for seed in args.seeds:
            specs.append(
                {**base, "condition": name, "seed": seed, "epochs": epochs, "config": config, **extra}
            )
    sweep.run(specs)
    result = {
        "dataset": args.dataset,
        "seeds": args.seeds,
        "settings": {k: v for k, v in base.items() if k not in ("model", "data_dir", "predictions_dir")},
        "runs": {},
    }
    for name in args.runs:
        rs = [sweep.done[(args.dataset, name, seed)] for seed in args.seeds]
        if name in TEACHER_RUNS:
            entry = {"epochs": TEACHER_RUNS[name], "distillation": None}
            entry["what"] = "the teacher-tags student (reads the teacher at test time), kept to distil from"
        else:
            epochs, kd, long = RUNS[name]
            entry = {"epochs": epochs, "distillation": kd}
            if kd is not None:
                entry["frozen_teacher"] = "4 epochs" if long else "teacher-tags student, 2 epochs"
        if name.startswith("u"):
            entry["posts_without_gold"] = UNLABELED[args.dataset]
        for split, key in (("dev", "dev_f1"), ("test", "test_f1")):
            entry[key] = [round(r[split]["f1"] * 100, 2) for r in rs]
            entry[f"{key}_mean"] = round(statistics.mean(entry[key]), 2)
        entry["train_seconds"] = [round(r["train_seconds"]) for r in rs]
        result["runs"][name] = entry
    print(json.dumps(result["runs"], indent=2))
    command = " ".join(["python", "benchmarks/teacher_free_steps.py", *sys.argv[1:]])
    write_result(args.out or f"teacher_free_steps_{args.dataset}", result, command)


if __name__ == "__main__":
    main()
