"""Issue 22's figures: vq.ray on one 2-core machine.

  ivfpq  sharded IVF-PQ build with 2 Ray workers vs the single-process 2-thread build (same
         training rows, same spec); the merged index is checked to be the single build's bytes.
  hnsw   scatter-gather HNSW over 2/4/8 shards (one Ray actor each, 1 thread) vs one index
         searched in-process with 2 threads: recall@10, QPS and CPU-time QPS (`qps_cpu`: for the
         shards, the CPU of every Ray process) at oversample 2; the single index is also searched
         through one actor (2 threads), which is Ray's cost without fan-out.

Runs alternate (single, Ray, Ray, single, ...) because the machine is shared; the load average
is printed with every line. Ray's start-up is outside every timing. Needs numpy, ray and
(for `hnsw`'s CPU times) psutil beside the built module.

  python benchmarks/ray_shards.py ivfpq ~/.cache/vq/data/imgsift1m --rounds 2
  python benchmarks/ray_shards.py hnsw ~/.cache/vq/data/imgsift100k
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

import vq
import vq.ray
from texmex import bvecs, ivecs


def load():
    return round(os.getloadavg()[0], 2)


def recall(I, gt, k=10):
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(I, gt)]))


def emit(**kw):
    kw["load"] = load()
    print(json.dumps(kw), flush=True)


def ivfpq(args, ray):
    base = bvecs(os.path.join(args.data, "base.bvecs"), args.n)
    learn = bvecs(os.path.join(args.data, "learn.bvecs"), args.train)
    query = bvecs(os.path.join(args.data, "query.bvecs"))[: args.queries]
    gt = ivecs(os.path.join(args.data, "gt.ivecs"))[: args.queries]
    d = base.shape[1]
    single_bytes = None
    for r in range(args.rounds):
        order = ["single", "ray"] if r % 2 == 0 else ["ray", "single"]
        for what in order:
            if what == "single":
                vq.set_num_threads(2)
                t0, c0 = time.perf_counter(), time.process_time()
                index = vq.index_factory(d, args.spec)
                index.train(learn)
                t1 = time.perf_counter()
                index.add(base)
                t2, c2 = time.perf_counter(), time.process_time()
                _, I = index.search(query, 10, nprobe=args.nprobe)
                single_bytes = vq.serialize_index(index)
                emit(
                    what="single-2-threads", round=r, spec=args.spec, n=len(base), train_s=round(t1 - t0, 2),
                    add_s=round(t2 - t1, 2), total_s=round(t2 - t0, 2), cpu_s=round(c2 - c0, 2),
                    recall10=recall(I, gt), bytes_per_vector=round(index.memory_usage()["total"] / len(base), 1),
                )
                del index
                vq.set_num_threads(0)
            else:
                with tempfile.TemporaryDirectory(dir=args.tmp) as out:
                    # A Dataset made here is outside the timing, as a user's would be.
                    data = base if args.source == "numpy" else ray.data.from_numpy(base)
                    kw = {} if args.source == "numpy" else {"column": "data"}
                    t0 = time.perf_counter()
                    m = vq.ray.build(
                        data, args.spec, train_sample=learn, shards=2, out=out, merge=True, workers=2,
                        threads_per_worker=1, batch_size=args.batch, **kw,
                    )
                    t1 = time.perf_counter()
                    merged = vq.read_index(m["merged"])
                    _, I = merged.search(query, 10, nprobe=args.nprobe)
                    same = single_bytes is not None and vq.serialize_index(merged) == single_bytes
                    emit(
                        what="ray-2-workers", source=args.source, round=r, spec=args.spec, n=len(base),
                        total_s=round(t1 - t0, 2),
                        timings={k: round(v, 2) for k, v in m["timings"].items()}, parts=m["parts"],
                        recall10=recall(I, gt), bytes_equal_single=same if single_bytes is not None else None,
                    )


def tree_cpu():
    """CPU seconds of this process and every process under it: with `ray.init` starting a
    local Ray, that is the GCS, the raylet and every worker and actor, so a scatter-gather
    search's CPU includes the shards' actors and Ray's own processes."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me] + me.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def hnsw(args, ray):
    base = bvecs(os.path.join(args.data, "base.bvecs"), args.n)
    query = bvecs(os.path.join(args.data, "query.bvecs"))[: args.queries]
    gt = ivecs(os.path.join(args.data, "gt.ivecs"))[: args.queries]
    d = base.shape[1]
    efs = [int(e) for e in args.ef.split(",")]

    # One single index, built once and kept: it is searched right before and right after every
    # sharded search (single, sharded, sharded, single), so the machine's load hits both alike.
    vq.set_num_threads(2)
    t0 = time.perf_counter()
    single = vq.index_factory(d, args.spec, ef_construction=args.efc)
    single.add(base)
    single_build = time.perf_counter() - t0
    vq.set_num_threads(0)
    emit(what="single-build", n=len(base), spec=args.spec, efc=args.efc, build_s=round(single_build, 2))

    def timed(search):
        t0, c0, tc0 = time.perf_counter(), time.process_time(), tree_cpu()
        _, I = search()
        t1, c1, tc1 = time.perf_counter(), time.process_time(), tree_cpu()
        return I, t1 - t0, c1 - c0, tc1 - tc0

    def search_single(ef, tag):
        vq.set_num_threads(2)
        I, dt, cpu, _ = timed(lambda: single.search(query, 10, ef=ef))
        vq.set_num_threads(0)
        # CPU of this process only: the single index needs no Ray (whose idle processes run
        # beside it here).
        emit(what="single-2-threads", tag=tag, shards=1, ef=ef, qps=round(len(query) / dt, 1),
             qps_cpu=round(len(query) / cpu, 1), recall10=recall(I, gt))

    def search_sharded(index, shards, ef, build, rep):
        I, dt, _, cpu = timed(lambda: index.search(query, 10, oversample=args.oversample, ef=ef))
        emit(what="ray-scatter-gather", shards=shards, rep=rep, ef=ef, oversample=args.oversample,
             build_s=None if build is None else round(build, 2), qps=round(len(query) / dt, 1),
             qps_cpu=round(len(query) / cpu, 1), recall10=recall(I, gt))

    def rounds(index, shards, build):
        for ef in efs:
            single.search(query[:200], 10, ef=ef)  # warm
            index.search(query[:200], 10, oversample=args.oversample, ef=ef)  # warm
            search_single(ef, f"before-{shards}")
            search_sharded(index, shards, ef, build, 0)
            search_sharded(index, shards, ef, build, 1)
            search_single(ef, f"after-{shards}")

    with tempfile.TemporaryDirectory(dir=args.tmp) as out:
        # Ray's own cost apart from the fan-out: the single index itself, written once and
        # searched through one actor (a one-shard manifest made here, not by a build).
        path = os.path.join(out, "single.vq")
        vq.write_index(single, path)
        one = {"format": vq.ray.MANIFEST_FORMAT, "metric": single.metric, "fingerprint": single.fingerprint(),
               "shards": [{"path": path}]}
        with vq.ray.ShardedIndex(one, threads_per_shard=2) as index:
            rounds(index, 1, None)
    for shards in [int(s) for s in args.shards.split(",")]:
        with tempfile.TemporaryDirectory(dir=args.tmp) as out:
            t0 = time.perf_counter()
            m = vq.ray.build(base, args.spec, shards=shards, out=out, workers=2, threads_per_worker=1,
                             batch_size=args.batch, ef_construction=args.efc)
            build = time.perf_counter() - t0
            with vq.ray.ShardedIndex(m, threads_per_shard=1) as index:
                rounds(index, shards, build)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["ivfpq", "hnsw"])
    p.add_argument("data", help="a folder with base/learn/query.bvecs and gt.ivecs")
    p.add_argument("--spec", default=None, help="IVF1024,PQ16 (ivfpq) or HNSW16 (hnsw)")
    p.add_argument("--n", type=int, default=None, help="base rows (default: all)")
    p.add_argument("--train", type=int, default=100_000, help="learn rows that train the IVF")
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--ef", default="32,64,128")
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--shards", default="2,4,8", help="shard counts built through vq.ray.build")
    p.add_argument("--oversample", type=float, default=2)
    p.add_argument("--source", choices=["numpy", "dataset"], default="numpy",
                   help="ivfpq: hand vq.ray.build the numpy array, or ray.data.from_numpy of it")
    p.add_argument("--tmp", default=None, help="where shard folders go (default: the system's)")
    args = p.parse_args()
    import ray

    if args.source == "dataset":
        import ray.data  # noqa: F401

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(json.dumps({"simd": vq.simd_level(), "cpus": os.cpu_count(), "ray": ray.__version__, "load": load()}))
    try:
        if args.mode == "ivfpq":
            args.spec = args.spec or "IVF1024,PQ16"
            ivfpq(args, ray)
        else:
            args.spec = args.spec or "HNSW16"
            hnsw(args, ray)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
