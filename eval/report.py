"""Reports: ``metrics.json``, ``report.md`` (terminals, pull requests), a self-contained ``report.html`` (plots
embedded, no scripts, no external fonts, readable offline) and the plots as PNG files beside them."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _err(value: float, ci: list[float]) -> list[float]:
    return [max(0.0, value - ci[0]), max(0.0, ci[1] - value)]


def plot_summary(result: dict, path: Path) -> Path:
    names = list(result["systems"])
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(names) + 2), 3.4))
    f1 = [result["systems"][n]["f1"] * 100 for n in names]
    err = np.array([_err(result["systems"][n]["f1"], result["systems"][n]["f1_ci"]) for n in names]).T * 100
    ax.bar(names, f1, yerr=err, capsize=5, color=COLORS[: len(names)])
    tops = [v + e for v, e in zip(f1, err[1], strict=True)]
    for k, (v, top) in enumerate(zip(f1, tops, strict=True)):
        ax.text(k, top + 1.5, f"{v:.1f}", ha="center", va="bottom", fontsize=9)  # above the upper cap
    ax.set_ylabel("F1 (%) with 95% CI")
    ax.set_ylim(0, max([*tops, 1]) * 1.15 + 5)  # room for the whole interval and its label
    ax.set_title("Overall F1")
    return _save(fig, path)


def plot_per_label(result: dict, path: Path) -> Path:
    names = list(result["systems"])
    labels = [lab for lab in result["labels"] if any(lab in result["systems"][n]["per_label"] for n in names)]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) * len(names) + 2), 3.8))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(labels))
    for k, n in enumerate(names):
        sysr = result["systems"][n]
        vals = [sysr["per_label"].get(lab, {}).get("f1", 0.0) * 100 for lab in labels]
        cis = [sysr["per_label_f1_ci"].get(lab, [0.0, 0.0]) for lab in labels]
        err = np.array([_err(v / 100, c) for v, c in zip(vals, cis, strict=True)]).T * 100 if labels else None
        ax.bar(
            x + (k - (len(names) - 1) / 2) * width,
            vals,
            width,
            yerr=err,
            capsize=3,
            label=n,
            color=COLORS[k % len(COLORS)],
        )
    ax.set_xticks(
        x, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center"
    )
    ax.set_ylabel("F1 (%) with 95% CI")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.set_title("F1 per label")
    return _save(fig, path)


def plot_agreement(result: dict, path: Path) -> Path:
    rows = result["agreement"]
    fig, ax = plt.subplots(figsize=(8.5, 1.6 + 0.6 * len(rows)))
    keys = [
        ("both_right", "both right", "#55A868"),
        ("only_a_right", "only {a} right", "#4C72B0"),
        ("only_b_right", "only {b} right", "#DD8452"),
        ("both_wrong", "both wrong", "#C44E52"),
    ]
    for i, row in enumerate(rows):
        left = 0
        for key, name, color in keys:
            v = row[key]
            ax.barh(i, v, left=left, color=color, label=name.format(a="A", b="B") if i == 0 else None)
            if v:
                ax.text(left + v / 2, i, str(v), ha="center", va="center", fontsize=8, color="white")
            left += v
    ax.set_yticks(range(len(rows)), [f"A={r['a']}\nB={r['b']}" for r in rows], fontsize=8)
    ax.set_xlabel("gold items")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # beside, never over
    ax.set_title("Agreement on gold items")
    return _save(fig, path)


ERROR_COLORS = {
    "correct": "#55A868",
    "wrong_type": "#8172B3",
    "boundary": "#4C72B0",
    "boundary_and_type": "#937860",
    "spurious": "#DD8452",
    "missed": "#C44E52",
}


def plot_errors(result: dict, path: Path) -> Path:
    """Each system's predicted and missed spans by kind, as one stacked bar."""
    names = list(result["errors"])
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.55 * len(names)))
    for i, name in enumerate(names):
        left = 0
        for kind, color in ERROR_COLORS.items():
            v = result["errors"][name][kind]
            ax.barh(i, v, left=left, color=color, label=kind.replace("_", " ") if i == 0 else None)
            if v and v >= 0.04 * max(1, sum(result["errors"][name][k] for k in ERROR_COLORS)):
                ax.text(left + v / 2, i, str(v), ha="center", va="center", fontsize=7, color="white")
            left += v
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("spans (predicted, plus gold ones missed)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # beside, never over
    ax.set_title("Errors by kind")
    return _save(fig, path)


def plot_confusion(name: str, confusion: dict, path: Path) -> Path:
    labels, m = confusion["labels"], np.array(confusion["matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(labels) + 3), max(4, 0.35 * len(labels) + 2)))
    ax.imshow(np.log1p(m), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"Confusion matrix: {name}")
    return _save(fig, path)


def plot_cost(result: dict, path: Path) -> Path | None:
    """F1 against seconds per example; each system keeps its colour from the other plots, and systems whose
    files record no cost are named under the plot rather than dropped silently."""
    names = list(result["systems"])
    known = [n for n in names if _seconds(result["systems"][n])]
    if not known:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for n in known:
        s = result["systems"][n]
        ax.errorbar(
            [_seconds(s)],
            [s["f1"] * 100],
            yerr=np.array([_err(s["f1"], s["f1_ci"])]).T * 100,
            fmt="o",
            color=COLORS[names.index(n) % len(COLORS)],
            capsize=4,
            label=n,
        )
    ax.set_xscale("log")
    ax.set_xlabel("seconds per example (log)")
    ax.set_ylabel("F1 (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    unknown = [n for n in names if n not in known]
    ax.set_title(
        "F1 against cost" + (f"\n(no cost recorded: {', '.join(unknown)})" if unknown else ""), fontsize=10
    )
    return _save(fig, path)


def _seconds(system: dict) -> float | None:
    usage = system.get("usage") or {}
    value = usage.get("seconds_per_example")
    return value if value else None


def plot_learning_curve(result: dict, path: Path) -> Path | None:
    pts = sorted(
        (s["fraction"], s["f1"], s["f1_ci"], n)
        for n, s in result["systems"].items()
        if s.get("fraction") is not None
    )
    if len(pts) < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs = [p[0] * 100 for p in pts]
    ys = [p[1] * 100 for p in pts]
    err = np.array([_err(p[1], p[2]) for p in pts]).T * 100
    ax.errorbar(xs, ys, yerr=err, fmt="-o", capsize=4, color=COLORS[1])
    ax.set_xlabel("share of the knowledge used for training (%)")
    ax.set_ylabel("F1 (%) with 95% CI")
    ax.set_title("Learning curve")
    return _save(fig, path)


def make_plots(result: dict, out_dir: Path) -> list[Path]:
    plots = [
        plot_summary(result, out_dir / "f1_summary.png"),
        plot_per_label(result, out_dir / "f1_per_label.png"),
    ]
    if result.get("agreement"):
        plots.append(plot_agreement(result, out_dir / "agreement.png"))
    if result.get("errors"):
        plots.append(plot_errors(result, out_dir / "errors_by_kind.png"))
    for k, (name, conf) in enumerate(result.get("confusion", {}).items()):
        plots.append(plot_confusion(name, conf, out_dir / f"confusion_{k}.png"))
    for extra in (
        plot_cost(result, out_dir / "f1_vs_cost.png"),
        plot_learning_curve(result, out_dir / "learning_curve.png"),
    ):
        if extra is not None:
            plots.append(extra)
    return plots


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _summary_rows(result: dict) -> list[list[str]]:
    rows = []
    for n, s in result["systems"].items():
        usage = s.get("usage") or {}
        rows.append(
            [
                n,
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


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [
        "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", "<br>") for c in r) + " |" for r in rows
    ]
    return "\n".join(lines)


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
            p["a"],
            p["b"],
            f"{100 * p['f1_difference']:+.2f}",
            f"[{100 * p['difference_ci'][0]:+.2f}, {100 * p['difference_ci'][1]:+.2f}]",
            f"{p['p_value']:.4f}",
        ]
        for p in result["pairs"]
    ]


PAIR_HEAD = ["A", "B", "F1(A) − F1(B)", "95% CI", "p (paired bootstrap)"]


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
                    r["image_id"] or "",
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
    parts = [f"# Comparison on {provenance.get('gold', 'the test set')}", ""]
    if provenance.get("note"):
        parts += [f"> **{provenance['note']}**", ""]
    parts += [
        f"{result['examples']:,} examples, task {result['task']}; 95% intervals from {result['bootstrap']['resamples']:,} bootstrap resamples (seed {result['bootstrap']['seed']}).",
        "",
    ]
    parts += [f"- **{name}**: {what}" for name, what in (provenance.get("systems") or {}).items() if what] + [
        ""
    ]
    parts += ["## Summary", "", _md_table(SUMMARY_HEAD, _summary_rows(result)), ""]
    if result["pairs"]:
        parts += ["## Differences", "", _md_table(PAIR_HEAD, _pair_rows(result)), ""]
    head, rows = _per_label_rows(result)
    parts += ["## Per label (F1)", "", _md_table(head, rows), ""]
    for title, head, rows in _detail_tables(result, rationale_chars=200):
        parts += [f"## {title}", "", _md_table(head, rows) if rows else "(none)", ""]
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
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
th{background:#f2f2f2}td{white-space:pre-line}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
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
    path.write_text(doc, encoding="utf-8")
    return path


def write_report(result: dict, out_dir: str | os.PathLike, provenance: dict) -> dict[str, Path]:
    """Write metrics.json, the PNG plots, report.md and report.html into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(
        json.dumps({**result, "provenance": provenance}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    plots = make_plots(result, out)
    return {
        "metrics": out / "metrics.json",
        "markdown": write_markdown(result, plots, provenance, out / "report.md"),
        "html": write_html(result, plots, provenance, out / "report.html"),
        **{p.stem: p for p in plots},
    }
