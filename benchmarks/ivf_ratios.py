"""vq / Faiss qps_cpu ratios of IVF1024 indexes at equal search parameters (nprobe, k_factor), the
cQPS@0.90 / 0.95 bar figures and build-time ratios, from a peers.py JSONL file and an xtask bench one.

    python3 benchmarks/ivf_ratios.py FAISS.jsonl VQ.jsonl

FAISS.jsonl from peers.py, or from benchmarks/peers_timed.py to compare train and add apart.
"""
import json, sys, statistics
faiss_file, vq_file = sys.argv[1], sys.argv[2]
def load(f):
    out = {}
    for l in open(f):
        r = json.loads(l)
        bp = r['build_params']
        if r['library'] == 'faiss':
            name = {'faiss-ivf-flat': 'IVF1024,Flat', 'faiss-ivf-sq8': 'IVF1024,SQ8'}.get(r['algo'])
            if r['algo'] == 'faiss-opq-ivf-pq':  # benchmarks/peers_opq.py
                name = f"OPQ{bp['m']},IVF1024,PQ{bp['m']}" + (',RFlat' if bp.get('refine') else '')
            elif name is None:
                name = f"IVF1024,PQ{bp['m']}" + (',RFlat' if bp.get('refine') else '')
        else:
            name = bp['factory']
        sp = r['search_params']
        key = (sp.get('nprobe'), sp.get('k_factor', sp.get('refine_k')))
        out.setdefault(name, {})[key] = r
    return out
F, V = load(faiss_file), load(vq_file)
for name in ['IVF1024,Flat', 'IVF1024,SQ8', 'IVF1024,PQ16,RFlat', 'IVF1024,PQ32,RFlat', 'OPQ16,IVF1024,PQ16,RFlat']:
    if name not in F or name not in V:
        continue  # not in this run
    ratios = []
    line = []
    for key, f in sorted(F[name].items(), key=lambda kv: (kv[0][1] or 0, kv[0][0])):
        v = V.get(name, {}).get(key)
        if not v or not (0.85 <= f['recall'] <= 0.99):
            continue
        r = v['qps_cpu'] / f['qps_cpu']
        ratios.append(r)
        line.append(f"np{key[0]}" + (f"/kf{key[1]}" if key[1] else "") + f" {v['recall']:.4f}/{f['recall']:.4f} {r:.2f}x")
    print(f"{name}: median {statistics.median(ratios):.2f}x over {len(ratios)} points (recall 0.85-0.99 on Faiss' side)")
    print("   " + "; ".join(line))
    # bar figures
    for t in (0.90, 0.95):
        fq = max((x['qps_cpu'] for x in F[name].values() if x['recall'] >= t), default=None)
        vq = max((x['qps_cpu'] for x in V[name].values() if x['recall'] >= t), default=None)
        if fq and vq:
            print(f"   cQPS@{t:.2f}: vq {vq:.0f} / faiss {fq:.0f} = {vq/fq:.2f}x")
for name in ['IVF1024,Flat', 'IVF1024,SQ8', 'IVF1024,PQ16', 'IVF1024,PQ32', 'OPQ16,IVF1024,PQ16']:
    if name not in F or name not in V:
        continue
    f0, v0 = next(iter(F[name].values())), next(iter(V[name].values()))
    fb, vb = f0['build_s'], v0['build_s']
    print(f"build {name}: vq {vb:.1f} s / faiss {fb:.1f} s = {vb/fb:.2f}x")
    # Train and add apart, and the build's CPU time: vq-bench writes them, peers.py does not,
    # benchmarks/peers_timed.py adds them to Faiss' lines.
    parts = [(f, f"{f[:-2]}") for f in ('train_s', 'add_s', 'build_cpu_s') if f in f0 and f in v0]
    if parts:
        print("   " + "; ".join(f"{label} vq {v0[f]:.2f} s / faiss {f0[f]:.2f} s = {v0[f] / max(f0[f], 1e-9):.2f}x"
                               for f, label in parts))
# Codes alone (recall below the bar's 0.90): recall and cQPS at each common nprobe.
for name in ['OPQ16,IVF1024,PQ16']:
    if name not in F or name not in V:
        continue
    common = sorted(k for k in F[name] if k in V[name])
    print(f"{name}: nprobe recall vq/faiss, cQPS vq/faiss = ratio")
    print("   " + "; ".join(f"np{k[0]} {V[name][k]['recall']:.4f}/{F[name][k]['recall']:.4f} "
                           f"{V[name][k]['qps_cpu']:.0f}/{F[name][k]['qps_cpu']:.0f} = {V[name][k]['qps_cpu'] / F[name][k]['qps_cpu']:.2f}x"
                           for k in common))
