"""``RUN/knowledge/browse.html``: the knowledge the teacher wrote, one card per post, to read in a browser.

One self-contained file (no network, images embedded as small thumbnails): a search box over every text on
the card, a kept / dropped filter, and per card the post, its image, the gold (where the run read it), the
teacher's voted answer, each text the teacher wrote with its line breaks, and why the record was kept or
dropped. Everything from posts and the teacher is escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from cotdistill.files import write_atomic
from cotdistill.images import thumbnail_data_url
from cotdistill.records import Example
from cotdistill.tasks import get_task

THUMBNAIL_PX = 120
MAX_THUMBNAILS = 2000  # beyond this many images the file would grow past tens of MB: the rest are named only

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
header{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
input[type=search]{width:50%;padding:.35em;font-size:1em}label{margin-left:1em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;margin:.8em 0;display:flex;gap:1em}
.card.dropped{border-left:5px solid #c44e52}.card.kept{border-left:5px solid #55a868}
.card img{width:120px;height:auto;object-fit:contain;align-self:flex-start}
.meta{color:#555;font-size:.85em}.k{font-weight:600}.text{white-space:pre-wrap}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.4em .6em;margin:.2em 0;font-size:.85em}
#count{margin-left:1em;color:#555}
"""

_SCRIPT = """
const q = document.getElementById('q'), cards = [...document.querySelectorAll('.card')];
function apply() {
  const words = q.value.toLowerCase().split(/\\s+/).filter(Boolean);
  const which = document.querySelector('input[name=show]:checked').value;
  let n = 0;
  for (const c of cards) {
    const text = c.textContent.toLowerCase();
    const ok = (which === 'all' || c.classList.contains(which)) && words.every(w => text.includes(w));
    c.style.display = ok ? '' : 'none';
    if (ok) n++;
  }
  document.getElementById('count').textContent = n + ' of ' + cards.length + ' shown';
}
q.addEventListener('input', apply);
document.querySelectorAll('input[name=show]').forEach(r => r.addEventListener('change', apply));
apply();
"""


def _thumbnail(path: str) -> str | None:
    return thumbnail_data_url(path, THUMBNAIL_PX)


def _card(split: str, row: dict, ex: Example | None, gold_read: bool, thumbnails: list[int]) -> str:
    e = html.escape
    state = "kept" if row["kept"] else "dropped"
    why = "kept" if row["kept"] else f"dropped: {row['reason']}"
    scores = " · ".join(
        f"{name} {row[key]:.2f}"
        for key, name in (("agreement", "agreement"), ("answer_f1", "answer F1"))
        if row.get(key) is not None
    )
    parts = [
        f'<div class="meta">{e(split)} · id {e(str(row["id"]))} · <b>{e(why)}</b>'
        + (f" · {e(scores)}" if scores else "")
        + "</div>"
    ]
    image = ""
    if ex is not None:
        parts.append(f'<div class="text">{e(ex.text)}</div>')
        task = get_task(ex.task)
        gold = (
            "; ".join(task.show(ex, task.items(ex.gold))) if gold_read else "(not read: a post without gold)"
        )
        parts.append(f'<div><span class="k">gold</span> {e(gold or "(nothing)")}</div>')
        answer = row["answer"]
        shown = "; ".join(task.show(ex, task.items(answer))) if answer is not None else "(none parsed)"
        parts.append(f'<div><span class="k">teacher\'s answer</span> {e(shown or "(nothing)")}</div>')
        if ex.image:
            url = _thumbnail(ex.image) if thumbnails[0] < MAX_THUMBNAILS else None
            thumbnails[0] += url is not None
            image = f'<img alt="{e(os.path.basename(ex.image))}" src="{url}">' if url else ""
            if not url:
                parts.append(f'<div class="meta">image {e(os.path.basename(ex.image))}</div>')
    for template, text in (row.get("grains") or {}).items():
        parts.append(f'<div class="meta">{e(template)}</div><pre>{e(str(text))}</pre>')
    return f'<div class="card {state}">{image}<div>{"".join(parts)}</div></div>'


def _gold_read(split: str, example_id: str, gold_ids: set[str] | None) -> bool:
    """Whether the run read this post's gold: not for posts that never had any, nor for training posts
    outside ``data.labelled``."""
    if split == "unlabelled":
        return False
    return split != "train" or gold_ids is None or example_id in gold_ids


def write_browse(
    records: Sequence[tuple[str, dict]],
    examples: dict[str, Example],
    path: str | os.PathLike,
    *,
    gold_ids: set[str] | None = None,
    title: str = "knowledge",
) -> Path:
    """Write the page for ``records`` (``(split, knowledge record)`` pairs) with the posts in ``examples``
    (by id). ``gold_ids``: the training posts whose gold the run read (None: all of them)."""
    thumbnails = [0]
    cards = [
        _card(
            split,
            row,
            examples.get(row["id"]),
            _gold_read(split, row["id"], gold_ids),
            thumbnails,
        )
        for split, row in records
    ]
    kept = sum(row["kept"] for _, row in records)
    head = (
        f"<h1>{html.escape(title)}</h1><p>{len(records):,} records, {kept:,} kept, {len(records) - kept:,} dropped. "
        "Gold is shown for reading only; where the run did not read a post's gold it is not shown.</p>"
    )
    controls = (
        '<header><input type="search" id="q" placeholder="search posts, answers, rationales, ids" autofocus>'
        '<label><input type="radio" name="show" value="all" checked> all</label>'
        '<label><input type="radio" name="show" value="kept"> kept</label>'
        '<label><input type="radio" name="show" value="dropped"> dropped</label><span id="count"></span></header>'
    )
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"{head}{controls}<main>{''.join(cards)}</main><script>{_SCRIPT}</script></body></html>\n"
    )
    return write_atomic(path, doc)
