"""The student's model card and `cotdistill push`: the card is written with every trained student and
parses as a Hub card; push sends the student folder and the knowledge as a dataset (the Hub calls are
recorded here, since no hub is reachable from the tests), and a push that cannot reach the hub is one line."""

import json

import pytest
from test_few_labels import SMOKE, args, assets  # noqa: F401 - the fixture is used by name

from cotdistill.run.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory, assets):  # noqa: F811
    tmp = tmp_path_factory.mktemp("hub")
    assert main(["run", SMOKE, *args(tmp, assets), "--stop-after", "train"]) == 0
    return tmp / "runs" / "smoke"


def test_every_trained_student_has_a_model_card(trained):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained / "student" / "best" / "README.md")
    assert "cotdistill" in card.data.tags and card.data.library_name == "cotdistill"
    assert card.data.eval_results[0].metric_type == "f1"
    stages = json.loads((trained / "stages.json").read_text())
    best = stages["train"]["summary"]["best_dev_f1"]
    assert card.data.eval_results[0].metric_value == pytest.approx(round(100 * best, 2))
    assert "**Reads at test time:** the post alone." in card.text
    assert "load_encoder_student" in card.text and '"learning_rate"' in card.text


def test_push_sends_the_student_folder_and_the_knowledge_dataset(trained, monkeypatch, capsys):
    import datasets
    from huggingface_hub import DatasetCard, HfApi

    calls = []
    monkeypatch.setattr(
        HfApi,
        "create_repo",
        lambda self, repo, **kw: calls.append(("create", repo, kw)) or f"https://huggingface.co/{repo}",
    )
    monkeypatch.setattr(
        HfApi,
        "upload_folder",
        lambda self, **kw: calls.append(
            (
                "upload",
                kw["repo_id"],
                sorted(p.name for p in __import__("pathlib").Path(kw["folder_path"]).iterdir()),
            )
        ),
    )
    monkeypatch.setattr(
        datasets.DatasetDict,
        "push_to_hub",
        lambda self, repo, **kw: calls.append(
            ("dataset", repo, {k: len(v) for k, v in self.items()}, sorted(self["train"].column_names))
        ),
    )
    monkeypatch.setattr(
        DatasetCard, "push_to_hub", lambda self, repo, **kw: calls.append(("card", repo, self.text))
    )
    assert (
        main(["push", str(trained), "--repo", "me/student", "--knowledge-repo", "me/cot", "--private"]) == 0
    )
    create, upload, dataset, card = calls
    assert create == ("create", "me/student", {"private": True, "exist_ok": True})
    assert upload[1] == "me/student" and {"README.md", "cotdistill_student.json", "model.safetensors"} <= set(
        upload[2]
    )
    assert (
        dataset[1] == "me/cot" and set(dataset[2]) == {"train", "valid", "test"} and dataset[2]["train"] == 40
    )
    assert {"id", "kept", "reason", "grains", "answer"} <= set(dataset[3])
    assert card[1] == "me/cot" and "train: " in card[2] and " kept" in card[2]
    assert "student pushed: https://huggingface.co/me/student" in capsys.readouterr().out


def test_a_push_that_cannot_reach_the_hub_is_one_line(trained, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(trained), "--repo", "me/student", "--token", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cotdistill: error: push to the Hugging Face Hub failed") and "Traceback" not in err
    assert main(["push", str(trained)]) == 2
    assert "name what to push" in capsys.readouterr().err


def test_a_dry_run_writes_both_cards_and_sends_nothing(trained, monkeypatch, capsys):
    import datasets
    from huggingface_hub import DatasetCard, HfApi, ModelCard

    def refuse(*a, **kw):
        raise AssertionError("a dry run sent something")

    for owner, name in ((HfApi, "create_repo"), (HfApi, "upload_folder"), (DatasetCard, "push_to_hub")):
        monkeypatch.setattr(owner, name, refuse)
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", refuse)
    args = ["push", str(trained), "--repo", "me/student", "--knowledge-repo", "me/cot", "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was sent" in out and "student -> me/student" in out
    model_card = ModelCard.load(trained / "push" / "student" / "README.md")
    assert model_card.data.eval_results[0].metric_type == "f1"
    dataset_card = DatasetCard.load(trained / "push" / "knowledge" / "README.md")
    assert "cotdistill" in dataset_card.data.tags and "kept" in dataset_card.text
    pushed = datasets.load_from_disk(str(trained / "push" / "knowledge"))
    assert set(pushed) == {p.stem for p in (trained / "knowledge").glob("*.arrow")}
