"""Which Trainer checkpoint a run resumes from: the newest one that was written whole."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def complete_checkpoint(path: Path) -> bool:
    """Whether the Trainer finished writing this checkpoint: its state parses, and weights, optimizer and
    scheduler are there and not empty (a kill while saving leaves some of them missing or cut short)."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = [
        p
        for name in (
            "model.safetensors",
            "adapter_model.safetensors",
            "pytorch_model.bin",
            "adapter_model.bin",
        )
        if (p := path / name).is_file()
    ] + sorted(path.glob("model-*.safetensors"))
    needed = [path / "optimizer.pt", path / "scheduler.pt"]
    return (
        isinstance(state, dict)
        and "global_step" in state
        and bool(weights)
        and all(p.is_file() and p.stat().st_size > 0 for p in [*weights, *needed])
        and all(_safetensors_whole(p) for p in weights if p.suffix == ".safetensors")
    )


def _safetensors_whole(path: Path) -> bool:
    """The file is as long as its header says (a cut-short write is not)."""
    import struct

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size >= 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint; incomplete ones (a kill while saving) are passed over and named."""
    ckpts = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for path in reversed(ckpts):
        if complete_checkpoint(path):
            return str(path)
        logger.warning("%s is incomplete (a run stopped while saving it); resuming from an earlier one", path)
    return None
