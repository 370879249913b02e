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
    EncoderTagger,
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
    from cotdistill.run.config import ConfigError
    from cotdistill.run.stages.student import encoder_config
    from cotdistill.run.validation import load_config

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


def test_parse_plausible_reads_the_verdict_or_nothing():
    from cotdistill.student.teacher_free import parse_plausible

    assert parse_plausible("New post: ...\nPlausible: yes, because Mets fans do say that") is True
    assert parse_plausible("plausible - NO because a city cannot sign a contract") is False
    assert parse_plausible("No. A band does not play shortstop.") is False
    assert parse_plausible("Plausible: yesterday it was") is None  # not a verdict
    assert parse_plausible("I cannot tell") is None and parse_plausible(None) is None


class Judge:
    """A teacher backend that finds a post implausible when it names Obama, fails on one copy, and
    counts its calls."""

    name = "judge"
    model = "judge"

    def __init__(self, fail_id):
        self.fail_id, self.calls = fail_id, 0

    def ensure_loaded(self):
        pass

    def generate(self, requests):
        from cotdistill.distill.backends.base import Generation
        from cotdistill.records import Usage

        self.calls += len(requests)
        out = []
        for r in requests:
            post = str(r.messages)
            text = "Plausible: no, because" if "Obama" in post else "Plausible: yes, because"
            error = "teacher error" if r.example_id == self.fail_id else None
            out.append(
                Generation(
                    key=r.key,
                    example_id=r.example_id,
                    template=r.template,
                    sample=r.sample,
                    text=None if error else text,
                    usage=Usage(10, 5, 0.0),
                    error=error,
                    model="judge",
                )
            )
        return out


def test_the_teacher_judges_the_swapped_posts_and_the_verdicts_are_kept(tmp_path):
    import json

    from cotdistill.run.context import RunContext
    from cotdistill.run.stages.student import plausibility_check
    from cotdistill.run.validation import load_config
    from cotdistill.tasks import TaskSpec

    exs = examples()
    copies, _ = entity_substitution(exs, copies=2, seed=1)
    config = load_config(
        None,
        [
            f"run_dir={tmp_path}",
            "teacher.backend=echo",
            "student.knowledge_text=false",
            "student.augment_copies=2",
            "student.augment_check=true",
        ],
    )
    spec = TaskSpec.from_examples("mner", exs)
    fail = copies[-1].id
    judge = Judge(fail)
    kept = plausibility_check(RunContext(config, judge=judge), spec)(copies)
    expected = [c for c in copies if "Obama" not in c.text and c.id != fail]
    assert 0 < len(expected) < len(copies) - 1  # the draw made both kinds of copy
    assert [c.id for c in kept] == [c.id for c in expected]
    counts = json.loads((config.path / "student" / "augment" / "check.json").read_text())
    named = sum("Obama" in c.text for c in copies if c.id != fail)
    assert counts == {
        "copies": len(copies),
        "plausible": len(expected),
        "implausible": named,
        "unreadable": 0,
        "failed": 1,
    }
    assert judge.calls == len(copies)
    again = Judge(
        fail
    )  # a rerun reads the saved verdicts (failed requests are redone only by --retry-failed)
    assert [c.id for c in plausibility_check(RunContext(config, judge=again), spec)(copies)] == [
        c.id for c in expected
    ]
    assert again.calls == 0


def test_train_encoder_trains_on_the_copies_the_check_keeps(tiny, tmp_path):
    model_dir, tok = tiny
    exs = examples()
    seen = []

    def keep_first(copies):
        seen.extend(copies)
        return copies[:1]

    cfg = EncoderConfig(model=model_dir, task="mner", augment_copies=2, augment_check=True)
    _, _, history = train_encoder(
        cfg, training(tmp_path, epochs=1), exs, exs[:2], tokenizer=tok, augment_check=keep_first
    )
    assert len(seen) == 2 * sum(bool(ex.gold.entities) for ex in exs)
    steps = next(h["step"] for h in history if "train_runtime" in h)
    assert steps == -(-(len(exs) + 1) // 8)  # the posts and the one kept copy, batches of 8


def test_the_plausibility_check_needs_a_teacher_that_runs_a_model():
    from cotdistill.run.config import ConfigError
    from cotdistill.run.validation import load_config

    with pytest.raises(ConfigError, match="replay backend only gives back saved generations"):
        load_config(
            None,
            [
                "teacher.backend=replay",
                "student.knowledge_text=false",
                "student.augment_copies=1",
                "student.augment_check=true",
            ],
        )
    with pytest.raises(ConfigError, match="set augment_copies to 1 or more"):
        load_config(None, ["student.knowledge_text=false", "student.augment_check=true"])


def test_the_conditional_prompt_depends_on_the_post_and_reloads(tiny, tmp_path):
    from test_encoder_student import KNOWLEDGE

    path, tok = tiny
    exs = examples()
    with pytest.raises(StudentConfigError, match="set conditional_distillation=True"):
        EncoderConfig(model=path, conditional_prompt=True)
    cfg = EncoderConfig(
        model=path,
        use_knowledge=True,
        conditional_distillation=True,
        conditional_prompt=True,
        max_length=64,
        dropout=0.0,
    )
    fresh = EncoderTagger(cfg)
    assert not fresh.prompt_net[2].weight.any()  # it starts as the plain prompt
    model, feat, history = train_encoder(cfg, training(tmp_path / "run"), exs, exs, KNOWLEDGE, tokenizer=tok)
    assert max(h["eval_f1"] for h in history if "eval_f1" in h) > 0.8  # scored on the post alone
    net = model.prompt_net.cpu()
    assert net[2].weight.abs().sum() > 0  # the meta-network trained
    batch = collate([feat.encode(ex, None, "plain") for ex in exs[:2]], tok.pad_token_id)
    embeds = model.encoder.get_input_embeddings()(batch["input_ids"])
    mask = batch["attention_mask"].unsqueeze(-1).float()
    shift = net((embeds * mask).sum(1) / mask.sum(1))
    assert not torch.allclose(shift[0], shift[1])  # two posts, two prompts
    reloaded, rfeat = load_encoder_student(tmp_path / "run" / "best")
    assert [p.answer for p in decode_predictions(reloaded, rfeat, exs, None)] == [
        p.answer for p in decode_predictions(model, feat, exs, None)
    ]


def test_posts_without_gold_train_through_the_frozen_students_soft_targets_alone(tiny, tmp_path):
    from dataclasses import replace

    path, tok = tiny
    exs = examples()
    labelled, rest = exs[:4], exs[4:]
    answers = {ex.id: ex.gold for ex in exs}  # the teacher's answers, on every post
    t_cfg = EncoderConfig(model=path, use_knowledge=False, teacher_tags=True, max_length=40, dropout=0.0)
    train_encoder(
        t_cfg, training(tmp_path / "t", epochs=2), exs, exs, None, tokenizer=tok, teacher_answers=answers
    )
    teacher_dir = str(tmp_path / "t" / "best")
    cfg = EncoderConfig(
        model=path,
        labels=t_cfg.labels,
        use_knowledge=False,
        max_length=40,
        dropout=0.0,
        distill_from=teacher_dir,
    )
    # gold on the unlabelled posts, made wrong on purpose: none of it may reach training
    wrong = [
        replace(ex, gold=EntityAnswer(tuple(replace(e, type="ORG") for e in ex.gold.entities))) for ex in rest
    ]
    with pytest.raises(StudentConfigError, match="set distill_from"):
        train_encoder(
            replace(cfg, distill_from=""),
            training(tmp_path / "x"),
            labelled,
            labelled,
            tokenizer=tok,
            unlabeled_examples=wrong,
        )
    with pytest.raises(StudentConfigError, match="share an id"):
        train_encoder(
            cfg,
            training(tmp_path / "x"),
            labelled,
            labelled,
            tokenizer=tok,
            teacher_answers=answers,
            unlabeled_examples=[replace(wrong[0], id=labelled[0].id)],
        )

    from cotdistill.labelled import without_gold

    feat = EncoderFeaturizer(cfg, tok)
    frozen = FrozenTeacher(teacher_dir, cfg.labels)
    stripped = [without_gold(ex) for ex in wrong]
    assert all(ex.gold.entities == () and "tags" not in ex.meta for ex in stripped)
    ds = EncoderDataset(
        feat, labelled, None, train=True, teacher_answers=answers, frozen_teacher=frozen, unlabeled=stripped
    )
    assert [f["gold_mask"] for f in ds.features] == [[1]] * len(labelled) + [[0]] * len(rest)
    model = EncoderTagger(cfg)
    model.eval()
    both = collate(ds.features, tok.pad_token_id)
    soft = frozen.soft_targets(both)
    out = model(**both, soft_targets=soft)
    alone = collate(
        EncoderDataset(feat, labelled, None, train=True, teacher_answers=answers).features, tok.pad_token_id
    )
    assert torch.isclose(
        out["task_loss"], model(**alone)["task_loss"], atol=1e-5
    )  # gold of labelled posts only
    only = collate(ds.features[len(labelled) :], tok.pad_token_id)
    soft = frozen.soft_targets(only)
    out = model(**only, soft_targets=soft)
    assert out["task_loss"] == 0 and out["kd_loss"] > 0
    out["loss"].backward()
    assert model.head.weight.grad.abs().sum() > 0  # they train through the soft targets

    _, _, history = train_encoder(
        cfg,
        training(tmp_path / "s", epochs=1),
        labelled,
        labelled,
        tokenizer=tok,
        teacher_answers=answers,
        unlabeled_examples=wrong,
    )
    steps = next(h["step"] for h in history if "train_runtime" in h)
    assert steps == -(-len(exs) // 8)  # every post, labelled or not, once an epoch
