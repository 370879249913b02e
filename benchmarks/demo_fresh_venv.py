"""`cotdistill demo` in a fresh virtual environment made with README's install command, timed.

    python benchmarks/demo_fresh_venv.py [--keep]

Creates a venv in a temporary folder, runs ``pip install torch==2.13.0 && pip install -e ".[dev]"`` in it (the
README's main-job install), then ``cotdistill demo --out DIR`` with that venv's interpreter, and records the
install time, the demo's wall time and the files it wrote in ``benchmarks/results/demo_fresh_venv.json``.
The target: the demo completes on 2 cores in under 5 minutes and writes report.md, report.html and metrics.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the venv and the demo folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cotdistill-venv-"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env_path = f"{bin_dir}:{os.environ['PATH']}"
    install = 'pip install torch==2.13.0 && pip install -e ".[dev]"'
    t0 = time.perf_counter()
    subprocess.run(
        ["bash", "-c", install],
        cwd=REPO,
        check=True,
        env={**os.environ, "PATH": env_path, "VIRTUAL_ENV": str(venv)},
    )
    install_s = time.perf_counter() - t0
    out = tmp / "demo"
    t0 = time.perf_counter()
    run = subprocess.run(
        [str(bin_dir / "cotdistill"), "demo", "--out", str(out)],
        cwd=tmp,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": env_path, "VIRTUAL_ENV": str(venv)},
    )
    demo_s = time.perf_counter() - t0
    print(run.stdout[-3000:])
    if run.returncode != 0:
        print(run.stderr[-3000:], file=sys.stderr)
        sys.exit(f"cotdistill demo failed with exit code {run.returncode}")
    report = out / "runs" / "smoke" / "report"
    files = {name: (report / name).is_file() for name in ("report.md", "report.html", "metrics.json")}
    write_result(
        "demo_fresh_venv",
        {
            "install_command": install,
            "install_seconds": round(install_s, 1),
            "demo_seconds": round(demo_s, 1),
            "target_seconds": 300,
            "files_written": files,
            **scores(out / "runs" / "smoke"),
            "last_lines": run.stdout.strip().splitlines()[-8:],
        },
        "python benchmarks/demo_fresh_venv.py",
    )
    if not args.keep:
        shutil.rmtree(tmp)


def scores(run: Path) -> dict:
    """What the demo showed: test F1 of teacher and student, and the training knowledge kept."""
    import json

    metrics = json.loads((run / "report" / "metrics.json").read_text())
    kept = json.loads((run / "stages.json").read_text())["knowledge"]["summary"]["train"]
    return {
        "test_f1": {k: round(100 * v["f1"], 2) for k, v in metrics["systems"].items()},
        "train_knowledge_kept": f"{kept.get('kept', 0)} of {kept['examples']}",
    }


if __name__ == "__main__":
    main()
