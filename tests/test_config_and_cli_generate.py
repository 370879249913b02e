"""Configs (YAML + overrides, nearest-key errors) and the generate / knowledge commands on real PGIM data."""

import json
import re
from pathlib import Path

import pytest
from conftest import REPO, need

from cotdistill.run.cli import main
from cotdistill.run.config import ConfigError, write_resolved
from cotdistill.run.validation import load_config


def test_yaml_overrides_and_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: x\nteacher:\n  backend: openai\n  samples: 2\n  options: {base_url: 'http://localhost:8000/v1'}\n"
    )
    c = load_config(cfg, ["teacher.samples=5", "data.splits=[test]", "teacher.temperature=0.7"])
    assert (c.name, c.teacher.samples, c.data.splits, c.teacher.temperature) == ("x", 5, ["test"], 0.7)
    assert c.teacher.max_tokens == 512 and c.teacher.options["base_url"].startswith("http")
    with pytest.raises(
        ConfigError, match=r"unknown key 'teacher\.tempreature'; did you mean 'teacher\.temperature'"
    ):
        load_config(cfg, ["teacher.tempreature=1"])
    with pytest.raises(ConfigError, match="unknown key 'techer'; did you mean 'teacher'"):
        load_config(None, ["techer.model=x"])
    with pytest.raises(ConfigError, match=r"teacher\.samples must be an integer"):
        load_config(cfg, ["teacher.samples=two"])
    cfg.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(cfg)


def test_resolved_config_written_and_previous_kept(tmp_path):
    c = load_config(None, [f"run_dir={tmp_path}", "name=r"])
    path = write_resolved(c)
    assert "max_tokens: 512" in path.read_text()
    write_resolved(load_config(None, [f"run_dir={tmp_path}", "name=r", "teacher.samples=4"]))
    assert (tmp_path / "r" / "config.previous-1.yaml").is_file() and "samples: 4" in path.read_text()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path, tmp_path):
    from cotdistill.readers import DATASETS
    from cotdistill.run.config import to_dict
    from cotdistill.run.validation import validate

    config = load_config(path, [f"run_dir={tmp_path}"])
    validate(config)
    task = DATASETS[config.data.dataset].task
    assert all(name.startswith(f"{task}.") for name in config.teacher.templates)
    assert config.knowledge.answer_template.startswith(f"{task}.")
    assert None not in to_dict(config)["student"].values()  # the student section says what runs
    # the resolved config, as written into the run directory, reads back as the same config
    assert load_config(write_resolved(config)) == config


def test_every_standard_dataset_has_a_config_for_each_student():
    from cotdistill.readers import DATASETS

    names = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    for dataset in ("twitter2015", "twitter2017", "snap", "wikidiverse", "mnre", "mepave", "mae"):
        assert dataset in DATASETS and {dataset, f"{dataset}-generative"} <= names
        assert load_config(REPO / "configs" / f"{dataset}.yaml").student.kind == "encoder"
        gen = load_config(REPO / "configs" / f"{dataset}-generative.yaml")
        assert gen.student.kind == "generative" and gen.student.lora_r > 0
    assert load_config(REPO / "configs" / "twitter2015-qlora.yaml").student.quantization == "4bit"


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.dataset=twitter2099", "data.dataset"),
        ("teacher.templates=[mre.answer]", "not for mner"),
        ("teacher.templates=[mner.nope]", "mner.nope"),
        ("teacher.backend=vlm", "teacher.backend"),
        ("student.kind=decoder", "student.kind"),
        ("student.crf=true", None),
        ("student.quantization=8bit", "quantization"),
        ("student.kind=generative", r"student\.crf is a setting of the encoder student"),
        ("GEN student.kind=generative", None),
        ("GEN student.alpha=1.5", "alpha"),
        ("student.quantization=4bit", r"student\.quantization is a setting of the generative student"),
        ("GEN student.quantization=4bit", None),
        ("evaluation.split=dev2", "dev2"),
        ("name=../../elsewhere", "one plain name"),
        ("name=/tmp/x", "one plain name"),
        ("student.epochs=-1", "student.epochs=-1"),
        ("student.batch_size=0", "student.batch_size=0"),
        ("teacher.samples=-2", "teacher.samples"),
        ("teacher.rationale_samples=0", "teacher.rationale_samples"),
        ("student.teacher_tags=true student.knowledge_text=false", None),
        ("student.teacher_tags=true student.knowledge=none", "student.teacher_tags"),
        ("GEN student.teacher_tags=true", r"student\.teacher_tags is a setting of the encoder student"),
        ("GEN student.knowledge_text=false", r"student\.knowledge_text is a setting of the encoder student"),
        (
            "data.dataset=mnre teacher.templates=[mre.answer] knowledge.answer_template=mre.answer "
            "student.crf=false student.teacher_tags=true",
            "teacher_tags=False",
        ),
    ],
)
def test_validation_names_the_bad_key(override, message):
    from cotdistill.run.validation import validate

    generative = override.startswith("GEN ")  # the generative config (its student section)
    override = override.removeprefix("GEN ")
    path = REPO / "configs" / ("twitter2015-generative.yaml" if generative else "twitter2015.yaml")
    try:
        config = load_config(path, override.split(), checked=False)
    except ConfigError as err:  # a student section of the wrong kind is refused while it is read
        assert message is not None and re.search(message, str(err)), err
        return
    if message is None:
        validate(config)  # valid
        load_config(path, override.split())
        return
    with pytest.raises(ConfigError, match=message):
        validate(config)
    # every command loads its config through the same checks
    with pytest.raises(ConfigError, match=message):
        load_config(path, override.split())


def test_generate_dry_run_and_pgim_replay_to_knowledge(datasets_dir, tmp_path, capsys):
    root = need(datasets_dir, "twitter2015")
    cfg = REPO / "configs" / "twitter2015-pgim-replay.yaml"
    common = [
        f"run_dir={tmp_path}",
        f"data.data_dir={root}",
        f"teacher.options.pgim_dir={root}",
        "--split",
        "valid",
    ]
    assert main(["generate", str(cfg), *common, "--dry-run"]) == 0
    assert "1,000 requests, 0 already done, 1,000 to make" in capsys.readouterr().out
    assert not (tmp_path / "twitter2015-pgim").exists()  # a dry run checks and counts, and writes nothing
    assert main(["generate", str(cfg), *common]) == 0
    out = capsys.readouterr().out
    assert "valid: 1,000 requests, 0 already done, 1,000 made, 1 failed" in out and "--retry-failed" in out
    assert main(["generate", str(cfg), *common]) == 0
    assert "1,000 already done, 0 made" in capsys.readouterr().out  # nothing is paid for twice
    manifest = json.loads(
        Path(tmp_path / "twitter2015-pgim" / "teacher" / "valid" / "manifest.json").read_text()
    )
    assert manifest["generations"] == 1000 and manifest["failed"] == 1
    # filtering against gold on valid: most of ChatGPT's answers disagree with gold
    assert main(["knowledge", str(cfg), *common, "knowledge.filter_splits=[valid]"]) == 0
    out = capsys.readouterr().out
    rows = [
        json.loads(line)
        for line in (tmp_path / "twitter2015-pgim" / "knowledge" / "valid.jsonl").read_text().splitlines()
    ]
    kept = sum(r["kept"] for r in rows)
    assert len(rows) == 1000 and 0 < kept < 500 and f"valid: {kept:,} of 1,000 examples kept" in out
    assert all(
        r["knowledge"].startswith("Named entit") or not r["kept"] for r in rows
    )  # the whole ChatGPT text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "teacher.options.batch_sise=4",
            r"unknown key 'teacher\.options\.batch_sise'; did you mean 'teacher\.options\.batch_size'",
        ),
        ("teacher.temperature=-3", r"teacher\.temperature=-3(\.0)? is out of range: it must be >= 0"),
        ("teacher.top_p=7", r"teacher\.top_p=7(\.0)? is out of range: it must be > 0 and <= 1"),
        ("teacher.top_p=0", r"teacher\.top_p=0(\.0)? is out of range"),
        ("teacher.max_tokens=0", r"teacher\.max_tokens=0 is out of range: it must be >= 1"),
        ("teacher.samples=0", r"teacher\.samples=0 is out of range: it must be >= 1"),
    ],
)
def test_dry_run_refuses_a_bad_option_naming_file_and_key_and_writes_nothing(
    tmp_path, capsys, override, message
):
    from cotdistill.run.cli import main

    config = REPO / "configs" / "smoke.yaml"
    assert main(["generate", str(config), f"run_dir={tmp_path / 'runs'}", override, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert str(config) in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_config_includes_its_base_and_overrides_it(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\nteacher:\n  backend: openai\n  samples: 3\n  max_tokens: 64\n"
    )
    (tmp_path / "child.yaml").write_text("include: base.yaml\nname: child\nteacher:\n  samples: 5\n")
    c = load_config(tmp_path / "child.yaml")
    assert (c.name, c.teacher.backend, c.teacher.samples, c.teacher.max_tokens) == ("child", "openai", 5, 64)
    (tmp_path / "base.yaml").write_text("include: child.yaml\n")
    with pytest.raises(ConfigError, match="makes a loop"):
        load_config(tmp_path / "child.yaml")
    (tmp_path / "child.yaml").write_text("include: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist \(included by .*child\.yaml\)"):
        load_config(tmp_path / "child.yaml")


def test_a_failed_check_leaves_no_run_folder_config_copy_or_lock(tmp_path, capsys, monkeypatch):
    """A bad data folder, and a teacher backend whose package is not installed, are refused before the
    run folder is made (the package is hidden from the import system, as on a machine without it)."""
    import importlib.util
    import sys

    from cotdistill.run.cli import main

    runs = tmp_path / "runs"
    smoke = str(REPO / "configs" / "smoke.yaml")
    assert main(["run", smoke, f"run_dir={runs}", f"data.data_dir={tmp_path / 'nowhere'}"]) == 2
    assert "data.data_dir" in capsys.readouterr().err and not runs.exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    data, model = tmp_path / "data", tmp_path / "model"
    data.mkdir()
    model.mkdir()
    (model / "config.json").write_text("{}")
    for command in (["run"], ["generate"]):
        args = [
            *command,
            smoke,
            f"run_dir={runs}",
            f"data.data_dir={data}",
            "teacher.backend=vllm",
            f"teacher.model={model}",
            f"student.model={model}",
            "teacher.options={}",
        ]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "the vllm teacher backend" in err and 'pip install "cotdistill[vllm]"' in err
        assert not runs.exists()
