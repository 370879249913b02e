"""The package's floors: every import of every module (at module level and inside functions) points down
or sideways within its own folder, and no set of modules imports itself in a circle."""

import ast
import itertools
import re
from pathlib import Path

from conftest import REPO

# floor → the floors it may import (DESIGN.md): the ground floor stands on nothing of ours; prompts on the
# ground floor; each stage on the floors below and never on another stage; the run layer on everything.
MAY_IMPORT = {
    "ground": {"ground"},
    "prompts": {"ground", "prompts"},
    "distill": {"ground", "prompts", "distill"},
    "student": {"ground", "prompts", "student"},
    "eval": {"ground", "eval"},
    "run": {"ground", "prompts", "distill", "student", "eval", "run"},
}


def package_dirs() -> dict[str, Path]:
    text = (REPO / "pyproject.toml").read_text()
    body = re.search(r"package-dir\s*=\s*\{([^}]*)\}", text).group(1)
    return {pkg: REPO / folder for pkg, folder in re.findall(r'"([\w.]+)"\s*=\s*"([^"]+)"', body)}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (the deepest package folder that holds the file wins)."""
    dirs = package_dirs()
    found = {}
    for pkg, folder in sorted(dirs.items(), key=lambda kv: len(kv[1].parts)):
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            name = ".".join([pkg, *rel.parts]).removesuffix(".__init__")
            found[name] = path
    return found


def floor(name: str) -> str:
    for prefix, f in (
        ("cotdistill.run", "run"),
        ("cotdistill.prompts", "prompts"),
        ("cotdistill.distill", "distill"),
        ("cotdistill.student", "student"),
        ("cotdistill.eval", "eval"),
        ("cotdistill.configs", "run"),
    ):
        if name == prefix or name.startswith(prefix + "."):
            return f
    return "ground"


def imports(name: str, path: Path, known: dict) -> list[tuple[int, str]]:
    """(line, module) of each import of ours in the file, wherever it stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("cotdistill"):
                out.append((node.lineno, t))
    return sorted(set(out))


def test_every_import_points_down_a_floor():
    known = modules()
    bad = [
        f"{path.relative_to(REPO)}:{line}: {name} ({floor(name)}) imports {target} ({floor(target)})"
        for name, path in known.items()
        for line, target in imports(name, path, known)
        if floor(target) not in MAY_IMPORT[floor(name)]
    ]
    assert not bad, "imports against the floors:\n" + "\n".join(bad)


def test_no_module_imports_itself_in_a_circle():
    known = modules()
    edges = {name: {t for _, t in imports(name, path, known)} for name, path in known.items()}
    lines = {(n, t): line for n, p in known.items() for line, t in imports(n, p, known)}
    circles = []
    for start in edges:  # a path from one of the module's imports back to it
        stack, seen = [(t, [start, t]) for t in edges[start]], set()
        while stack:
            node, trail = stack.pop()
            if node == start:
                circles.append(trail)
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend((t, [*trail, t]) for t in edges.get(node, ()))
    named = [
        " -> ".join(f"{a} ({known[a].relative_to(REPO)}:{lines[(a, b)]})" for a, b in itertools.pairwise(c))
        for c in circles
    ]
    assert not circles, "import circles:\n" + "\n".join(named)


def test_the_floor_check_sees_imports_inside_functions(tmp_path):
    known = {"cotdistill.records": tmp_path / "records.py", "cotdistill.run.pipeline": tmp_path / "p.py"}
    known["cotdistill.records"].write_text("def f():\n    from cotdistill.run.pipeline import run\n")
    found = imports("cotdistill.records", known["cotdistill.records"], known)
    assert (
        found == [(2, "cotdistill.run.pipeline")]
        and floor("cotdistill.run.pipeline") not in MAY_IMPORT["ground"]
    )
