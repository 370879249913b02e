"""The prompt library: named, versioned Jinja templates rendered into chat messages in one sandbox.

Every template starts with a header comment ``{#- name: mner.noun | version: 1 | kind: cot | what it does -#}``
and extends ``common/base.j2``, filling its ``system`` and ``user`` blocks. Rendering turns the blocks into
chat messages; the image, when there is one and the teacher sees images, is the first content part of the
user turn, so a prefix-caching server reuses the image and the post across the grains of one example. When
the teacher is text-only or the image is missing, the templates use the dataset's caption instead.

Users add template directories that override package templates by name (or by path).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cotdistill.errors import InputError
from cotdistill.paths import inside
from cotdistill.records import Example, RelationAnswer
from cotdistill.tasks import TASK_PLUGINS, TaskSpec, get_task
from cotdistill.tasks.base import DEFAULT_DESCRIPTIONS, describe_relation  # noqa: F401  (part of this module's API)

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
# No model reads a million characters of prompt: past this a template loops or an example is not a post.
MAX_PROMPT_CHARS = 1_000_000
KINDS = ("cot", "augment", "answer", "student")  # student: the generative student's instruction
_HEADER = re.compile(
    r"^\{#-?\s*name:\s*(?P<name>[\w.\-]+)\s*\|\s*version:\s*(?P<version>\w+)\s*\|\s*kind:\s*(?P<kind>\w+)\s*\|\s*(?P<description>.*?)\s*-?#\}",
    re.S,
)

# The variables a template may read; the lint test fails on any other.
VARIABLES = {
    "text": "the post or product text",
    "tokens": "the post's tokens (MNER, MRE)",
    "caption": "an image caption or OCR text, or None",
    "has_image": "whether the model will see the image",
    "labels": "the dataset's label set (entity types, relation labels, attributes)",
    "label_descriptions": "label -> one-line description",
    "schema": "the task's answer JSON schema, as JSON text",
    "task": "mner, mre or mae",
    "knowledge": "CoT knowledge to condition on (answer templates), or None",
    "head": "MRE: the first entity's text",
    "tail": "MRE: the second entity's text",
}
# Templates of kind student (the generative student's instruction) read these as well.
STUDENT_VARIABLES = {
    "prefix": "the task prefix of the student's turn: [answer] or [rationale]",
    "mode": "answer or rationale",
}


class TemplateError(InputError):
    """A template that cannot be used: unknown name, bad header, duplicate name, render failure."""


class PromptTooLong(TemplateError):
    """A rendered prompt over ``MAX_PROMPT_CHARS``: that example's request fails, the run goes on."""


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    name: str
    version: str
    kind: str
    task: str
    description: str
    path: str  # relative to its root, as the Jinja loader sees it
    root: str
    source: str

    @property
    def digest(self) -> str:
        """Content hash: part of every generation's cache key, so an edited template is never confused with
        the old one."""
        return hashlib.sha256(f"{self.name}\0{self.version}\0{self.source}".encode()).hexdigest()[:16]


class _FolderLoader(jinja2.FileSystemLoader):
    """A file loader that reads only files inside its folder: a template (or an include) that is a symlink
    to somewhere else is refused, not read."""

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        if filename and not any(inside(root, filename) for root in self.searchpath):
            raise TemplateError(
                f"template {template!r} is a link to {os.path.realpath(filename)}, outside its template folder"
            )
        return source, filename, uptodate


def _scan(root: Path) -> dict[str, TemplateInfo]:
    found: dict[str, TemplateInfo] = {}
    for path in sorted(root.rglob("*.j2")):
        rel = path.relative_to(root).as_posix()
        if not inside(root, path):
            raise TemplateError(
                f"{path} is a link to {os.path.realpath(path)}, outside the template folder {root}; "
                "copy the file into the folder instead"
            )
        if rel.startswith("common/"):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise TemplateError(f"{path}: cannot be read as UTF-8 text ({err})") from None
        m = _HEADER.match(source)
        if m is None:
            raise TemplateError(
                f"{path}: the first line must be {{#- name: TASK.NAME | version: N | kind: cot|augment|answer | description -#}}"
            )
        name, kind = m.group("name"), m.group("kind")
        if kind not in KINDS:
            raise TemplateError(f"{path}: kind {kind!r}; expected one of {', '.join(KINDS)}")
        task = name.split(".", 1)[0]
        if task not in TASK_PLUGINS:
            raise TemplateError(f"{path}: name {name!r} must start with its task (mner., mre. or mae.)")
        if name in found:
            raise TemplateError(
                f"{path}: name {name!r} is already used by {root / found[name].path}; names must be unique"
            )
        found[name] = TemplateInfo(
            name, m.group("version"), kind, task, m.group("description"), rel, str(root), source
        )
    return found


class PromptLibrary:
    """All templates, package ones first, each user directory overriding by name."""

    def __init__(self, template_dirs: Iterable[str | Path] = ()):
        user_dirs = [Path(d) for d in template_dirs]
        for d in user_dirs:
            if not d.is_dir():
                raise TemplateError(f"template directory {d} does not exist")
        # User directories come first in the loader, so a user file at a package path (common/base.j2) wins too.
        loader = jinja2.ChoiceLoader(
            [_FolderLoader(str(d)) for d in reversed(user_dirs)] + [_FolderLoader(str(PACKAGE_TEMPLATES))]
        )
        self.env = ImmutableSandboxedEnvironment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            auto_reload=False,
        )
        self._block_cache: dict[str, dict] = {}
        self.templates: dict[str, TemplateInfo] = _scan(PACKAGE_TEMPLATES)
        for d in user_dirs:
            self.templates.update(_scan(d))
        if user_dirs:  # the package's own templates are checked by the tests
            for info in self.templates.values():
                self._compile(info)

    def _compile(self, info: TemplateInfo) -> None:
        """Parse a template and the chain it extends or includes now, so that a syntax error or a missing
        include stops before any request, naming file and line."""
        try:
            self._blocks(info)
            todo, seen = [info.source], set()
            while todo:  # every template it extends, includes or imports, and theirs
                for ref in meta.find_referenced_templates(self.env.parse(todo.pop())):
                    if ref is not None and ref not in seen:
                        seen.add(ref)
                        todo.append(self.env.loader.get_source(self.env, ref)[0])  # type: ignore[union-attr]
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(
                f"{err.filename or Path(info.root) / info.path}:{err.lineno}: template syntax error: {err.message}"
            ) from None
        except jinja2.TemplateNotFound as err:
            raise TemplateError(
                f"{Path(info.root) / info.path}: it extends or includes {err.name!r}, which no template folder has"
            ) from None

    def names(self, task: str | None = None, kind: str | None = None) -> list[str]:
        return [
            n
            for n, t in sorted(self.templates.items())
            if (task is None or t.task == task) and (kind is None or t.kind == kind)
        ]

    def get(self, name: str) -> TemplateInfo:
        if name not in self.templates:
            raise TemplateError(f"unknown template {name!r}; known: {', '.join(sorted(self.templates))}")
        return self.templates[name]

    def _template(self, info: TemplateInfo) -> jinja2.Template:
        # The loader searches user directories first: a user file at a package path replaces it too.
        return self.env.get_template(info.path)

    def _blocks(self, info: TemplateInfo) -> dict:
        """The template's block functions, inherited ones included (a child's block wins). Cached: the
        chain is parsed once per template, not once per render."""
        cached = self._block_cache.get(info.name)
        if cached is not None:
            return cached
        blocks: dict = {}
        template, source = self._template(info), info.source
        for _ in range(10):  # inheritance depth
            for block, fn in template.blocks.items():
                blocks.setdefault(block, fn)
            parent = self.env.parse(source).find(jinja2.nodes.Extends)
            if parent is None or not isinstance(parent.template, jinja2.nodes.Const):
                break
            name = parent.template.value
            template = self.env.get_template(name)
            source = self.env.loader.get_source(self.env, name)[0]  # type: ignore[union-attr]
        self._block_cache[info.name] = blocks
        return blocks

    def render_blocks(self, name: str, variables: dict) -> dict[str, str]:
        info = self.get(name)
        ctx = self._template(info).new_context(variables)
        try:
            blocks = {
                block: "".join(fn(ctx)).strip()
                for block, fn in self._blocks(info).items()
                if block in ("system", "user")
            }
        except jinja2.UndefinedError as err:
            raise TemplateError(
                f"template {name}: {err.message}; the variables it may use are {', '.join(VARIABLES)}"
            ) from None
        except SecurityError as err:
            raise TemplateError(f"template {name}: blocked by the sandbox: {err}") from None
        except jinja2.TemplateError as err:
            raise TemplateError(f"template {name}: {err.__class__.__name__}: {err}") from None
        except (RecursionError, MemoryError, OverflowError) as err:
            raise TemplateError(f"template {name}: {err.__class__.__name__} while rendering") from None
        if "user" not in blocks:
            raise TemplateError(
                f"template {name} ({Path(info.root) / info.path}) has no user block: extend common/base.j2 and "
                "fill {% block user %}"
            )
        return blocks

    def render(
        self,
        name: str,
        example: Example,
        spec: TaskSpec,
        *,
        knowledge: str | None = None,
        sees_images: bool = True,
        demos: Sequence[Example] = (),
    ) -> list[dict]:
        """Chat messages for one example. Demonstrations (answer templates only) come as user/assistant turns
        before the example, each answered with its gold answer as JSON."""
        info = self.get(name)
        if info.task != spec.name:
            raise TemplateError(f"template {name} is for {info.task}, the data is {spec.name}")
        if info.kind == "student":
            raise TemplateError(
                f"template {name} is the generative student's instruction; the student renders it itself"
            )
        if demos and info.kind != "answer":
            raise TemplateError(f"few-shot demonstrations need an answer template, not {name} ({info.kind})")
        messages: list[dict] = []
        blocks = self.render_blocks(
            name,
            template_variables(
                example, spec, knowledge=knowledge, has_image=sees_images and example.image is not None
            ),
        )
        if blocks.get("system"):
            messages.append({"role": "system", "content": blocks["system"]})
        for demo in demos:
            demo_blocks = self.render_blocks(
                name, template_variables(demo, spec, knowledge=None, has_image=False)
            )
            messages.append({"role": "user", "content": [{"type": "text", "text": demo_blocks["user"]}]})
            messages.append(
                {"role": "assistant", "content": json.dumps(gold_answer_json(demo), ensure_ascii=False)}
            )
        content: list[dict] = []
        if sees_images and example.image is not None:
            content.append({"type": "image", "image": example.image})
        content.append({"type": "text", "text": blocks["user"]})
        messages.append({"role": "user", "content": content})
        size = sum(len(blocks.get(b) or "") for b in ("system", "user"))
        if size > MAX_PROMPT_CHARS:
            raise PromptTooLong(
                f"template {name} rendered {size:,} characters for example {example.id}, over the "
                f"{MAX_PROMPT_CHARS:,} limit: the template repeats something or the example is not text"
            )
        return messages

    def lint(self) -> list[str]:
        """Problems: variables outside VARIABLES, missing blocks. Empty when every template is fine."""
        problems = []
        for name, info in sorted(self.templates.items()):
            try:
                ast = self.env.parse(info.source)
            except jinja2.TemplateSyntaxError as err:
                problems.append(f"{name}: syntax error line {err.lineno}: {err.message}")
                continue
            known = set(VARIABLES) | (set(STUDENT_VARIABLES) if info.kind == "student" else set())
            unknown = meta.find_undeclared_variables(ast) - known
            if unknown:
                problems.append(f"{name}: unknown variables {sorted(unknown)}")
            if "user" not in self._blocks(info):
                problems.append(f"{name}: no user block")
        return problems


def template_variables(
    example: Example, spec: TaskSpec, *, knowledge: str | None = None, has_image: bool = False
) -> dict:
    """The variables every template can read, for one example."""
    descriptions = spec.label_descriptions()
    out = {
        "text": example.text,
        "tokens": list(example.tokens or ()),
        "caption": example.meta.get("caption"),
        "has_image": has_image,
        "labels": list(spec.labels),
        "label_descriptions": descriptions,
        "schema": json.dumps(spec.answer_schema(), ensure_ascii=False),
        "task": spec.name,
        "knowledge": knowledge,
        "head": None,
        "tail": None,
    }
    if isinstance(example.gold, RelationAnswer) and example.gold.relations:
        out["head"] = example.gold.relations[0].head.text
        out["tail"] = example.gold.relations[0].tail.text
    return out


def gold_answer_json(example: Example) -> dict:
    """An example's gold answer in the task's answer schema (what a demonstration's assistant turn says)."""
    return get_task(example.task).student_target(example.gold, example)


def _terms(text: str) -> list[str]:
    return [t for t in re.findall(r"\w+", text.lower()) if len(t) > 1]


class BM25:
    """Okapi BM25 over a pool of examples' texts (k1 = 1.5, b = 0.75)."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75):
        self.docs = [Counter(_terms(t)) for t in texts]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / max(1, len(self.docs))
        df: Counter = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        q = _terms(query)
        out = []
        for d, length in zip(self.docs, self.lengths, strict=True):
            s = 0.0
            for t in q:
                f = d.get(t, 0)
                if f:
                    s += (
                        self.idf[t]
                        * f
                        * (self.k1 + 1)
                        / (f + self.k1 * (1 - self.b + self.b * length / self.avg))
                    )
            out.append(s)
        return out


def select_demos(
    example: Example,
    pool: Sequence[Example],
    k: int,
    method: str = "bm25",
    seed: int = 0,
    index: BM25 | None = None,
) -> list[Example]:
    """``k`` demonstrations from ``pool`` (the training split): the most similar by BM25, or at random
    (seeded per example, so reruns pick the same ones). The example itself is never its own demo."""
    if k <= 0:
        return []
    candidates = [i for i, p in enumerate(pool) if p.id != example.id]
    if method == "random":
        rng = random.Random(f"{seed}:{example.id}")
        return [pool[i] for i in rng.sample(candidates, min(k, len(candidates)))]
    if method != "bm25":
        raise InputError(f"demo selection {method!r}; expected bm25 or random")
    scores = (index or BM25([p.text for p in pool])).scores(example.text)
    best = sorted(candidates, key=lambda i: (-scores[i], i))[:k]
    return [pool[i] for i in best]
