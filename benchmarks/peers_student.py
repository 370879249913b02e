"""The student part of ``peers.py``: our encoder student (text only) against the plain recipe,
``AutoModelForTokenClassification`` + ``Trainer`` as the Hugging Face token-classification guide writes it
(labels on the first sub-word of each word, -100 elsewhere; ``DataCollatorForTokenClassification``; seqeval;
evaluation each epoch and the best checkpoint loaded at the end), on the same MiniLM, data, epochs, learning
rate and batch size. Both are scored by seqeval on BIO tags over the post's words; tokens/s is the
non-padding sub-word tokens of the training posts, times the epochs, over the seconds of the training loop
as the Trainer itself reports them (``train_runtime``: its loop with the evaluation of each epoch; loading the
model and tokenising the data, done differently by the two, are left out of both)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def bio(example, answer) -> list[str]:
    """The BIO tags an entity answer puts on the example's words."""
    tags = ["O"] * len(example.tokens)
    for e in answer.entities if answer is not None else ():
        if e.end <= len(tags):
            tags[e.start] = f"B-{e.type}"
            for i in range(e.start + 1, e.end):
                tags[i] = f"I-{e.type}"
    return tags


def seqeval_f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    from seqeval.metrics import f1_score

    return round(100 * f1_score(gold, pred), 2)


def ours(splits: dict, model: str, epochs: float, lr: float, batch: int) -> tuple[list[list[str]], float]:
    from cotdistill.student.encoder import EncoderConfig, decode_predictions
    from cotdistill.student.train import EncoderTrainingConfig, train_encoder

    config = EncoderConfig(model=model, task="mner", use_knowledge=False, max_length=128)
    with tempfile.TemporaryDirectory() as tmp:
        training = EncoderTrainingConfig(
            output_dir=tmp, epochs=epochs, learning_rate=lr, batch_size=batch, seed=0, logging_steps=100
        )
        student, feat, history = train_encoder(config, training, splits["train"], splits["valid"], {})
        seconds = next(h["train_runtime"] for h in history if "train_runtime" in h)
    preds = {p.id: p.answer for p in decode_predictions(student, feat, splits["test"], {})}
    return [bio(ex, preds.get(ex.id)) for ex in splits["test"]], seconds


def recipe(splits: dict, model: str, epochs: float, lr: float, batch: int) -> tuple[list[list[str]], float]:
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    types = sorted({e.type for ex in splits["train"] for e in ex.gold.entities})
    label_list = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    label2id = {label: i for i, label in enumerate(label_list)}
    tokenizer = AutoTokenizer.from_pretrained(model)

    def rows(examples):
        return Dataset.from_dict(
            {
                "tokens": [list(ex.tokens) for ex in examples],
                "ner_tags": [[label2id[t] for t in bio(ex, ex.gold)] for ex in examples],
            }
        )

    def tokenize_and_align_labels(examples):
        tokenized = tokenizer(examples["tokens"], truncation=True, max_length=128, is_split_into_words=True)
        labels = []
        for i, label in enumerate(examples["ner_tags"]):
            word_ids = tokenized.word_ids(batch_index=i)
            previous, ids = None, []
            for word_idx in word_ids:
                if word_idx is None or word_idx == previous:
                    ids.append(-100)
                else:
                    ids.append(label[word_idx])
                previous = word_idx
            labels.append(ids)
        tokenized["labels"] = labels
        return tokenized

    data = {s: rows(exs).map(tokenize_and_align_labels, batched=True) for s, exs in splits.items()}

    def compute_metrics(p):
        predictions, labels = p
        predictions = np.argmax(predictions, axis=2)
        true_predictions = [
            [label_list[p] for (p, lab) in zip(prediction, label, strict=True) if lab != -100]
            for prediction, label in zip(predictions, labels, strict=True)
        ]
        true_labels = [
            [label_list[lab] for (p, lab) in zip(prediction, label, strict=True) if lab != -100]
            for prediction, label in zip(predictions, labels, strict=True)
        ]
        return {"f1": f1_score(true_labels, true_predictions)}

    net = AutoModelForTokenClassification.from_pretrained(
        model, num_labels=len(label_list), id2label=dict(enumerate(label_list)), label2id=label2id
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            learning_rate=lr,
            per_device_train_batch_size=batch,
            per_device_eval_batch_size=batch,
            num_train_epochs=epochs,
            weight_decay=0.01,
            eval_strategy="epoch",
            save_strategy="epoch",
            load_best_model_at_end=True,
            report_to="none",
            seed=0,
        )
        trainer = Trainer(
            model=net,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data["valid"],
            processing_class=tokenizer,
            data_collator=DataCollatorForTokenClassification(tokenizer=tokenizer),
            compute_metrics=compute_metrics,
        )
        seconds = trainer.train().metrics["train_runtime"]
        logits = trainer.predict(data["test"]).predictions
    tags = []
    for ex, scores in zip(splits["test"], logits, strict=True):
        word_ids = tokenizer(
            list(ex.tokens), truncation=True, max_length=128, is_split_into_words=True
        ).word_ids()
        out, previous = ["O"] * len(ex.tokens), None
        for pos, w in enumerate(word_ids):
            if w is not None and w != previous:
                out[w] = label_list[int(scores[pos].argmax())]
            previous = w
        tags.append(out)
    return tags, seconds


def training_tokens(splits: dict, model: str) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return sum(
        len(
            tokenizer(list(ex.tokens), truncation=True, max_length=128, is_split_into_words=True)["input_ids"]
        )
        for ex in splits["train"]
    )


def part_student(data: Path, model: str, epochs: float, lr: float, batch: int = 32, repeats: int = 3) -> dict:
    """Each training runs in a fresh process, the two alternating in order (``repeats`` rounds), so neither
    gains from the other's warm caches. F1 and tokens/s are the medians over the rounds: the recipe's F1 varies
    from round to round, because the guide builds its model before the Trainer sets the seed, so its
    classification head starts from unseeded random weights (ours is the same every round)."""
    import statistics

    tokens = training_tokens(_splits(data), model) * epochs
    runs: dict[str, list[dict]] = {"cotdistill": [], "trainer": []}
    for r in range(repeats):
        order = ("cotdistill", "trainer") if r % 2 == 0 else ("trainer", "cotdistill")
        for name in order:
            print(f"[student] round {r + 1}/{repeats}: {name}", flush=True)
            cmd = [sys.executable, __file__, name, str(data), model, str(epochs), str(lr), str(batch)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"[student] {name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            got = json.loads(done.stdout.splitlines()[-1])
            got["tokens_per_s"] = round(tokens / got["train_seconds"], 1)
            runs[name].append(got)
            print(f"  {got}", flush=True)
    out = {}
    for name, rows in runs.items():
        speeds = [row["tokens_per_s"] for row in rows]
        out[name] = {
            "f1": statistics.median(row["f1"] for row in rows),
            "f1_each_round": [row["f1"] for row in rows],
            "tokens_per_s": statistics.median(speeds),
            "tokens_per_s_each_round": speeds,
            "train_seconds": statistics.median(row["train_seconds"] for row in rows),
        }
    return out


def _splits(data: Path) -> dict:
    from cotdistill.readers import load_split

    return {s: load_split("twitter2017", data, s).examples for s in ("train", "valid", "test")}


def _one(name: str, data: Path, model: str, epochs: float, lr: float, batch: int) -> dict:
    splits = _splits(data)
    gold = [bio(ex, ex.gold) for ex in splits["test"]]
    pred, seconds = {"cotdistill": ours, "trainer": recipe}[name](splits, model, epochs, lr, batch)
    return {"f1": float(seqeval_f1(gold, pred)), "train_seconds": round(seconds, 1)}


if __name__ == "__main__":  # one training, for part_student: NAME DATA MODEL EPOCHS LR BATCH
    name, data, model, epochs, lr, batch = sys.argv[1:7]
    print(json.dumps(_one(name, Path(data), model, float(epochs), float(lr), int(batch))))
