"""`cotdistill knowledge show RUN`: the knowledge a run's teacher wrote, record by record, with the post, the
gold, the answer and why each was kept or dropped."""

import json

import pytest
from test_few_labels import SMOKE, args, assets  # noqa: F401 - the fixture is used by name

from cotdistill.run.cli import main


def test_knowledge_show_prints_kept_and_dropped_records_with_post_gold_and_reason(tmp_path, assets, capsys):  # noqa: F811
    assert main(["run", SMOKE, *args(tmp_path, assets), "--stop-after", "knowledge"]) == 0
    run = tmp_path / "runs" / "smoke"
    rows = [json.loads(line) for line in (run / "knowledge" / "train.jsonl").read_text().splitlines()]
    kept, dropped = [r for r in rows if r["kept"]], [r for r in rows if not r["kept"]]
    assert kept and dropped  # every fifth answer misses an entity: min_f1=1 drops it
    capsys.readouterr()

    assert main(["knowledge", "show", str(run), "--split", "train", "--dropped", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("== train ") == 2 and "dropped: " in out and "kept" not in out.split("records shown")[0]
    assert f"2 of {len(dropped)} dropped records shown" in out
    first = dropped[0]
    assert f"== train {first['id']} · dropped: {first['reason']}" in out
    assert "  post: " in out and "  gold: " in out and "  answer: " in out

    assert main(["knowledge", "show", str(run), "--id", kept[0]["id"], "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert f"== train {kept[0]['id']} · kept" in out and "1 of 1 records shown" in out

    with pytest.raises(SystemExit) as stop:
        main(["-v", "knowledge", "show", str(run), "--kept", "--dropped"])
    assert stop.value.code == 2 and "--kept and --dropped exclude each other" in capsys.readouterr().err
    assert main(["knowledge", "show", str(tmp_path / "nowhere")]) == 2
    assert "not found: name a run folder" in capsys.readouterr().err
    assert main(["knowledge", "show", str(run), "--id", "no-such-post"]) == 2
    assert "no knowledge record with id 'no-such-post'" in capsys.readouterr().err
