"""`cotdistill run` and `cotdistill demo`: every stage from one config, resume, --redo, failures."""

import json
import shutil

import pytest
from conftest import REPO

from cotdistill.readers import load_split
from cotdistill.run.cli import main
from cotdistill.run.demo import build_tiny_models, smoke_config_path, write_synthetic_twitter

SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    data = write_synthetic_twitter(root / "data")
    teacher, student = build_tiny_models(root / "models")
    return data, teacher, student


def overrides(tmp_path, assets, *extra):
    data, teacher, student = assets
    return [
        f"run_dir={tmp_path / 'runs'}",
        f"data.data_dir={data}",
        f"teacher.model={teacher}",
        f"student.model={student}",
        *extra,
    ]


def stages(tmp_path, name="smoke"):
    return json.loads((tmp_path / "runs" / name / "stages.json").read_text())


def test_synthetic_data_reads_as_twitter2015(assets):
    data, _, _ = assets
    test = load_split("twitter2015", data, "test")
    assert len(test.examples) == 20 and test.report.images_missing == 0
    assert all(ex.meta.get("caption") for ex in test.examples)
    types = {e.type for ex in test.examples for e in ex.gold.entities}
    assert types <= {"PER", "LOC", "ORG", "OTHER"} and len(types) >= 3


def test_the_demo_config_ships_with_the_package():
    assert smoke_config_path().read_text() == (REPO / "configs" / "smoke.yaml").read_text()


def test_demo_writes_the_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "not what real models score" in out and "cotdistill demo --config configs/twitter2015.yaml" in out
    report = tmp_path / "runs" / "smoke" / "report"
    for name in ("report.md", "report.html", "metrics.json"):
        assert (report / name).is_file(), name
    assert str(report / "report.html") in out
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["systems"]) == {"teacher", "student"}
    assert metrics["examples"] == 20
    # a demo worth seeing: the taught teacher gets answers right, some knowledge is kept, the teacher-tags
    # student trains on it, and the report names the data for what it is
    assert metrics["systems"]["teacher"]["f1"] > 0.4, metrics["systems"]["teacher"]
    knowledge = stages(tmp_path)["knowledge"]["summary"]["train"]
    assert 0 < knowledge["kept"] < 40, knowledge
    assert metrics["systems"]["student"]["f1"] > 0.4, metrics["systems"]["student"]
    assert "# Comparison on synthetic Twitter-style posts test" in (report / "report.md").read_text()
    rationale = json.loads((tmp_path / "runs" / "smoke" / "knowledge" / "train.jsonl").open().readline())
    assert " is a" in rationale["grains"]["mner.noun"], rationale  # readable words, not random bytes
    # the console shows our lines and bars; the libraries' messages and bars go to the run's log file
    for noise in (
        "Loading weights",
        "Writing model shards",
        "Saving the dataset",
        "'eval_f1'",
        "[transformers]",
    ):
        assert noise not in out + captured.err, noise
    assert "epoch 1: dev F1" in out + captured.err
    assert "[train] done" in (tmp_path / "runs" / "smoke" / "log.txt").read_text()
    log = stages(tmp_path)
    assert list(log) == ["generate", "knowledge", "train", "predict", "evaluate", "compare"]
    # the teacher saw the images: every generation succeeded through the VLM path
    manifest = json.loads((tmp_path / "runs" / "smoke" / "teacher" / "test" / "manifest.json").read_text())
    assert manifest["generations"] == 80 and manifest["failed"] == 0
    # a second demo resumes: every stage is skipped and nothing is rewritten
    before = (report / "metrics.json").stat().st_mtime_ns
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert "[compare] finished" in capsys.readouterr().out
    assert (report / "metrics.json").stat().st_mtime_ns == before


def test_run_redo_moves_earlier_outputs_aside(tmp_path, assets, capsys):
    args = overrides(tmp_path, assets)
    assert main(["run", SMOKE, *args, "--stop-after", "train"]) == 0
    assert list(stages(tmp_path)) == ["generate", "knowledge", "train"]
    shards = sorted((tmp_path / "runs" / "smoke" / "teacher" / "train").glob("shard-*.jsonl"))
    assert main(["run", SMOKE, *args]) == 0
    assert list(stages(tmp_path))[-1] == "compare"
    capsys.readouterr()
    assert main(["run", SMOKE, *args, "--redo", "train"]) == 0
    out = capsys.readouterr().out
    assert "[generate] finished" in out and "[knowledge] finished" in out and "[train] running" in out
    run = tmp_path / "runs" / "smoke"
    assert (run / "previous" / "1" / "student" / "best").is_dir()  # moved, never deleted
    assert (run / "previous" / "1" / "predictions" / "student-test.jsonl").is_file()
    assert (run / "student" / "best").is_dir() and (run / "report" / "report.html").is_file()
    assert sorted((run / "teacher" / "train").glob("shard-*.jsonl")) == shards  # the teacher was not rerun


def test_a_failed_stage_says_which_and_the_rerun_resumes(tmp_path, assets, capsys):
    args = overrides(tmp_path, assets)
    # a path that does not exist is caught before anything runs, naming the key and the absolute path
    missing = [*args, f"student.model={tmp_path / 'no-such-model'}"]
    assert main(["run", SMOKE, *missing]) == 2
    err = capsys.readouterr().err
    assert (
        f"student.model: {tmp_path / 'no-such-model'} does not exist" in err
        and "set student.model=PATH" in err
    )
    assert not (tmp_path / "runs" / "smoke" / "teacher").exists()
    # a package folder that holds the model one level down: the error names it
    (tmp_path / "pkg" / "model").mkdir(parents=True)
    (tmp_path / "pkg" / "model" / "config.json").write_text("{}")
    assert main(["run", SMOKE, *args, f"student.model={tmp_path / 'pkg'}"]) == 2
    assert f"did you mean student.model={tmp_path / 'pkg' / 'model'}?" in capsys.readouterr().err
    # a model folder that exists but cannot be loaded fails at its stage, after the teacher ran
    broken = [*args, f"student.model={tmp_path / 'pkg' / 'model'}"]
    assert main(["run", SMOKE, *broken]) == 1
    err = capsys.readouterr().err
    assert "stage 'train' failed" in err and "rerun the same command to resume at 'train'" in err
    assert list(stages(tmp_path)) == ["generate", "knowledge"]
    shards = sorted((tmp_path / "runs" / "smoke" / "teacher").rglob("shard-*.jsonl"))
    assert main(["run", SMOKE, *args]) == 0
    out = capsys.readouterr().out
    assert "[generate] finished" in out and "[train] running" in out
    assert sorted((tmp_path / "runs" / "smoke" / "teacher").rglob("shard-*.jsonl")) == shards
    # a changed config does not redo a finished stage on its own, but says so
    assert main(["run", SMOKE, *args, "student.epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "[train] finished" in out and "--redo train" in out
    assert (tmp_path / "runs" / "smoke" / "config.previous-1.yaml").is_file()


def test_run_rejects_unknown_keys_and_stages(tmp_path, assets, capsys):
    assert main(["run", SMOKE, *overrides(tmp_path, assets), "studnet.epochs=1"]) == 2
    assert "did you mean 'student'" in capsys.readouterr().err
    assert main(["run", SMOKE, *overrides(tmp_path, assets), "student.kind=decoder"]) == 2
    assert "expected one of encoder, generative" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", SMOKE, "--redo", "everything"])


def test_run_with_a_generative_text_student(tmp_path, assets):
    from cotdistill.run.demo.tiny import tiny_qwen2_lm

    lm = tiny_qwen2_lm(tmp_path / "lm")
    args = overrides(
        tmp_path,
        assets,
        "student.kind=generative",
        f"student.model={lm}",
        "student.use_caption=true",
        "student.lora_r=4",
        "student.epochs=1",
        "student.max_new_tokens=8",
        "student.max_length=512",
        "student.learning_rate=0.001",
    )
    assert main(["run", SMOKE, *args]) == 0
    run = tmp_path / "runs" / "smoke"
    meta = json.loads((run / "student" / "best" / "cotdistill_student.json").read_text())
    assert meta["kind"] == "generative" and meta["vision"] is False
    lines = (run / "predictions" / "student-test.jsonl").read_text().splitlines()
    assert len(lines) == 20
    assert json.loads((run / "report" / "metrics.json").read_text())["systems"]["student"]["coverage"] == 1.0
    assert main(["merge", SMOKE, *args]) == 0
    assert (run / "student" / "merged" / "config.json").is_file()


def test_stage_commands_share_the_run_directory(tmp_path, assets):
    args = overrides(tmp_path, assets)
    for cmd in ("generate", "knowledge", "train"):
        assert main([cmd, SMOKE, *args]) == 0
    assert main(["predict", SMOKE, *args, "--teacher"]) == 0
    preds = tmp_path / "runs" / "smoke" / "predictions"
    teacher = [json.loads(x) for x in (preds / "teacher-test.jsonl").read_text().splitlines()]
    assert len(teacher) == 20 and all(t["raw"] for t in teacher)  # unparsable answers keep their raw text
    assert all(t["usage"]["prompt_tokens"] > 0 for t in teacher)
    shutil.rmtree(tmp_path / "runs" / "smoke" / "predictions")
    assert main(["run", SMOKE, *args]) == 0  # picks up at the first stage it has no record of


def test_run_on_relation_extraction(tmp_path, assets):
    """The MRE path end to end: MNRE-format files, a teacher answering with relation labels, the pair classifier."""
    _, _, student = assets
    data = tmp_path / "mnre"
    data.mkdir()
    records = [
        (["Bill", "Gates", "founded", "Microsoft"], (0, 2), (3, 4), "/per/org/member_of"),
        (["Obama", "visits", "Paris", "today"], (0, 1), (2, 3), "/per/loc/place_of_residence"),
        (["Apple", "opens", "in", "London"], (0, 1), (3, 4), "/org/loc/locate_at"),
        (["Messi", "and", "Taylor", "Swift"], (0, 1), (2, 4), "None"),
    ]
    for split, name in (("train", "mnre_train.txt"), ("valid", "mnre_val .txt"), ("test", "mnre_test.txt")):
        lines = []
        for k in range(3):
            for i, (tokens, h, t, label) in enumerate(records):
                rec = {
                    "token": tokens,
                    "h": {"name": " ".join(tokens[h[0] : h[1]]), "pos": list(h)},
                    "t": {"name": " ".join(tokens[t[0] : t[1]]), "pos": list(t)},
                    "img_id": f"{split}{k}{i}.jpg",
                    "relation": label,
                }
                lines.append(repr(rec))
        (data / name).write_text("\n".join(lines) + "\n")
    args = [
        f"run_dir={tmp_path / 'runs'}",
        "data.dataset=mnre",
        f"data.data_dir={data}",
        "teacher.backend=echo",
        "teacher.model=echo",
        "teacher.templates=[mre.sentence, mre.answer]",
        "knowledge.answer_template=mre.answer",
        # the whole mapping (the smoke config's transformers options do not apply); quoted: values are YAML
        'teacher.options={text: \'{"relation": "/per/org/member_of"}\'}',
        f"student.model={student}",
        "student.crf=false",
    ]
    assert main(["run", SMOKE, *args]) == 0
    run = tmp_path / "runs" / "smoke"
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["task"] == "mre" and "confusion" in metrics
    teacher = metrics["systems"]["teacher"]
    # always member_of: 3 of its 12 answers right; 3 of the 9 gold relations (not None) found
    assert teacher["parse_failures"] == 0
    assert abs(teacher["precision"] - 3 / 12) < 1e-9 and abs(teacher["recall"] - 3 / 9) < 1e-9
    preds = [json.loads(x) for x in (run / "predictions" / "student-test.jsonl").read_text().splitlines()]
    assert len(preds) == 12 and all(p["answer"]["relations"][0]["label"] for p in preds)


@pytest.mark.parametrize("teacher_tags", [False, True])
def test_run_on_attribute_extraction(tmp_path, assets, teacher_tags):
    """The MAE path end to end: MEPAVE-format files, a teacher answering attribute values, the character
    tagger (reading the knowledge text, or the teacher's answers as tags alone)."""
    _, _, student = assets
    data = tmp_path / "mepave"
    data.mkdir()
    (data / "vocab.label").write_text("[PAD]\n[UNK]\n材质\n颜色\n", encoding="utf-8")
    rows = [
        ("红色真皮单肩包", "<颜色>红色</颜色><材质>真皮</材质>单肩包"),
        ("黑色棉质衬衫", "<颜色>黑色</颜色><材质>棉质</材质>衬衫"),
        ("真皮钱包", "<材质>真皮</材质>钱包"),
    ]
    for split in ("train", "valid", "test"):
        lines = [
            f"c_{split}{k}{i}\ts_{split}{k}{i}\t{text}\t{annotated}"
            for k in range(3)
            for i, (text, annotated) in enumerate(rows)
        ]
        (data / f"jdai.jave.fashion.{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [
        f"run_dir={tmp_path / 'runs'}",
        "data.dataset=mepave",
        f"data.data_dir={data}",
        "teacher.backend=echo",
        "teacher.model=echo",
        "teacher.templates=[mae.answer]",
        "knowledge.answer_template=mae.answer",
        'teacher.options={text: \'{"values": [{"attribute": "材质", "value": "真皮"}]}\'}',
        f"student.model={student}",
        "student.crf=false",
    ]
    if teacher_tags:
        args += ["student.teacher_tags=true", "student.knowledge_text=false"]
    assert main(["run", SMOKE, *args]) == 0
    if teacher_tags:
        from cotdistill.run.stages.common import student_teacher_answers
        from cotdistill.run.validation import load_config

        meta = json.loads(
            (tmp_path / "runs" / "smoke" / "student" / "best" / "cotdistill_student.json").read_text()
        )
        assert meta["teacher_tags"] is True and meta["use_knowledge"] is False
        answers = student_teacher_answers(load_config(SMOKE, args), ["test"])
        # the echo teacher's one value is found in 6 of the 9 test titles (a value not in the text has no span)
        assert len(answers) == 9 and sum(v.start is not None for a in answers.values() for v in a.values) == 6
    metrics = json.loads((tmp_path / "runs" / "smoke" / "report" / "metrics.json").read_text())
    teacher = metrics["systems"]["teacher"]
    assert metrics["task"] == "mae" and teacher["parse_failures"] == 0
    # "真皮" as 材质 is right in 6 of the 9 test titles and wrong (not in the text) in 3; 15 gold values in all
    assert abs(teacher["precision"] - 6 / 9) < 1e-9 and abs(teacher["recall"] - 6 / 15) < 1e-9


def test_student_reads_knowledge_records_and_names_a_bad_line(tmp_path):
    from cotdistill.readers import DataFormatError
    from cotdistill.run.stages.common import student_knowledge, student_teacher_answers
    from cotdistill.run.validation import load_config

    config = load_config(SMOKE, [f"run_dir={tmp_path}", "student.knowledge=kept"])
    folder = config.path / "knowledge"
    folder.mkdir(parents=True)
    ents = {"task": "mner", "entities": [{"start": 0, "end": 1, "type": "PER", "text": "Obama"}]}
    rows = [
        {"id": "a", "kept": True, "knowledge": "Obama is a person", "answer": ents},
        {"id": "b", "kept": False, "knowledge": "dropped", "answer": ents},
        {"id": "c", "kept": True, "knowledge": "", "answer": None},
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert student_knowledge(config, ["train"]) == {"a": "Obama is a person"}
    answers = student_teacher_answers(config, ["train"])
    assert list(answers) == ["a"] and answers["a"].entities[0].text == "Obama"
    rows[2]["answer"] = {"task": "mner", "entities": [{"start": 0}]}
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for read in (student_teacher_answers, student_knowledge):  # one reader checks every record whole
        with pytest.raises(
            DataFormatError, match=r"train\.jsonl:3: not a knowledge record.*missing field 'end'"
        ):
            read(config, ["train"])
    (folder / "train.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(DataFormatError, match=r"train\.jsonl:1: not a knowledge record"):
        student_knowledge(config, ["train"])


def test_max_examples_reads_a_fixed_subset_and_is_checked(tmp_path, assets, capsys):
    from cotdistill.run.context import RunContext
    from cotdistill.run.validation import load_config

    config = load_config(SMOKE, [*overrides(tmp_path, assets), "data.max_examples={train: 5, test: 3}"])
    splits = RunContext(config).splits()
    full = load_split("twitter2015", assets[0], "train").examples
    assert [ex.id for ex in splits["train"].examples] == [ex.id for ex in full[:5]]
    assert len(splits["test"].examples) == 3 and len(splits["valid"].examples) > 3
    assert main(["run", SMOKE, *overrides(tmp_path, assets), "data.max_examples={tain: 5}"]) == 2
    assert "'tain' is not a split" in capsys.readouterr().err
    assert main(["run", SMOKE, *overrides(tmp_path, assets), "data.max_examples={train: 0}"]) == 2
    assert "must be a whole number" in capsys.readouterr().err


def test_resume_passes_over_a_checkpoint_cut_short_while_saving(tmp_path):
    from cotdistill.run.checkpoints import last_checkpoint as _last_checkpoint

    def checkpoint(step, cut=None):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        blob = len(header).to_bytes(8, "little") + header + b"\0" * 16
        files = {
            "model.safetensors": blob,
            "optimizer.pt": b"x",
            "scheduler.pt": b"x",
            "trainer_state.json": json.dumps({"global_step": step}).encode(),
        }
        if cut == "weights":
            files["model.safetensors"] = blob[:-5]
        elif cut == "state":
            files["trainer_state.json"] = b'{"global_st'
        elif cut == "optimizer":
            del files["optimizer.pt"]
        for name, data in files.items():
            (folder / name).write_bytes(data)

    checkpoint(10)
    checkpoint(20)
    assert _last_checkpoint(tmp_path).endswith("checkpoint-20")
    checkpoint(30, cut="weights")
    checkpoint(40, cut="state")
    checkpoint(50, cut="optimizer")
    assert _last_checkpoint(tmp_path).endswith("checkpoint-20")


def test_a_second_run_on_the_same_directory_is_refused(tmp_path, assets, capsys):
    from cotdistill.locking import exclusive

    args = overrides(tmp_path, assets)
    with exclusive(tmp_path / "runs" / "smoke"):
        assert main(["run", SMOKE, *args]) == 2
        assert "is being written by another cotdistill process" in capsys.readouterr().err
        assert main(["train", SMOKE, *args]) == 2
    assert not (tmp_path / "runs" / "smoke" / "stages.json").exists()


def test_a_teacher_that_fails_every_request_does_not_finish_the_stage(tmp_path, assets, capsys):
    data = assets[0]
    ids = [ex.id for s in ("train", "valid", "test") for ex in load_split("twitter2015", data, s).examples]
    args = [
        *overrides(tmp_path, assets),
        "teacher.backend=echo",
        "teacher.model=echo",
        f"teacher.options={{text: x, fail_ids: [{', '.join(repr(i) for i in ids)}]}}",
    ]
    assert main(["run", SMOKE, *args]) == 1
    err = capsys.readouterr().err
    assert "stage 'generate' failed" in err and "the teacher failed every one of the" in err
    assert "--retry-failed" in err
    assert not (tmp_path / "runs" / "smoke" / "stages.json").exists() or "generate" not in stages(tmp_path)
    # fixed teacher: retry the failures, then the run goes on from generate
    fixed = [
        *overrides(tmp_path, assets),
        "teacher.backend=echo",
        "teacher.model=echo",
        "teacher.options={text: x}",
    ]
    assert main(["generate", SMOKE, *fixed, "--retry-failed"]) == 0
    assert main(["run", SMOKE, *fixed, "--stop-after", "knowledge"]) == 0
    assert list(stages(tmp_path)) == ["generate", "knowledge"]


def test_a_teacher_free_student_through_the_run_command(tmp_path, assets):
    """Two runs: a student reading the teacher's tags, then a text-only student distilled from it, trained
    on entity-substituted copies the teacher judged plausible; it predicts test without the teacher."""
    answer = '{"entities": [{"text": "Paris", "type": "LOC"}]}'
    common = overrides(
        tmp_path,
        assets,
        "teacher.backend=echo",
        "teacher.model=echo",
        "teacher.templates=[mner.answer]",
        "knowledge.answer_template=mner.answer",
        f"teacher.options={{text: 'Plausible: yes, because it reads well. {answer}'}}",
        "student.crf=false",
        "student.knowledge_text=false",
        "student.epochs=1",
    )
    assert main(["run", SMOKE, *common, "name=tags", "student.teacher_tags=true"]) == 0
    tags = tmp_path / "runs" / "tags"
    free = [
        "name=free",
        f"student.distill_from={tags / 'student' / 'best'}",
        "student.augment_copies=1",
        "student.augment_check=true",
    ]
    assert main(["run", SMOKE, *common, *free]) == 0
    run = tmp_path / "runs" / "free"
    meta = json.loads((run / "student" / "best" / "cotdistill_student.json").read_text())
    assert meta["distill_from"] == str(tags / "student" / "best") and meta["augment_check"] is True
    assert not meta["teacher_tags"] and not meta["use_knowledge"]  # the post alone at test time
    train = load_split("twitter2015", assets[0], "train").examples
    counts = json.loads((run / "student" / "augment" / "check.json").read_text())
    copies = sum(bool(ex.gold.entities) for ex in train)
    assert counts == {"copies": copies, "plausible": copies, "implausible": 0, "unreadable": 0, "failed": 0}
    preds = (run / "predictions" / "student-test.jsonl").read_text().splitlines()
    assert len(preds) == len(load_split("twitter2015", assets[0], "test").examples)
