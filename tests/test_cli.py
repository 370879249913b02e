import json
import subprocess
import sys

from conftest import need

from cotdistill.cli import main


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
            "cotdistill.cli",
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
