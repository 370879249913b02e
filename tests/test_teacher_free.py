"""Teacher-free encoder students: distillation from a frozen student, entity substitution, auxiliary tags."""

import pytest
import torch
from test_encoder_student import ambiguous_examples, examples
from tiny import tiny_bert, tiny_wordpiece_tokenizer

from cotdistill.records import Entity, EntityAnswer
from cotdistill.student.encoder import (
    EncoderConfig,
    EncoderDataset,
    EncoderFeaturizer,
    StudentConfigError,
    collate,
    decode_predictions,
    load_encoder_student,
)
from cotdistill.student.teacher_free import FrozenTeacher, entity_substitution
from cotdistill.student.train import EncoderTrainingConfig, train_encoder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    tok = tiny_wordpiece_tokenizer(root / "model")
    tiny_bert(root / "model", vocab_size=len(tok))
    return str(root / "model"), tok


def training(out, epochs=30):
    return EncoderTrainingConfig(
        output_dir=str(out), epochs=epochs, learning_rate=5e-3, batch_size=8, seed=0, warmup_ratio=0.0
    )


def test_entity_substitution_moves_gold_and_teacher_spans():
    exs = examples()
    teacher = {
        "0": EntityAnswer((Entity(0, 2, "PER", "Barack Obama"), Entity(2, 3, "MISC", "visits"))),
        "4": EntityAnswer((Entity(1, 2, "LOC", "York"),)),  # cut through by the swap of "New York Mets"
    }
    copies, moved = entity_substitution(exs, copies=2, seed=3, teacher_answers=teacher)
    with_entities = [ex for ex in exs if ex.gold.entities]
    assert len(copies) == 2 * len(with_entities)
    pool = {(e.type, e.text) for ex in exs for e in ex.gold.entities}
    by_id = {ex.id: ex for ex in exs}
    for c in copies:
        src = by_id[c.id.split("~")[0]]
        assert [e.type for e in c.gold.entities] == [e.type for e in src.gold.entities]
        for e in c.gold.entities:  # every new entity is a training entity of the same type, in place
            assert (e.type, " ".join(c.tokens[e.start : e.end])) in pool
        outside = [
            t for i, t in enumerate(src.tokens) if not any(e.start <= i < e.end for e in src.gold.entities)
        ]
        inside = {i for e in c.gold.entities for i in range(e.start, e.end)}
        assert [t for i, t in enumerate(c.tokens) if i not in inside] == outside
        assert c.text == " ".join(c.tokens) and "tags" not in c.meta
    for k in (0, 1):
        c = next(x for x in copies if x.id == f"0~sub{k}")
        got = moved[c.id].entities
        assert got[0].start == c.gold.entities[0].start and got[0].end == c.gold.entities[0].end
        assert got[1].type == "MISC" and c.tokens[got[1].start] == "visits"
        assert moved[f"4~sub{k}"].entities == ()  # the cut span is dropped, not misplaced
    assert not any(x.id.startswith("7~") for x in copies)  # a post without entities is not copied


def test_frozen_teacher_distils_into_a_text_only_student(tiny, tmp_path):
    path, tok = tiny
    exs = ambiguous_examples()
    gold_as_teacher = {ex.id: ex.gold for ex in exs}
    t_cfg = EncoderConfig(model=path, use_knowledge=False, teacher_tags=True, max_length=32, dropout=0.0)
    train_encoder(
        t_cfg, training(tmp_path / "t"), exs, exs, None, tokenizer=tok, teacher_answers=gold_as_teacher
    )
    teacher_dir = tmp_path / "t" / "best"

    with pytest.raises(StudentConfigError, match="labels"):
        FrozenTeacher(str(teacher_dir), ["LOC", "PER"])
    frozen = FrozenTeacher(str(teacher_dir), t_cfg.labels)
    teacher_model, _ = load_encoder_student(teacher_dir)
    cfg = EncoderConfig(
        model=path, labels=t_cfg.labels, use_knowledge=False, max_length=32, distill_from=str(teacher_dir)
    )
    feat = EncoderFeaturizer(cfg, tok)
    ds = EncoderDataset(feat, exs, None, train=True, teacher_answers=gold_as_teacher, frozen_teacher=frozen)
    batch = collate(ds.features, tok.pad_token_id)
    assert "teacher_tag_ids" not in batch and "kd_teacher_tag_ids" in batch  # the student reads the post only
    soft = frozen.soft_targets(dict(batch))
    assert soft.shape == (sum(len(ex.tokens) for ex in exs), len(cfg.bio_labels))
    want = teacher_model.emissions(
        batch["kd_input_ids"],
        batch["kd_attention_mask"],
        batch.get("kd_token_type_ids"),
        teacher_tag_ids=batch["kd_teacher_tag_ids"],
    )[batch["kd_labels"] != -100]
    assert torch.allclose(soft, want.float())
    # the teacher knows the ambiguous posts' entities: its soft targets pick the gold tags
    gold = batch["labels"][batch["labels"] != -100]
    assert (soft.argmax(-1) == gold).float().mean() == 1.0

    model, _, _ = train_encoder(
        cfg,
        training(tmp_path / "kd", epochs=2),
        exs,
        exs,
        None,
        tokenizer=tok,
        teacher_answers=gold_as_teacher,
    )
    inputs = {k: v for k, v in batch.items() if not k.startswith("kd_")}
    model.train()
    with_kd = model(**inputs, soft_targets=soft)
    assert with_kd["kd_loss"] > 0
    assert torch.isclose(
        with_kd["loss"], with_kd["task_loss"] + cfg.kd_weight * with_kd["kd_loss"], atol=1e-5
    )
    model.eval()
    with torch.no_grad():
        own = model.emissions(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))
    assert float(model._kd(own[inputs["labels"] != -100], own[inputs["labels"] != -100])) == pytest.approx(
        0, abs=1e-6
    )
    # saved and run text-only: no teacher answers needed at test time
    again, feat2 = load_encoder_student(tmp_path / "kd" / "best")
    assert again.config.distill_from == str(teacher_dir) and again.config.eval_view == "plain"
    assert len(decode_predictions(again, feat2, exs, None)) == len(exs)


def test_auxiliary_teacher_tags_are_a_training_target_only(tiny, tmp_path):
    path, tok = tiny
    exs = examples()
    teacher = {"0": EntityAnswer((Entity(3, 4, "ORG", "Paris"),))}
    cfg = EncoderConfig(model=path, labels=["LOC", "ORG", "PER"], use_knowledge=False, aux_teacher_tags=True)
    feat = EncoderFeaturizer(cfg, tok)
    f = feat.features(exs[0], None, True, teacher["0"])
    aux = [cfg.bio_labels[i] for i in f["aux_labels"] if i != -100]
    assert aux == ["O", "O", "O", "B-ORG"]  # the teacher's tags, on the words the gold labels sit on
    assert [a == -100 for a in f["aux_labels"]] == [lab == -100 for lab in f["labels"]]
    assert set(feat.features(exs[1], None, True, None)["aux_labels"]) == {-100}  # no answer: no target
    assert "aux_labels" not in feat.features(exs[0], None, False, teacher["0"])
    model, _, history = train_encoder(
        cfg, training(tmp_path / "x", 3), exs, exs, None, tokenizer=tok, teacher_answers=teacher
    )
    assert model.aux_head is not None and any("eval_f1" in h for h in history)


def test_teacher_free_settings_that_cannot_work_are_refused():
    with pytest.raises(StudentConfigError, match="reads the post alone"):
        EncoderConfig(model="x", use_knowledge=True, distill_from="t")
    with pytest.raises(StudentConfigError, match="reads the post alone"):
        EncoderConfig(model="x", use_knowledge=False, teacher_tags=True, aux_teacher_tags=True)
    with pytest.raises(StudentConfigError, match="needs MNER data"):
        EncoderConfig(model="x", task="mre", use_knowledge=False, augment_copies=1)
    with pytest.raises(StudentConfigError, match="0 or more"):
        EncoderConfig(model="x", use_knowledge=False, augment_copies=-1)


def test_the_run_config_names_a_teacher_free_student():
    from cotdistill.config import ConfigError, load_config
    from cotdistill.pipeline import encoder_config

    config = load_config(
        None,
        [
            "student.knowledge_text=false",
            "student.distill_from=runs/tags/student/best",
            "student.augment_copies=1",
            "student.kd_temperature=3",
        ],
    )
    cfg = encoder_config(config, ["LOC", "PER"], "mner")
    assert (cfg.distill_from, cfg.augment_copies, cfg.kd_temperature) == ("runs/tags/student/best", 1, 3.0)
    assert not cfg.use_knowledge and cfg.eval_view == "plain"  # no teacher at test time
    with pytest.raises(ConfigError, match="reads the post alone"):  # the knowledge text would be read
        load_config(None, ["student.distill_from=runs/tags/student/best"])
    with pytest.raises(ConfigError, match=r"student\.augment_copies is a setting of the encoder student"):
        load_config(None, ["student.kind=generative", "student.augment_copies=1"])
