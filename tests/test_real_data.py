"""The readers and metrics on the real files in ../shared/datasets (skipped when they are absent)."""

import random
from collections import Counter

import pytest
from conftest import need

from cotdistill.eval import ner_scores, re_scores, score_answers
from cotdistill.readers import align_knowledge, load_split, read_pgim_knowledge

SPLITS = ("train", "valid", "test")


def entity_counts(ds):
    return Counter(e.type for ex in ds.examples for e in ex.gold.entities)


def test_twitter2015_counts(datasets_dir):
    root = need(datasets_dir, "twitter2015")
    splits = {s: load_split("twitter2015", root, s) for s in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [4000, 1000, 3257]
    assert [sum(len(ex.tokens) for ex in splits[s].examples) for s in SPLITS] == [64439, 16178, 52822]
    expected = {
        "PER": (2285, 567, 1873),
        "LOC": (2135, 543, 1720),
        "ORG": (957, 251, 860),
        "OTHER": (975, 233, 754),
    }
    counts = {s: entity_counts(splits[s]) for s in SPLITS}
    for type_, per_split in expected.items():
        assert tuple(counts[s][type_] for s in SPLITS) == per_split, type_
    assert [sum(counts[s].values()) for s in SPLITS] == [6352, 1594, 5207]
    b_tags = {
        s: Counter(t[2:] for ex in splits[s].examples for t in ex.meta["tags"] if t.startswith("B-"))
        for s in SPLITS
    }
    expected_b = {
        "PER": (2217, 552, 1816),
        "LOC": (2091, 522, 1697),
        "ORG": (927, 247, 839),
        "OTHER": (931, 220, 720),
    }
    for type_, per_split in expected_b.items():
        assert tuple(b_tags[s][type_] for s in SPLITS) == per_split, type_
    # tokens kept exactly: one token is a lone U+00A0
    assert sum(tok == "\u00a0" for s in SPLITS for ex in splits[s].examples for tok in ex.tokens) >= 1
    assert all("caption" in ex.meta for ex in splits["test"].examples)


def test_twitter2017_counts(datasets_dir):
    root = need(datasets_dir, "twitter2017")
    splits = {s: load_split("twitter2017", root, s) for s in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [3373, 723, 723]
    counts = {s: entity_counts(splits[s]) for s in SPLITS}
    assert [sum(c.values()) for c in counts.values()] == [6049, 1324, 1351]
    assert all(set(c) == {"PER", "LOC", "ORG", "MISC"} for c in counts.values())
    # every lone U+FE0F token line of the files is kept as a token (142 in these files)
    raw = sum(
        line.startswith("\ufe0f\t")
        for s in SPLITS
        for line in (root / f"{s}.txt").read_text(encoding="utf-8").split("\n")
    )
    assert raw > 100
    assert sum(tok == "\ufe0f" for s in SPLITS for ex in splits[s].examples for tok in ex.tokens) == raw


def test_mnre_counts(datasets_dir):
    root = need(datasets_dir, "mnre")
    v2 = {s: load_split("mnre", root, s) for s in SPLITS}
    assert [len(v2[s]) for s in SPLITS] == [12247, 1624, 1614]
    labels = {r.label for s in SPLITS for ex in v2[s].examples for r in ex.gold.relations}
    assert len(labels) == 23 and "None" in labels
    assert sum(ex.image is not None for s in SPLITS for ex in v2[s].examples) > 0  # the 39 sample images
    v1 = {s: load_split("mnre-v1", root, s) for s in SPLITS}
    assert [len(v1[s]) for s in SPLITS] == [7824, 975, 1282]
    assert "none" in {r.label for ex in v1["train"].examples for r in ex.gold.relations}


def test_mepave_counts(datasets_dir):
    root = need(datasets_dir, "mepave")
    assert [len(load_split("mepave", root, s)) for s in SPLITS] == [50, 20, 20]


@pytest.mark.parametrize("year, blocks", [("2015", (3999, 999, 3256)), ("2017", (3373, 723, 723))])
def test_pgim_alignment(datasets_dir, year, blocks):
    root = need(datasets_dir, f"twitter{year}")
    for split, n in zip(SPLITS, blocks, strict=True):
        examples = load_split(f"twitter{year}", root, split).examples
        kb = read_pgim_knowledge(root / "pgim" / f"{split}.txt")
        assert len(kb) == n
        al = align_knowledge(examples, kb)
        assert len(al.knowledge) == n and not al.unmatched_blocks
        if year == "2015":  # the last post of each split has no knowledge; nothing else is shifted
            assert al.missing_examples == [examples[-1].id]
        else:
            assert al.missing_examples == []
        assert al.knowledge[examples[0].id].startswith("Named entities:")


def perturb(tags, rng):
    out = list(tags)
    types = ["PER", "LOC", "ORG", "OTHER"]
    for i in range(len(out)):
        r = rng.random()
        if r < 0.05:
            out[i] = "O"
        elif r < 0.08:
            out[i] = f"I-{rng.choice(types)}"  # orphans included
        elif r < 0.10:
            out[i] = f"B-{rng.choice(types)}"
    return out


def test_metrics_equal_seqeval_on_real_data(datasets_dir):
    seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval (the dev extra) cross-checks the metric")
    from seqeval.scheme import IOB2

    root = need(datasets_dir, "twitter2015")
    gold = [ex.meta["tags"] for ex in load_split("twitter2015", root, "test").examples]
    rng = random.Random(0)
    for _ in range(3):
        pred = [perturb(t, rng) for t in gold]
        ours = ner_scores(gold, pred)
        assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
        assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
        report = seqeval.classification_report(gold, pred, output_dict=True)
        for type_ in ("PER", "LOC", "ORG", "OTHER"):
            assert ours["per_type"][type_]["f1"] == pytest.approx(report[type_]["f1-score"], abs=1e-12)
            assert ours["per_type"][type_]["support"] == report[type_]["support"]
        strict = ner_scores(gold, pred, mode="strict")
        assert strict["f1"] == pytest.approx(
            seqeval.f1_score(gold, pred, mode="strict", scheme=IOB2), abs=1e-12
        )


@pytest.mark.parametrize(
    "name, sub",
    [
        ("twitter2015", "twitter2015"),
        ("twitter2017", "twitter2017"),
        ("mnre", "mnre"),
        ("mnre-v1", "mnre"),
        ("mepave", "mepave"),
    ],
)
def test_gold_scores_one_against_itself(datasets_dir, name, sub):
    ds = load_split(name, need(datasets_dir, sub), "test")
    gold = [ex.gold for ex in ds.examples]
    scores = score_answers(ds.task, gold, gold)
    assert scores["f1"] == 1.0 and scores["precision"] == 1.0 and scores["recall"] == 1.0
    if ds.task == "mre":
        labels = [ex.gold.relations[0].label for ex in ds.examples]
        assert re_scores(labels, labels)["f1"] == 1.0 and scores["accuracy"] == 1.0
    if ds.task == "mner":
        tags = [ex.meta["tags"] for ex in ds.examples]
        assert ner_scores(tags, tags)["f1"] == 1.0
