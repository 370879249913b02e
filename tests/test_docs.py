"""The README and docs/ say only what works: every Python snippet runs offline, every ``cotdistill`` command
line in a bash block parses with the real parser (its config exists and its overrides are valid keys), every
link between the pages resolves, and docs/configuration.md is what ``cotdistill.run.reference`` prints."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from cotdistill.readers import load_split
from cotdistill.run import reference
from cotdistill.run.cli import build_parser, knowledge_show_parser
from cotdistill.run.config import read_config
from cotdistill.run.demo import build_tiny_models, write_synthetic_twitter

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
MAX_README_LINES = 250


def blocks(page: Path, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(page.read_text(encoding="utf-8")) if kind == lang]


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


# ---------------------------------------------------------------------------------------- the README


def test_readme_fits_on_a_few_screens():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_holds_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = ci[ci.index("# README.md's test command, exactly:") + 1]
    assert any(command in b.splitlines() for b in blocks(ROOT / "README.md", "bash"))


# ---------------------------------------------------------------------------- Python snippets, offline


@dataclass
class Assets:
    data: Path  # synthetic Twitter-style posts, with PGIM-style knowledge files for train and valid
    encoder: Path  # a tiny BERT
    vlm: Path  # a tiny LLaVA


TYPES = {"PER": "person", "LOC": "location", "ORG": "organization", "OTHER": "event"}


def write_pgim_knowledge(folder: Path) -> None:
    """``pgim/<split>.txt`` as PGIM publishes them: the post's lines, ``<EOS>``, then the answer's words."""
    for split in ("train", "valid"):
        blocks_ = []
        for ex in load_split("twitter2015", folder, split).examples:
            answer = " ".join(
                f"{i}. {e.text} ({TYPES[e.type]})" for i, e in enumerate(ex.gold.entities, start=1)
            )
            words = f"Named entities: {answer} Reasoning: from the post.".split()
            lines = [f"{t}\tO" for t in ex.tokens] + ["<EOS>\tX"] + [f"{w}\tX" for w in words]
            blocks_.append("\n".join(lines) + "\n")
        (folder / "pgim" / f"{split}.txt").write_text("\n".join(blocks_), encoding="utf-8")


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("docs")
    data = write_synthetic_twitter(root / "twitter2015")
    write_pgim_knowledge(data)
    vlm, encoder = build_tiny_models(root / "models")
    return Assets(data, encoder, vlm)


def substitutions(a: Assets) -> dict[str, str]:
    """What a snippet names → what stands in for it here: the dataset folder and the model folders."""
    return {
        '"../shared/datasets/twitter2015"': repr(str(a.data)),
        '"models/all-MiniLM-L6-v2"': repr(str(a.encoder)),
        '"models/Qwen2-VL-2B-Instruct"': repr(str(a.vlm)),
    }


SNIPPET_PAGES = [p for p in PAGES if blocks(p, "python")]


def test_some_pages_hold_snippets():
    assert len(SNIPPET_PAGES) >= 3


@pytest.mark.parametrize("page", SNIPPET_PAGES, ids=name)
def test_python_snippets_run_offline(page, assets, tmp_path, monkeypatch):
    """A page's snippets run in order in one namespace, as a reader pastes them, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    namespace: dict = {"__name__": "__snippet__"}
    for i, code in enumerate(blocks(page, "python"), start=1):
        for placeholder, local in substitutions(assets).items():
            code = code.replace(placeholder, local)
        left = re.findall(r"\"(?:models/|\.\./shared/)[^\"]*\"", code)
        assert not left, f"{name(page)} snippet {i} names {left}: add it to substitutions()"
        exec(compile(code, f"{name(page)} snippet {i}", "exec"), namespace)


# ---------------------------------------------------------------------------- command lines in bash blocks


def command_lines(page: Path) -> list[str]:
    """Every ``cotdistill ...`` line of the page's bash blocks, continuation lines joined."""
    out = []
    for body in blocks(page, "bash"):
        for line in body.replace("\\\n", " ").splitlines():
            if line.strip().startswith("cotdistill "):
                out.append(line.strip())
    return out


def parse(argv: list[str]):
    """The arguments as ``cotdistill.run.cli.main`` reads them (``knowledge show`` has a parser of its own)."""
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    show = argv[:2] == ["knowledge", "show"]
    parser = knowledge_show_parser() if show else build_parser()
    args, extra = parser.parse_known_args(argv[1:] if show else argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    assert not stray, f"unrecognized arguments: {stray}"
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


COMMANDS = [(page, line) for page in PAGES for line in command_lines(page)]


def test_every_command_page_is_found():
    assert len(COMMANDS) >= 20 and any(p.name == "README.md" for p, _ in COMMANDS)


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[f"{name(p)}: {c[:60]}" for p, c in COMMANDS])
def test_command_lines_parse_and_name_configs_that_exist(page, line):
    try:
        args = parse(shlex.split(line, comments=True)[1:])
    except SystemExit as err:
        pytest.fail(f"{name(page)}: {line!r} does not parse (exit {err.code})")
    for config in re.findall(r"configs/[\w./-]+\.yaml", line):
        assert (ROOT / config).is_file(), f"{name(page)}: {config} does not exist"
    if getattr(args, "config", None) is not None and hasattr(args, "overrides"):
        read_config(ROOT / args.config, args.overrides)  # every override names a key, with a valid value


# ---------------------------------------------------------------------------------------------- links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_links_between_pages_resolve(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    assert not broken, f"{name(page)}: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    assert not [name(p) for p in PAGES[1:] if p.resolve() not in linked]


# ----------------------------------------------------------------------- the configuration reference


def test_configuration_reference_is_up_to_date():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    fresh = reference.render()
    lines = difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "committed", "fresh")
    diff = "".join(list(lines)[:40])
    assert committed == fresh, f"docs/configuration.md is out of date: run {reference.COMMAND}\n{diff}"


def test_every_config_key_is_explained_and_every_note_names_a_key():
    rows = re.findall(r"^\| `([\w.]+)` \| .* \| (.*) \|$", reference.render(), re.M)
    unexplained = sorted({key for key, what in rows if not what.strip()})
    assert not unexplained, f"add a comment beside these fields in their dataclass: {unexplained}"
    assert not set(reference.NOTES) - {key for key, _ in rows}, "reference.NOTES names a key that is gone"
