"""Few gold labels, many posts: `data.labelled` and `data.unlabelled` through `cotdistill run`, with a teacher
that replays answers written from the synthetic data (a few of them wrong), tiny models built from configs."""

import json
import random
import shutil

import pytest
from conftest import REPO

from cotdistill.labelled import LabelledCountError, pick_labelled
from cotdistill.readers import load_split
from cotdistill.run.cli import main
from cotdistill.run.demo import build_tiny_models, write_synthetic_twitter

SMOKE = str(REPO / "configs" / "smoke.yaml")
NAMES = {"PER": "person", "LOC": "city", "ORG": "company", "OTHER": "event"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Synthetic Twitter data, tiny models, and the teacher's answers: each post's gold entities with their
    types written freely, every fifth answer missing its last entity."""
    root = tmp_path_factory.mktemp("few")
    data = write_synthetic_twitter(root / "data")
    _, student = build_tiny_models(root / "models")
    rows = []
    for split in ("train", "valid", "test"):
        for k, ex in enumerate(load_split("twitter2015", data, split).examples):
            ents = list(ex.gold.entities)[: -1 if k % 5 == 0 else None]
            items = [{"text": e.text, "type": NAMES[e.type]} for e in ents]
            rows.append({"id": ex.id, "text": json.dumps({"entities": items})})
    answers = root / "answers.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, student, answers


def args(tmp_path, assets, data=None, *extra):
    folder, student, answers = assets
    return [
        f"run_dir={tmp_path / 'runs'}",
        f"data.data_dir={data or folder}",
        "teacher.backend=replay",
        "teacher.model=answers",
        "teacher.templates=[mner.answer]",
        f"teacher.options={{path: {answers}}}",
        f"student.model={student}",
        "student.knowledge_text=false",
        "knowledge.learn_types=true",
        "knowledge.unmapped_types=drop",
        "student.epochs=2",
        *extra,
    ]


def corrupt_unlabelled_gold(src, dst, labelled_ids, seed=1):
    """A copy of the dataset whose training posts outside ``labelled_ids`` carry random tags."""
    shutil.copytree(src, dst)
    rng = random.Random(seed)
    out, post = [], None
    for line in (src / "train.txt").read_text().split("\n"):
        if line.startswith("IMGID:"):
            post = line[len("IMGID:") :]
        elif "\t" in line and post not in labelled_ids:
            token, _ = line.split("\t")
            line = f"{token}\t{rng.choice(['O', 'B-PER', 'B-LOC', 'I-ORG', 'B-OTHER'])}"
        out.append(line)
    (dst / "train.txt").write_text("\n".join(out))


def answers(path):
    """Each prediction's id, answer and raw tags (not its timing)."""
    return [(r["id"], r["answer"], r["raw"]) for r in map(json.loads, path.read_text().splitlines())]


@pytest.mark.parametrize("method", ["labeller", "auto"])
def test_the_gold_of_unlabelled_posts_is_never_read(tmp_path, assets, method):
    first = tmp_path / "first"
    how = f"student.pseudo_labels={method}"
    assert main(["run", SMOKE, *args(first, assets, None, "data.labelled=10", how)]) == 0
    run = first / "runs" / "smoke"
    summary = json.loads((run / "stages.json").read_text())["train"]["summary"]["few_labels"]
    assert summary["labelled_posts"] == 10 and summary["posts_without_gold"] == 30
    assert summary["pseudo_labelled"] == 30 and summary["without_teacher_answer"] == 0
    scored = summary["pseudo_labels_against_gold"]  # evaluation only, after training
    assert scored["posts"] == 30 and summary["keep_rate"] == 1.0
    # the replayed teacher misses the last entity of every fifth post, and invents none
    assert scored["teacher_kept"]["posts"] == 30 and scored["teacher_kept"]["precision"] == 1.0
    assert scored["teacher_kept"]["recall"] < 1.0
    report = (run / "report" / "report.md").read_text()
    assert "the teacher's kept answers P 100.00" in report and "kept the teacher's answer on 100.0%" in report
    assert (run / "student" / "labeller" / "best").is_dir() and (
        run / "knowledge" / "type_map.json"
    ).is_file()
    train = load_split("twitter2015", assets[0], "train").examples
    labelled_ids = {ex.id for ex in pick_labelled(train, 10, 0)[0]}
    corrupted = tmp_path / "corrupted-data"
    corrupt_unlabelled_gold(assets[0], corrupted, labelled_ids)
    assert load_split("twitter2015", corrupted, "train").examples != train
    second = tmp_path / "second"
    assert (
        main(
            [
                "run",
                SMOKE,
                *args(second, assets, corrupted, "data.labelled=10", how),
            ]
        )
        == 0
    )
    same = "predictions/student-test.jsonl"
    assert answers(run / same) == answers(second / "runs" / "smoke" / same)
    pseudo = "student/pseudo_labels.jsonl"
    assert (run / pseudo).read_text() == (second / "runs" / "smoke" / pseudo).read_text()
    if method == "auto":  # the same labels were picked from the same dev scores
        runs = (run, second / "runs" / "smoke")
        picked = [json.loads((r / "stages.json").read_text())["train"]["summary"]["few_labels"] for r in runs]
        assert picked[0]["chosen_on_dev"] == picked[1]["chosen_on_dev"]
        return
    # the control: a student that does read every post's gold learns something else from the corrupted copy
    for folder, data in ((tmp_path / "all-clean", None), (tmp_path / "all-corrupted", corrupted)):
        assert main(["run", SMOKE, *args(folder, assets, data, "data.labelled=all")]) == 0
    clean, dirty = (answers(tmp_path / f / "runs" / "smoke" / same) for f in ("all-clean", "all-corrupted"))
    assert clean != dirty


@pytest.mark.parametrize("form", ["conll", "jsonl"])
def test_posts_that_never_had_gold_are_read_sent_to_the_teacher_and_trained_on(
    tmp_path, assets, caplog, form
):
    caplog.set_level("WARNING")
    folder, _, answers = assets
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    test = load_split("twitter2015", folder, "test").examples
    # the test posts again under new ids, as a file of posts without gold: CoNLL with the tag column absent,
    # or JSONL with one post a line
    (data / "posts.txt").write_text(
        "\n\n".join(f"IMGID:new{k}\n" + "\n".join(ex.tokens) for k, ex in enumerate(test))
        if form == "conll"
        else "".join(json.dumps({"id": f"new{k}", "text": ex.text}) + "\n" for k, ex in enumerate(test))
    )
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    by_id = {r["id"]: r["text"] for r in rows}
    extra = tmp_path / "answers.jsonl"
    extra.write_text(
        answers.read_text()
        + "".join(
            json.dumps({"id": f"new{k}", "text": by_id[ex.id]}) + "\n" for k, ex in enumerate(test[:15])
        )
    )
    run_args = args(
        tmp_path,
        (data, assets[1], extra),
        data,
        f"data.unlabelled={data / 'posts.txt'}",
        "student.pseudo_labels=teacher",
    )
    assert main(["run", SMOKE, *run_args]) == 0
    run = tmp_path / "runs" / "smoke"
    assert len((run / "teacher" / "unlabelled").glob("*.jsonl").__next__().read_text().splitlines()) >= 20
    summary = json.loads((run / "stages.json").read_text())["train"]["summary"]["few_labels"]
    assert summary["posts_without_gold"] == 20 and summary["without_teacher_answer"] == 5
    assert summary["pseudo_labelled"] == 15 and summary["method"] == "teacher"
    assert summary["keep_rate"] == 0.75
    said = [r.getMessage() for r in caplog.records if "passed the knowledge filter" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("5 of 20 posts without gold have no teacher answer"), said
    assert said[0].endswith("training on the other 15")


def test_auto_labels_with_the_source_that_scores_higher_on_dev(tmp_path, assets):
    assert main(["run", SMOKE, *args(tmp_path, assets, None, "data.labelled=10")]) == 0  # auto: the default
    run = tmp_path / "runs" / "smoke"
    summary = json.loads((run / "stages.json").read_text())["train"]["summary"]["few_labels"]
    dev = summary["chosen_on_dev"]
    assert set(dev) == {"teacher", "labeller"} and all(0 <= f <= 1 for f in dev.values())
    # the replayed teacher is right on most posts, the tiny labeller is not: the teacher labels the posts
    assert dev["teacher"] > dev["labeller"] and summary["method"] == "teacher"
    teacher = {
        r["id"]: json.loads(r["text"])["entities"]
        for r in map(json.loads, assets[2].read_text().splitlines())
    }
    made = [json.loads(line) for line in (run / "student" / "pseudo_labels.jsonl").read_text().splitlines()]
    assert len(made) == 30
    for row in made:
        assert sorted(e["text"] for e in row["answer"]["entities"]) == sorted(
            e["text"] for e in teacher[row["id"]]
        )


def test_agree_labels_only_the_posts_where_the_labeller_and_the_teacher_agree(tmp_path, assets):
    how = "student.pseudo_labels=agree"
    assert main(["run", SMOKE, *args(tmp_path, assets, None, "data.labelled=10", how)]) == 0
    run = tmp_path / "runs" / "smoke"
    summary = json.loads((run / "stages.json").read_text())["train"]["summary"]["few_labels"]
    assert summary["method"] == "agree" and summary["pseudo_labelled"] + summary["disagreed"] == 30, summary
    teacher = {
        r["id"]: sorted(e["text"] for e in json.loads(r["text"])["entities"])
        for r in map(json.loads, assets[2].read_text().splitlines())
    }
    made = [json.loads(line) for line in (run / "student" / "pseudo_labels.jsonl").read_text().splitlines()]
    assert len(made) == summary["pseudo_labelled"]
    for row in made:  # a label made by agreement is the teacher's answer
        assert sorted(e["text"] for e in row["answer"]["entities"]) == teacher[row["id"]]
    # the student takes as many steps as over every post (40 posts, batch 8 in the smoke config, 2 epochs)
    state = json.loads(next((run / "student").rglob("trainer_state.json")).read_text())
    assert summary["student_steps"] == 10 and state["max_steps"] == 10


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "expected at least 1 labelled post"),
        ("-3", "expected at least 1 labelled post"),
        ("many", "expected a positive integer or 'all'"),
        ("1.5", "expected a positive integer or 'all'"),
        ("41", "the training split has 40 posts: use at most 40 or 'all'"),
    ],
)
def test_a_bad_labelled_count_is_one_line_before_anything_runs(tmp_path, assets, capsys, value, message):
    assert main(["run", SMOKE, *args(tmp_path, assets, None, f"data.labelled={value}")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_a_labelled_count_above_max_examples_is_one_line_before_anything_runs(tmp_path, assets, capsys):
    extra = ("data.labelled=30", "data.max_examples={train: 20}")
    assert main(["run", SMOKE, *args(tmp_path, assets, None, *extra)]) == 2
    err = capsys.readouterr().err
    assert "data.max_examples keeps 20 of the 40 training posts: use at most 20" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_a_post_whose_answer_the_filter_dropped_gets_no_label(tmp_path, assets):
    """Answers the knowledge filter dropped label no post, though the labeller still reads them."""
    run_args = ["run", SMOKE, *args(tmp_path, assets, None, "data.labelled=10", "student.pseudo_labels=auto")]
    assert main([*run_args, "--stop-after", "knowledge"]) == 0
    run = tmp_path / "runs" / "smoke"
    train = load_split("twitter2015", assets[0], "train").examples
    labelled_ids = {ex.id for ex in pick_labelled(train, 10, 0)[0]}
    for split, count in (("train", 3), ("valid", 2)):
        path = run / "knowledge" / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        dropped = [r["id"] for r in rows if r["id"] not in labelled_ids and r["answer"]][:count]
        for r in rows:
            if r["id"] in dropped:
                r.update(kept=False, reason="low self-consistency")
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if split == "train":
            no_label = set(dropped)
    assert main(run_args) == 0
    summary = json.loads((run / "stages.json").read_text())["train"]["summary"]["few_labels"]
    assert summary["without_teacher_answer"] == 3 and summary["pseudo_labelled"] == 27
    assert summary["keep_rate"] == 0.9
    made = {
        json.loads(line)["id"] for line in (run / "student" / "pseudo_labels.jsonl").read_text().splitlines()
    }
    assert len(made) == 27 and not made & no_label


def test_posts_without_gold_are_labelled_from_the_answers_the_filter_kept(tmp_path):
    """The labeller reads the teacher's answer on every post; a post without gold is labelled only from an
    answer the knowledge filter kept."""
    from cotdistill.run.config import RunConfig
    from cotdistill.run.stages.common import kept_teacher_answers, student_teacher_answers

    config = RunConfig(name="k", run_dir=str(tmp_path))
    folder = config.path / "knowledge"
    folder.mkdir(parents=True)
    answer = {"task": "mner", "entities": [{"start": 0, "end": 1, "type": "PER", "text": "Obama"}]}
    rows = [
        {"id": "a", "kept": True, "reason": None, "knowledge": "t", "answer": answer},
        {"id": "b", "kept": False, "reason": "low self-consistency", "knowledge": "t", "answer": answer},
        {"id": "c", "kept": False, "reason": "answer unparsable", "knowledge": "t", "answer": None},
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert set(kept_teacher_answers(config, ["train"])) == {"a"}
    assert set(student_teacher_answers(config, ["train"])) == {"a", "b"}


def test_pick_labelled_is_reproducible_and_drops_the_others_gold(assets):
    train = load_split("twitter2015", assets[0], "train").examples
    a, rest = pick_labelled(train, 7, 3)
    b, _ = pick_labelled(train, 7, 3)
    assert [ex.id for ex in a] == [ex.id for ex in b] and len(rest) == 33
    assert all(not ex.gold.entities and "tags" not in ex.meta for ex in rest)
    assert [ex.id for ex in pick_labelled(train, 7, 4)[0]] != [ex.id for ex in a]
    assert len(pick_labelled(train, "all", 0)[0]) == 40
    with pytest.raises(LabelledCountError):
        pick_labelled(train, 41, 0)


def test_a_file_of_posts_without_gold_reads_as_jsonl_or_conll_and_names_a_bad_line(tmp_path):
    from cotdistill.readers.common import DataFormatError
    from cotdistill.readers.unlabelled import read_unlabelled

    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"\xff\xd8")
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        '{"id": "p1", "text": "RT @Obama in Paris", "image": "a.jpg"}\n\n{"text": "no id here"}\n'
    )
    first, second = read_unlabelled(posts, "mner", images)
    assert first.tokens == ("RT", "@Obama", "in", "Paris") and first.image == str(images / "a.jpg")
    assert second.id == "unlabelled-3" and not first.gold.entities and not second.gold.entities
    conll = tmp_path / "posts.txt"
    conll.write_text("IMGID:x1\nObama\nin\nParis\n\u00a0\n\nIMGID:x2\nhello\n")
    assert [ex.tokens for ex in read_unlabelled(conll, "mner")] == [
        ("Obama", "in", "Paris", "\u00a0"),  # a lone U+00A0 is a token, as in the tagged files
        ("hello",),
    ]
    for text, where, what in (
        ('{"text": "fine"}\n{"text": \n', ":2:", "not JSON"),
        ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', ":2:", "repeats the post at line 1"),
        ('{"text": "x", "image": "../secret.jpg"}\n', ":1:", "outside the image directory"),
        ("IMGID:x1\nObama\tB-PER\n", ":2:", "a tag column"),
    ):
        posts.write_text(text)
        with pytest.raises(DataFormatError, match=f"{where}.*{what}"):
            read_unlabelled(posts, "mner", images)
    with pytest.raises(DataFormatError, match="head and a tail"):
        read_unlabelled(conll, "mre")


def test_a_real_split_without_its_tag_column_reads_as_the_same_posts(tmp_path, datasets_dir):
    """Twitter-2015's dev file with the tags cut off reads as the same posts, its lone U+00A0 token included."""
    from conftest import need

    from cotdistill.readers.unlabelled import read_unlabelled

    folder = need(datasets_dir, "twitter2015")
    lines = (folder / "valid.txt").read_text(encoding="utf-8").split("\n")
    posts = tmp_path / "posts.txt"
    posts.write_text("\n".join(line.split("\t")[0] for line in lines), encoding="utf-8")
    gold = load_split("twitter2015", folder, "valid").examples
    read = read_unlabelled(posts, "mner")
    assert [(ex.id, ex.tokens) for ex in read] == [(ex.id, ex.tokens) for ex in gold]
    assert any("\u00a0" in ex.tokens for ex in read)
