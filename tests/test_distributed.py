"""Multi-process training without code changes: torchrun, 2 CPU processes, the gloo backend (opt-in: slow)."""

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import torch.distributed as dist
    from tiny import tiny_bert, tiny_wordpiece_tokenizer
    from test_encoder_student import KNOWLEDGE, examples
    from cotdistill.student.encoder import EncoderConfig
    from cotdistill.student.train import EncoderTrainingConfig, train_encoder

    root = sys.argv[1]
    tok = tiny_wordpiece_tokenizer()
    if int(os.environ["RANK"]) == 0:
        tiny_bert(root + "/m", vocab_size=len(tok))
        tok.save_pretrained(root + "/m")
    import time
    while not os.path.exists(root + "/m/config.json") or not os.path.exists(root + "/m/tokenizer.json"):
        time.sleep(0.1)
    time.sleep(0.5)
    cfg = EncoderConfig(model=root + "/m", max_length=64)
    training = EncoderTrainingConfig(output_dir=root + "/run", epochs=2, batch_size=2, seed=0, logging_steps=1)
    _, _, history = train_encoder(cfg, training, examples(), examples(), KNOWLEDGE, tokenizer=tok)
    info = {{"rank": dist.get_rank(), "world": dist.get_world_size(), "backend": str(dist.get_backend_config()), "steps": max(h.get("step", 0) for h in history)}}
    with open(root + f"/rank{{info['rank']}}.json", "w") as f:
        json.dump(info, f)
    """
)


@pytest.mark.slow
def test_two_cpu_processes_with_gloo(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(REPO / "tests")))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert {r["world"] for r in ranks} == {2} and all("gloo" in r["backend"] for r in ranks)
    # 8 examples, batch 2 per process, 2 processes: 2 steps an epoch, 4 in all (1 process would take 8)
    assert {r["steps"] for r in ranks} == {4}
