"""Regular and editable installs both expose every subpackage (the folders are mapped with package-dir)."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
from conftest import REPO

# every template of the source tree (the shared macros in common/ are not templates of their own)
TEMPLATES = sum(1 for p in (REPO / "prompts" / "templates").glob("*/*.j2") if p.parent.name != "common")
CHECK = textwrap.dedent(
    """
    TEMPLATES = {templates}
    import os, sys
    import cotdistill, cotdistill.eval, cotdistill.prompts, cotdistill.distill, cotdistill.student, cotdistill.readers
    from cotdistill.eval import metric_path
    assert os.path.isfile(metric_path("mner_f1")), metric_path("mner_f1")
    from cotdistill.prompts import PromptLibrary
    assert len(PromptLibrary().names()) == TEMPLATES and PromptLibrary().lint() == []
    import cotdistill.tasks, cotdistill.student.generative, cotdistill.run.demo.tiny, cotdistill.run.cli
    print(os.path.dirname(cotdistill.eval.__file__))
    """
).format(templates=TEMPLATES)


def _copy_repo(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "build", "__pycache__", ".venv", "runs", "benchmarks"
        ),
    )
    return src


def test_wheel_contents_and_regular_install(tmp_path):
    src = _copy_repo(tmp_path)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("cotdistill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "cotdistill/records.py",
        "cotdistill/eval/scoring.py",
        "cotdistill/eval/hf_metrics/mner_f1/mner_f1.py",
        "cotdistill/prompts/__init__.py",
        "cotdistill/distill/__init__.py",
        "cotdistill/student/__init__.py",
        "cotdistill/prompts/templates/mner/answer.j2",
        "cotdistill/prompts/templates/common/base.j2",
        "cotdistill/configs/smoke.yaml",
        "cotdistill/configs/twitter2015.yaml",
        "cotdistill/student/generative/__init__.py",
        "cotdistill/student/generative/train.py",
        "cotdistill/tasks/mner.py",
        "cotdistill/metrics.py",
        "cotdistill/prompts/templates/common/student.j2",
        "cotdistill/prompts/templates/mre/student.j2",
        "cotdistill/distill/scale.py",
        "cotdistill/run/pipeline.py",
        "cotdistill/run/stages/__init__.py",
        "cotdistill/run/demo/__init__.py",
        "cotdistill/run/demo/tiny.py",
    ]:
        assert expected in names
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    # PYTHONPATH comes before an editable install's finder; the check below proves which copy was imported
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == str(target / "cotdistill" / "eval")


def test_editable_install(tmp_path):
    src = _copy_repo(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True
    )
    py = venv / "bin" / "python"
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "-e", str(src)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"editable install failed: {proc.stderr[-2000:]}")
    out = subprocess.run([str(py), "-c", CHECK], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == str(src / "eval")
