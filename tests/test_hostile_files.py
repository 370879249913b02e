"""Hostile input files (issue 27): alias bombs, other encodings, byte-order marks, values nobody checks,
and any bytes at all as a dataset file, a config or a predictions file.

Each must read, or raise one ``CotdistillError`` whose message names the file; never another exception
type, never a hang (hypothesis ``deadline``), never runaway memory (the alias bombs run in a child
process under a memory cap).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from cotdistill.errors import CotdistillError
from cotdistill.eval.predictions import align, read_predictions, system_metrics
from cotdistill.readers import DATASETS, DataFormatError, load_split
from cotdistill.records import (
    AttributeAnswer,
    AttributeValue,
    Entity,
    EntityAnswer,
    Example,
    Relation,
    RelationAnswer,
)
from cotdistill.run.cli import build_parser
from cotdistill.run.config import MAX_ALIAS_VALUES, MAX_CONFIG_BYTES, read_config
from cotdistill.run.validation import load_config
from cotdistill.settings import ConfigError

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the dev extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# ---------------------------------------------------------------------------------------------------------
# Config bombs: each runs in a child process whose address space may grow by at most LIMIT_MB beyond what
# the imports took, with a wall-clock timeout, so a regression fails the test instead of the machine.

LIMIT_MB = 300

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from cotdistill.errors import CotdistillError
    from cotdistill.run.validation import load_config

    def vm_kb(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])

    limit = (vm_kb("VmSize:") + {limit_mb} * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    try:
        load_config(sys.argv[1], json.loads(sys.argv[2]))
        outcome = ["read", ""]
    except CotdistillError as err:
        outcome = [type(err).__name__, str(err)]
    except BaseException as err:
        outcome = ["other " + type(err).__name__, str(err)[:300]]
    seconds = time.monotonic() - start
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(json.dumps({{"outcome": outcome, "seconds": seconds, "grew_mb": grew_mb}}))
    """
).format(limit_mb=LIMIT_MB)


def _load_in_child(path: Path, overrides: list[str] = ()) -> dict:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), json.dumps(list(overrides))],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading the config did not finish in 60 s")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _laughs(levels: int = 9) -> str:
    """A list that defines nine lists, each of nine aliases of the one before: one line of YAML, 9**9
    strings once expanded. Where a check formats the value it was given (a string field, a typed backend
    option), the expanded value takes gigabytes and minutes before the first error."""
    parts = ["&l0 [" + ", ".join(['"lol"'] * 9) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def _assert_refused_quickly(result: dict, path: Path) -> None:
    kind, message = result["outcome"]
    assert kind == "ConfigError", result
    assert str(path) in message and "aliases expand to more than" in message and "\n" not in message, message
    assert result["seconds"] < 2, result
    assert result["grew_mb"] < 100, result


def test_alias_bomb_in_a_string_field_is_refused_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"name: {_laughs()}\n", encoding="utf-8")
    _assert_refused_quickly(_load_in_child(path), path)


def test_alias_bomb_under_teacher_options_is_refused_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(
        f"teacher:\n  backend: vllm\n  options:\n    tensor_parallel_size: {_laughs()}\n", encoding="utf-8"
    )
    _assert_refused_quickly(_load_in_child(path), path)


def test_alias_bomb_in_an_override_is_refused_fast_and_small(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nteacher:\n  backend: vllm\n", encoding="utf-8")
    result = _load_in_child(path, [f"teacher.options={{tensor_parallel_size: {_laughs()}}}"])
    kind, message = result["outcome"]
    assert kind == "ConfigError" and message.startswith("override 'teacher.options={"), result
    assert "aliases expand to more than" in message, result
    assert result["seconds"] < 2 and result["grew_mb"] < 100, result


def test_a_few_aliases_still_read(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "knowledge:\n  min_f1: &cut 0.5\n  min_agreement: *cut\n  filter_splits: &splits [train, test]\n"
        "data:\n  splits: *splits\n",
        encoding="utf-8",
    )
    config = read_config(path)
    assert config.knowledge.min_agreement == 0.5 and config.data.splits == ["train", "test"]


def test_aliases_just_under_the_bound_read_and_just_over_are_refused(tmp_path):
    # one anchored list of n values, then k aliases of it: k * (n + 1) values added by aliases
    n = 99
    fits = MAX_ALIAS_VALUES // (n + 1)
    for k, refused in ((fits, False), (fits + 1, True)):
        path = tmp_path / f"k{k}.yaml"
        body = "evaluation:\n  note: x\nname: n\n"
        anchors = "x0: &v [" + ", ".join(["1"] * n) + "]\n" + "".join(f"x{i}: *v\n" for i in range(1, k + 1))
        path.write_text(anchors + body, encoding="utf-8")
        if refused:
            with pytest.raises(ConfigError, match="aliases expand"):
                read_config(path)
        else:
            with pytest.raises(ConfigError, match=r"unknown|x0"):  # past the aliases: the keys are checked
                read_config(path)


def test_an_alias_inside_its_own_value_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("teacher:\n  options: &o {again: *o}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"loop\.yaml:2: .*refers to the value that holds it"):
        read_config(path)


def test_deep_nesting_is_one_config_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep\.yaml:1: invalid YAML \(nested deeper"):
        read_config(path)


def test_a_config_over_the_size_cap_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    line = "# " + "x" * 97 + "\n"
    path.write_text("name: big\n" + line * (MAX_CONFIG_BYTES // len(line) + 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"big\.yaml: more than 1,048,576 bytes"):
        read_config(path)


# ---------------------------------------------------------------------------------------------------------
# Encodings


def test_a_config_that_is_not_utf8_names_file_line_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    data = "name: run\nevaluation:\n  note: café\n".encode("latin-1")
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        read_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: invalid UTF-8 (byte 0xe9 at offset {data.index(0xE9)})"), message


def test_a_config_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: with-bom\n")
    assert read_config(path).name == "with-bom"


def test_a_control_character_in_a_config_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "ctl.yaml"
    path.write_text("name: a\nevaluation:\n  note: b\x07c\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_config(path)
    assert str(err.value).startswith(f"{path}:3: invalid YAML") and "\n" not in str(err.value)


GOLD = [
    Example("a", "mner", "Obama visits Paris", EntityAnswer(), ("Obama", "visits", "Paris")),
    Example("b", "mner", "Apple", EntityAnswer((Entity(0, 1, "ORG", "Apple"),)), ("Apple",)),
]


def _pred(id_: str, entities=(), source="teacher") -> str:
    answer = EntityAnswer(tuple(Entity(s, e, t, "x") for s, e, t in entities))
    return json.dumps({"id": id_, "source": source, "answer": answer.to_dict(), "raw": "r"})


def test_a_predictions_jsonl_with_a_byte_order_mark_is_read_as_jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join([_pred("a", [(0, 1, "ORG")]), _pred("b")]).encode())
    preds = read_predictions(path, "mner", GOLD)
    assert [p.id for p in preds] == ["a", "b"]
    assert preds[0].answer == EntityAnswer((Entity(0, 1, "ORG", "x"),))


def test_a_predictions_file_that_is_not_utf8_names_file_line_and_byte(tmp_path):
    path = tmp_path / "p.jsonl"
    first = _pred("a").encode()
    path.write_bytes(first + b"\n" + _pred("b").encode().replace(b'"r"', b'"caf\xe9"'))
    with pytest.raises(DataFormatError) as err:
        read_predictions(path, "mner", GOLD)
    at = len(first) + 1 + _pred("b").encode().index(b'"r"') + 4
    assert str(err.value).startswith(f"{path}:2: invalid UTF-8 (byte 0xe9 at offset {at})"), str(err.value)


def test_a_predictions_line_may_hold_a_line_separator_in_a_string(tmp_path):
    path = tmp_path / "p.jsonl"
    line = json.dumps({"id": "a", "source": "s", "answer": None, "raw": "x\u2028y", "parse_error": "e"})
    path.write_text(line.replace("\\u2028", "\u2028") + "\n" + _pred("b") + "\n", encoding="utf-8")
    assert [p.raw for p in read_predictions(path, "mner", GOLD)] == ["x\u2028y", "r"]


def _dataset_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / DATASETS[name].files["test"][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_dataset_json_with_a_byte_order_mark_reads(tmp_path):
    record = ["Obama visits Paris", "http://x/y.jpg", "news", [["Obama", "PER", 0, 5, "http://w"]]]
    _dataset_file(tmp_path, "wikidiverse", b"\xef\xbb\xbf" + json.dumps([record]).encode())
    ds = load_split("wikidiverse", tmp_path, "test")
    assert [(e.start, e.end, e.type) for e in ds.examples[0].gold.entities] == [(0, 1, "PER")]


def test_dataset_json_lines_name_the_line_of_bad_bytes_and_bad_json(tmp_path):
    good = json.dumps({"clean_title": "red shirt", "specs": {"color": "red"}}).encode()
    path = _dataset_file(tmp_path, "mae", good + b"\n" + good.replace(b"red", b"r\xe9d", 1) + b"\n")
    with pytest.raises(
        DataFormatError, match=rf"^{re.escape(str(path))}:2: invalid UTF-8 \(byte 0xe9 at offset"
    ):
        load_split("mae", tmp_path, "test")
    _dataset_file(tmp_path, "mae", good + b"\n\n" + good[:-1] + b"\n")
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}:3: invalid JSON"):
        load_split("mae", tmp_path, "test")


def test_dataset_json_lines_may_hold_a_line_separator_in_a_string(tmp_path):
    record = {"id": "p1", "clean_title": "red\u2028shirt", "specs": {"color": "red"}}
    _dataset_file(tmp_path, "mae", json.dumps(record, ensure_ascii=False).encode() + b"\n")
    assert load_split("mae", tmp_path, "test").examples[0].text == "red\u2028shirt"


# ---------------------------------------------------------------------------------------------------------
# Values nobody checked


def test_an_mner_span_past_the_post_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(_pred("b") + "\n" + _pred("a", [(2, 9, "LOC")]) + "\n", encoding="utf-8")
    with pytest.raises(
        DataFormatError,
        match=rf"^{re.escape(str(path))}:2: example a: entity 'x' \[2, 9\) ends past the post's 3 tokens",
    ):
        read_predictions(path, "mner", GOLD)


def test_an_mre_argument_past_the_post_names_file_and_line(tmp_path):
    tokens = ("Obama", "visits", "Paris")
    head, tail = Entity(0, 1, None, "Obama"), Entity(2, 3, None, "Paris")
    gold = [
        Example(
            "r", "mre", "Obama visits Paris", RelationAnswer((Relation(head, tail, "/per/loc/x"),)), tokens
        )
    ]
    wrong = RelationAnswer((Relation(head, Entity(2, 4, None, "Paris"), "/per/loc/x"),))
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"id": "r", "source": "s", "answer": wrong.to_dict(), "raw": ""}), encoding="utf-8"
    )
    with pytest.raises(
        DataFormatError, match=rf"^{re.escape(str(path))}:1: example r: tail 'Paris' \[2, 4\) ends past"
    ):
        read_predictions(path, "mre", gold)


def test_an_mae_value_past_the_text_names_file_and_line(tmp_path):
    gold = [Example("m", "mae", "red shirt", AttributeAnswer((AttributeValue("color", "red", 0, 3),)))]
    wrong = AttributeAnswer((AttributeValue("color", "shirt", 4, 12),))
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"id": "m", "source": "s", "answer": wrong.to_dict(), "raw": ""}), encoding="utf-8"
    )
    with pytest.raises(
        DataFormatError,
        match=rf"^{re.escape(str(path))}:1: example m: value 'shirt' \[4, 12\) ends past the 9",
    ):
        read_predictions(path, "mae", gold)


def test_an_answer_of_another_task_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    answer = RelationAnswer().to_dict()
    path.write_text(
        _pred("a") + "\n" + json.dumps({"id": "b", "source": "s", "answer": answer, "raw": ""}),
        encoding="utf-8",
    )
    with pytest.raises(
        DataFormatError, match=rf"^{re.escape(str(path))}:2: example b: a mre answer; expected mner answers"
    ):
        read_predictions(path, "mner", GOLD)


def test_an_unknown_label_is_logged_counted_and_scored_as_wrong(tmp_path, caplog):
    path = tmp_path / "p.jsonl"
    lines = [_pred("a"), _pred("b", [(0, 1, "ORG")]), _pred("a", [(0, 1, "PERSON")], source="t2")]
    path.write_text(lines[1] + "\n" + lines[2].replace('"t2"', '"teacher"') + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="cotdistill.eval.predictions"):
        preds = read_predictions(path, "mner", GOLD)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert f"{path}:2: 1 predicted labels are not in the gold label set ('PERSON' x1)" in warning, warning
    metrics = system_metrics("mner", GOLD, align(GOLD, preds))
    assert metrics["unknown_labels"] == 1
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (1, 1, 0)  # kept, and wrong


def test_the_no_relation_label_in_either_spelling_is_not_unknown(tmp_path, caplog):
    tokens = ("Obama", "visits", "Paris")
    head, tail = Entity(0, 1, None, "Obama"), Entity(2, 3, None, "Paris")
    gold = [
        Example("r", "mre", "Obama visits Paris", RelationAnswer((Relation(head, tail, "None"),)), tokens)
    ]
    answer = RelationAnswer((Relation(head, tail, "none"),)).to_dict()
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "r", "source": "s", "answer": answer, "raw": ""}), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="cotdistill.eval.predictions"):
        preds = read_predictions(path, "mre", gold)
    assert not caplog.records
    assert system_metrics("mre", gold, align(gold, preds))["unknown_labels"] == 0


@pytest.mark.parametrize("shots", ["-1", "-5", "x"])
def test_negative_shots_are_an_argparse_error(shots, capsys):
    argv = ["prompts", "show", "mner.answer", "--dataset", "twitter2015", "--data-dir", "d", "--shots", shots]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --shots:" in err and ("negative" in err or "not a whole number" in err), err
    assert build_parser().parse_args([*argv[:-1], "0"]).shots == 0


# ---------------------------------------------------------------------------------------------------------
# Any bytes: every dataset's reader, the config loader, the predictions reader

# cases per test: the profile's (conftest: 60, or 2,000 with ``--hypothesis-profile thorough``)
HOSTILE = settings(
    deadline=timedelta(seconds=5),  # a hang fails; 5 s leaves room on a loaded machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_TWEET = b"IMGID:1\nObama\tB-PER\nvisits\tO\nParis\tB-LOC\n\nIMGID:2\nApple\tS-ORG\n"
_MNRE = repr(
    {
        "token": ["Obama", "visits", "Paris"],
        "h": {"name": "Obama", "pos": [0, 1]},
        "t": {"name": "Paris", "pos": [2, 3]},
        "img_id": "x.jpg",
        "relation": "/per/loc/place_of_residence",
    }
).encode()
SAMPLES = {
    "twitter2015": _TWEET,
    "twitter2017": _TWEET,
    "snap": _TWEET,
    "wikidiverse": json.dumps(
        [["Obama visits Paris", "http://x/y.jpg", "news", [["Obama", "PER", 0, 5, "http://w"]]]]
    ).encode(),
    "mnre": _MNRE + b"\n" + _MNRE.replace(b"x.jpg", b"y.jpg"),
    "mnre-v1": _MNRE.replace(b"'x.jpg'", b"17"),
    "mepave": "1\t2\t爱华仕搭扣单肩包\t爱华仕<闭合方式>搭扣</闭合方式>单肩包\n".encode(),
    "mae": json.dumps(
        [
            {
                "clean_title": "red shirt",
                "clean_text": "a red shirt",
                "specs": {"color": "red"},
                "images": ["a.jpg"],
            }
        ]
    ).encode(),
}
# the files a dataset reads beside its split file
AUX = {
    "twitter2015": ("pgim/BLIP2_15.txt", b"1.jpg :a man\n2.jpg :a logo\n"),
    "twitter2017": ("pgim/BLIP2_17.txt", b"1.jpg :a man\n"),
    "mepave": ("vocab.label", "[PAD]\n闭合方式\n颜色\n".encode()),
}


BOM = b"\xef\xbb\xbf"


def edited(sample: bytes):
    """``sample`` with a few bytes replaced, inserted or deleted: near-valid files reach the checks that
    arbitrary bytes never get past."""

    def apply(edits):
        data = bytearray(sample)
        for at, cut, insert in edits:
            at = at % (len(data) + 1)
            data[at : at + cut] = insert
        return bytes(data)

    edit = st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.binary(max_size=4))
    return st.lists(edit, min_size=1, max_size=4).map(apply)


def hostile_bytes(sample: bytes):
    return st.one_of(
        st.binary(max_size=400),
        edited(sample),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.just(BOM + sample),
        st.just(sample.decode("utf-8").encode("utf-16")),
    )


def _clean_or_names(err: CotdistillError, *paths: Path) -> None:
    message = str(err)
    assert any(str(p) in message for p in paths), f"{type(err).__name__} names no file: {message}"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_reader_reads_any_bytes_or_names_the_file(name):
    @HOSTILE
    @given(data=hostile_bytes(SAMPLES[name]))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            path = _dataset_file(Path(tmp), name, data)
            try:
                ds = load_split(name, tmp, "test")
            except CotdistillError as err:
                _clean_or_names(err, path)
                return
            assert ds.examples and all(ex.task == DATASETS[name].task for ex in ds.examples)
            if not data.startswith(BOM):  # what a Windows tool saving the same file writes
                _dataset_file(Path(tmp), name, BOM + data)
                assert load_split(name, tmp, "test").examples == ds.examples

    check()


def test_the_samples_read_and_every_dataset_is_fuzzed(tmp_path):
    assert set(SAMPLES) == set(DATASETS)
    for name, sample in SAMPLES.items():
        folder = tmp_path / name
        _dataset_file(folder, name, sample)
        for aux, content in [AUX[name]] if name in AUX else []:
            (folder / aux).parent.mkdir(parents=True, exist_ok=True)
            (folder / aux).write_bytes(content)
        assert load_split(name, folder, "test").examples, name


@pytest.mark.parametrize("name", sorted(AUX))
def test_the_files_beside_a_split_read_any_bytes_or_name_the_file(name):
    aux, sample = AUX[name]

    @HOSTILE
    @given(data=hostile_bytes(sample))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            split_file = _dataset_file(Path(tmp), name, SAMPLES[name])
            path = Path(tmp) / aux
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            try:
                load_split(name, tmp, "test")
            except CotdistillError as err:  # another vocabulary may make the split file's tags unknown
                _clean_or_names(err, path, split_file)

    check()


_CONFIG = b"""name: fuzz
run_dir: runs
data:
  dataset: twitter2015
  data_dir: nowhere
  max_examples: {train: 10}
teacher:
  backend: openai
  model: m
  templates: [mner.answer]
  options: {base_url: "http://127.0.0.1:1/v1"}
  samples: 2
knowledge:
  min_f1: &cut 0.5
  min_agreement: *cut
student:
  kind: encoder
  epochs: 1
evaluation:
  split: test
"""


@HOSTILE
@given(data=hostile_bytes(_CONFIG))
def test_the_config_loader_reads_any_bytes_or_names_the_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(data)
        try:
            load_config(path)
        except CotdistillError as err:
            _clean_or_names(err, path)


_PREDICTIONS = ("\n".join([_pred("a", [(0, 1, "PER")]), _pred("b", [(0, 1, "ORG")])]) + "\n").encode()
_NATIVE = b"IMGID:a\nObama\tB-PER\nvisits\tO\nParis\tB-LOC\n\nIMGID:b\nApple\tB-ORG\n"


@HOSTILE
@given(data=st.one_of(hostile_bytes(_PREDICTIONS), hostile_bytes(_NATIVE)))
def test_the_predictions_reader_reads_any_bytes_or_names_the_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.jsonl"
        path.write_bytes(data)
        try:
            preds = read_predictions(path, "mner", GOLD)
        except CotdistillError as err:
            _clean_or_names(err, path)
            return
        if not data.startswith(BOM):  # the same file with a byte-order mark reads the same
            path.write_bytes(BOM + data)
            assert read_predictions(path, "mner", GOLD) == preds
        try:
            system = align(GOLD, preds)
        except CotdistillError as err:  # an id predicted twice: the error names the source, not the file
            assert "predicted twice" in str(err)
            return
        # whatever the reader accepts can be scored
        assert 0 <= system_metrics("mner", GOLD, system)["f1"] <= 1
