import pytest

from cotdistill.tags import is_valid_tag, spans_to_tags, tags_to_spans

# (tags, conlleval spans, strict IOB2 spans), worked out by hand.
CASES = [
    (["B-PER", "I-PER", "O"], [(0, 2, "PER")], [(0, 2, "PER")]),
    (["I-PER", "I-PER", "O"], [(0, 2, "PER")], []),  # orphan I- starts an entity only under conlleval
    (["O", "I-LOC"], [(1, 2, "LOC")], []),
    (["B-PER", "I-LOC"], [(0, 1, "PER"), (1, 2, "LOC")], [(0, 1, "PER")]),
    (["B-PER", "B-PER"], [(0, 1, "PER"), (1, 2, "PER")], [(0, 1, "PER"), (1, 2, "PER")]),
    (["I-ORG", "B-ORG", "I-ORG"], [(0, 1, "ORG"), (1, 3, "ORG")], [(1, 3, "ORG")]),
    (["B-OTHER", "I-OTHER", "I-OTHER"], [(0, 3, "OTHER")], [(0, 3, "OTHER")]),
    (["S-PER", "B-LOC", "E-LOC"], [(0, 1, "PER"), (1, 3, "LOC")], None),  # IOBES: strict IOB2 refuses
    ([], [], []),
    (["O", "O"], [], []),
]


@pytest.mark.parametrize("tags, conll, strict", CASES)
def test_decoding(tags, conll, strict):
    assert tags_to_spans(tags) == conll
    if strict is None:
        with pytest.raises(ValueError, match="is not IOB2"):
            tags_to_spans(tags, "strict")
    else:
        assert tags_to_spans(tags, "strict") == strict


@pytest.mark.parametrize("tags", [["S-PER"], ["B-PER", "E-PER"], ["O", "E-LOC"]])
def test_strict_refuses_iobes_as_seqeval_does(tags):
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    with pytest.raises(ValueError):
        f1_score([tags], [tags], mode="strict", scheme=IOB2)
    with pytest.raises(ValueError, match="is not IOB2"):
        tags_to_spans(tags, "strict")


def test_unknown_mode():
    with pytest.raises(ValueError, match="conlleval, strict"):
        tags_to_spans(["O"], "lenient")


@pytest.mark.parametrize(
    "tag, ok",
    [
        ("O", True),
        ("B-PER", True),
        ("I-MISC", True),
        ("B-", False),
        ("X-PER", False),
        ("b-PER", False),
        ("", False),
        ("B-A B", False),
    ],
)
def test_valid_tags(tag, ok):
    assert is_valid_tag(tag) is ok


def test_spans_to_tags_roundtrip():
    spans = [(0, 2, "PER"), (3, 4, "LOC")]
    tags = spans_to_tags(5, spans)
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert tags_to_spans(tags) == spans
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags(2, [(1, 3, "X")])
