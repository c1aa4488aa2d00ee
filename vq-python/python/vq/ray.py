"""Sharded builds and scatter-gather search on Ray: when a collection outgrows one machine.

>>> import ray, vq.ray
>>> ds = ray.data.read_parquet("s3://bucket/embeddings/")        # a column of vectors
>>> manifest = vq.ray.build(ds, "IVF4096,PQ32", column="emb", id_column="doc_id",
...                         shards=8, out="/shared/index", merge=True)
>>> index = vq.ray.ShardedIndex(manifest)                        # one actor per shard
>>> D, I = index.search(xq, 10, oversample=2, nprobe=32)

The pattern is the one Faiss' on-disk merge and autofaiss follow: train once on a sample, ship
the trained, empty index to every worker (``vq.serialize_index``, once, through Ray's object
store), encode the data in parallel, then either merge the inverted lists into one index
(``Index.merge_from``) or keep the shards and search them side by side, merging the answers
with ``vq.merge_topk`` (graphs: HNSW).

Two input paths. A numpy array skips Ray Data: it is cut into one contiguous slice per shard,
each slice put once into the object store (workers read numpy arrays there in place) and added
by one Ray task that writes its shard. A ``ray.data.Dataset`` (Parquet, Arrow, anything larger
than memory) streams through ``map_batches`` over a pool of actors.

How a build survives a killed worker: no result lives only in a worker's memory. A numpy
shard's task is retried by Ray from its slice and writes its shard file atomically. A
Dataset's batch becomes a *part* file named by the batch's smallest id (the batch encoded into
a copy of the trained index, for inverted files; the batch's vectors and ids otherwise),
written atomically; a retried batch rewrites the same file with the same bytes, and the shards
are assembled from the parts in id order by Ray tasks that each write one shard atomically.
So whichever worker dies when, every id ends up in exactly one shard exactly once, and the
result does not depend on which worker encoded what: a sharded inverted file merged into one
is the single-process build bit for bit.

Needs Ray with Ray Data (``pip install "ray[data]"``; vq's tests pin ``ray[data]==2.52.1``),
imported on first use: ``import vq`` never imports Ray. ``out`` must be a folder every worker
can read and write (one machine's disk, or a shared file system on a cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _vq

__all__ = ["build", "ShardedIndex", "MANIFEST_FORMAT"]

#: The ``format`` field of the manifests this version writes and reads.
MANIFEST_FORMAT = "vq.ray/1"

# The column of ids a build adds when the dataset has none (``id_column=None``).
_ID = "__vq_id"

# Test hook: a worker that finds this file (named by the environment variable, claimed by
# rename so only one worker acts on it) after encoding the number of batches the file holds,
# kills its own process, as a node loss would. Nothing happens when the variable is unset.
_FAULT_ENV = "VQ_RAY_FAULT_FILE"


def _ray(data: bool = False):
    """Ray, and Ray Data when ``data`` (a Dataset build): numpy builds and sharded search need
    only Ray's core, and importing Ray Data costs about a second the first time."""
    try:
        import ray

        if data:
            import ray.data  # noqa: F401  (the extra that Dataset input needs)
    except ImportError as e:
        raise ImportError(
            "vq.ray needs Ray with Ray Data: pip install 'ray[data]' (vq is tested with ray[data]==2.52.1)"
        ) from e
    return ray


def _rows(batch_column) -> np.ndarray:
    """A batch's vector column as a 2-D array: Ray gives tensors and fixed-size lists as a 2-D
    array, ragged or list columns as an object array of rows."""
    a = batch_column
    if isinstance(a, np.ndarray) and a.dtype == object:
        a = np.stack(list(a)) if len(a) else np.zeros((0, 0), dtype=np.float32)
    a = np.asarray(a)
    if a.ndim == 1 and len(a) == 0:
        a = a.reshape(0, 0)
    if a.ndim != 2:
        raise ValueError(f"the vector column must hold one vector per row (got an array of shape {a.shape})")
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def _is_mergeable(template: bytes) -> bool:
    """Whether indexes of this kind merge (inverted files do; the Rust side says so for the
    rest by refusing), tried on two empty copies."""
    probe = _vq.deserialize_index(template)
    try:
        probe.merge_from(_vq.deserialize_index(template))
    except _vq.FingerprintMismatch:
        raise
    except _vq.VqError:
        return False
    return True


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fault_check(done: int) -> None:
    """The test hook (``VQ_RAY_FAULT_FILE``): after ``done`` batches, the first worker to claim
    the file kills its own process, as a node loss would."""
    fault = os.environ.get(_FAULT_ENV)
    if not fault:
        return
    try:
        after = int(Path(fault).read_text().strip() or "1")
    except (OSError, ValueError):
        return
    if done < after:
        return
    try:
        os.rename(fault, f"{fault}.fired")  # one worker wins
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _shard_from_rows(
    template: bytes, x: np.ndarray, first_id: int, out: str, mergeable: bool, threads: int, chunk: int
) -> Dict[str, Any]:
    """One shard of a numpy build: the rows ``x`` (ids ``first_id..``, a read-only view of Ray's
    object store, not a copy) added to a copy of the trained index and written atomically. Run
    as a Ray task: a killed worker's task is retried from the start and rewrites the same file."""
    if threads:
        _vq.set_num_threads(threads)
    index = _vq.deserialize_index(template)
    ids = np.arange(first_id, first_id + len(x), dtype=np.int64)
    if mergeable:
        # Inverted files: `chunk` rows per call bounds the residuals' scratch copy (a whole
        # shard's would double its memory); lists grow in id order either way, so the shard's
        # bytes do not depend on the chunking.
        for done, lo in enumerate(range(0, len(x), chunk), start=1):
            index.add_with_ids(x[lo : lo + chunk], ids[lo : lo + chunk])
            _fault_check(done)
    elif len(x):
        # Graphs insert one batch in parallel and their links depend on the batching: one call.
        index.add_with_ids(x, ids)
        _fault_check(1)
    _atomic_write(Path(out), lambda p: _vq.write_index(index, str(p)))
    return {"path": out, "count": index.ntotal, "fingerprint": index.fingerprint()}


class _Encoder:
    """One worker of the encoding pool: holds the trained, empty index (deserialized once per
    actor) and turns each batch into a part file. Stateless between batches, so a restarted
    actor loses nothing."""

    def __init__(self, template_ref, column, id_column, parts_dir, mergeable, threads):
        ray = _ray()
        self.template = ray.get(template_ref[0])
        self.column, self.id_column = column, id_column
        self.parts = Path(parts_dir)
        self.mergeable = mergeable
        self.batches = 0
        if threads:
            _vq.set_num_threads(threads)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        x = _rows(batch[self.column])
        ids = np.asarray(batch[self.id_column]).astype(np.int64)
        if len(ids) == 0:
            empty = np.zeros(0, np.int64)
            return {"key": empty, "n": empty, "max_id": empty, "path": np.array([], dtype=str)}
        if ids.min() < 0:
            raise ValueError(f"`{self.id_column}` holds negative ids (the smallest is {ids.min()})")
        key = int(ids.min())
        if self.mergeable:
            part = self.parts / f"part-{key:020d}.vq"
            index = _vq.deserialize_index(self.template)
            index.add_with_ids(x, ids)
            _atomic_write(part, lambda p: _vq.write_index(index, str(p)))
        else:
            part = self.parts / f"part-{key:020d}.npz"

            def save(p):
                with open(p, "wb") as f:
                    np.savez(f, x=x, ids=ids)

            _atomic_write(part, save)
        self.batches += 1
        _fault_check(self.batches)
        return {
            "key": np.array([key], np.int64),
            "n": np.array([len(ids)], np.int64),
            "max_id": np.array([int(ids.max())], np.int64),
            "path": np.array([str(part)]),
        }


def _assemble(template: bytes, parts: List[str], out: str, mergeable: bool, threads: int) -> Dict[str, Any]:
    """One shard from its parts, in id order, written atomically (run as a Ray task: a retry
    starts over)."""
    if threads:
        _vq.set_num_threads(threads)
    if mergeable:
        index = _vq.deserialize_index(template)
        for p in parts:
            index.merge_from(_vq.read_index(p))
    else:
        index = _vq.deserialize_index(template)
        loaded = [np.load(p) for p in parts]
        n = sum(len(z["ids"]) for z in loaded)
        index.reserve(n)
        # One add for the whole shard: graphs insert a batch in parallel.
        if loaded:
            x = np.concatenate([z["x"] for z in loaded])
            ids = np.concatenate([z["ids"] for z in loaded])
            index.add_with_ids(x, ids)
    _atomic_write(Path(out), lambda p: _vq.write_index(index, str(p)))
    return {"path": out, "count": index.ntotal, "fingerprint": index.fingerprint()}


def _merge_shards(paths: List[str], out: str, threads: int) -> Dict[str, Any]:
    if threads:
        _vq.set_num_threads(threads)
    index = _vq.read_index(paths[0])
    for p in paths[1:]:
        index.merge_from(_vq.read_index(p))
    _atomic_write(Path(out), lambda p: _vq.write_index(index, str(p)))
    return {"path": out, "count": index.ntotal, "fingerprint": index.fingerprint()}


def _train(spec, d, metric, index_params, given, sample):
    """The trained, empty index: trained on ``given`` rows, or on ``sample()`` when it needs
    training and none were given; ``(index, its serialized bytes)``."""
    index = _vq.index_factory(d, spec, metric, **index_params)
    if not index.is_trained:
        index.train(given if given is not None else sample())
    return index, _vq.serialize_index(index)


def _check_template(template: bytes, spec: str, merge: bool) -> bool:
    mergeable = _is_mergeable(template)
    if merge and not mergeable:
        raise ValueError(f"merge=True needs an inverted file (IVF…): {spec} indexes do not merge")
    return mergeable


def _run_bounded(ray, calls, limit: int) -> List[Any]:
    """Submits ``calls`` (functions returning an object ref) with at most ``limit`` in flight;
    their results in order."""
    refs, running = [], []
    for call in calls:
        if len(running) >= limit:
            _, running = ray.wait(running, num_returns=1)
        ref = call()
        refs.append(ref)
        running.append(ref)
    return ray.get(refs)


def build(
    data,
    spec: str,
    *,
    column: str = "vector",
    id_column: Optional[str] = None,
    metric: Union[int, str] = "l2",
    train_sample: Union[int, np.ndarray] = 100_000,
    shards: int = 1,
    out: Union[str, os.PathLike],
    merge: bool = False,
    batch_size: int = 8192,
    workers: Optional[int] = None,
    threads_per_worker: int = 1,
    seed: int = 0,
    keep_parts: bool = False,
    **index_params,
) -> Dict[str, Any]:
    """Builds the index ``spec`` over ``data`` in ``shards`` files under ``out``; returns the
    manifest (also written to ``out/manifest.json``).

    - ``data``: a ``ray.data.Dataset`` whose ``column`` holds the vectors (a tensor column, or
      Arrow ``FixedSizeList<float32|float16>`` as Parquet stores them; other real dtypes are
      converted to float32 batch by batch), or a numpy array ``(n, d)``.
    - ``id_column``: int64 ids, unique and non-negative. Without it, rows are numbered
      ``0..n`` in the dataset's order (the dataset is zipped with ``ray.data.range(n)``; a
      numpy array's rows are numbered ``0..n`` too).
    - ``train_sample``: how many rows (a random sample of the data) train the index, or the
      training rows themselves as an array. Training runs once, in this process.
    - ``shards``: the number of shard files; shards hold contiguous id ranges.
    - ``merge``: for inverted files (``IVF…``), also merge the shards into ``out/merged.vq``
      (ids preserved: they are global already).
    - ``batch_size``: rows per ``map_batches`` batch (a Dataset) or per ``add`` call (numpy).
    - ``workers``: how many shards/batches encode at once (default: the cluster's CPUs divided
      by ``threads_per_worker``); ``threads_per_worker``: vq threads (and Ray CPUs) of each.
    - ``index_params``: ``ef_construction``, ``ef``, ``nprobe``, ``refine_k`` as
      ``vq.index_factory`` takes them.

    A numpy array skips Ray Data: it is cut into ``shards`` contiguous slices, each put once
    into Ray's object store (a worker reads it in place, no copy) and added by one Ray task
    that writes its shard (a killed worker's task is retried). A Dataset streams through
    ``map_batches`` over a pool of actors that write one part file per batch; the shards are
    then assembled from the parts, so a corpus larger than memory goes through batch by batch.

    The manifest: ``format``, ``spec``, ``metric``, ``dim``, ``fingerprint`` (of the trained
    state every shard must share), ``count``, ``shards`` (each: ``path``, ``count``,
    ``min_id``, ``max_id``, ``fingerprint``), ``merged`` (a path or ``None``), ``parts``
    (batches encoded; 0 for numpy input), ``timings`` (seconds, Ray's start-up not included:
    ``prepare_s``, the input checked, for a Dataset also counted; ``train_s`` including the
    sample's read; ``encode_s``, the vectors added, numpy's shards written; ``assemble_s``, a
    Dataset's shards assembled from the parts; ``merge_s``; ``total_s``).
    """
    started = time.perf_counter()
    ray = _ray(data=not isinstance(data, np.ndarray))
    if shards < 1:
        raise ValueError(f"`shards` must be at least 1, got {shards}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, threads_per_worker))
    given = _rows(train_sample) if isinstance(train_sample, np.ndarray) else None
    if isinstance(data, np.ndarray):
        built, ranges, index, timings = _build_numpy(
            ray, data, spec, metric, index_params, given, train_sample, shards, out, merge, batch_size,
            workers, threads_per_worker, seed, started,
        )
        parts = 0
    else:
        built, ranges, index, timings, parts = _build_dataset(
            ray, data, spec, column, id_column, metric, index_params, given, train_sample, shards, out, merge,
            batch_size, workers, threads_per_worker, seed, keep_parts, started,
        )
    fingerprint = index.fingerprint()
    shard_info = []
    for (lo, hi), b in zip(ranges, built):
        if b["fingerprint"] != fingerprint:
            raise _vq.FingerprintMismatch(f"shard {b['path']} does not carry the build's trained state")
        shard_info.append(
            {"path": b["path"], "count": b["count"], "min_id": lo, "max_id": hi, "fingerprint": b["fingerprint"]}
        )
    total = sum(b["count"] for b in built)
    mark = time.perf_counter()
    merged = None
    if merge:
        # Here, not in a task: the shards are a few small files by now (codes and ids), and
        # this process writes the manifest beside them anyway.
        merged = _merge_shards([s["path"] for s in shard_info], str(out / "merged.vq"), 0)["path"]
    timings["merge_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    manifest = {
        "format": MANIFEST_FORMAT,
        "spec": index.spec,
        "metric": index.metric,
        "dim": index.d,
        "fingerprint": fingerprint,
        "count": total,
        "shards": shard_info,
        "merged": merged,
        "parts": parts,
        "timings": timings,
    }
    _atomic_write(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=1)))
    return manifest


def _build_numpy(
    ray, data, spec, metric, index_params, given, train_sample, shards, out, merge, batch_size, workers,
    threads, seed, started,
):
    """numpy input: contiguous slices through the object store, one task per shard."""
    timings = {}
    if data.ndim != 2:
        raise ValueError(f"`data` as a numpy array must be 2-D (n, d), got shape {data.shape}")
    n, d = data.shape
    if n == 0:
        raise ValueError("the dataset is empty")
    x = np.ascontiguousarray(data, dtype=np.float32)
    timings["prepare_s"] = time.perf_counter() - started

    def sample():
        m = int(train_sample)
        if m >= n:
            return x
        rows = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
        return x[rows]

    index, template = _train(spec, d if given is None else given.shape[1], metric, index_params, given, sample)
    mergeable = _check_template(template, index.spec, merge)
    timings["train_s"] = time.perf_counter() - started - timings["prepare_s"]

    template_ref = ray.put(template)
    # Ray's CPUs for the task, vq's threads inside it: the two agree, so shards running side by
    # side do not oversubscribe the cores. A killed worker's task is retried from its slice.
    task = ray.remote(num_cpus=threads, max_retries=3)(_shard_from_rows)
    bounds = [(s * n // shards, (s + 1) * n // shards) for s in range(shards)]

    def call(s):
        lo, hi = bounds[s]
        # The slice goes into the object store once; the worker reads it there in place.
        path = str(out / f"shard-{s:05d}.vq")
        return lambda: task.remote(template_ref, ray.put(x[lo:hi]), lo, path, mergeable, threads, batch_size)

    built = _run_bounded(ray, [call(s) for s in range(shards)], workers)
    timings["encode_s"] = time.perf_counter() - started - timings["prepare_s"] - timings["train_s"]
    timings["assemble_s"] = 0.0
    ranges = [(lo, hi - 1) if hi > lo else (None, None) for lo, hi in bounds]
    return built, ranges, index, timings


def _build_dataset(
    ray, ds, spec, column, id_column, metric, index_params, given, train_sample, shards, out, merge, batch_size,
    workers, threads, seed, keep_parts, started,
):
    """A Ray Dataset: batches through an actor pool into part files, shards from the parts."""
    timings = {}
    parts_dir = out / "parts"
    if parts_dir.exists():
        shutil.rmtree(parts_dir)  # parts of an earlier build are not this build's
    parts_dir.mkdir()
    if column not in ds.schema().names:
        raise ValueError(f"the dataset has no column {column!r} (its columns: {ds.schema().names})")
    n = ds.count()
    if id_column is None:
        ds = ds.zip(ray.data.range(n).rename_columns({"id": _ID}))
        id_column = _ID
    elif id_column not in ds.schema().names:
        raise ValueError(f"the dataset has no column {id_column!r} (its columns: {ds.schema().names})")
    if n == 0:
        raise ValueError("the dataset is empty")
    timings["prepare_s"] = time.perf_counter() - started

    def sample():
        m = int(train_sample)
        src = ds if m >= n else ds.random_sample(min(1.0, 1.2 * m / n), seed=seed)
        return _rows(src.take_batch(m, batch_format="numpy")[column])

    d = given.shape[1] if given is not None else _rows(ds.take_batch(1, batch_format="numpy")[column]).shape[1]
    index, template = _train(spec, d, metric, index_params, given, sample)
    mergeable = _check_template(template, index.spec, merge)
    timings["train_s"] = time.perf_counter() - started - timings["prepare_s"]
    template_ref = ray.put(template)

    encoded = ds.map_batches(
        _Encoder,
        fn_constructor_args=([template_ref], column, id_column, str(parts_dir), mergeable, threads),
        batch_size=batch_size,
        batch_format="numpy",
        # A dataset read from files needs CPUs for its read tasks too, so the pool starts at
        # one actor and grows to `workers`.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
        num_cpus=threads,
        # A worker that dies is restarted and its batch retried: parts make that harmless.
        max_restarts=-1,
        max_task_retries=-1,
    )
    parts = {}
    for row in encoded.iter_rows():
        parts[int(row["key"])] = (int(row["n"]), int(row["max_id"]), str(row["path"]))
    timings["encode_s"] = time.perf_counter() - started - timings["prepare_s"] - timings["train_s"]
    keys = sorted(parts)
    total = sum(parts[k][0] for k in keys)
    if total != n:
        raise RuntimeError(f"the parts hold {total} vectors but the dataset {n}: a batch was lost or repeated")

    # Contiguous runs of parts of about n / shards vectors each.
    groups: List[List[int]] = [[] for _ in range(shards)]
    seen = 0
    for k in keys:
        g = min(shards - 1, seen * shards // max(n, 1))
        groups[g].append(k)
        seen += parts[k][0]
    # The encoding pool's actors hold their CPUs until Ray Data tears the pool down, which
    # took ~20 s after the last batch here; the shard tasks reserve no CPU so they start at
    # once, and at most `workers` run at a time, so the cores are not oversubscribed.
    assemble = ray.remote(num_cpus=0, max_retries=3)(_assemble)
    built = _run_bounded(
        ray,
        [
            (lambda s, g: lambda: assemble.remote(
                template_ref, [parts[k][2] for k in g], str(out / f"shard-{s:05d}.vq"), mergeable, threads
            ))(s, g)
            for s, g in enumerate(groups)
        ],
        workers,
    )
    timings["assemble_s"] = (
        time.perf_counter() - started - timings["prepare_s"] - timings["train_s"] - timings["encode_s"]
    )
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    ranges = [(g[0], max(parts[k][1] for k in g)) if g else (None, None) for g in groups]
    return built, ranges, index, timings, len(keys)


class _Shard:
    """One shard, loaded once (memory-mapped while loading), searched on request."""

    def __init__(self, path, mmap, threads):
        if threads:
            _vq.set_num_threads(threads)
        self.index = _vq.read_index(path, mmap=mmap)

    def fingerprint(self):
        return self.index.fingerprint(), self.index.ntotal

    def search(self, xq, k, params):
        return self.index.search(xq, k, **params)

    def range_search(self, xq, radius, params):
        return self.index.range_search(xq, radius, **params)


def _load_manifest(manifest) -> Dict[str, Any]:
    if isinstance(manifest, (str, os.PathLike)):
        p = Path(manifest)
        manifest = json.loads((p / "manifest.json" if p.is_dir() else p).read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"not a {MANIFEST_FORMAT} manifest (format {manifest.get('format')!r})")
    return manifest


class ShardedIndex:
    """The shards of a :func:`build`, one Ray actor each; ``search`` scatters the queries to
    every shard, gathers ``k × oversample`` candidates from each and merges them with
    ``vq.merge_topk`` (``range_search`` joins every shard's hits within the radius). ``manifest``: what ``build`` returned, its ``manifest.json`` or the
    build's folder. ``threads_per_shard``: vq threads each shard searches with;
    ``num_cpus``: the CPUs each shard actor reserves (default: Ray's, none held).

    Every shard's trained-state fingerprint is checked against the manifest's when the actors
    load them: a shard trained separately (or a file swapped in from another build) raises
    ``vq.FingerprintMismatch``, so results from incomparable codes are never mixed.
    """

    def __init__(
        self, manifest, *, mmap: bool = True, threads_per_shard: int = 1, num_cpus: Optional[float] = None
    ):
        ray = _ray()
        self.manifest = _load_manifest(manifest)
        self.metric = self.manifest["metric"]
        # Without `num_cpus`, Ray's default for actors: placed as if it needed a CPU, holding
        # none while it lives, so more shards than CPUs still load (they take turns searching).
        actor = ray.remote(_Shard) if num_cpus is None else ray.remote(num_cpus=num_cpus)(_Shard)
        self._actors = [
            actor.remote(s["path"], mmap, threads_per_shard) for s in self.manifest["shards"]
        ]
        try:
            loaded = ray.get([a.fingerprint.remote() for a in self._actors])
        except Exception:
            self.close()
            raise
        want = self.manifest["fingerprint"]
        for s, (fp, count) in zip(self.manifest["shards"], loaded):
            if fp != want:
                self.close()
                raise _vq.FingerprintMismatch(
                    f"shard {s['path']} has trained-state fingerprint {fp:016x} but the build's is {want:016x}: "
                    "it was trained separately; rebuild it from this build's trained index"
                )
        self.ntotal = sum(count for _, count in loaded)

    def search(self, xq, k: int, *, oversample: float = 2, **params):
        """``(D, I)`` for the queries ``xq`` (nq × d) over every shard: each shard returns its
        best ``ceil(k × oversample)`` (so a shard holding more than its share of a query's
        neighbours still contributes them), merged into the best ``k``. ``params``: ``ef``,
        ``nprobe``, ``refine_k``, ``filter`` as ``Index.search`` takes them."""
        ray = _ray()
        if k < 1:
            raise ValueError(f"`k` must be at least 1, got {k}")
        if oversample < 1:
            raise ValueError(f"`oversample` must be at least 1, got {oversample}")
        per_shard = int(np.ceil(k * oversample))
        xq_ref = ray.put(np.ascontiguousarray(xq, dtype=np.float32))
        results = ray.get([a.search.remote(xq_ref, per_shard, params) for a in self._actors])
        return _vq.merge_topk([r[0] for r in results], [r[1] for r in results], k, self.metric)

    def range_search(self, xq, radius: float, **params):
        """``(lims, D, I)`` as ``Index.range_search`` gives them, over every shard: each shard
        returns its hits within ``radius``, and each query's hits from all shards are joined,
        best first (ties to the smaller id). ``params`` as for :meth:`search`."""
        ray = _ray()
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        xq_ref = ray.put(xq)
        parts = ray.get([a.range_search.remote(xq_ref, radius, params) for a in self._actors])
        nq = len(xq)
        query = np.concatenate([np.repeat(np.arange(nq), np.diff(lims)) for lims, _, _ in parts])
        D = np.concatenate([d for _, d, _ in parts])
        I = np.concatenate([i for _, _, i in parts])
        key = D if self.metric == "l2" else -D
        order = np.lexsort((I, key, query))  # by query, then best first, then id
        lims = np.searchsorted(query[order], np.arange(nq + 1)).astype(np.int64)
        return lims, D[order], I[order]

    def close(self) -> None:
        """Stops the shard actors."""
        ray = _ray()
        for a in getattr(self, "_actors", []):
            ray.kill(a)
        self._actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
