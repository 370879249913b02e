"""The report's plots, as PNG files: scores with intervals, per label, agreement, error kinds, confusion,
cost and the learning curve. Matplotlib's Agg backend, no display needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cotdistill.files import atomic_path

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
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
