"""Scale-out past one process: Ray Data streams the pending requests through a pool of backend replicas
(for instance one vLLM engine per GPU, or per ``tensor_parallel_size`` GPUs) on one machine or a cluster.

The driver keeps every guarantee of the single-process runner: it plans the requests (finished keys are
skipped), renders the prompts, and is the only writer of the append-only shards — results stream back in
batches and each batch is flushed and fsynced before the next is taken. A killed run loses at most the
results in flight, which the rerun makes again; nothing is written twice. Replicas are Ray actors created by
``Dataset.map_batches`` with a callable class (``concurrency`` replicas, ``num_gpus`` each); each loads its
backend once.

Requires the ``ray`` extra: ``pip install "cotdistill[ray]"``. Connect to a running cluster with
``address`` (``"auto"`` on a cluster node, or ``ray://HOST:10001``); without one Ray starts locally.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence

from tqdm.auto import tqdm

from cotdistill.distill.backends import (
    Generation,
    Sampling,
    TeacherRequest,
    TeacherUnavailable,
    make_backend,
)
from cotdistill.distill.runner import (
    RunStats,
    batch_failed,
    locked_run,
    progress_bar,
    render_requests,
    store_batch,
)
from cotdistill.errors import RunError
from cotdistill.optional import require
from cotdistill.prompts import PromptLibrary
from cotdistill.records import Example
from cotdistill.tasks import TaskSpec

logger = logging.getLogger(__name__)

UNAVAILABLE = "teacher_unavailable"  # a replica's row for a request that the unreachable teacher never made


def _encode(r: TeacherRequest) -> dict:
    """A request as one flat row (nested messages as JSON text, which Arrow stores without a schema)."""
    return {
        "key": r.key,
        "example_id": r.example_id,
        "template": r.template,
        "sample": r.sample,
        "messages": json.dumps(r.messages, ensure_ascii=False),
        "sampling": json.dumps(r.sampling.to_dict()),
        "schema": json.dumps(r.json_schema) if r.json_schema is not None else "",
    }


def _decode(row: dict) -> TeacherRequest:
    s = json.loads(row["sampling"])
    return TeacherRequest(
        str(row["key"]),
        str(row["example_id"]),
        str(row["template"]),
        int(row["sample"]),
        json.loads(row["messages"]),
        Sampling(s["temperature"], s["top_p"], s["max_tokens"], s["seed"]),
        json.loads(row["schema"]) if row["schema"] else None,
    )


class TeacherReplica:
    """One backend replica inside a Ray actor: loads the model once, then generates batch after batch."""

    def __init__(self, backend: str, model: str, options: dict):
        self.backend = make_backend(backend, model, **options)
        self.backend.ensure_loaded()

    def __call__(self, batch):
        import pandas as pd

        requests = [_decode(row) for row in batch.to_dict("records")]
        rows: list[dict] = []
        try:
            gens = self.backend.generate(requests)
            if len(gens) != len(requests):
                raise RunError(f"{len(gens)} generations for {len(requests)} requests")
        except TeacherUnavailable as err:
            # Not the requests' fault: what came back is stored, the rest is marked so that the driver
            # stores nothing for it (the next run makes it) and stops.
            gens = list(err.made)
            made = {g.key for g in gens}
            rows = [{UNAVAILABLE: str(err), "key": r.key} for r in requests if r.key not in made]
        except Exception as err:  # stored per request, never fatal
            logger.exception("backend replica failed on a batch of %d requests", len(requests))
            gens = batch_failed(requests, err, self.backend.model)
        rows = [g.to_dict() for g in gens] + rows
        return pd.DataFrame({"generation": [json.dumps(row, ensure_ascii=False) for row in rows]})


def run_generation_ray(
    examples: Sequence[Example],
    template_names: Sequence[str],
    library: PromptLibrary,
    spec: TaskSpec,
    backend: str,
    model: str,
    options: dict,
    out_dir: str | os.PathLike,
    *,
    replicas: int = 1,
    gpus_per_replica: float = 0.0,
    address: str | None = None,
    samples: int | dict[str, int] = 1,
    sampling: Sampling | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    retry_failed: bool = False,
    sees_images: bool = True,
    structured: bool = False,
    progress: bool = True,
) -> RunStats:
    """``run_generation`` over ``replicas`` backend replicas with Ray Data (see the module docstring)."""
    ray = require("ray", "scale-out over Ray (teacher.ray_replicas > 0)")
    require("ray.data", "scale-out over Ray (teacher.ray_replicas > 0)")
    sampling = sampling or Sampling()
    with locked_run(
        out_dir, examples, template_names, library, model, sampling, samples, retry_failed, limit
    ) as (store, stats, pending):
        if not pending:
            return stats
        # The driver renders every prompt itself: replicas only generate, and a prompt that fails to render
        # is stored as failed right here, like in the single-process runner.
        requests, unrendered = render_requests(
            library,
            spec,
            tqdm(pending, desc="render prompts", unit="req", disable=not progress or len(pending) < 10_000),
            sampling,
            model,
            sees_images=sees_images,
            structured=structured,
        )
        rows = [_encode(r) for r in requests]
        start = time.perf_counter()
        bar = progress_bar(len(pending), f"{backend} × {replicas} on ray", progress)
        unavailable: str | None = None
        with store.open_writer() as f:
            store_batch(f, unrendered, stats, start, bar)
            if rows:  # there is something to send (every prompt may have failed to render)
                replica_options = {"backend": backend, "model": model, "options": dict(options)}
                for made in _generate_on_ray(
                    ray, rows, replica_options, address, replicas, gpus_per_replica, batch_size
                ):
                    store_batch(
                        f, [Generation.from_dict(m) for m in made if UNAVAILABLE not in m], stats, start, bar
                    )
                    unavailable = next((m[UNAVAILABLE] for m in made if UNAVAILABLE in m), None)
                    if unavailable is not None:
                        break  # every generation that came back so far is stored and fsynced
        bar.close()
        if unavailable is not None:
            raise TeacherUnavailable(unavailable)
        return stats


def _generate_on_ray(
    ray,
    rows: list[dict],
    replica_options: dict,
    address: str | None,
    replicas: int,
    gpus_per_replica: float,
    batch_size: int,
) -> Iterator[list[dict]]:
    """Stream the encoded requests through ``replicas`` ``TeacherReplica`` actors; yield each batch of
    results (stored generations, or ``UNAVAILABLE`` rows) as it comes back. Ray is started, or connected to
    ``address``, only here: a run with nothing to send never starts it."""
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    ds = ray.data.from_items(rows).map_batches(
        TeacherReplica,
        fn_constructor_kwargs=replica_options,
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=replicas,
        num_gpus=gpus_per_replica or None,
    )
    # Pulled one batch at a time: the driver stores (and fsyncs) a batch before it takes the next.
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="pandas"):
        yield [json.loads(text) for text in batch["generation"]]


__all__ = ["TeacherReplica", "run_generation_ray"]
