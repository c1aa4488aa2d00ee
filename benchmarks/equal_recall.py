"""QPS at equal recall from `hnsw_degree.py` / `hnsw_spec.py` rows: for each data set, setting
and library, every run's QPS at recall 0.95, 0.97 and 0.99, interpolated log-linearly between
the two sweep points around it ("-" where the sweep does not reach it), with the run's build
seconds. A run is a library's consecutive rows of one sweep.

    python benchmarks/equal_recall.py FILE.jsonl...
"""
import collections
import json
import math
import sys


def at(points, target):
    points = sorted((p["recall@10"], p["qps_cpu"]) for p in points)
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 <= target <= r1 and r1 > r0:
            t = (target - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return None


def main():
    rows = collections.defaultdict(list)
    for name in sys.argv[1:]:
        for line in open(name):
            if line.startswith("{"):
                r = json.loads(line)
                rows[(r["data"], r["M"], r["efC"], r["lib"])].append(r)
    groups = collections.defaultdict(dict)
    for (data, m, efc, lib), rs in rows.items():
        n = len({r["ef"] for r in rs})
        groups[(data, m, efc)][lib] = [rs[i : i + n] for i in range(0, len(rs), n)]
    for (data, m, efc), libs in sorted(groups.items()):
        for target in (0.95, 0.97, 0.99):
            line = [f"{data} M{m}/{efc} @{target}"]
            for lib, runs in sorted(libs.items()):
                qps = " · ".join(f"{v:,.0f}" if v else "-" for v in (at(r, target) for r in runs))
                builds = " · ".join(str(r[0]["build_s"]) for r in runs)
                line.append(f"{lib}: {qps} (build {builds})")
            print(" | ".join(line))


if __name__ == "__main__":
    main()
