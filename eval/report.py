"""Reports: ``metrics.json``, ``report.md`` (terminals, pull requests), a self-contained ``report.html`` (plots
embedded, no scripts, no external fonts, readable offline) and the plots as PNG files beside them."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

from cotdistill.eval.plots import make_plots
from cotdistill.files import write_atomic
from cotdistill.images import thumbnail_data_url


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _summary_rows(result: dict) -> list[list[str]]:
    rows = []
    for n, s in result["systems"].items():
        usage = s.get("usage") or {}
        rows.append(
            [
                n
                + (
                    f" (cost includes {usage['includes']}, read at test time)"
                    if usage.get("includes")
                    else ""
                ),
                _pct(s["precision"]),
                _pct(s["recall"]),
                _pct(s["f1"]),
                f"[{_pct(s['f1_ci'][0])}, {_pct(s['f1_ci'][1])}]",
                f"{100 * s['coverage']:.2f}%",
                f"{100 * s['parse_failure_rate']:.1f}%",
                f"{usage['tokens_per_example']:.0f}" if usage.get("tokens_per_example") else "n/a",
                f"{usage['seconds_per_example']:.4f}" if usage.get("seconds_per_example") else "n/a",
                f"{s['params']:,}" if s.get("params") else "–",
            ]
        )
    return rows


SUMMARY_HEAD = [
    "system",
    "P",
    "R",
    "F1",
    "F1 95% CI",
    "coverage",
    "parse failures",
    "tokens/ex",
    "s/ex",
    "params",
]


class ImageCell(str):
    """A table cell naming an image; report.html shows the image itself beside the example."""

    def __new__(cls, text: str, path: str | None):
        cell = super().__new__(cls, text)
        cell.path = path
        return cell


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += [
        "| " + " | ".join(_md_text(c).replace("|", "\\|").replace("\n", "<br>") for c in r) + " |"
        for r in rows
    ]
    return "\n".join(lines)


def _md_text(value) -> str:
    """Text for report.md: markup from posts and answers shown as text (Markdown renders raw HTML)."""
    return html.escape(str(value), quote=False)


def _per_label_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    names = list(result["systems"])
    head = ["label", "support", *names]
    rows = []
    for lab in result["labels"]:
        support = next(
            (
                result["systems"][n]["per_label"][lab]["support"]
                for n in names
                if lab in result["systems"][n]["per_label"]
            ),
            0,
        )
        rows.append(
            [
                lab,
                str(support),
                *[_pct(result["systems"][n]["per_label"].get(lab, {}).get("f1")) for n in names],
            ]
        )
    return head, rows


def _pair_rows(result: dict) -> list[list[str]]:
    return [
        [
            p["b"],
            p["a"],
            f"{100 * p['f1_difference']:+.2f}",
            f"[{100 * p['difference_ci'][0]:+.2f}, {100 * p['difference_ci'][1]:+.2f}]",
            f"{p['p_value']:.4f}",
        ]
        for p in result["pairs"]
    ]


PAIR_HEAD = ["system", "against", "F1(system) − F1(against)", "95% CI", "p (paired bootstrap)"]


AGREEMENT_COLUMNS = {
    "both_right": "both right",
    "only_a_right": "only A right",
    "only_b_right": "only B right",
    "both_wrong": "both wrong",
    "a_spurious": "A spurious",
    "b_spurious": "B spurious",
    "shared_spurious": "shared spurious",
}


def _detail_tables(
    result: dict, rationale_chars: int | None = None
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the agreement and error-example tables, shared by both report formats."""
    tables = []
    for ag in result.get("agreement", []):
        tables.append(
            (
                f"Agreement: A = {ag['a']}, B = {ag['b']}",
                list(AGREEMENT_COLUMNS.values()),
                [[str(ag[k]) for k in AGREEMENT_COLUMNS]],
            )
        )
    errors = result.get("errors") or {}
    if errors:
        kinds = ["correct", "wrong_type", "boundary", "boundary_and_type", "spurious", "missed"]
        tables.append(
            (
                "Errors by kind (exact / wrong type / boundary / boundary and type / spurious / missed)",
                ["system", *[k.replace("_", " ") for k in kinds]],
                [[name, *[str(e[k]) for k in kinds]] for name, e in errors.items()],
            )
        )
        for name, e in errors.items():
            types, m = e["confusion"]["types"], e["confusion"]["matrix"]
            if types:
                tables.append(
                    (
                        f"{name}: type confusions (rows gold, columns predicted)",
                        ["gold \\ predicted", *types],
                        [[t, *[str(v) if v else "" for v in row]] for t, row in zip(types, m, strict=True)],
                    )
                )
            rows = [
                [
                    kind.replace("_", " "),
                    r["id"],
                    r["text"],
                    r["gold"],
                    r["predicted"],
                    "; ".join(r["all_predicted"]),
                ]
                for kind, examples in e["examples"].items()
                for r in examples
            ]
            tables.append(
                (
                    f"{name}: examples of each error kind",
                    ["kind", "id", "text", "gold span", "predicted span", f"all of {name}'s answer"],
                    rows,
                )
            )
    for ins in result.get("instructive", []):
        head = ["id", "image", "text", "gold", ins["a"], ins["b"], f"{ins['a']} rationale"]
        for key, title in (
            ("a_right_b_wrong", f"{ins['a']} right, {ins['b']} wrong"),
            ("b_right_a_wrong", f"{ins['b']} right, {ins['a']} wrong"),
        ):
            rows = [
                [
                    r["id"],
                    ImageCell(r["image_id"] or "", r.get("image")),
                    r["text"],
                    "; ".join(r["gold"]),
                    "; ".join(r["a_answer"]),
                    "; ".join(r["b_answer"]),
                    (r["a_rationale"] or "")[:rationale_chars],
                ]
                for r in ins[key]
            ]
            tables.append((f"{title} (top {len(rows)})", head, rows))
    return tables


def write_markdown(result: dict, plots: list[Path], provenance: dict, path: Path) -> Path:
    parts = [f"# Comparison on {_md_text(provenance.get('gold', 'the test set'))}", ""]
    if provenance.get("note"):
        parts += [f"> **{_md_text(provenance['note'])}**", ""]
    parts += [
        f"{result['examples']:,} examples, task {result['task']}; 95% intervals from {result['bootstrap']['resamples']:,} bootstrap resamples (seed {result['bootstrap']['seed']}).",
        "",
    ]
    parts += [
        f"- **{_md_text(name)}**: {_md_text(what)}"
        for name, what in (provenance.get("systems") or {}).items()
        if what
    ] + [""]
    parts += ["## Summary", "", _md_table(SUMMARY_HEAD, _summary_rows(result)), ""]
    if result["pairs"]:
        parts += ["## Differences", "", _md_table(PAIR_HEAD, _pair_rows(result)), ""]
    head, rows = _per_label_rows(result)
    parts += ["## Per label (F1)", "", _md_table(head, rows), ""]
    for title, head, rows in _detail_tables(result, rationale_chars=200):
        parts += [f"## {_md_text(title)}", "", _md_table(head, rows) if rows else "(none)", ""]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    parts += [
        "## How this was made",
        "",
        "```",
        provenance.get("command", ""),
        "```",
        "",
        "```json",
        json.dumps(provenance, indent=2, ensure_ascii=False),
        "```",
        "",
    ]
    write_atomic(path, "\n".join(parts))
    return path


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
th{background:#f2f2f2}td{white-space:pre-line}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}img.thumb{width:96px;margin:0}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
.small{font-size:.8em;color:#555}
.note{background:#fff3cd;border:1px solid #e0c97f;padding:.5em .8em}
"""


_NUMBER = re.compile(r"[+\-−]?[\d,]*\.?\d+%?")


def _html_table(head: list[str], rows: list[list[str]], table_id: str | None = None) -> str:
    idattr = f' id="{table_id}"' if table_id else ""
    out = [
        f"<table{idattr}><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    for r in rows:
        cells = []
        for c in r:
            text = str(c)
            url = thumbnail_data_url(c.path, 96) if isinstance(c, ImageCell) and c.path else None
            if url:
                cells.append(
                    f'<td><img class="thumb" alt="{html.escape(text)}" src="{url}"><br>{html.escape(text)}</td>'
                )
                continue
            num = _NUMBER.fullmatch(text) is not None
            cells.append(
                f'<td class="num">{html.escape(text)}</td>' if num else f"<td>{html.escape(text)}</td>"
            )
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def write_html(result: dict, plots: list[Path], provenance: dict, path: Path) -> Path:
    body = [f"<h1>Comparison on {html.escape(str(provenance.get('gold', 'the test set')))}</h1>"]
    if provenance.get("note"):
        body.append(f'<p class="note"><strong>{html.escape(provenance["note"])}</strong></p>')
    body.append(
        f"<p>{result['examples']:,} examples, task {html.escape(result['task'])}; 95% intervals from {result['bootstrap']['resamples']:,} bootstrap resamples (seed {result['bootstrap']['seed']}).</p>"
    )
    systems = [(n, w) for n, w in (provenance.get("systems") or {}).items() if w]
    if systems:
        body.append(
            "<ul>"
            + "".join(f"<li><strong>{html.escape(n)}</strong>: {html.escape(w)}</li>" for n, w in systems)
            + "</ul>"
        )
    body.append("<h2>Summary</h2>" + _html_table(SUMMARY_HEAD, _summary_rows(result), "summary"))
    if result["pairs"]:
        body.append("<h2>Differences</h2>" + _html_table(PAIR_HEAD, _pair_rows(result)))
    for p in plots:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        body.append(
            f'<h2>{html.escape(p.stem.replace("_", " "))}</h2><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}">'
        )
    head, rows = _per_label_rows(result)
    body.append("<h2>Per label (F1)</h2>" + _html_table(head, rows))
    for title, head, rows in _detail_tables(result):
        body.append(f"<h2>{html.escape(title)}</h2>" + (_html_table(head, rows) if rows else "<p>(none)</p>"))
    body.append("<h2>How this was made</h2><pre>" + html.escape(provenance.get("command", "")) + "</pre>")
    body.append(
        "<pre class=small>" + html.escape(json.dumps(provenance, indent=2, ensure_ascii=False)) + "</pre>"
    )
    doc = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>cotdistill report</title><style>{_CSS}</style></head><body>{"".join(body)}</body></html>\n'
    write_atomic(path, doc)
    return path


def write_report(result: dict, out_dir: str | os.PathLike, provenance: dict) -> dict[str, Path]:
    """Write metrics.json, the PNG plots, report.md and report.html into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(
        out / "metrics.json",
        json.dumps({**result, "provenance": provenance}, indent=2, ensure_ascii=False) + "\n",
    )
    plots = make_plots(result, out)
    return {
        "metrics": out / "metrics.json",
        "markdown": write_markdown(result, plots, provenance, out / "report.md"),
        "html": write_html(result, plots, provenance, out / "report.html"),
        **{p.stem: p for p in plots},
    }
