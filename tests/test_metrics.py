"""Metric cases worked out by hand."""

import pytest

from cotdistill.eval import mae_scores, metric_path, ner_scores, re_scores, score_answers, span_scores
from cotdistill.records import AttributeAnswer, AttributeValue, Entity, EntityAnswer, Relation, RelationAnswer

# gold tags, predicted tags, (tp, fp, fn), precision, recall, f1
NER_CASES = [
    ([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]], (1, 0, 0), 1.0, 1.0, 1.0),
    ([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]], (0, 1, 1), 0.0, 0.0, 0.0),  # boundary error = fp + fn
    ([["B-PER", "I-PER", "O"]], [["B-LOC", "I-LOC", "O"]], (0, 1, 1), 0.0, 0.0, 0.0),  # type error
    ([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]], (1, 0, 1), 1.0, 0.5, 2 / 3),
    ([["B-PER", "O", "O"]], [["B-PER", "O", "B-ORG"]], (1, 1, 0), 0.5, 1.0, 2 / 3),
    ([["O", "O"]], [["O", "O"]], (0, 0, 0), 0.0, 0.0, 0.0),
    # orphan I- in the prediction counts as an entity under conlleval
    ([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]], (1, 0, 0), 1.0, 1.0, 1.0),
    # two sentences: 3 gold, 2 predicted, 1 right -> P 1/2, R 1/3, F1 0.4
    ([["B-PER", "O"], ["B-LOC", "B-ORG"]], [["B-PER", "O"], ["B-ORG", "O"]], (1, 1, 2), 0.5, 1 / 3, 0.4),
]


@pytest.mark.parametrize("gold, pred, counts, p, r, f1", NER_CASES)
def test_ner_cases(gold, pred, counts, p, r, f1):
    s = ner_scores(gold, pred)
    assert (s["tp"], s["fp"], s["fn"]) == counts
    assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((p, r, f1))


def test_ner_strict_mode_drops_orphans():
    s = ner_scores([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]], mode="strict")
    assert (s["tp"], s["fp"], s["fn"]) == (0, 0, 1)


def test_ner_per_type_and_length_checks():
    s = ner_scores([["B-PER", "B-LOC"]], [["B-PER", "B-PER"]])
    assert s["per_type"]["PER"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "tp": 1, "fp": 1, "fn": 0, "support": 1}
    )
    assert s["per_type"]["LOC"]["recall"] == 0.0 and s["per_type"]["LOC"]["support"] == 1
    with pytest.raises(ValueError, match="sequence 0: 2 gold tags but 1 predicted"):
        ner_scores([["O", "O"]], [["O"]])


def test_span_sets_ignore_duplicates():
    s = span_scores([[(0, 1, "PER")]], [[(0, 1, "PER"), (0, 1, "PER")]])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 0)


# gold, pred, (tp, fp, fn), accuracy
RE_CASES = [
    (["a", "None", "b", "none"], ["a", "None", "b", "None"], (2, 0, 0), 1.0),
    (["a", "None"], ["None", "a"], (0, 1, 1), 0.0),  # a miss and a false alarm
    (["a", "b"], ["b", "b"], (1, 1, 1), 0.5),  # wrong label: fp for b, fn for a
    (["None", "none"], ["none", "None"], (0, 0, 0), 1.0),  # both spellings mean no relation
]


@pytest.mark.parametrize("gold, pred, counts, acc", RE_CASES)
def test_re_cases(gold, pred, counts, acc):
    s = re_scores(gold, pred)
    assert (s["tp"], s["fp"], s["fn"]) == counts and s["accuracy"] == acc


def av(a, v, s=None, e=None):
    return AttributeValue(a, v, s, e)


def test_mae_cases():
    gold = [[av("color", "red", 0, 3), av("brand", "Acme")], [av("size", "XL", 5, 7)]]
    pred = [
        [av("color", "red", 0, 3), av("brand", "acme ")],
        [av("size", "XL", 4, 6), av("fit", "slim", 0, 4)],
    ]
    s = mae_scores(gold, pred)
    # values: color and brand (spanless, case/space-insensitive) right; size wrong span; fit spurious
    assert (s["tp"], s["fp"], s["fn"]) == (2, 2, 1)
    # attributes: color, brand, size right; fit spurious
    assert (s["attribute"]["tp"], s["attribute"]["fp"], s["attribute"]["fn"]) == (3, 1, 0)


def test_score_answers_missing_prediction_counts_as_empty():
    per = Entity(0, 1, "PER", "a")
    s = score_answers("mner", [EntityAnswer((per,)), EntityAnswer((per,))], [EntityAnswer((per,)), None])
    assert (s["tp"], s["fn"]) == (1, 1)
    h, t = Entity(0, 1, None, "a"), Entity(1, 2, None, "b")
    gold = [RelationAnswer((Relation(h, t, "x"),)), RelationAnswer((Relation(h, t, "None"),))]
    pred = [RelationAnswer((Relation(h, t, "x"),)), None]
    s = score_answers("mre", gold, pred)
    assert (s["tp"], s["fp"], s["fn"], s["accuracy"]) == (1, 0, 0, 1.0)
    s = score_answers("mae", [AttributeAnswer((av("c", "r", 0, 1),))], [None])
    assert s["fn"] == 1
    with pytest.raises(ValueError, match="2 gold answers but 1"):
        score_answers("mner", [EntityAnswer(), EntityAnswer()], [None])


def test_hf_evaluate_modules_load_offline(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    m = evaluate.load(metric_path("mner_f1"))
    s = m.compute(
        predictions=[["B-PER", "O"], ["B-ORG", "O"]], references=[["B-PER", "O"], ["B-LOC", "B-ORG"]]
    )
    assert s["f1"] == pytest.approx(0.4)
    assert (
        evaluate.load(metric_path("mre_f1")).compute(predictions=["a", "b"], references=["a", "none"])[
            "precision"
        ]
        == 0.5
    )
    rows = [[{"attribute": "c", "value": "x", "start": 0, "end": 1}]]
    assert evaluate.load(metric_path("mae_f1")).compute(predictions=rows, references=rows)["f1"] == 1.0
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("bleu")
