"""``cotdistill demo``: the whole pipeline on a small synthetic dataset with tiny models, on CPU.

It writes posts in the Twitter CoNLL format (``IMGID:`` blocks, BIO tags over PER/LOC/ORG/OTHER) with an
image per post drawn with PIL and a caption file in PGIM's BLIP-2 format, builds a tiny LLaVA teacher (it
sees the images through the transformers backend), teaches it for seconds to answer the smoke config's
prompts on synthetic posts of its own (``demo/teacher.py``), builds a tiny BERT student from a config, then
runs ``configs/smoke.yaml`` — generate, knowledge, train, predict, evaluate, compare — into one run
directory. The teacher has seen a few hundred posts of eight patterns and the student starts from random
weights: the demo shows the flow and the files, not what real models score.
"""

from __future__ import annotations

import random
import sys
import time
from importlib import resources
from pathlib import Path

from cotdistill.run import pipeline
from cotdistill.run.config import RunConfig
from cotdistill.run.context import RunContext
from cotdistill.run.logs import run_log
from cotdistill.run.validation import load_config

PEOPLE = ["Barack Obama", "Michelle Obama", "Taylor Swift", "Lionel Messi", "Serena Williams", "Elon Musk"]
PLACES = ["Paris", "London", "New York", "Berlin", "Tokyo", "Chicago", "Madrid"]
COMPANIES = ["Apple", "Google", "Nike", "the Mets", "Chelsea", "NASA"]
OTHERS = ["Super Bowl", "iPhone", "Olympics", "Game of Thrones", "Coachella"]
PATTERNS = [
    "RT @user : {PER} visits {LOC} today",
    "{ORG} opens a new store in {LOC} # shopping",
    "{PER} and {PER} at the {OTHER} tonight",
    "watching the {OTHER} with friends in {LOC}",
    "{ORG} shares fall after {PER} speech",
    "great game by {ORG} against {ORG} in {LOC}",
    "{PER} announces new {OTHER} plans",
    "the weather in {LOC} is lovely this morning",
]
POOLS = {"PER": PEOPLE, "LOC": PLACES, "ORG": COMPANIES, "OTHER": OTHERS}
COLOURS = {"PER": (220, 80, 60), "LOC": (60, 140, 220), "ORG": (80, 180, 90), "OTHER": (200, 170, 40)}
CAPTIONS = {
    "PER": "a person speaking at a podium",
    "LOC": "a city skyline at dusk",
    "ORG": "a logo on a building",
    "OTHER": "a crowd at a big event",
}
SPLITS = {"train": 40, "valid": 12, "test": 20}
# the student reads the teacher's answer as tags on the post's words (and not its knowledge text)
DEMO_STUDENT = ("student.teacher_tags=true", "student.knowledge_text=false")
# the demo teacher's own synthetic posts, drawn with another seed (from eight patterns and small name pools,
# so some read the same as posts of the run)
LESSON_POSTS = 200


def synthetic_posts(n: int, rng: random.Random) -> list[tuple[list[str], list[str]]]:
    """``n`` posts as (tokens, BIO tags)."""
    posts = []
    for _ in range(n):
        tokens: list[str] = []
        tags: list[str] = []
        for word in rng.choice(PATTERNS).split():
            if word.startswith("{") and word.endswith("}"):
                kind = word[1:-1]
                name = rng.choice(POOLS[kind]).split()
                tokens += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                tokens.append(word)
                tags.append("O")
        posts.append((tokens, tags))
    return posts


def draw_image(path: Path, tags: list[str], rng: random.Random) -> None:
    """A 96×64 picture: one coloured shape per entity, coloured by type, on a pale background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 64), (235, 235, 225))
    draw = ImageDraw.Draw(image)
    for tag in tags:
        if tag.startswith("B-"):
            x, y = rng.randrange(0, 70), rng.randrange(0, 40)
            box = (x, y, x + rng.randrange(12, 26), y + rng.randrange(12, 24))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=COLOURS[tag[2:]])
    image.save(path, quality=90)


def write_synthetic_twitter(folder: str | Path, seed: int = 0, sizes: dict[str, int] = SPLITS) -> Path:
    """Write ``sizes`` posts per split (train/valid/test.txt), images/<id>.jpg and pgim/BLIP2_15.txt under
    ``folder`` (kept if there)."""
    folder = Path(folder)
    if all((folder / f"{s}.txt").is_file() for s in sizes):
        return folder
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "pgim").mkdir(exist_ok=True)
    captions = []
    next_id = 1000
    for split, n in sizes.items():
        blocks = []
        for tokens, tags in synthetic_posts(n, rng):
            image_id = str(next_id)
            next_id += 1
            draw_image(folder / "images" / f"{image_id}.jpg", tags, rng)
            first = next((t[2:] for t in tags if t.startswith("B-")), "LOC")
            captions.append(f"{image_id}.jpg :{CAPTIONS[first]}")
            blocks.append(
                f"IMGID:{image_id}\n" + "".join(f"{t}\t{g}\n" for t, g in zip(tokens, tags, strict=True))
            )
        (folder / f"{split}.txt").write_text("\n".join(blocks), encoding="utf-8")
    (folder / "pgim" / "BLIP2_15.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    return folder


def vocabulary_text() -> list[str]:
    """Text the tiny tokenizers are trained on, so the synthetic posts tokenize into real pieces."""
    words = [w for pool in POOLS.values() for name in pool for w in name.split()]
    return [" ".join(words), *(p.replace("{", "").replace("}", "") for p in PATTERNS), *CAPTIONS.values()]


def build_tiny_models(folder: str | Path, lesson_config: RunConfig | None = None) -> tuple[Path, Path]:
    """A tiny LLaVA teacher and a tiny BERT student, each kept if already there. The student has random
    weights; so has the teacher, unless ``lesson_config`` is given: then it is taught that config's
    templates on the posts that config reads (what the demo does; tests skip the seconds it takes)."""
    from cotdistill.run.demo.teacher import lesson_text, lessons, teach
    from cotdistill.run.demo.tiny import tiny_bert, tiny_llava, tiny_wordpiece_tokenizer  # torch: when needed

    folder = Path(folder)
    teacher, student = folder / "teacher", folder / "student"
    if not (teacher / "config.json").is_file() and lesson_config is None:
        tiny_llava(teacher, extra_text=vocabulary_text())
    elif not (teacher / "config.json").is_file():
        ctx = RunContext(lesson_config)
        plan = lessons(ctx)
        untaught = Path(ctx.config.teacher.model)
        tiny_llava(
            untaught, extra_text=[*vocabulary_text(), *lesson_text(plan)], vocab_size=1500, phrases=True
        )
        backend = ctx.teacher()
        backend.load()
        teach(backend, plan)
        backend.lm.save_pretrained(str(untaught))
        untaught.replace(teacher)  # whole or not at all: an interrupted lesson is started again
    if not (student / "config.json").is_file():
        tok = tiny_wordpiece_tokenizer(student, extra_text=vocabulary_text())
        tiny_bert(student, vocab_size=len(tok))
    return teacher, student


def smoke_config_path() -> Path:
    """``configs/smoke.yaml``, shipped inside the package as ``cotdistill.configs``."""
    return Path(str(resources.files("cotdistill.configs") / "smoke.yaml"))


def run_demo(out: str | Path, config: str | Path | None = None, overrides=(), redo: bool = False) -> int:

    start = time.perf_counter()
    if config is not None:
        cfg = load_config(config, list(overrides))
        print(f"cotdistill demo: running {config} (models load from their ids or paths)")
    else:
        out = Path(out).resolve()
        print(
            "cotdistill demo: synthetic Twitter-style posts and tiny models, on CPU. The teacher is taught for\n"
            "  seconds on posts of its own, the student starts from random weights: this shows every stage and\n"
            "  file, not what real models score."
        )
        data = write_synthetic_twitter(out / "data")
        lesson_data = write_synthetic_twitter(out / "lessons", seed=1, sizes={"train": LESSON_POSTS})
        lesson_config = load_config(
            smoke_config_path(),
            [
                f"run_dir={out / 'lessons' / 'runs'}",
                f"data.data_dir={lesson_data}",
                "data.splits=[train]",
                f"teacher.model={out / 'models' / 'teacher.untaught'}",
            ],
        )
        with run_log(out / "models"):
            teacher, student = build_tiny_models(out / "models", lesson_config)
        cfg = load_config(
            smoke_config_path(),
            [
                f"run_dir={out / 'runs'}",
                f"data.data_dir={data}",
                f"teacher.model={teacher}",
                f"student.model={student}",
                *DEMO_STUDENT,
                *overrides,
            ],
        )
    try:
        stages = pipeline.run(cfg, redo=[pipeline.STAGE_NAMES[0]] if redo else ())
    except pipeline.StageError as err:
        print(f"cotdistill: error: {err}", file=sys.stderr)
        return 1
    pipeline.print_result(cfg, stages)
    report = cfg.path / "report"
    print(
        f"\ndone in {time.perf_counter() - start:.0f} s; also {report / 'report.md'} and {report / 'metrics.json'}"
    )
    print(f"the run directory is {cfg.path}; 'cotdistill demo --redo' starts it afresh")
    if config is None:
        print(
            "\nThe real pipeline (GPU, model weights, the datasets in ../shared/datasets):\n"
            "  cotdistill demo --config configs/twitter2015.yaml        # or: cotdistill run configs/twitter2015.yaml\n"
            "PGIM's published ChatGPT knowledge with the encoder student, on CPU:\n"
            "  cotdistill run configs/twitter2015-pgim-replay.yaml student.model=PATH_TO_ENCODER"
        )
    return 0
