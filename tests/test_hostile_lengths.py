"""Inputs longer than the student can read are known before training, never found at predict after a
trained student would be lost to them: a max_length above the model's positions and a post too long to
fit are refused up front; a post too long for its knowledge beside it is read alone (counted)."""

import pytest
from conftest import REPO

from cotdistill.readers import load_split
from cotdistill.run.cli import main
from cotdistill.run.demo import build_tiny_models, write_synthetic_twitter

SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("lengths")
    data = write_synthetic_twitter(root / "data")
    teacher, student = build_tiny_models(root / "models")
    return data, teacher, student


def run_args(tmp_path, demo, data=None, *extra):
    folder, teacher, student = demo
    return [
        "run",
        SMOKE,
        f"run_dir={tmp_path / 'runs'}",
        f"data.data_dir={data or folder}",
        f"teacher.model={teacher}",
        f"student.model={student}",
        *extra,
    ]


def test_max_length_above_the_models_positions_is_refused_before_anything_runs(tmp_path, demo, capsys):
    assert main(run_args(tmp_path, demo, None, "student.max_length=200")) == 2
    err = capsys.readouterr().err
    assert "student.max_length=200 is more than" in err and "(128 positions)" in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_a_post_too_long_for_max_length_is_refused_before_training(tmp_path, demo, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo[0], data)
    with open(data / "test.txt", "a", encoding="utf-8") as f:
        f.write("\nIMGID:9999\n" + "".join(f"word{k}\tO\n" for k in range(300)))
    assert len(load_split("twitter2015", data, "test").examples[-1].tokens) == 300
    assert main(run_args(tmp_path, demo, data)) == 2
    err = capsys.readouterr().err
    assert "1 posts do not fit student.max_length=128 even without knowledge" in err
    assert "test post 9999" in err and not (tmp_path / "runs").exists()


def test_a_post_that_fills_max_length_is_read_without_its_knowledge(demo):
    from transformers import AutoTokenizer

    from cotdistill.student.config import EncoderConfig
    from cotdistill.student.encoder_data import EncoderFeaturizer

    ex = load_split("twitter2015", demo[0], "train").examples[0]
    tokenizer = AutoTokenizer.from_pretrained(demo[2])
    cfg = EncoderConfig(model=demo[2], task="mner", labels=["PER", "LOC", "ORG", "OTHER"], max_length=32)
    feat = EncoderFeaturizer(cfg, tokenizer)
    words = list(ex.tokens) * 40
    k = max(k for k in range(1, len(words)) if feat.post_length(words[:k]) <= 32)
    assert feat.post_length(words[:k], pair=True) >= 32  # no room for even one knowledge token
    fits = type(ex)(ex.id, ex.task, " ".join(words[:k]), ex.gold, tokens=tuple(words[:k]))
    enc = feat.encode(fits, "some knowledge " * 50, "knowledge")  # before: the tokenizer refused the pair
    assert feat.knowledge_dropped == 1 and len(enc["input_ids"]) <= 32
    assert sum(label != -100 for label in enc["labels"]) == k  # every word of the post keeps its label
    too_long = type(ex)(ex.id, ex.task, " ".join(words), ex.gold, tokens=tuple(words))
    with pytest.raises(Exception, match="does not fit max_length"):
        feat.encode(too_long, None, "plain")


def test_report_to_names_a_known_tracker_whose_package_is_installed(tmp_path, demo, capsys):
    assert main(run_args(tmp_path, demo, None, "student.report_to=[tensorbord]")) == 2
    assert "student.report_to: 'tensorbord'; expected some of tensorboard, wandb" in capsys.readouterr().err
    import importlib.util

    if importlib.util.find_spec("wandb") is None:  # checked before the run folder is made
        assert main(run_args(tmp_path, demo, None, "student.report_to=[wandb]")) == 2
        assert "needs the 'wandb' package" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_report_to_reaches_the_trainer():
    from cotdistill.student.config import EncoderTrainingConfig
    from cotdistill.student.train import training_arguments

    args = training_arguments(EncoderTrainingConfig(output_dir="x", report_to=[]))
    assert args.report_to in ([], "none", ["none"])
    args = training_arguments(EncoderTrainingConfig(output_dir="x", report_to=["tensorboard", "wandb"]))
    assert args.report_to == ["tensorboard", "wandb"]


def test_a_student_reading_answers_none_of_which_parsed_says_so_and_where_to_look(tmp_path, demo, capsys):
    # the tiny teacher has random weights: none of its answers parse
    assert (
        main(run_args(tmp_path, demo, None, "student.teacher_tags=true", "student.knowledge_text=false")) == 1
    )
    captured = capsys.readouterr()
    err = captured.err
    assert "none of the teacher's answers" in err and "cotdistill knowledge show" in err
    assert "[train] running" not in captured.out  # said when the knowledge stage ends, before training
    assert "Traceback" not in err
