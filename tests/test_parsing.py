"""The MNER answer parser on hand-made outputs in every accepted form."""

import pytest

from cotdistill.parsing import align_mention, map_type, parse_mner
from cotdistill.records import EntityAnswer, Example

LABELS = ["LOC", "ORG", "OTHER", "PER"]
TOKENS = (
    "RT",
    "@ThePatriot143",
    ":",
    "CLINTONS",
    "visit",
    "New",
    "York",
    "#NewYork",
    "and",
    "Paris",
    "Paris",
)
EX = Example("1", "mner", " ".join(TOKENS), EntityAnswer(), tokens=TOKENS)


def spans(raw, labels=LABELS):
    r = parse_mner(raw, EX, labels)
    assert r.error is None, r.error
    return [(e.start, e.end, e.type) for e in r.answer.entities], r


@pytest.mark.parametrize(
    "raw, expected",
    [
        # PGIM's run-together style, with a rationale
        (
            "Named entities:1. ThePatriot143 (person/handle)2. Clintons (person/political entity)3. Paris (city)Reasoning:The post ...",
            [(1, 2, "PER"), (3, 4, "PER"), (9, 10, "LOC"), (10, 11, "LOC")],
        ),
        # JSON in a code fence, followed by prose
        (
            '```json\n{"entities": [{"text": "New York", "type": "LOC"}]}\n```\nBecause it is a city.',
            [(5, 7, "LOC"), (7, 8, "LOC")],
        ),
        # bare JSON list of pairs
        ('[["CLINTONS", "PER"]]', [(3, 4, "PER")]),
        # bullet list with colons
        ("- Paris: LOC\n- @ThePatriot143: PER", [(1, 2, "PER"), (9, 10, "LOC"), (10, 11, "LOC")]),
        # unnumbered typed items
        ("Named entities: ThePatriot143 (person) Reasoning: a handle", [(1, 2, "PER")]),
        # explicit none
        ("Named entities: None. Reasoning: nothing is named", []),
        ("Named entities: Reasoning: nothing", []),
    ],
)
def test_forms(raw, expected):
    got, _ = spans(raw)
    assert got == expected


def test_rationale_and_unaligned_kept():
    _, r = spans("Named entities:1. Obama (person)2. Paris (city)Reasoning:Paris is a city.")
    assert r.rationale == "Paris is a city." and r.unaligned == ["Obama"]
    assert r.mentions == [("Obama", "person"), ("Paris", "city")]


@pytest.mark.parametrize("raw", ["", "   ", "I cannot help with that.", '{"entities": "x"}'])
def test_failures_keep_a_reason(raw):
    r = parse_mner(raw, EX, LABELS)
    assert r.answer is None and r.error


@pytest.mark.parametrize(
    "free, labels, expected",
    [
        ("person/handle", LABELS, "PER"),
        ("city", LABELS, "LOC"),
        ("baseball team", LABELS, "ORG"),
        ("B-ORG", LABELS, "ORG"),
        ("book/publication", LABELS, "OTHER"),
        ("book/publication", ["LOC", "MISC", "ORG", "PER"], "MISC"),
        ("book", ["LOC", "PER"], None),
        ("", LABELS, None),
    ],
)
def test_map_type(free, labels, expected):
    assert map_type(free, labels) == expected


def test_align_every_occurrence_with_or_without_marks():
    assert align_mention(TOKENS, "Paris") == [(9, 10), (10, 11)]
    assert align_mention(TOKENS, "#NewYork") == [(5, 7), (7, 8)]
    assert align_mention(TOKENS, "clintons") == [(3, 4)]
    assert align_mention(("@", "user", "hi"), "@user") == [(1, 2)]  # Twitter-2017 splits @ from the name
    assert align_mention(TOKENS, "Berlin") == []


MRE_LABELS = ["/per/org/member_of", "/per/per/peer", "/org/org/subsidiary", "None"]


def mre_example():
    from cotdistill.records import Entity, Relation, RelationAnswer

    h, t = Entity(0, 2, None, "Bill Gates"), Entity(3, 4, None, "Microsoft")
    return Example(
        "m",
        "mre",
        "Bill Gates of Microsoft",
        RelationAnswer((Relation(h, t, "None"),)),
        tokens=("Bill", "Gates", "of", "Microsoft"),
    )


@pytest.mark.parametrize(
    "raw, label",
    [
        ('{"relation": "/per/org/member_of"}', "/per/org/member_of"),
        ("Gates leads the company.\nRelation: member_of", "/per/org/member_of"),
        ("per/per/peer", "/per/per/peer"),
        ("No relation.", "None"),
        ('```json\n{"relation": "none"}\n```', "None"),
    ],
)
def test_mre_labels(raw, label):
    from cotdistill.parsing import parse_mre

    answer, _, error = parse_mre(raw, mre_example(), MRE_LABELS, "None")
    assert error is None and answer.relations[0].label == label
    assert (answer.relations[0].head.start, answer.relations[0].tail.start) == (0, 3)


def test_mre_failure_and_rationale():
    from cotdistill.parsing import parse_mre

    assert parse_mre("they are friends", mre_example(), MRE_LABELS, "None")[2].startswith("no relation label")
    _, rationale, _ = parse_mre("Gates founded it.\nRelation: member_of", mre_example(), MRE_LABELS, "None")
    assert rationale == "Gates founded it."


def test_mae_values_aligned_to_characters():
    from cotdistill.parsing import parse_mae
    from cotdistill.records import AttributeAnswer

    ex = Example("v", "mae", "爱华仕搭扣真皮单肩包", AttributeAnswer())
    answer, _, err = parse_mae(
        '{"values": [{"attribute": "材质", "value": "真皮"}, {"attribute": "颜色", "value": "红"}, {"attribute": "未知", "value": "x"}]}',
        ex,
        ["材质", "颜色"],
    )
    assert err is None
    assert [(v.attribute, v.value, v.start, v.end) for v in answer.values] == [
        ("材质", "真皮", 5, 7),
        ("颜色", "红", None, None),
    ]
    answer, _, err = parse_mae("材质: 真皮\n闭合方式：搭扣", ex, ["材质", "闭合方式"])
    assert [(v.attribute, v.start) for v in answer.values] == [("材质", 5), ("闭合方式", 3)]
    assert parse_mae("nothing here", ex, ["材质"])[0] is None


def test_parse_answer_dispatches():
    from cotdistill.tasks import parse_answer

    assert parse_answer("mner", '[["Paris", "LOC"]]', EX, LABELS)[0].entities[0].start == 9
    assert (
        parse_answer("mre", "peer", mre_example(), MRE_LABELS, "None")[0].relations[0].label
        == "/per/per/peer"
    )
    with pytest.raises(ValueError, match="unknown task"):
        parse_answer("qa", "", EX, LABELS)
