"""Knowledge building: vote, filter against gold, dedupe, join, export — counted by reason."""

import json

import pytest

from cotdistill.distill.backends import EchoBackend, Generation
from cotdistill.distill.knowledge import build_knowledge, export_knowledge
from cotdistill.distill.runner import ShardStore, run_generation
from cotdistill.prompts import PromptLibrary
from cotdistill.records import Entity, EntityAnswer, Example
from cotdistill.tasks import TaskSpec

SPEC = TaskSpec("mner", ("LOC", "ORG", "OTHER", "PER"))
TOKS = ("Obama", "visits", "Paris")
GOLD = EntityAnswer((Entity(0, 1, "PER", "Obama"), Entity(2, 3, "LOC", "Paris")))
RIGHT = '{"entities": [{"text": "Obama", "type": "PER"}, {"text": "Paris", "type": "LOC"}]} Because Obama is a president.'
WRONG = '{"entities": [{"text": "Obama", "type": "PER"}]}'


def ex(i):
    return Example(str(i), "mner", " ".join(TOKS), GOLD, tokens=TOKS)


def gen(i, template, sample, text, error=None):
    return Generation(
        key=f"{i}-{template}-{sample}",
        example_id=str(i),
        template=template,
        sample=sample,
        text=text,
        error=error,
    )


def test_vote_filter_dedupe_and_join():
    lib = PromptLibrary()
    gens = [
        # example 0: 2 of 3 samples right -> voted right, agreement 2/3, kept
        gen(0, "mner.answer", 0, RIGHT),
        gen(0, "mner.answer", 1, WRONG),
        gen(0, "mner.answer", 2, RIGHT),
        gen(0, "mner.noun", 0, "Obama: the US president."),
        gen(0, "mner.sentence", 0, "Obama: the US president."),
        gen(0, "mner.multimodal", 0, None, error="unreadable image"),
        # example 1: voted wrong -> dropped
        gen(1, "mner.answer", 0, WRONG),
        gen(1, "mner.noun", 0, "x"),
        # example 2: answer unparsable
        gen(2, "mner.answer", 0, "I cannot tell."),
    ]
    report = build_knowledge([ex(0), ex(1), ex(2), ex(3)], gens, SPEC, lib)
    r0, r1, r2, r3 = report.records
    assert r0.kept and r0.agreement == pytest.approx(2 / 3) and r0.answer_f1 == 1.0
    assert list(r0.grains) == ["mner.noun", "mner.answer"]  # the duplicate sentence grain is dropped
    assert r0.knowledge == "Obama: the US president.\n" + RIGHT
    assert (r1.kept, r1.reason, r1.answer_f1) == (False, "answer disagrees with gold", pytest.approx(2 / 3))
    assert (r2.reason, r3.reason) == ("answer unparsable", "no generations")
    assert report.counts == {
        "kept": 1,
        "dropped: answer disagrees with gold": 1,
        "dropped: answer unparsable": 1,
        "dropped: no generations": 1,
        "generations failed": 1,
        "duplicate rationales dropped": 1,
        "answer parse failures": 1,
    }
    assert report.kept == {"0": r0.knowledge}
    # without gold (a test split) the wrong answer's knowledge is kept
    assert build_knowledge([ex(1)], gens, SPEC, lib, use_gold=False).records[0].kept
    # a softer threshold keeps the partly right one
    assert build_knowledge([ex(1)], gens, SPEC, lib, min_f1=0.6).records[0].kept


def test_end_to_end_from_runner_to_export(tmp_path):
    lib = PromptLibrary()
    run_generation(
        [ex(0), ex(1)],
        ["mner.noun", "mner.answer"],
        lib,
        SPEC,
        EchoBackend("echo", text=RIGHT),
        tmp_path / "teacher",
        samples=3,
        progress=False,
    )
    gens = list(ShardStore(tmp_path / "teacher").load().values())
    report = build_knowledge([ex(0), ex(1)], gens, SPEC, lib)
    assert all(r.kept and r.agreement == 1.0 for r in report.records)
    paths = export_knowledge(report, tmp_path / "knowledge")
    rows = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0", "1"] and json.loads(paths["counts"].read_text())["kept"] == 2
    import datasets

    assert datasets.load_from_disk(str(paths["arrow"]))[0]["kept"] is True
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_knowledge(report, tmp_path / "knowledge")


@pytest.mark.parametrize("transient", [True, False])
def test_an_answer_request_that_failed_is_not_an_unparsable_answer(transient):
    failed = Generation(
        key="0-a", example_id="0", template="mner.answer", sample=0, text=None, error="backend error: HTTP 503",
        transient=transient,
    )  # fmt: skip
    report = build_knowledge(
        [ex(0), ex(1)], [failed, gen(1, "mner.answer", 0, "I cannot tell.")], SPEC, PromptLibrary()
    )
    assert [r.reason for r in report.records] == ["answer request failed", "answer unparsable"]
    counted = "failed requests" if transient else "generations failed"
    assert report.counts[counted] == 1 and report.counts["dropped: answer request failed"] == 1
