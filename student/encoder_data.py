"""The encoder student's inputs: the post's words (first sub-token labelled), the context segment,
the teacher tags, entity markers for relation pairs, and batching."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

import torch

from cotdistill.records import (
    Answer,
    AttributeAnswer,
    EntityAnswer,
    Example,
)
from cotdistill.student import StudentConfigError
from cotdistill.student.config import EncoderConfig
from cotdistill.tasks import get_task, is_no_relation

logger = logging.getLogger(__name__)

VIEWS = ("plain", "knowledge")
MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")


def _draw(example_id: str, word: int) -> float:
    """A number in [0, 1) fixed by the example and word (the same in every epoch and run)."""
    return zlib.crc32(f"{example_id}\0{word}".encode()) / 2**32


class EncoderFeaturizer:
    """Turns Examples (+ knowledge text) into encoder inputs with first-sub-token labels."""

    def __init__(self, config: EncoderConfig, tokenizer):
        if not getattr(tokenizer, "is_fast", False):
            raise StudentConfigError(
                f"{config.model}: the encoder student needs a fast tokenizer (word_ids); install tokenizers or pick a model that has one"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.label2id = {label: i for i, label in enumerate(config.bio_labels)}
        self._has_pieces: dict[str, bool] = {}
        self.knowledge_dropped = 0  # posts too long to read any knowledge beside them
        if not config.tagger:
            # The pair classifier reads the relation at the head's opening marker; the markers are new tokens.
            missing = [m for m in MARKERS if m not in tokenizer.get_vocab()]
            if missing:
                tokenizer.add_special_tokens({"additional_special_tokens": missing})
            config.vocab_size = len(tokenizer)

    def _words(self, tokens: Sequence[str]) -> list[str]:
        # A word the tokenizer maps to nothing (a lone U+00A0, say) would silently lose its label: stand in [UNK].
        out = []
        for w in tokens:
            ok = self._has_pieces.get(w)
            if ok is None:
                ok = self._has_pieces[w] = bool(self.tokenizer.tokenize(w))
            out.append(w if ok else self.tokenizer.unk_token)
        return out

    def post_length(self, words: Sequence[str], pair: bool = False) -> int:
        """Tokens the post's words take, with the special tokens of a single (or a pair) sequence."""
        pieces = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)["input_ids"]
        return len(pieces) + self.tokenizer.num_special_tokens_to_add(pair=pair)

    def context(self, example: Example, knowledge: str | None, view: str) -> str | None:
        if view == "plain":
            return None
        parts = []
        if self.config.use_caption and example.meta.get("caption"):
            parts.append(str(example.meta["caption"]))
        if self.config.use_knowledge and knowledge:
            parts.append(knowledge)
        return " ".join(parts) or None

    def _marked(self, example: Example) -> tuple[list[str], int, int]:
        """Words with entity markers around head and tail, the index of the head's opening marker, and the
        gold label id."""
        rel = example.gold.relations[0]  # type: ignore[union-attr]
        inserts = sorted(
            [
                (rel.head.start, 1, MARKERS[0]),
                (rel.head.end, 0, MARKERS[1]),
                (rel.tail.start, 1, MARKERS[2]),
                (rel.tail.end, 0, MARKERS[3]),
            ],
            key=lambda x: (x[0], x[1]),
        )
        words = list(self._words(example.tokens))  # type: ignore[arg-type]
        for pos, _, marker in reversed(inserts):
            words.insert(pos, marker)
        label = self.label2id.get(rel.label)
        if label is None:
            label = next(
                (i for lab, i in self.label2id.items() if is_no_relation(lab) and is_no_relation(rel.label)),
                0,
            )
        return words, words.index(MARKERS[0]), label

    def encode(
        self, example: Example, knowledge: str | None, view: str, teacher_answer: Answer | None = None
    ) -> dict:
        """Inputs of one view of one example. ``teacher_answer`` gives the teacher tags (knowledge view,
        ``config.teacher_tags``); without one, the post's words carry the "no tag" id."""
        if not self.config.tagger:
            words, anchor, label = self._marked(example)
            tags = None
        else:
            words = self._words(task_tokens(example)[0])
        context = self.context(example, knowledge, view)
        limit = self.config.max_length - (
            self.config.prompt_length if view == "plain" and self.config.conditional_distillation else 0
        )
        if context and self.post_length(words, pair=True) >= limit:
            # no room left for any knowledge: the post is read alone (the tokenizer would refuse the pair)
            self.knowledge_dropped += 1
            if self.knowledge_dropped <= 3:
                logger.warning(
                    "example %s: the post fills max_length=%d, its knowledge is left out (%d so far)",
                    example.id,
                    limit,
                    self.knowledge_dropped,
                )
            context = None
        kwargs = {
            "is_split_into_words": True,
            "truncation": "only_second" if context else True,
            "max_length": limit,
        }
        enc = self.tokenizer(words, context.split() if context else None, **kwargs)
        word_ids = enc.word_ids()
        seq_ids = enc.sequence_ids()
        if self.config.tagger:
            tags = example.meta.get("tags") or bio_tags(example)
        labels, seen = [], set()
        unsure = float(example.meta.get("unsure_outside", 0.0)) if tags is not None else 0.0
        # words of a label made without gold that its sources disagree on: trained on by no label
        disputed = set(example.meta.get("unsure_words", ())) if tags is not None else set()
        for wid, sid in zip(word_ids, seq_ids, strict=True):
            if sid == 0 and wid is not None and wid not in seen:
                seen.add(wid)
                if wid in disputed:
                    labels.append(-100)
                elif tags is not None and unsure and tags[wid] == "O" and _draw(example.id, wid) < unsure:
                    labels.append(-100)  # a label made without gold: its "outside" may be a missed entity
                elif tags is not None:
                    labels.append(self.label2id.get(tags[wid], 0))
                else:
                    labels.append(label if wid == anchor else -100)
            else:
                labels.append(-100)
        if len(seen) < len(words):
            raise StudentConfigError(
                f"example {example.id}: the post alone ({len(words)} words) does not fit max_length={self.config.max_length}; raise max_length"
            )
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
        if self.config.teacher_tags and view == "knowledge":
            hint = bio_tags(example, teacher_answer) if teacher_answer is not None else None
            out["teacher_tag_ids"] = [
                1 + self.label2id.get(hint[wid], 0)
                if hint is not None and sid == 0 and wid is not None
                else 0
                for wid, sid in zip(word_ids, seq_ids, strict=True)
            ]
        if "token_type_ids" in enc:
            out["token_type_ids"] = enc["token_type_ids"]
        return out

    def features(
        self, example: Example, knowledge: str | None, train: bool, teacher_answer: Answer | None = None
    ) -> dict:
        """Inputs for one example: the view the student is trained/evaluated on, plus the plain view for
        conditional distillation."""
        cfg = self.config
        if cfg.conditional_distillation:
            main = self.encode(example, knowledge, "knowledge", teacher_answer)
            plain = self.encode(example, None, "plain")
            return {**main, **{f"plain_{k}": v for k, v in plain.items()}}
        out = self.encode(example, knowledge, cfg.eval_view, teacher_answer)
        if cfg.aux_teacher_tags and train:
            hint = bio_tags(example, teacher_answer) if teacher_answer is not None else None
            words = iter(hint or ())
            out["aux_labels"] = [
                -100 if lab == -100 or hint is None else self.label2id.get(next(words), 0)
                for lab in out["labels"]
            ]
        return out


def task_tokens(example: Example) -> tuple[tuple[str, ...], list[tuple[int, int]] | None]:
    """The units a tagger labels, and their character offsets where they are not the tokens (see
    ``Task.student_units``)."""
    return get_task(example.task).student_units(example)


def bio_tags(example: Example, answer: Answer | None = None) -> list[str]:
    """BIO tags over the example's tagging units for ``answer`` (gold when not given)."""
    from cotdistill.tags import spans_to_tags

    answer = example.gold if answer is None else answer
    tokens, offsets = task_tokens(example)
    if isinstance(answer, AttributeAnswer):
        spans = []
        for v in answer.values:
            if v.start is None:
                continue  # a value not written in the text cannot be tagged
            inside = [k for k, (a, b) in enumerate(offsets or ()) if a >= v.start and b <= v.end]
            if inside:
                spans.append((inside[0], inside[-1] + 1, v.attribute))
        return spans_to_tags(len(tokens), spans)
    if not isinstance(answer, EntityAnswer):
        raise StudentConfigError(
            f"example {example.id}: a tagger needs entities or attribute values, not {type(answer).__name__}"
        )
    return spans_to_tags(len(tokens), [(e.start, e.end, e.type or "MISC") for e in answer.entities])


def collate(features: list[dict], pad_id: int) -> dict:
    """Pad a batch of featurised examples (right padding)."""
    out = {}
    for key in features[0]:
        pad = -100 if key.endswith("labels") else (pad_id if key.endswith("input_ids") else 0)
        width = max(len(f[key]) for f in features)
        out[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in features], dtype=torch.long)
    return out


class EncoderDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        featurizer: EncoderFeaturizer,
        examples: Sequence[Example],
        knowledge: dict[str, str] | None,
        train: bool,
        teacher_answers: dict[str, Answer] | None = None,
        frozen_teacher=None,
        unlabeled: Sequence[Example] = (),
    ):
        """``frozen_teacher`` (a ``teacher_free.FrozenTeacher``) adds its own view of each post as ``kd_*``.
        ``unlabeled`` posts (their gold already stripped, see ``without_gold``) follow the labelled ones; with
        any of them every post carries ``gold_mask`` (1 labelled, 0 not), which keeps them out of the gold
        loss."""
        self.examples = list(examples) + list(unlabeled)
        knowledge = knowledge or {}
        answers = teacher_answers or {}
        self.features = [
            featurizer.features(ex, knowledge.get(ex.id), train, answers.get(ex.id)) for ex in self.examples
        ]
        if frozen_teacher is not None:
            for f, ex in zip(self.features, self.examples, strict=True):
                f.update(frozen_teacher.features(ex, knowledge.get(ex.id), answers.get(ex.id)))
        if unlabeled:
            for k, f in enumerate(self.features):
                f["gold_mask"] = [int(k < len(examples))]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return self.features[i]
