import json

import pytest

from cotdistill.records import (
    AttributeAnswer,
    AttributeValue,
    Entity,
    EntityAnswer,
    Example,
    Prediction,
    RecordError,
    Relation,
    RelationAnswer,
    Usage,
    answer_from_dict,
    empty_answer,
)
from cotdistill.tasks import TaskSpec, is_no_relation

PER = Entity(0, 2, "PER", "Barack Obama")
LOC = Entity(4, 5, "LOC", "Paris")


def roundtrip(record):
    return type(record).from_dict(json.loads(json.dumps(record.to_dict())))


@pytest.mark.parametrize(
    "record",
    [
        PER,
        Relation(Entity(0, 1, None, "a"), Entity(1, 3, None, "b c"), "/per/org/member_of"),
        AttributeValue("材质", "真皮", 4, 6),
        AttributeValue("color", "red"),
        EntityAnswer((PER, LOC)),
        RelationAnswer((Relation(PER, LOC, "None"),)),
        AttributeAnswer((AttributeValue("a", "b", 0, 1),)),
        Usage(10, 20, 0.5),
        Example(
            "1",
            "mner",
            "Barack Obama in Paris",
            EntityAnswer((PER,)),
            tokens=("Barack", "Obama", "in", "Paris"),
            image="/x/1.jpg",
            meta={"k": [1]},
        ),
        Prediction(
            "1", "teacher:qwen", EntityAnswer((PER,)), raw="raw text", rationale="why", usage=Usage(1, 2, 0.1)
        ),
        Prediction("2", "student", None, raw="garbage", parse_error="no JSON object found"),
    ],
)
def test_json_roundtrip(record):
    assert roundtrip(record) == record


def test_answer_from_dict_picks_type_by_task():
    assert isinstance(answer_from_dict({"task": "mre", "relations": []}), RelationAnswer)
    with pytest.raises(RecordError, match="unknown task 'xx'"):
        answer_from_dict({"task": "xx"})
    assert empty_answer("mae") == AttributeAnswer(())


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda: Entity(3, 3, "PER", ""), "empty"),
        (lambda: AttributeValue("a", "b", 0, None), "both"),
        (lambda: Prediction("1", "s", None, raw="x"), "parse_error"),
        (lambda: Example("1", "mner", "t", RelationAnswer(())), "gold answer is for mre"),
        (lambda: Example.from_dict({"id": "1", "task": "mner"}), "missing field 'text'"),
    ],
)
def test_invalid_records_raise(bad, match):
    with pytest.raises(RecordError, match=match):
        bad()


def test_task_spec_reads_labels_from_data():
    exs = [
        Example("1", "mner", "a b", EntityAnswer((Entity(0, 1, "MISC", "a"),))),
        Example("2", "mner", "a b", EntityAnswer((Entity(1, 2, "PER", "b"),))),
    ]
    spec = TaskSpec.from_examples("mner", exs)
    assert spec.labels == ("MISC", "PER") and spec.metric == "mner_f1"
    schema = spec.answer_schema()
    assert schema["properties"]["entities"]["items"]["properties"]["type"]["enum"] == ["MISC", "PER"]

    rel = [
        Example(
            "1",
            "mre",
            "a b",
            RelationAnswer((Relation(Entity(0, 1, None, "a"), Entity(1, 2, None, "b"), "none"),)),
        )
    ]
    spec = TaskSpec.from_examples("mre", rel, extra_labels=["/per/per/peer"])
    assert spec.none_label == "none" and spec.labels == ("/per/per/peer", "none")
    with pytest.raises(ValueError, match="label set is empty"):
        TaskSpec("mae", ())


@pytest.mark.parametrize(
    "label, expected", [("None", True), ("none", True), (None, True), ("/per/per/peer", False)]
)
def test_is_no_relation(label, expected):
    assert is_no_relation(label) is expected


def test_optional_dependency_hint():
    from cotdistill.optional import MissingDependencyError, require

    assert require("json", "x").dumps([]) == "[]"
    import sys

    sys.modules["bitsandbytes"] = None  # an entry of None makes the import fail, installed or not
    try:
        with pytest.raises(MissingDependencyError, match=r'QLoRA needs .* pip install "cotdistill\[qlora\]"'):
            require("bitsandbytes", "QLoRA")
    finally:
        del sys.modules["bitsandbytes"]
