"""generate -> knowledge -> train -> predict -> evaluate through the CLI, on tiny written data and a tiny BERT."""

import json

import pytest
from conftest import REPO
from tiny import tiny_bert, tiny_wordpiece_tokenizer

from cotdistill.run.cli import main

CONFIG = str(REPO / "configs" / "twitter2015.yaml")

POSTS = [
    ("Barack Obama visits Paris", ["B-PER", "I-PER", "O", "B-LOC"]),
    ("Apple opens offices in London", ["B-ORG", "O", "O", "O", "B-LOC"]),
    ("Michelle Obama and Google", ["B-PER", "I-PER", "O", "B-ORG"]),
    ("the fox jumps near Berlin", ["O", "O", "O", "O", "B-LOC"]),
]


def write_split(path, posts, offset):
    blocks = []
    for k, (text, tags) in enumerate(posts):
        blocks.append(
            f"IMGID:{offset + k}\n" + "".join(f"{t}\t{g}\n" for t, g in zip(text.split(), tags, strict=True))
        )
    path.write_text("\n".join(blocks), encoding="utf-8")


def test_pipeline_commands(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for k, split in enumerate(("train", "valid", "test")):
        write_split(data / f"{split}.txt", POSTS, 100 * k)
    replay = tmp_path / "teacher.jsonl"
    with open(replay, "w") as f:
        for k in range(3):
            for i, (text, _) in enumerate(POSTS):
                f.write(
                    json.dumps(
                        {
                            "id": str(100 * k + i),
                            "text": f"Named entities:1. {text.split()[0]} (person)Reasoning:{text} is a post.",
                        }
                    )
                    + "\n"
                )
    model = tmp_path / "bert"
    tok = tiny_wordpiece_tokenizer(model)
    tiny_bert(model, vocab_size=len(tok))
    common = [
        f"run_dir={tmp_path / 'runs'}",
        "name=t",
        "data.dataset=twitter2015",
        f"data.data_dir={data}",
        "teacher.backend=replay",
        "teacher.model=replayed",
        "teacher.templates=[mner.answer]",
        f"teacher.options={{path: {replay}}}",  # the whole mapping: the config's vllm options do not apply
        f"student.model={model}",
        "student.epochs=2",
        "student.batch_size=4",
        "student.learning_rate=0.001",
        "student.max_length=64",
        "student.bf16=false",
    ]
    assert main(["generate", CONFIG, *common]) == 0
    assert main(["knowledge", CONFIG, *common]) == 0
    assert main(["train", CONFIG, *common]) == 0
    assert (tmp_path / "runs" / "t" / "student" / "best" / "cotdistill_student.json").is_file()
    assert main(["predict", CONFIG, *common, "--split", "test"]) == 0
    preds = tmp_path / "runs" / "t" / "predictions" / "student-test.jsonl"
    assert len(preds.read_text().splitlines()) == 4
    capsys.readouterr()
    assert (
        main(["evaluate", "--predictions", str(preds), "--dataset", "twitter2015", "--data-dir", str(data)])
        == 0
    )
    assert "coverage 100.0%" in capsys.readouterr().out
    assert main(["predict", CONFIG, *common]) == 2  # never overwrites silently
    config = (tmp_path / "runs" / "t" / "config.yaml").read_text()
    assert "student:" in config and "epochs: 2" in config


def test_student_section_maps_onto_the_student_configs():
    from cotdistill.run.config import ConfigError, to_dict
    from cotdistill.run.stages.student import encoder_config, generative_config, training_config
    from cotdistill.run.validation import load_config
    from cotdistill.student.config import EncoderTrainingConfig, GenerativeTrainingConfig

    config = load_config(
        None, ["student.model=m", "student.lora_r=8", "student.epochs=3", "student.knowledge=none"]
    )
    enc = encoder_config(config, ["/per/per/peer", "None"], "mre")
    assert (enc.task, enc.labels, enc.lora_r, enc.use_knowledge, enc.model) == (
        "mre",
        ["/per/per/peer", "None"],
        8,
        False,
        "m",
    )
    training = training_config(config, output_dir="out")
    assert isinstance(training, EncoderTrainingConfig)
    assert (training.epochs, training.batch_size, training.output_dir) == (3.0, 32, "out")

    # the generative section holds the generative defaults, resolved: no nulls anywhere in the student
    gen = load_config(None, ["student.kind=generative", "student.vision=false"])
    section = to_dict(gen)["student"]
    assert None not in section.values() and section["instruction_template"] == "mner.student"
    assert (section["learning_rate"], section["batch_size"], section["lora_r"]) == (2e-4, 8, 16)
    assert "crf" not in section and "teacher_tags" not in section
    g = generative_config(gen, ["PER"], "mner")
    assert g.vision is False and g.instruction_template == "mner.student"
    assert isinstance(training_config(gen, output_dir="o"), GenerativeTrainingConfig)
    assert generative_config(load_config(None, ["student.kind=generative"]), ["PER"], "mner").vision is None

    # a setting of the other kind, and a typo, are errors that say which
    with pytest.raises(ConfigError, match=r"student\.crf is a setting of the encoder student"):
        load_config(None, ["student.kind=generative", "student.crf=true"])
    with pytest.raises(ConfigError, match=r"student\.alpha is a setting of the generative student"):
        load_config(None, ["student.alpha=0.3"])
    with pytest.raises(ConfigError, match=r"did you mean 'student\.learning_rate'"):
        load_config(None, ["student.learning_rat=0.1"])
    with pytest.raises(ConfigError, match=r"student\.vision='maybe'"):
        load_config(None, ["student.kind=generative", "student.vision=maybe"])
