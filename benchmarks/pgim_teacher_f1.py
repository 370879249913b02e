"""Teacher-alone F1 of PGIM's published ChatGPT knowledge on the Twitter-2015/2017 test sets.

Each test post's ChatGPT answer is parsed with cotdistill's MNER parser (types mapped through the default
synonym table, unknown types to the dataset's OTHER/MISC label), aligned to token spans, and scored with
the MNER metric. A post without knowledge (Twitter-2015's last post) counts as an empty answer.

    python benchmarks/pgim_teacher_f1.py [--data-dir ../shared/datasets]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import data_dir, write_result

from cotdistill.eval import score_answers
from cotdistill.parsing import parse_mner
from cotdistill.readers import align_knowledge, load_split, read_pgim_knowledge
from cotdistill.records import Prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--write-predictions",
        default=None,
        metavar="DIR",
        help="also write the parsed Prediction JSONL per dataset",
    )
    args = parser.parse_args()
    root = data_dir(args.data_dir)
    out = {}
    for name in ("twitter2015", "twitter2017"):
        examples = load_split(name, root / name, args.split).examples
        al = align_knowledge(examples, read_pgim_knowledge(root / name / "pgim" / f"{args.split}.txt"))
        labels = sorted({e.type for ex in examples for e in ex.gold.entities})
        preds, records, failures, unaligned, mentions = [], [], 0, 0, 0
        for ex in examples:
            raw = al.knowledge.get(ex.id)
            parsed = parse_mner(raw, ex, labels) if raw is not None else None
            if parsed is not None:
                failures += parsed.answer is None
                unaligned += len(parsed.unaligned)
                mentions += len(parsed.mentions)
            preds.append(parsed.answer if parsed is not None else None)
            if parsed is not None:
                records.append(
                    Prediction(
                        ex.id,
                        "teacher:chatgpt-pgim",
                        parsed.answer,
                        raw=raw,
                        rationale=parsed.rationale,
                        parse_error=parsed.error,
                    )
                )
        if args.write_predictions:
            Path(args.write_predictions).mkdir(parents=True, exist_ok=True)
            with open(
                Path(args.write_predictions) / f"{name}-{args.split}-teacher.jsonl", "w", encoding="utf-8"
            ) as f:
                f.writelines(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)
        s = score_answers("mner", [ex.gold for ex in examples], preds)
        out[name] = {
            "split": args.split,
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1"],
            "per_type_f1": {t: v["f1"] for t, v in s["per_type"].items()},
            "examples": len(examples),
            "with_knowledge": len(al.knowledge),
            "parse_failures": failures,
            "mentions": mentions,
            "mentions_unaligned": unaligned,
        }
        print(
            f"{name} {args.split}: P {s['precision']:.4f} R {s['recall']:.4f} F1 {s['f1']:.4f} ({failures} parse failures, {unaligned}/{mentions} mentions not in the post)"
        )
    write_result("pgim_teacher_f1", {"results": out}, "python benchmarks/pgim_teacher_f1.py")


if __name__ == "__main__":
    main()
