"""Property-based fuzzing (hypothesis): no input file, prediction file, config or template gives a traceback.

Every reader, the prediction reader, the config loader and template loading get text built from the
format's own pieces (near-valid lines with one thing wrong) and from arbitrary text. Each must either read
it or raise one of the input errors the CLI prints as a single line (``ValueError`` subclasses naming file
and line). Anything else — ``RecursionError``, ``KeyError``, ``TypeError``, ``IndexError`` ... — fails.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the dev extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cotdistill.eval.predictions import read_predictions  # noqa: E402
from cotdistill.prompts import PromptLibrary, TemplateError  # noqa: E402
from cotdistill.readers import DATASETS, load_split  # noqa: E402
from cotdistill.records import EntityAnswer, Example  # noqa: E402
from cotdistill.run.config import ConfigError  # noqa: E402
from cotdistill.run.validation import load_config  # noqa: E402
from cotdistill.tasks import TaskSpec  # noqa: E402

# How many cases: 60 per test (conftest's "ci" profile), 2,000 with ``pytest --hypothesis-profile thorough``.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Every error the CLI reports as one line is one of these.
CLEAN = (ValueError,)

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200
)
nested = st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)
deep_dict = st.integers(1, 3000).map(lambda n: "{'a': " * n + "1" + "}" * n)


def json_values(depth=3):
    return st.recursive(
        st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


def conll_lines():
    tag = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-", "B-", "E-ORG", "S-MISC", "X", "", "b-per"])
    token = st.sampled_from(["Obama", "Paris", "@user", "#tag", "\u00a0", "\ufe0f", "", " ", "a\tb"])
    line = st.one_of(
        st.tuples(token, tag).map(lambda p: f"{p[0]}\t{p[1]}"),
        st.sampled_from(["IMGID:123", "IMGID:", "IMGID:../../etc/passwd", "IMGID:sub/x", "", "\t", "a b c"]),
        text,
    )
    return st.lists(line, max_size=30).map("\n".join)


def mnre_lines():
    good = {
        "token": ["Obama", "visits", "Paris"],
        "h": {"name": "Obama", "pos": [0, 1]},
        "t": {"name": "Paris", "pos": [2, 3]},
        "img_id": "x.jpg",
        "relation": "/per/loc/place_of_residence",
    }
    broken = st.sampled_from(
        [
            repr(good),
            repr({**good, "h": {"name": "Obama", "pos": [2, 9]}}),
            repr({**good, "token": []}),
            repr({**good, "relation": 3}),
            repr({**good, "img_id": "../x.jpg"}),
            repr({**good, "h": "Obama"}),
            repr({**good, "t": {"pos": ["a", "b"]}}),
            "{'token': ",
            "__import__('os')",
        ]
    )
    return st.lists(st.one_of(broken, deep_dict, nested, text), max_size=8).map("\n".join)


def mepave_lines():
    line = st.one_of(
        st.sampled_from(
            [
                "1\t2\t爱华仕单肩包\t爱华仕<闭合方式>搭扣</闭合方式>单肩包",
                "1\t2\t爱华仕单肩包\t爱华仕<闭合方式>搭扣单肩包",
                "1\t2\t爱华仕\t<颜色>红</颜色>",
                "1\t2\tx",
                "1\t1\tabc\t<a><b>c</b></a>",
            ]
        ),
        text,
    )
    return st.lists(line, max_size=10).map("\n".join)


def json_records(kind: str):
    if kind == "wikidiverse":
        good = ["Obama visits Paris", "http://x/y.jpg", "news", [["Obama", "PER", 0, 5, "http://w"]]]
        pieces = [good, [good[0], good[1], good[2], [["Obama", "PER", 9, 2, "u"]]], [1, 2], "x", [None] * 4]
    else:
        good = {
            "clean_title": "red shirt",
            "clean_text": "a red shirt",
            "specs": {"color": "red"},
            "images": ["a.jpg"],
        }
        pieces = [
            good,
            {**good, "images": "a.jpg"},
            {**good, "specs": ["red"]},
            {**good, "clean_text": 3},
            {},
        ]
    records = st.lists(st.one_of(st.sampled_from(pieces), json_values()), max_size=6)
    return st.one_of(records.map(json.dumps), nested, text)


def read(dataset: str, files: dict[str, str]):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(content, encoding="utf-8")
        with contextlib.suppress(CLEAN):
            load_split(dataset, root, "test")


@FUZZ
@given(conll_lines())
def test_conll_reader(content):
    read("twitter2015", {"test.txt": content})


@FUZZ
@given(mnre_lines())
def test_mnre_reader(content):
    read("mnre", {"mnre_test.txt": content})


@FUZZ
@given(mepave_lines())
def test_mepave_reader(content):
    read("mepave", {"jdai.jave.fashion.test": content})


@FUZZ
@given(json_records("wikidiverse"))
def test_wikidiverse_reader(content):
    read("wikidiverse", {"test.json": content})


@FUZZ
@given(json_records("mae"))
def test_mae_reader(content):
    read("mae", {"test.json": content})


@FUZZ
@given(st.one_of(conll_lines(), text))
def test_pgim_knowledge_and_captions(content):
    read(
        "twitter2017",
        {"test.txt": "IMGID:1\nObama\tB-PER", "pgim/test.txt": content, "pgim/BLIP2_17.txt": content},
    )
    from cotdistill.readers import read_pgim_knowledge

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.txt"
        path.write_text(content, encoding="utf-8")
        with contextlib.suppress(CLEAN):
            read_pgim_knowledge(path)


GOLD = [
    Example("a", "mner", "Obama visits Paris", EntityAnswer(), ("Obama", "visits", "Paris")),
    Example("b", "mner", "Apple", EntityAnswer(), ("Apple",)),
]


def prediction_lines():
    good = {
        "id": "a",
        "source": "s",
        "answer": {"task": "mner", "entities": [{"start": 0, "end": 1, "type": "PER", "text": "Obama"}]},
    }
    variants = [
        good,
        {**good, "answer": {"task": "mner", "entities": [{"start": 0, "end": 1, "type": 5}]}},
        {**good, "answer": {"task": "mner", "entities": [{"start": "0", "end": 1, "type": "PER"}]}},
        {**good, "answer": {"task": "mner", "entities": [{"start": 2, "end": 1, "type": "PER"}]}},
        {**good, "answer": {"task": "mre", "relations": []}},
        {**good, "answer": "PER"},
        {**good, "id": 7},
        {"id": "b"},
    ]
    line = st.one_of(st.sampled_from(variants).map(json.dumps), json_values().map(json.dumps), nested, text)
    return st.lists(line, min_size=1, max_size=6).map(lambda ls: "\n".join(ls))


@FUZZ
@given(prediction_lines())
def test_prediction_reader(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.jsonl"
        path.write_text(content, encoding="utf-8")
        with contextlib.suppress(CLEAN):
            read_predictions(path, "mner", GOLD)


yaml_text = st.one_of(
    st.dictionaries(
        st.sampled_from(["name", "run_dir", "data", "teacher", "student", "knowledge", "evaluation", "nmae"]),
        json_values(),
        max_size=5,
    ).map(json.dumps),
    st.sampled_from(["a: [", "name: !!python/object:os.system x", "- 1\n- 2", "&a [*a]", "{}", ""]),
    text,
)


@FUZZ
@given(
    yaml_text,
    st.lists(
        st.sampled_from(["student.epochs=x", "teacher.samples=-1", "data=3", "a.b.c=1", "name=../x"]),
        max_size=2,
    ),
)
def test_config_loader(content, overrides):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(content, encoding="utf-8")
        try:
            load_config(path, overrides)
        except (ConfigError, *CLEAN):
            pass


template_text = st.one_of(
    st.sampled_from(
        [
            '{% extends "common/base.j2" %}{% block user %}{{ text }}{% endblock %}',
            '{% extends "common/base.j2" %}{% block user %}{{ text.__class__ }}{% endblock %}',
            '{% extends "common/base.j2" %}{% block user %}{{ nope }}{% endblock %}',
            '{% extends "common/base.j2" %}{% block user %}{% for x in range(10**9) %}{% endfor %}{% endblock %}',
            '{% extends "common/base.j2" %}{% block user %}{{ text * 10**7 }}{% endblock %}',
            '{% extends "x.j2" %}',
            "{% block user %}{% include 'common/base.j2' %}{% endblock %}",
            "{{ ",
            "{% macro m() %}{{ m() }}{% endmacro %}{% block user %}{{ m() }}{% endblock %}",
        ]
    ),
    text,
)


@FUZZ
@given(st.sampled_from(["mner.x", "mner", "x.y", "mner.noun"]), template_text)
def test_template_loading(name, body):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mner"
        folder.mkdir()
        (folder / "t.j2").write_text(
            f"{{#- name: {name} | version: 1 | kind: cot | x -#}}\n{body}", encoding="utf-8"
        )
        ex = GOLD[0]
        try:
            lib = PromptLibrary([tmp])
            lib.render(name, ex, TaskSpec("mner", ("PER",)))
        except (TemplateError, *CLEAN):
            pass


def test_every_dataset_has_a_fuzz_test():
    fuzzed = {"twitter2015", "mnre", "mepave", "wikidiverse", "mae", "twitter2017"}
    same_reader = {"twitter2017": "twitter2015", "snap": "twitter2015", "mnre-v1": "mnre"}
    assert {same_reader.get(name, name) for name in DATASETS} <= fuzzed
