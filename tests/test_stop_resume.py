"""Stopping and resuming training: SIGTERM (or Ctrl-C) ends training at the next step with a checkpoint,
and resuming from it gives the same final weights as a run that was never stopped (same seed)."""

import os
import signal

import pytest
import torch

from cotdistill.readers import load_split
from cotdistill.run.demo import build_tiny_models, write_synthetic_twitter
from cotdistill.student import train as train_module
from cotdistill.student.config import EncoderConfig, EncoderTrainingConfig
from cotdistill.student.train import TrainingStopped, train_encoder

STEPS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stop")
    folder = write_synthetic_twitter(root / "data")
    _, student = build_tiny_models(root / "models")
    splits = {s: load_split("twitter2015", folder, s).examples for s in ("train", "valid")}
    return splits, student


def train(data, out, resume=None, save_steps=0):
    splits, student = data
    config = EncoderConfig(
        model=str(student), task="mner", labels=["LOC", "ORG", "OTHER", "PER"], use_knowledge=False
    )
    training = EncoderTrainingConfig(
        output_dir=str(out),
        max_steps=STEPS,
        eval_steps=STEPS,  # one dev score, at the end: the kept model is the last one
        batch_size=4,
        learning_rate=1e-3,
        seed=0,
        save_steps=save_steps,
        resume_from_checkpoint=resume,
    )
    model, _, _ = train_encoder(config, training, splits["train"], splits["valid"][:8])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
def test_sigterm_stops_at_a_step_with_a_checkpoint_and_resume_gives_the_same_weights(
    data, tmp_path, monkeypatch
):
    whole = train(data, tmp_path / "whole")

    original = train_module.StopOnSignal.on_step_end

    def send_at_step_5(self, args, state, control, **kwargs):
        if state.global_step == 5 and self.signal is None:
            os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(train_module.StopOnSignal, "on_step_end", send_at_step_5)
    with pytest.raises(TrainingStopped, match=r"stopped by SIGTERM at step (5|6) of 12") as stopped:
        train(data, tmp_path / "stopped")
    assert stopped.value.exit_code == 130
    checkpoints = sorted((tmp_path / "stopped").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] in (["checkpoint-5"], ["checkpoint-6"])
    assert str(checkpoints[0]) in str(stopped.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    steps_run = []

    def count(self, args, state, control, **kwargs):
        steps_run.append(state.global_step)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(train_module.StopOnSignal, "on_step_end", count)
    resumed = train(data, tmp_path / "stopped", resume=str(checkpoints[0]))
    done = int(checkpoints[0].name.split("-")[1])
    assert steps_run == list(range(done + 1, STEPS + 1))  # it went on from the checkpoint, not from step 0
    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-4, atol=1e-5, msg=key)


def test_save_steps_bounds_what_a_kill_can_lose(data, tmp_path):
    train(data, tmp_path / "saved", save_steps=4)
    # checkpoints every 4 steps (older ones rotated away; the last and the best are kept)
    steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "saved").glob("checkpoint-*"))
    assert steps and steps[-1] == STEPS and all(s % 4 == 0 for s in steps)
