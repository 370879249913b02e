"""The encoder student on CPU with a tiny random BERT and a tokenizer trained on fixture text."""

import pytest
import torch
from tiny import tiny_bert, tiny_wordpiece_tokenizer

from cotdistill.records import AttributeAnswer, AttributeValue, Entity, EntityAnswer, Example
from cotdistill.student.encoder import (
    CRF,
    EncoderConfig,
    EncoderFeaturizer,
    EncoderTagger,
    StudentConfigError,
    collate,
    decode_predictions,
)
from cotdistill.student.train import EncoderTrainingConfig, train_encoder
from cotdistill.tags import spans_to_tags

POSTS = [
    ("Barack Obama visits Paris", [(0, 2, "PER"), (3, 4, "LOC")]),
    ("Apple opens offices in London", [(0, 1, "ORG"), (4, 5, "LOC")]),
    ("Michelle Obama and Google", [(0, 2, "PER"), (3, 4, "ORG")]),
    ("the fox jumps near Berlin", [(4, 5, "LOC")]),
    ("New York Mets play at Citi Field", [(0, 3, "ORG"), (5, 7, "LOC")]),
    ("RT @user : Obama in London \u00a0", [(3, 4, "PER"), (5, 6, "LOC")]),
    ("Google and Apple", [(0, 1, "ORG"), (2, 3, "ORG")]),
    ("the quick brown dog", []),
]


def examples():
    out = []
    for i, (text, spans) in enumerate(POSTS):
        toks = tuple(text.split(" ")) if "\u00a0" not in text else (*text.split(" ")[:-1], "\u00a0")
        ents = tuple(Entity(s, e, t, " ".join(toks[s:e])) for s, e, t in spans)
        out.append(
            Example(
                str(i),
                "mner",
                " ".join(toks),
                EntityAnswer(ents),
                tokens=toks,
                meta={"tags": spans_to_tags(len(toks), spans)},
            )
        )
    return out


KNOWLEDGE = {
    str(i): f"Named entities : 1. {t.split()[0]} ( person ) Reasoning : the post mentions " + t
    for i, (t, _) in enumerate(POSTS)
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    tok = tiny_wordpiece_tokenizer(root / "model")
    tiny_bert(root / "model", vocab_size=len(tok))
    return str(root / "model"), tok


def test_featurizer_labels_first_subtoken_only_and_truncates_knowledge(tiny):
    path, tok = tiny
    cfg = EncoderConfig(model=path, labels=["LOC", "ORG", "PER"], max_length=24)
    feat = EncoderFeaturizer(cfg, tok)
    ex = examples()[5]
    f = feat.encode(ex, "very long knowledge " * 50, "knowledge")
    assert len(f["input_ids"]) == 24  # the knowledge was cut, not the post
    labelled = [lab for lab in f["labels"] if lab != -100]
    assert len(labelled) == len(ex.tokens)  # the lone U+00A0 word still carries its label
    assert [cfg.bio_labels[i] for i in labelled] == ex.meta["tags"]
    too_long = Example("x", "mner", "a", EntityAnswer(), tokens=tuple(["obama"] * 30))
    with pytest.raises(StudentConfigError, match="does not fit max_length=16"):
        EncoderFeaturizer(EncoderConfig(model=path, labels=["PER"], max_length=16), tok).encode(
            too_long, None, "plain"
        )


def test_disputed_words_of_a_made_label_carry_no_label(tiny):
    """``unsure_words``: the words two label sources disagree on are left out of the loss, the rest keep
    their tags."""
    import dataclasses

    path, tok = tiny
    cfg = EncoderConfig(model=path, labels=["LOC", "ORG", "PER"], max_length=32)
    feat = EncoderFeaturizer(cfg, tok)
    ex = examples()[0]  # Barack Obama visits Paris
    plain = [lab for lab in feat.encode(ex, None, "plain")["labels"] if lab != -100]
    disputed = dataclasses.replace(ex, meta={**ex.meta, "unsure_words": [3]})
    first = feat.encode(disputed, None, "plain")
    kept = [lab for lab in first["labels"] if lab != -100]
    assert kept == plain[:3]  # "Paris" is out of the loss, the other words are as before
    assert len(first["input_ids"]) == len(feat.encode(ex, None, "plain")["input_ids"])


def test_crf_decode_matches_brute_force():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    em = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    import itertools

    for k in range(2):
        n = int(mask[k].sum())

        def score(path, k=k):
            s = crf.start[path[0]] + em[k, 0, path[0]] + crf.end[path[-1]]
            for i in range(1, len(path)):
                s = s + crf.trans[path[i - 1], path[i]] + em[k, i, path[i]]
            return float(s.detach())

        best = max(itertools.product(range(3), repeat=n), key=score)
        assert crf.decode(em, mask)[k] == list(best)
        # the NLL is -log of a proper distribution: exp(-nll) summed over all paths is 1
        total = sum(
            torch.exp(
                -crf.neg_log_likelihood(
                    em[k : k + 1, :n], torch.tensor([p]), torch.ones(1, n, dtype=torch.bool)
                )
            )
            for p in itertools.product(range(3), repeat=n)
        )
        assert float(total) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("crf, distill", [(False, False), (True, False), (False, True)])
def test_overfit_eight_examples_and_predict(tiny, tmp_path, crf, distill):
    path, tok = tiny
    exs = examples()
    cfg = EncoderConfig(
        model=path, crf=crf, conditional_distillation=distill, use_knowledge=True, max_length=64, dropout=0.0
    )
    training = EncoderTrainingConfig(
        output_dir=str(tmp_path / "run"),
        epochs=30,
        learning_rate=5e-3,
        batch_size=8,
        seed=0,
        logging_steps=5,
        warmup_ratio=0.0,
    )
    model, feat, history = train_encoder(cfg, training, exs, exs, KNOWLEDGE, tokenizer=tok)
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0] * 0.5
    best_f1 = max(h["eval_f1"] for h in history if "eval_f1" in h)
    assert best_f1 > 0.8
    preds = decode_predictions(model, feat, exs, KNOWLEDGE)
    assert len(preds) == len(exs) and all(p.answer is not None for p in preds)
    assert (tmp_path / "run" / "best" / "cotdistill_student.json").is_file()


def test_config_errors():
    with pytest.raises(StudentConfigError, match="set use_knowledge=True"):
        EncoderConfig(model="x", use_knowledge=False, conditional_distillation=True)
    batch = collate([{"input_ids": [1, 2], "labels": [0, -100]}, {"input_ids": [1], "labels": [1]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2], [1, 0]] and batch["labels"].tolist() == [
        [0, -100],
        [1, -100],
    ]
    assert EncoderTagger  # imported for the type


def test_lora_changes_only_adapter_and_head_and_reloads(tiny, tmp_path):
    from cotdistill.student.encoder import load_encoder_student

    path, tok = tiny
    exs = examples()
    cfg = EncoderConfig(
        model=path,
        use_knowledge=False,
        lora_r=4,
        lora_target_modules=["query", "value"],
        dropout=0.0,
        max_length=64,
    )
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in EncoderTagger(cfg).state_dict().items()}
    training = EncoderTrainingConfig(
        output_dir=str(tmp_path / "run"), epochs=3, learning_rate=1e-2, batch_size=4, seed=0, warmup_ratio=0.0
    )
    model, feat, _ = train_encoder(cfg, training, exs, exs, None, tokenizer=tok)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k].cpu(), before[k])}
    assert any("lora_" in k for k in changed) and any(k.startswith("head.") for k in changed)
    base = [k for k in after if k.startswith("encoder.") and "lora_" not in k]
    assert base and not (changed & set(base))  # every base weight is bit-identical
    preds = decode_predictions(model, feat, exs, None)
    again, feat2 = load_encoder_student(tmp_path / "run" / "best")
    assert [p.answer for p in decode_predictions(again, feat2, exs, None)] == [p.answer for p in preds]


def test_resume_continues_step_count(tiny, tmp_path):
    path, tok = tiny
    exs = examples()
    cfg = EncoderConfig(model=path, use_knowledge=False, max_length=64)
    out = str(tmp_path / "run")
    train_encoder(
        cfg,
        EncoderTrainingConfig(output_dir=out, epochs=2, batch_size=4, seed=0, save_total_limit=3),
        exs,
        exs,
        None,
        tokenizer=tok,
    )
    checkpoints = sorted((tmp_path / "run").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    _, _, history = train_encoder(
        EncoderConfig(model=path, use_knowledge=False, max_length=64),
        EncoderTrainingConfig(
            output_dir=out,
            epochs=3,
            batch_size=4,
            seed=0,
            save_total_limit=3,
            resume_from_checkpoint=str(checkpoints[-1]),
        ),
        exs,
        exs,
        None,
        tokenizer=tok,
    )
    epochs = [h["epoch"] for h in history if "eval_f1" in h]
    assert epochs[-1] == 3.0 and (tmp_path / "run" / "checkpoint-6").is_dir()


def mre_examples():
    from cotdistill.records import Relation, RelationAnswer

    rows = [
        ("Barack Obama visits Paris", (0, 2), (3, 4), "/per/loc/place_of_residence"),
        ("Apple opens offices in London", (0, 1), (4, 5), "/org/loc/locate_at"),
        ("Michelle Obama and Barack Obama", (0, 2), (3, 5), "/per/per/couple"),
        ("the fox jumps near Berlin", (1, 2), (4, 5), "None"),
        ("Google and Apple", (0, 1), (2, 3), "None"),
        ("New York Mets play at Citi Field", (0, 3), (5, 7), "/org/loc/locate_at"),
    ]
    out = []
    for i, (text, h, t, label) in enumerate(rows):
        toks = tuple(text.split())
        rel = Relation(
            Entity(*h, None, " ".join(toks[h[0] : h[1]])),
            Entity(*t, None, " ".join(toks[t[0] : t[1]])),
            label,
        )
        out.append(Example(f"r{i}", "mre", text, RelationAnswer((rel,)), tokens=toks))
    return out


def test_mre_pair_classifier_overfits_and_reloads(tmp_path):
    from cotdistill.student.encoder import MARKERS, load_encoder_student

    tok = tiny_wordpiece_tokenizer(tmp_path / "m")
    tiny_bert(tmp_path / "m", vocab_size=len(tok))
    exs = mre_examples()
    cfg = EncoderConfig(model=str(tmp_path / "m"), task="mre", use_knowledge=True, max_length=64, dropout=0.0)
    training = EncoderTrainingConfig(
        output_dir=str(tmp_path / "run"),
        epochs=40,
        learning_rate=5e-3,
        batch_size=6,
        seed=0,
        warmup_ratio=0.0,
        logging_steps=5,
    )
    knowledge = {
        ex.id: f"{ex.gold.relations[0].head.text} and {ex.gold.relations[0].tail.text}" for ex in exs
    }
    model, feat, history = train_encoder(cfg, training, exs, exs, knowledge, tokenizer=tok)
    f = feat.encode(exs[0], knowledge["r0"], "knowledge")
    assert sum(lab != -100 for lab in f["labels"]) == 1  # one labelled position: the head's opening marker
    assert all(tok.convert_tokens_to_ids(m) != tok.unk_token_id for m in MARKERS)
    assert max(h["eval_f1"] for h in history if "eval_f1" in h) == 1.0
    preds = decode_predictions(model, feat, exs, knowledge)
    assert [p.answer.relations[0].label for p in preds] == [ex.gold.relations[0].label for ex in exs]
    again, feat2 = load_encoder_student(tmp_path / "run" / "best")
    assert [p.answer for p in decode_predictions(again, feat2, exs, knowledge)] == [p.answer for p in preds]
    with pytest.raises(StudentConfigError, match="set crf=False"):
        EncoderConfig(model="x", task="mre", crf=True)


def test_mae_value_tagger_on_real_mepave(datasets_dir, tmp_path):
    from conftest import need

    from cotdistill.readers import load_split
    from cotdistill.student.encoder import bio_tags, task_tokens

    train = load_split("mepave", need(datasets_dir, "mepave"), "train").examples[:12]
    ex = train[0]
    tokens, offsets = task_tokens(ex)
    assert "".join(tokens) == ex.text and len(offsets) == len(ex.text)  # one unit per character
    tags = bio_tags(ex)
    assert [(v.attribute, v.start) for v in ex.gold.values] == [
        (t[2:], k) for k, t in enumerate(tags) if t.startswith("B-")
    ]
    english = Example(
        "e",
        "mae",
        "Red leather bag, size XL",
        AttributeAnswer((AttributeValue("color", "Red", 0, 3), AttributeValue("size", "XL", 22, 24))),
    )
    assert task_tokens(english)[0] == ("Red", "leather", "bag", ",", "size", "XL") and bio_tags(english) == [
        "B-color",
        "O",
        "O",
        "O",
        "O",
        "B-size",
    ]
    chars = sorted({c for e in train for c in e.text})
    tok = tiny_wordpiece_tokenizer(tmp_path / "m", extra_text=[" ".join(chars)])
    tiny_bert(tmp_path / "m", vocab_size=len(tok))
    cfg = EncoderConfig(
        model=str(tmp_path / "m"), task="mae", use_knowledge=False, max_length=96, dropout=0.0
    )
    training = EncoderTrainingConfig(
        output_dir=str(tmp_path / "run"),
        epochs=60,
        learning_rate=5e-3,
        batch_size=12,
        seed=0,
        warmup_ratio=0.0,
        logging_steps=10,
    )
    model, feat, history = train_encoder(cfg, training, train, train, None, tokenizer=tok)
    assert max(h["eval_f1"] for h in history if "eval_f1" in h) > 0.8
    preds = decode_predictions(model, feat, train, None)
    texts = {e.id: e.text for e in train}
    values = [(p.id, v) for p in preds for v in p.answer.values]
    assert values and all(
        texts[i][v.start : v.end] == v.value for i, v in values
    )  # character spans into the text


def ambiguous_examples():
    """Posts whose words say nothing about their entities: the same four words, tagged differently each time.
    Only a teacher's tags can tell them apart."""
    spans = [
        [(0, 1, "PER")],
        [(1, 2, "LOC")],
        [(2, 4, "ORG")],
        [],
        [(0, 2, "LOC")],
        [(3, 4, "PER")],
        [(1, 2, "ORG"), (3, 4, "LOC")],
        [(2, 3, "PER")],
    ]
    toks = ("the", "quick", "brown", "dog")
    return [
        Example(
            f"q{i}",
            "mner",
            " ".join(toks),
            EntityAnswer(tuple(Entity(s, e, t, " ".join(toks[s:e])) for s, e, t in sp)),
            tokens=toks,
        )
        for i, sp in enumerate(spans)
    ]


def test_teacher_tags_featurizer_marks_post_words_only(tiny):
    path, tok = tiny
    cfg = EncoderConfig(
        model=path, labels=["LOC", "ORG", "PER"], use_knowledge=True, teacher_tags=True, max_length=40
    )
    feat = EncoderFeaturizer(cfg, tok)
    ex = examples()[0]  # Barack Obama visits Paris
    teacher = EntityAnswer((Entity(1, 2, "PER", "Obama"), Entity(3, 4, "ORG", "Paris")))  # half wrong
    f = feat.encode(ex, "Obama is a person", "knowledge", teacher)
    enc = tok(list(ex.tokens), ["Obama", "is", "a", "person"], is_split_into_words=True)
    want = []
    for wid, sid in zip(enc.word_ids(), enc.sequence_ids(), strict=True):
        tag = ["O", "B-PER", "O", "B-ORG"][wid] if sid == 0 and wid is not None else None
        want.append(0 if tag is None else 1 + cfg.bio_labels.index(tag))
    assert f["teacher_tag_ids"] == want and len(want) == len(f["input_ids"])
    assert 1 + cfg.bio_labels.index("B-PER") in want and 0 in want  # a tag on the post, none on the context
    assert set(feat.encode(ex, None, "knowledge", None)["teacher_tag_ids"]) == {0}  # no answer: no tags
    assert "teacher_tag_ids" not in feat.encode(ex, None, "plain", teacher)  # the plain view reads none
    with pytest.raises(StudentConfigError, match="set teacher_tags=False"):
        EncoderConfig(model="x", task="mre", teacher_tags=True)
    with pytest.raises(StudentConfigError, match="no teacher answers"):
        train_encoder(cfg, EncoderTrainingConfig(output_dir="unused"), [ex], [ex], None, tokenizer=tok)


def test_teacher_tags_are_read_and_reload(tiny, tmp_path):
    """On posts whose words are all alike, a student with the teacher's tags (here: right ones) learns the
    entities; the same student without them cannot."""
    from cotdistill.student.encoder import load_encoder_student

    path, tok = tiny
    exs = ambiguous_examples()
    gold_as_teacher = {ex.id: ex.gold for ex in exs}
    training = EncoderTrainingConfig(
        output_dir=str(tmp_path / "tags"),
        epochs=40,
        learning_rate=5e-3,
        batch_size=8,
        seed=0,
        warmup_ratio=0.0,
        logging_steps=10,
    )
    best = {}
    for teacher_tags in (True, False):
        cfg = EncoderConfig(
            model=path, use_knowledge=False, teacher_tags=teacher_tags, max_length=32, dropout=0.0
        )
        training.output_dir = str(tmp_path / f"tags-{teacher_tags}")
        model, feat, history = train_encoder(
            cfg, training, exs, exs, None, tokenizer=tok, teacher_answers=gold_as_teacher
        )
        best[teacher_tags] = max(h["eval_f1"] for h in history if "eval_f1" in h)
        if teacher_tags:
            preds = decode_predictions(model, feat, exs, None, teacher_answers=gold_as_teacher)
            assert model.tag_embeddings.weight[0].abs().sum() == 0  # "no tag" stays the zero vector
    assert best[True] == 1.0 and best[False] < 0.6
    again, feat2 = load_encoder_student(tmp_path / "tags-True" / "best")
    assert again.config.teacher_tags and again.config.eval_view == "knowledge"
    reloaded = decode_predictions(again, feat2, exs, None, teacher_answers=gold_as_teacher)
    assert [p.answer for p in reloaded] == [p.answer for p in preds]


def test_train_sampling_is_checked_and_reaches_the_trainer(tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from cotdistill.student.encoder_data import EncoderDataset
    from cotdistill.student.train import training_arguments

    with pytest.raises(
        StudentConfigError, match="train_sampling='shuffled': expected one of group_by_length"
    ):
        EncoderTrainingConfig(output_dir=str(tmp_path), train_sampling="shuffled")
    args = training_arguments(EncoderTrainingConfig(output_dir=str(tmp_path)))
    assert args.train_sampling_strategy == "group_by_length"
    # the student's features are dicts with input_ids, which is what the length-grouped sampler reads
    tok = tiny_wordpiece_tokenizer(tmp_path / "tok")
    cfg = EncoderConfig(model="unused", labels=["LOC", "ORG", "PER"], use_knowledge=False, max_length=32)
    ds = EncoderDataset(EncoderFeaturizer(cfg, tok), examples(), None, train=True)
    order = list(LengthGroupedSampler(4, dataset=ds, generator=torch.Generator().manual_seed(0)))
    assert sorted(order) == list(range(len(ds)))
    longest = max(range(len(ds)), key=lambda i: len(ds[i]["input_ids"]))
    assert order[0] == longest  # the longest post leads, so the first batch shows the peak memory at once
