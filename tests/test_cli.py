import dataclasses
import json
import subprocess
import sys

from conftest import need

from cotdistill.run.cli import main


def test_stats_on_written_files(tmp_path, capsys):
    (tmp_path / "train.txt").write_text(
        "IMGID:1\nObama\tB-PER\nin\tO\nParis\tB-LOC\n\nIMGID:2\nhi\tO\n", encoding="utf-8"
    )
    assert main(["data", "stats", "snap", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "2 examples" in out and "4 tokens" in out and "LOC 1, PER 1" in out
    assert main(["data", "stats", "snap", "--data-dir", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["splits"][0]["labels"] == {"LOC": 1, "PER": 1} and stats["splits"][0]["images_missing"] == 2


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "test.txt").write_text("IMGID:1\nObama\tB-\n", encoding="utf-8")
    assert main(["data", "stats", "twitter2015", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "test.txt:2: bad tag 'B-'" in err
    assert main(["data", "stats", "mnre", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["data", "stats", "mnre", "--data-dir", str(tmp_path)]) == 2
    assert "no mnre split files" in capsys.readouterr().err


def test_export_writes_arrow_and_jsonl_and_never_overwrites(tmp_path, capsys):
    import datasets

    (tmp_path / "valid.txt").write_text("IMGID:1\nObama\tB-PER\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["data", "export", "twitter2017", "--data-dir", str(tmp_path), "--out", str(out)]) == 0
    dd = datasets.load_from_disk(str(out / "arrow"))
    assert dd["valid"][0]["tokens"] == ["Obama"]
    row = json.loads((out / "valid.jsonl").read_text(encoding="utf-8"))
    assert row["gold"]["entities"][0]["type"] == "PER"
    assert main(["data", "export", "twitter2017", "--data-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_console_script_on_real_data(datasets_dir):
    root = need(datasets_dir, "mnre")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cotdistill.run.cli",
            "data",
            "stats",
            "mnre",
            "--data-dir",
            str(root),
            "--split",
            "test",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1,614 examples" in proc.stdout and "(21)" in proc.stdout


def test_help_teaches_and_flags_stand_anywhere(capsys):
    import contextlib

    from cotdistill.run.cli import EXAMPLES, build_parser, knowledge_show_parser, main

    parser = build_parser()
    commands = [
        "data stats",
        "data export",
        "prompts list",
        "prompts show",
        "generate",
        "knowledge",
        "train",
        "predict",
        "merge",
        "convert-gguf",
        "run",
        "demo",
        "evaluate",
        "compare",
        "push",
        "knowledge show",
    ]
    assert set(commands) == set(EXAMPLES)
    for name in commands:
        with contextlib.suppress(SystemExit):
            main([*name.split(), "--help"])
        out = capsys.readouterr().out
        assert "examples:" in out and EXAMPLES[name].split("\n")[0] in out, name
        # every argument says what it is for
        show = name == "knowledge show"  # beside `knowledge CONFIG`, so it has a parser of its own
        for action in _actions(
            knowledge_show_parser() if show else parser, ["show"] if show else name.split()
        ):
            assert action.help, f"{name}: {action.dest} has no help"
    with contextlib.suppress(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("cotdistill ")
    with contextlib.suppress(SystemExit):
        main(["run"])
    err = capsys.readouterr().err
    assert "required: config" in err and "KEY=VALUE" not in err.splitlines()[-1]
    # -v after the subcommand is the same -v
    assert main(["prompts", "list", "--task", "mre", "-v"]) == 0


def _actions(parser, path):
    import argparse

    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_unexpected_errors_are_one_line_and_v_shows_their_traceback(monkeypatch, capsys):
    import cotdistill.run.cli as cli
    from cotdistill.errors import InputError, RunError

    def boom(args):
        raise KeyError("surprise")

    def replace_prompts_list(func):
        commands = [
            dataclasses.replace(c, func=func) if c.name == "prompts list" else c for c in cli.COMMANDS
        ]
        monkeypatch.setattr(cli, "COMMANDS", tuple(commands))

    replace_prompts_list(boom)
    assert cli.main(["prompts", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError: 'surprise'" in err and "-v" in err
    assert cli.main(["prompts", "list", "-v"]) == 1  # -v after the subcommand works too
    err = capsys.readouterr().err
    assert "Traceback" in err and "in boom" in err
    for error, code in ((InputError("bad input"), 2), (RunError("teacher gone"), 1)):

        def deliberate(args, error=error):
            raise error

        replace_prompts_list(deliberate)
        assert cli.main(["prompts", "list", "-v"]) == code
        err = capsys.readouterr().err
        assert err == f"cotdistill: error: {error}\n"  # ours: one line, no traceback
