"""What the toolkit writes: whole or not at all (a full disk never leaves a half-written result that blocks
the rerun), and markup from posts shown as text in report.md as it is in report.html."""

import json
import os
import resource
import signal
import subprocess
import sys

import pytest

from cotdistill.files import atomic_path, write_atomic
from cotdistill.records import Entity, EntityAnswer, Example, Prediction
from cotdistill.run.cli import main

HOSTILE = ("<script>alert(1)</script>", "<img", "src=x", "onerror=alert(2)>", "Paris")


def gold_and_predictions(tmp_path):
    ex = Example(
        "1", "mner", " ".join(HOSTILE), EntityAnswer((Entity(4, 5, "LOC", "Paris"),)), tokens=HOSTILE
    )
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps(ex.to_dict()) + "\n", encoding="utf-8")
    preds = {}
    for name, ents in (("teacher", (Entity(0, 1, "PER", HOSTILE[0]),)), ("student", ())):
        preds[name] = tmp_path / f"{name}.jsonl"
        pred = Prediction("1", name, EntityAnswer(ents), raw="", rationale="<b>bold</b> claim")
        preds[name].write_text(json.dumps(pred.to_dict()) + "\n", encoding="utf-8")
    return gold, preds


def test_report_md_shows_markup_from_posts_as_text(tmp_path):
    gold, preds = gold_and_predictions(tmp_path)
    out = tmp_path / "report"
    systems = [f"{n}={p}" for n, p in preds.items()]
    assert main(["compare", *systems, "--gold", str(gold), "--out", str(out), "--resamples", "50"]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md  # the post is there, as text
    for raw in ("<script", "<img", "<b>"):
        assert raw not in md, raw


def _evaluate(tmp_path, out, limit_bytes=None):
    """`cotdistill evaluate --out OUT` in a child process; with ``limit_bytes`` no file it writes may grow
    past that size (the kernel answers EFBIG, as a full disk answers ENOSPC)."""
    gold, preds = gold_and_predictions(tmp_path)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    code = (
        "import sys; from cotdistill.run.cli import main; "
        f"sys.exit(main(['evaluate', '--predictions', {str(preds['teacher'])!r}, '--gold', {str(gold)!r}, "
        f"'--out', {str(out)!r}]))"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=limit if limit_bytes else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_full_disk_leaves_no_half_written_metrics_and_the_rerun_works(tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    failed = _evaluate(tmp_path, out, limit_bytes=64)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr, failed.stderr
    assert not (out / "metrics.json").exists()  # neither a cut file nor an empty one
    rerun = _evaluate(tmp_path, out)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "metrics.json").read_text())["examples"] == 1
    assert [p.name for p in out.iterdir()] == ["metrics.json"]  # no temporary file left behind


def test_an_empty_leftover_result_does_not_block_the_rerun(tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    (out / "metrics.json").write_bytes(b"")  # what a write cut short used to leave
    assert _evaluate(tmp_path, out).returncode == 0
    assert json.loads((out / "metrics.json").read_text())["examples"] == 1
    assert _evaluate(tmp_path, out).returncode == 2  # a real result is still never overwritten silently


def test_atomic_writes_keep_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "r.json"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the disk filled up")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
