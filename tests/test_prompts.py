"""The template library: lint, unique names, rendering on a real example of each dataset, sandbox, overrides."""

import json
import math

import pytest
from conftest import need

from cotdistill.prompts import BM25, PromptLibrary, TemplateError, select_demos
from cotdistill.readers import load_split
from cotdistill.records import Entity, EntityAnswer, Example
from cotdistill.run.cli import main
from cotdistill.tasks import TaskSpec

GRAINS = (
    "noun",
    "sentence",
    "multimodal",
    "style_rewrite",
    "entity_substitution",
    "image_imagination",
    "answer",
    "student",
)


def test_every_task_has_every_grain_and_lint_is_clean():
    lib = PromptLibrary()
    assert lib.lint() == []
    for task in ("mner", "mre", "mae"):
        # the student's entity substitution (augment_copies) is MNER's: only MNER has its plausibility check
        extra = ["plausibility"] if task == "mner" else []
        assert sorted(lib.names(task=task)) == sorted(f"{task}.{g}" for g in [*GRAINS, *extra])
        assert lib.names(task=task, kind="student") == [f"{task}.student"]
    assert len(set(t.digest for t in lib.templates.values())) == len(lib.templates)


def test_lint_catches_unknown_variables_and_bad_headers(tmp_path):
    (tmp_path / "mner").mkdir()
    (tmp_path / "mner" / "x.j2").write_text(
        '{#- name: mner.x | version: 1 | kind: cot | test -#}\n{% extends "common/base.j2" %}{% block user %}{{ txt }}{% endblock %}'
    )
    assert PromptLibrary([tmp_path]).lint() == ["mner.x: unknown variables ['txt']"]
    (tmp_path / "mner" / "y.j2").write_text("no header")
    with pytest.raises(TemplateError, match="first line must be"):
        PromptLibrary([tmp_path])
    (tmp_path / "mner" / "y.j2").write_text("{#- name: mner.x | version: 2 | kind: cot | dup -#}")
    with pytest.raises(TemplateError, match="names must be unique"):
        PromptLibrary([tmp_path])


def _renders_all(examples, task):
    lib = PromptLibrary()
    spec = TaskSpec.from_examples(task, examples)
    ex = examples[0]
    for name in [n for n in lib.names(task=task) if lib.get(n).kind != "student"]:
        for sees in (True, False):
            messages = lib.render(name, ex, spec, sees_images=sees, knowledge="some knowledge")
            user = messages[-1]["content"]
            assert user[-1]["type"] == "text" and user[-1]["text"].strip()
            if sees and ex.image is not None:
                assert user[0] == {"type": "image", "image": ex.image}  # the image comes first
            else:
                assert all(p["type"] == "text" for p in user)
    return lib, spec


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
def test_renders_on_real_examples(datasets_dir, name, sub):
    ds = load_split(name, need(datasets_dir, sub), "test")
    examples = ds.examples
    if name == "mnre":  # one of the real images
        examples = sorted(examples, key=lambda e: e.image is None)
        assert examples[0].image is not None
    _renders_all(examples, ds.task)


def test_caption_fallback_for_text_only_teacher(datasets_dir):
    ds = load_split("twitter2015", need(datasets_dir, "twitter2015"), "test")
    lib = PromptLibrary()
    spec = TaskSpec.from_examples("mner", ds.examples)
    text = lib.render("mner.multimodal", ds.examples[0], spec, sees_images=False)[-1]["content"][0]["text"]
    assert f"Image (described in words): {ds.examples[0].meta['caption']}" in text
    label_lines = lib.render("mner.answer", ds.examples[0], spec)[-1]["content"][-1]["text"]
    assert (
        "- OTHER: other named things" in label_lines
        and '"enum": ["LOC", "ORG", "OTHER", "PER"]' in label_lines
    )


def test_renders_on_written_snap_wikidiverse_mae(tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "test.txt").write_text("IMGID:9\nObama\tB-PER\nrocks\tO\n", encoding="utf-8")
    _renders_all(load_split("snap", tmp_path / "snap", "test").examples, "mner")
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "test.json").write_text(
        json.dumps([["The Lions won.", "", "sports", [["Lions", "Organization", 4, 9, "u"]]]])
    )
    _renders_all(load_split("wikidiverse", tmp_path / "wd", "test").examples, "mner")
    (tmp_path / "mae").mkdir()
    (tmp_path / "mae" / "test.json").write_text(
        json.dumps([{"clean_title": "Red bag", "clean_text": "", "specs": {"color": "red"}, "images": []}])
    )
    _renders_all(load_split("mae", tmp_path / "mae", "test").examples, "mae")


def ner_example(i, text, ents=()):
    toks = tuple(text.split())
    return Example(
        str(i),
        "mner",
        text,
        EntityAnswer(tuple(Entity(s, e, t, " ".join(toks[s:e])) for s, e, t in ents)),
        tokens=toks,
    )


def test_sandbox_strict_undefined_and_override(tmp_path):
    (tmp_path / "mner").mkdir()
    # overrides the package's mner.noun by name, from another path
    (tmp_path / "mner" / "mine.j2").write_text(
        '{#- name: mner.noun | version: 7 | kind: cot | mine -#}\n{% extends "common/base.j2" %}{% block user %}Explain: {{ text }}{% endblock %}'
    )
    (tmp_path / "mner" / "evil.j2").write_text(
        '{#- name: mner.evil | version: 1 | kind: cot | x -#}\n{% extends "common/base.j2" %}{% block user %}{{ text.__class__.__mro__ }}{% endblock %}'
    )
    (tmp_path / "mner" / "loose.j2").write_text(
        '{#- name: mner.loose | version: 1 | kind: cot | x -#}\n{% extends "common/base.j2" %}{% block user %}{{ no_such_variable }}{% endblock %}'
    )
    lib = PromptLibrary([tmp_path])
    ex = ner_example(0, "Obama visits Paris", [(0, 1, "PER")])
    spec = TaskSpec.from_examples("mner", [ex])
    assert lib.get("mner.noun").version == "7"
    assert lib.render("mner.noun", ex, spec)[-1]["content"][-1]["text"] == "Explain: Obama visits Paris"
    with pytest.raises(
        TemplateError, match=r"mner\.evil: blocked by the sandbox: access to attribute '__class__'"
    ):
        lib.render("mner.evil", ex, spec)
    with pytest.raises(TemplateError, match="'no_such_variable' is undefined"):
        lib.render("mner.loose", ex, spec)
    with pytest.raises(TemplateError, match=r"unknown template .mner\.nope."):
        lib.render("mner.nope", ex, spec)
    with pytest.raises(TemplateError, match="is for mner"):
        lib.render("mner.noun", ex, TaskSpec("mae", ("color",)))


def test_demos_bm25_random_and_rendered_as_turns():
    pool = [
        ner_example(0, "Obama visits Paris today", [(0, 1, "PER")]),
        ner_example(1, "Apple opens a store"),
        ner_example(2, "Obama meets Merkel in Paris", [(0, 1, "PER")]),
        ner_example(3, "rain again"),
    ]
    query = ner_example(9, "Obama in Paris")
    # post 2 shares three terms with the query (obama, in, paris), post 0 two: 2 ranks first
    assert [d.id for d in select_demos(query, pool, 2)] == ["2", "0"]
    # Okapi BM25 by hand for post 0 ("obama visits paris today", 4 terms; the pool averages 3.5 terms):
    # obama and paris each occur in 2 of the 4 posts, idf = ln(1 + (4 - 2 + 0.5) / (2 + 0.5)) = ln 2
    k1, b, avg = 1.5, 0.75, (4 + 3 + 5 + 2) / 4  # "a" is too short to count
    want = 2 * math.log(2) * (k1 + 1) / (1 + k1 * (1 - b + b * 4 / avg))
    scores = BM25([p.text for p in pool]).scores(query.text)
    assert scores[0] == pytest.approx(want) and scores[1] == scores[3] == 0.0 and scores[2] > scores[0]
    assert BM25(["a b", "c"]).scores("b")[1] == 0.0
    r1 = select_demos(query, pool, 2, method="random", seed=3)
    assert r1 == select_demos(query, pool, 2, method="random", seed=3) and len(r1) == 2
    assert all(d.id != "0" for d in select_demos(pool[0], pool, 3))  # never its own demo
    lib = PromptLibrary()
    spec = TaskSpec.from_examples("mner", pool)
    msgs = lib.render("mner.answer", query, spec, demos=select_demos(query, pool, 1))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert json.loads(msgs[2]["content"])["entities"][0]["type"] == "PER"
    with pytest.raises(TemplateError, match="need an answer template"):
        lib.render("mner.noun", query, spec, demos=pool[:1])


def test_cli_prompts(tmp_path, capsys):
    assert main(["prompts", "list", "--task", "mre"]) == 0
    out = capsys.readouterr().out
    assert out.count("mre.") == 8 and "mre.student" in out  # the student's instruction is listed too
    (tmp_path / "test.txt").write_text("IMGID:1\nObama\tB-PER\n", encoding="utf-8")
    (tmp_path / "train.txt").write_text("IMGID:2\nMerkel\tB-PER\n", encoding="utf-8")
    assert (
        main(
            [
                "prompts",
                "show",
                "mner.answer",
                "--dataset",
                "twitter2015",
                "--data-dir",
                str(tmp_path),
                "--split",
                "test",
                "--shots",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "--- assistant ---" in out and "Merkel" in out and "Text: Obama" in out
    assert (
        main(
            [
                "prompts",
                "show",
                "mner.answer",
                "--dataset",
                "twitter2015",
                "--data-dir",
                str(tmp_path),
                "--split",
                "test",
                "--index",
                "5",
            ]
        )
        == 2
    )
    assert "outside the 1 test examples" in capsys.readouterr().err


def _template(folder, name, body, file=None):
    (folder / "mner").mkdir(parents=True, exist_ok=True)
    path = folder / "mner" / (file or f"{name.split('.')[-1]}.j2")
    path.write_text(f"{{#- name: {name} | version: 1 | kind: cot | x -#}}\n" + body)
    return path


def test_template_folders_never_read_outside_themselves(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the key is 1234")
    user = tmp_path / "templates"
    (user / "mner").mkdir(parents=True)
    (user / "mner" / "linked.j2").symlink_to(secret)
    with pytest.raises(TemplateError, match="outside the template folder"):
        PromptLibrary([user])
    # an include that is a link out of the folder is refused when it is loaded
    (user / "mner" / "linked.j2").unlink()
    (user / "common").mkdir()
    (user / "common" / "leak.j2").symlink_to(secret)
    _template(
        user,
        "mner.leak",
        '{% extends "common/base.j2" %}{% block user %}{% include "common/leak.j2" %}{% endblock %}',
    )
    with pytest.raises(TemplateError, match="outside the template folder"):
        PromptLibrary([user])
    # and the loader refuses it too, should a link appear after the folder was scanned
    (user / "common" / "leak.j2").unlink()
    (user / "common" / "leak.j2").write_text("fine")
    lib = PromptLibrary([user])
    (user / "common" / "leak.j2").unlink()
    (user / "common" / "leak.j2").symlink_to(secret)
    ex = ner_example(0, "Obama visits Paris", [(0, 1, "PER")])
    with pytest.raises(TemplateError, match="outside its template folder"):
        lib.render("mner.leak", ex, TaskSpec.from_examples("mner", [ex]))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{% extends "common/base.j2" %}{% block user %}{{ text }{% endblock %}', "template syntax error"),
        (
            '{% extends "common/base.j2" %}{% block user %}{% include "nope.j2" %}{% endblock %}',
            "which no template folder has",
        ),
        ('{% extends "common/nope.j2" %}', "which no template folder has"),
    ],
)
def test_template_errors_are_one_clear_line_before_any_request(tmp_path, body, message):
    _template(tmp_path, "mner.bad", body)
    with pytest.raises(TemplateError, match=message):
        PromptLibrary([tmp_path])


def test_a_runaway_prompt_fails_its_own_request(tmp_path):
    from cotdistill.prompts.library import MAX_PROMPT_CHARS, PromptTooLong

    _template(
        tmp_path,
        "mner.huge",
        '{% extends "common/base.j2" %}{% block user %}{{ text * 400000 }}{% endblock %}',
    )
    lib = PromptLibrary([tmp_path])
    ex = ner_example(0, "Obama visits Paris", [(0, 1, "PER")])
    spec = TaskSpec.from_examples("mner", [ex])
    with pytest.raises(PromptTooLong, match=f"over the {MAX_PROMPT_CHARS:,} limit"):
        lib.render("mner.huge", ex, spec)
