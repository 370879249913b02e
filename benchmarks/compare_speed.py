"""evaluate + compare on 100,000 predictions with 1,000 bootstrap resamples, on one core (target: < 30 s).

Synthetic MNER data (seeded): 100,000 posts of 20 tokens with 0-3 gold entities each; a "teacher" and a
"student" that each keep, drop, retype or add entities at fixed rates. Both commands run through the CLI
entry point, as a user would run them, report included.

    python benchmarks/compare_speed.py [--examples 100000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from common import pin_one_core, write_result

from cotdistill.records import Entity, EntityAnswer, Example, Prediction, Usage
from cotdistill.run.cli import main as cli

TYPES = ["PER", "LOC", "ORG", "OTHER"]


def make(n: int, folder: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    rng = random.Random(seed)
    gold_path, teacher_path, student_path = (
        folder / "gold.jsonl",
        folder / "teacher.jsonl",
        folder / "student.jsonl",
    )
    with open(gold_path, "w") as g, open(teacher_path, "w") as t, open(student_path, "w") as s:
        for i in range(n):
            tokens = tuple(f"w{rng.randrange(5000)}" for _ in range(20))
            starts = sorted(rng.sample(range(0, 20, 3), rng.randrange(4)))
            gold = [Entity(a, a + rng.randrange(1, 3), rng.choice(TYPES), "") for a in starts]
            ex = Example(str(i), "mner", " ".join(tokens), EntityAnswer(tuple(gold)), tokens=tokens)
            g.write(json.dumps(ex.to_dict()) + "\n")
            for f, name, keep in ((t, "teacher", 0.75), (s, "student", 0.7)):
                pred = [
                    e if rng.random() < keep else Entity(e.start, e.end, rng.choice(TYPES), "")
                    for e in gold
                    if rng.random() < 0.9
                ]
                if rng.random() < 0.2:
                    pred.append(Entity(19, 20, rng.choice(TYPES), ""))
                usage = Usage(300, 80, 0.05) if name == "teacher" else Usage(0, 0, 0.002)
                f.write(
                    json.dumps(
                        Prediction(str(i), name, EntityAnswer(tuple(pred)), raw="", usage=usage).to_dict()
                    )
                    + "\n"
                )
    return gold_path, teacher_path, student_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gold, teacher, student = make(args.examples, folder)
        t0 = time.perf_counter()
        assert (
            cli(["evaluate", "--predictions", str(student), "--gold", str(gold), "--out", str(folder / "ev")])
            == 0
        )
        t1 = time.perf_counter()
        assert (
            cli(
                [
                    "compare",
                    f"teacher={teacher}",
                    f"student={student}",
                    "--gold",
                    str(gold),
                    "--out",
                    str(folder / "cmp"),
                    "--resamples",
                    str(args.resamples),
                ]
            )
            == 0
        )
        t2 = time.perf_counter()
        metrics = json.loads((folder / "cmp" / "metrics.json").read_text())
    result = {
        "examples": args.examples,
        "resamples": args.resamples,
        "evaluate_seconds": t1 - t0,
        "compare_seconds": t2 - t1,
        "total_seconds": t2 - t0,
        "target_seconds": 30.0,
        "meets_target": t2 - t0 < 30.0,
        "f1": {k: v["f1"] for k, v in metrics["systems"].items()},
    }
    print(
        f"evaluate {t1 - t0:.1f} s + compare {t2 - t1:.1f} s = {t2 - t0:.1f} s for {args.examples:,} predictions, {args.resamples:,} resamples"
    )
    write_result("compare_speed", result, "python benchmarks/compare_speed.py")


if __name__ == "__main__":
    main()
