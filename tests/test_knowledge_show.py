"""`cotdistill knowledge show RUN`: the knowledge a run's teacher wrote, record by record, with the post, the
gold, the answer and why each was kept or dropped."""

import json

import pytest
from test_few_labels import SMOKE, args, assets  # noqa: F401 - the fixture is used by name
from test_report_browser import CHROMIUM, probe_page

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


# Run in a copy of the page once it has loaded: the cards, then what the search box and the filter leave.
PROBE = """<script>
window.addEventListener('load', () => {
  const errors = [];
  window.addEventListener('error', e => errors.push(String(e.message)));
  const shown = () => [...document.querySelectorAll('.card')].filter(c => c.style.display !== 'none');
  const out = {cards: document.querySelectorAll('.card').length, all: shown().length,
               images: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
               external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('data:'))};
  const q = document.getElementById('q');
  q.value = 'messi'; q.dispatchEvent(new Event('input'));
  out.messi = shown().map(c => c.textContent.toLowerCase().includes('messi')).filter(Boolean).length;
  out.messiShown = shown().length;
  q.value = ''; q.dispatchEvent(new Event('input'));
  const dropped = document.querySelector('input[value=dropped]'); dropped.checked = true;
  dropped.dispatchEvent(new Event('change'));
  out.dropped = shown().length; out.droppedOnly = shown().every(c => c.classList.contains('dropped'));
  out.count = document.getElementById('count').textContent; out.errors = errors;
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium')")
def test_browse_html_searches_and_filters_in_chromium(tmp_path, assets):  # noqa: F811
    assert main(["run", SMOKE, *args(tmp_path, assets), "--stop-after", "knowledge"]) == 0
    knowledge = tmp_path / "runs" / "smoke" / "knowledge"
    rows = [
        json.loads(line)
        for split in ("train", "valid", "test")
        for line in (knowledge / f"{split}.jsonl").read_text().splitlines()
    ]
    page = (knowledge / "browse.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page
    probe = probe_page(page, PROBE, tmp_path)
    assert probe["errors"] == [] and probe["external"] == []
    assert probe["cards"] == probe["all"] == len(rows) and probe["images"] == len(
        rows
    )  # every post has an image
    messi = sum("messi" in json.dumps(r).lower() or "Messi" in r["id"] for r in rows)
    assert probe["messiShown"] == probe["messi"] >= max(messi, 1)
    assert probe["dropped"] == sum(not r["kept"] for r in rows) > 0 and probe["droppedOnly"]
    assert probe["count"] == f"{probe['dropped']} of {len(rows)} shown"
