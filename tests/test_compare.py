"""evaluate / compare: hand-worked bootstrap and agreement cases, the CLI, native-format predictions."""

import json

import numpy as np
import pytest

from cotdistill.eval.compare import (
    agreement,
    bootstrap,
    compare_systems,
    confusion_matrix,
    count_table,
    instructive_examples,
)
from cotdistill.eval.predictions import align, read_predictions
from cotdistill.readers import DataFormatError, load_split
from cotdistill.records import Entity, EntityAnswer, Example, Prediction, Relation, RelationAnswer
from cotdistill.run.cli import main

TOKS = ("a", "b", "c", "d")


def ex(i, spans):
    return Example(
        str(i),
        "mner",
        " ".join(TOKS),
        EntityAnswer(tuple(Entity(s, e, t, "x") for s, e, t in spans)),
        tokens=TOKS,
    )


def ans(spans):
    return EntityAnswer(tuple(Entity(s, e, t, "x") for s, e, t in spans))


GOLD = [ex(0, [(0, 1, "PER"), (2, 3, "LOC")]), ex(1, [(1, 2, "ORG")]), ex(2, [(0, 2, "PER")]), ex(3, [])]
# A (teacher): right on (0,1,PER), (1,2,ORG); wrong type on ex 2; one spurious on ex 3
A = [ans([(0, 1, "PER")]), ans([(1, 2, "ORG")]), ans([(0, 2, "LOC")]), ans([(3, 4, "PER")])]
# B (student): right on (0,1,PER), (2,3,LOC), (0,2,PER); misses ORG; the same spurious entity on ex 3
B = [ans([(0, 1, "PER"), (2, 3, "LOC")]), ans([]), ans([(0, 2, "PER")]), ans([(3, 4, "PER")])]


def system(name, answers):
    return align(
        GOLD,
        [
            Prediction(g.id, name, a, raw="", rationale=f"why {g.id}")
            for g, a in zip(GOLD, answers, strict=True)
        ],
        source=name,
    )


def test_agreement_counts_by_hand():
    ag = agreement("mner", GOLD, system("A", A), system("B", B))
    # gold items: (0,1,PER) both; (2,3,LOC) only B; (1,2,ORG) only A; (0,2,PER) only B
    assert {k: ag[k] for k in ("both_right", "only_a_right", "only_b_right", "both_wrong")} == {
        "both_right": 1,
        "only_a_right": 1,
        "only_b_right": 2,
        "both_wrong": 0,
    }
    # A: (0,2,LOC) and (3,4,PER) spurious; B: (3,4,PER); shared: (3,4,PER)
    assert (ag["a_spurious"], ag["b_spurious"], ag["shared_spurious"]) == (2, 1, 1)


def test_instructive_examples_order_and_content():
    ins = instructive_examples("mner", GOLD, system("A", A), system("B", B))
    assert [r["id"] for r in ins["a_right_b_wrong"]] == ["1"]
    # ex 0 and ex 2 each have one B-only hit; ex 0 has no B spurious, ex 2 none either -> by id
    assert [r["id"] for r in ins["b_right_a_wrong"]] == ["0", "2"]
    row = ins["a_right_b_wrong"][0]
    assert row["gold"] == ["b [ORG]"] and row["b_answer"] == [] and row["a_rationale"] == "why 1"


def test_bootstrap_identical_systems():
    t = count_table("mner", GOLD, system("A", A), ["LOC", "ORG", "PER"])
    out = bootstrap({"A": t, "A2": t}, resamples=500, seed=1)
    pair = out["pairs"][0]
    assert pair["p_value"] == 1.0 and pair["f1_difference"] == 0.0 and pair["difference_ci"] == [0.0, 0.0]


def test_bootstrap_constant_examples_give_zero_width_ci():
    # every example has the same counts (1 tp, 1 fp, 0 fn): every resample has F1 = 2/3 exactly
    t = count_table(
        "mner",
        [ex(i, [(0, 1, "PER")]) for i in range(20)],
        align(
            [ex(i, [(0, 1, "PER")]) for i in range(20)],
            [Prediction(str(i), "s", ans([(0, 1, "PER"), (2, 3, "LOC")]), raw="") for i in range(20)],
        ),
        ["LOC", "PER"],
    )
    ci = bootstrap({"s": t}, resamples=200)["systems"]["s"]["f1_ci"]
    assert ci == pytest.approx([2 / 3, 2 / 3])


def test_bootstrap_is_seeded_and_paired():
    ta = count_table("mner", GOLD, system("A", A), ["LOC", "ORG", "PER"])
    tb = count_table("mner", GOLD, system("B", B), ["LOC", "ORG", "PER"])
    one = bootstrap({"A": ta, "B": tb}, resamples=300, seed=7)
    assert one == bootstrap({"A": ta, "B": tb}, resamples=300, seed=7)
    # observed F1: A = 2*2/(2*2+2+2) = 0.5, B = 2*3/(2*3+1+1) = 0.75
    assert one["pairs"][0]["f1_difference"] == pytest.approx(0.25)  # F1(B) − F1(A): one sign everywhere
    # the p-value is the formula over the very resamples the bootstrap draws, recomputed here one by one
    rng = np.random.default_rng(7)
    n = len(GOLD)
    draws = np.concatenate([rng.integers(0, n, size=(min(100, 300 - s), n)) for s in range(0, 300, 100)])

    def f1(table, idx):
        tp, fp, fn = table.counts[idx, :3].sum(0)
        return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0

    d = np.array([f1(tb, idx) - f1(ta, idx) for idx in draws])
    want = (np.sum(np.abs(d - 0.25) >= 0.25 - 1e-12) + 1) / 301
    assert one["pairs"][0]["p_value"] == pytest.approx(want)


def test_bootstrap_p_value_is_small_for_a_real_difference_and_large_for_none():
    gold = [ex(i, [(0, 1, "PER")]) for i in range(200)]
    right = [Prediction(str(i), "s", ans([(0, 1, "PER")]), raw="") for i in range(200)]
    # B is right on every third post only; C is right on the same posts as A but one
    half = [Prediction(str(i), "s", ans([(0, 1, "PER")] if i % 3 == 0 else []), raw="") for i in range(200)]
    near = [Prediction(str(i), "s", ans([] if i == 5 else [(0, 1, "PER")]), raw="") for i in range(200)]
    tables = {
        name: count_table("mner", gold, align(gold, preds), ["PER"])
        for name, preds in (("A", right), ("B", half), ("C", near))
    }
    pairs = {(p["a"], p["b"]): p for p in bootstrap(tables, resamples=999, seed=0)["pairs"]}
    assert pairs[("A", "B")]["p_value"] == pytest.approx(1 / 1000)  # never as extreme: the floor
    lo, hi = pairs[("A", "B")]["difference_ci"]
    assert lo <= pairs[("A", "B")]["f1_difference"] <= hi < 0  # B − A: B is worse
    assert pairs[("A", "C")]["p_value"] > 0.3  # one post apart: no evidence of a difference


def test_bootstrap_counts_per_label():
    t = count_table("mner", GOLD, system("B", B), ["LOC", "ORG", "PER"])
    np.testing.assert_array_equal(t.counts.sum(0), [3, 1, 1, 1, 0, 0, 0, 0, 1, 2, 1, 0])


def test_confusion_matrix_mre():
    h, t = Entity(0, 1, None, "a"), Entity(1, 2, None, "b")
    gold = [
        Example(str(i), "mre", "a b", RelationAnswer((Relation(h, t, lab),)), tokens=("a", "b"))
        for i, lab in enumerate(["x", "none", "x"])
    ]
    preds = [
        Prediction("0", "s", RelationAnswer((Relation(h, t, "x"),)), raw=""),
        Prediction("1", "s", RelationAnswer((Relation(h, t, "x"),)), raw=""),
    ]
    cm = confusion_matrix(gold, align(gold, preds))
    assert cm["labels"] == ["None", "x"] and cm["matrix"] == [
        [0, 1],
        [1, 1],
    ]  # the missing third reads as None


def test_align_errors_and_coverage():
    preds = [
        Prediction("0", "s", ans([]), raw=""),
        Prediction("zz", "s", ans([]), raw=""),
        Prediction("1", "s", None, raw="?", parse_error="bad"),
    ]
    a = align(GOLD, preds)
    assert a.missing == 2 and a.parse_failures == 1 and a.unknown_ids == ["zz"] and a.coverage == 0.5
    with pytest.raises(ValueError, match="predicted twice"):
        align(GOLD, preds + preds)


def write_conll(path, posts):
    path.write_text(
        "\n".join("IMGID:" + i + "\n" + "".join(f"{t}\t{g}\n" for t, g in rows) for i, rows in posts),
        encoding="utf-8",
    )


def test_evaluate_cli_jsonl_and_native(tmp_path, capsys):
    posts = [("1", [("Obama", "B-PER"), ("in", "O"), ("Paris", "B-LOC")]), ("2", [("Google", "B-ORG")])]
    write_conll(tmp_path / "test.txt", posts)
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        json.dumps(Prediction("1", "teacher", ans([(0, 1, "PER")]), raw="r").to_dict()) + "\n",
        encoding="utf-8",
    )
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--dataset",
                "twitter2015",
                "--data-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    # example 2 has no prediction: counted as empty, never dropped -> 1 tp, 0 fp, 2 fn
    assert (m["precision"], m["recall"], m["coverage"], m["missing"]) == (1.0, pytest.approx(1 / 3), 0.5, 1)
    native = tmp_path / "pred_conll.txt"
    write_conll(
        native, [("1", [("Obama", "B-PER"), ("in", "O"), ("Paris", "O")]), ("2", [("Google", "B-ORG")])]
    )
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(native),
                "--dataset",
                "twitter2015",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "overall" in capsys.readouterr().out
    gold = read_predictions(native, "mner", load_split("twitter2015", tmp_path, "test").examples)
    assert [p.id for p in gold] == ["1", "2"]
    write_conll(
        native, [("1", [("Obama", "B-PER"), ("at", "O"), ("Paris", "O")]), ("2", [("Google", "B-ORG")])]
    )
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(native),
                "--dataset",
                "twitter2015",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "does not match gold example 1" in capsys.readouterr().err
    write_conll(native, [("1", [("Obama", "B-PER"), ("in", "O"), ("Paris", "O")])])
    with pytest.raises(DataFormatError, match="1 predicted examples but 2 gold"):
        read_predictions(native, "mner", load_split("twitter2015", tmp_path, "test").examples)


def test_compare_cli_writes_report(tmp_path, capsys):
    write_conll(tmp_path / "test.txt", [(g.id, [(t, "O") for t in TOKS]) for g in GOLD])
    gold_jsonl = tmp_path / "gold.jsonl"
    gold_jsonl.write_text("".join(json.dumps(g.to_dict()) + "\n" for g in GOLD), encoding="utf-8")
    for name, answers in (("teacher", A), ("student", B)):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            for g, a in zip(GOLD, answers, strict=True):
                f.write(json.dumps(Prediction(g.id, name, a, raw="").to_dict()) + "\n")
    out = tmp_path / "report"
    args = [
        "compare",
        f"teacher={tmp_path / 'teacher.jsonl'}",
        f"student={tmp_path / 'student.jsonl'}",
        "--gold",
        str(gold_jsonl),
        "--out",
        str(out),
        "--resamples",
        "200",
    ]
    assert main(args) == 0
    for name in (
        "metrics.json",
        "report.md",
        "report.html",
        "f1_summary.png",
        "f1_per_label.png",
        "agreement.png",
        "errors_by_kind.png",
    ):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["systems"]["teacher"]["f1"] == 0.5 and m["systems"]["student"]["f1"] == 0.75
    assert m["agreement"][0]["only_b_right"] == 2
    # one sign everywhere, student − teacher: +25.00 in metrics.json, report.md, report.html and the console
    assert (
        m["pairs"][0]["f1_difference"] == pytest.approx(0.25)
        and m["pairs"][0]["difference"] == "F1(student) − F1(teacher)"
    )
    assert "| student | teacher | +25.00 |" in (out / "report.md").read_text()
    assert "+25.00" in (out / "report.html").read_text()
    assert "student − teacher: +25.00 F1" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert (
        "<script" not in html
        and "http" not in html.split("<h2>How this was made")[0]
        and html.count("data:image/png;base64,") == 4
    )
    assert "Errors by kind" in html and "examples of each error kind" in html
    assert main(args) == 2 and "already exist" in capsys.readouterr().err
    assert (
        main(
            [
                "compare",
                str(tmp_path / "teacher.jsonl"),
                "--gold",
                str(gold_jsonl),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


def test_compare_systems_learning_curve_and_cost(tmp_path):
    from cotdistill.eval.report import write_report
    from cotdistill.records import Usage

    systems = []
    for k, answers in enumerate((A, B, B)):
        preds = [
            Prediction(g.id, f"s{k}", a, raw="", usage=Usage(100, 10, 0.01 * (k + 1)))
            for g, a in zip(GOLD, answers, strict=True)
        ]
        systems.append(align(GOLD, preds, source=f"s{k}"))
    result = compare_systems(
        "mner",
        GOLD,
        systems,
        ["LOC", "ORG", "PER"],
        resamples=100,
        fractions={"s1": 0.5, "s2": 1.0},
        params={"s1": 22_000_000},
    )
    files = write_report(result, tmp_path, {"command": "test"})
    assert "learning_curve" in files and "f1_vs_cost" in files
    assert result["systems"]["s0"]["usage"]["tokens_per_example"] == 110


def test_error_breakdown_by_kind_worked_by_hand():
    from cotdistill.eval.compare import error_breakdown
    from cotdistill.eval.predictions import align
    from cotdistill.records import Entity, EntityAnswer, Prediction

    tokens = ("Barack", "Obama", "met", "Angela", "Merkel", "in", "New", "York", "at", "UN", "today")
    gold = [
        Example(
            "x",
            "mner",
            " ".join(tokens),
            EntityAnswer(
                (
                    Entity(0, 2, "PER", "Barack Obama"),
                    Entity(3, 5, "PER", "Angela Merkel"),
                    Entity(6, 8, "LOC", "New York"),
                    Entity(9, 10, "ORG", "UN"),
                )
            ),
            tokens,
        )
    ]
    pred = EntityAnswer(
        (
            Entity(0, 2, "PER", "Barack Obama"),  # correct
            Entity(3, 5, "ORG", "Angela Merkel"),  # wrong type (PER -> ORG)
            Entity(7, 8, "LOC", "York"),  # boundary
            Entity(10, 11, "MISC", "today"),  # spurious
        )
    )
    system = align(gold, [Prediction("x", "s", pred, raw="")])
    e = error_breakdown("mner", gold, system)
    assert {
        k: e[k] for k in ("correct", "wrong_type", "boundary", "boundary_and_type", "spurious", "missed")
    } == {
        "correct": 1,
        "wrong_type": 1,
        "boundary": 1,
        "boundary_and_type": 0,
        "spurious": 1,
        "missed": 1,  # UN
    }
    assert e["confusion"] == {"types": ["ORG", "PER"], "matrix": [[0, 0], [1, 0]]}
    assert e["examples"]["missed"][0]["gold"] == "UN [ORG]"
    assert (
        e["examples"]["boundary"][0]["predicted"] == "York [LOC]"
        and e["examples"]["boundary"][0]["gold"] == "New York [LOC]"
    )
    # boundary and type at once; and no answer at all misses everything
    system = align(gold, [Prediction("x", "s", EntityAnswer((Entity(6, 7, "ORG", "New"),)), raw="")])
    e = error_breakdown("mner", gold, system)
    assert (e["boundary_and_type"], e["missed"], e["correct"]) == (1, 3, 0)
    e = error_breakdown("mner", gold, align(gold, []))
    assert (e["missed"], e["spurious"]) == (4, 0)


def test_a_student_that_reads_the_teacher_at_test_time_carries_its_cost():
    from cotdistill.records import Usage

    def aligned(name, answers, tokens, seconds):
        preds = [
            Prediction(
                g.id, name, a, raw="", usage=Usage(prompt_tokens=tokens, completion_tokens=0, seconds=seconds)
            )
            for g, a in zip(GOLD, answers, strict=True)
        ]
        return align(GOLD, preds, source=name)

    teacher, student = aligned("teacher", A, 100, 0.5), aligned("student", B, 20, 0.01)
    alone = compare_systems("mner", GOLD, [teacher, student], ["LOC", "ORG", "PER"], resamples=50)
    reads = compare_systems(
        "mner", GOLD, [teacher, student], ["LOC", "ORG", "PER"], resamples=50, needs={"student": "teacher"}
    )
    assert alone["systems"]["student"]["usage"]["tokens_per_example"] == 20
    usage = reads["systems"]["student"]["usage"]
    assert usage["tokens_per_example"] == 120 and usage["seconds_per_example"] == pytest.approx(0.51)
    assert usage["includes"] == "teacher" and usage["own"]["tokens_per_example"] == 20


def test_report_html_shows_the_image_beside_each_instructive_example(tmp_path):
    from cotdistill.eval.report import write_report
    from cotdistill.run.demo import write_synthetic_twitter

    gold = load_split("twitter2015", write_synthetic_twitter(tmp_path / "data"), "test").examples[:6]
    teacher = align(gold, [Prediction(g.id, "teacher", g.gold, raw="") for g in gold], source="teacher")
    student = align(gold, [Prediction(g.id, "student", ans([]), raw="") for g in gold], source="student")
    result = compare_systems("mner", gold, [teacher, student], ["LOC", "ORG", "OTHER", "PER"], resamples=20)
    rows = result["instructive"][0]["a_right_b_wrong"]
    assert rows and all(r["image"] and r["image"].endswith(".jpg") for r in rows)
    files = write_report(result, tmp_path / "report", {"command": "test"})
    page = files["html"].read_text()
    assert page.count('<img class="thumb"') == len(rows) and page.count("data:image/jpeg;base64,") == len(
        rows
    )
    assert json.loads(files["metrics"].read_text())["instructive"][0]["a_right_b_wrong"][0]["image_id"]
