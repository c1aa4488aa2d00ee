"""One index per process: RSS growth vs memory_usage().
usage: probe.py LIB SPEC [N] [extra...]   LIB in {vq, faiss}
extras: remove, reset, save, mmap, merge, search
Prints one JSON line."""
import sys, os, json, ctypes, gc, time
import numpy as np
libc = ctypes.CDLL("libc.so.6")

def rss():
    gc.collect(); libc.malloc_trim(0)
    with open("/proc/self/status") as f:
        d = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f if l.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}
    return d

class MI2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena","ordblks","smblks","hblks","hblkhd","usmblks","fsmblks","uordblks","fordblks","keepcost")]
libc.mallinfo2.restype = MI2
def inuse():
    """malloc'd bytes live now (all arenas, incl. mmap'd chunks): what the process really allocated."""
    m = libc.mallinfo2(); return m.uordblks + m.hblkhd
def held():
    m = libc.mallinfo2(); return m.arena + m.hblkhd

def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

def bvecs(path, n):
    raw = np.fromfile(path, dtype=np.uint8)
    d = int(raw[:4].view(np.int32)[0])
    return raw.reshape(-1, d + 4)[:n, 4:].astype(np.float32)

lib, spec = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
extras = sys.argv[4:]
D = os.path.expanduser("~/.cache/vq/data/imgsift100k")
xb = np.ascontiguousarray(bvecs(D + "/base.bvecs", n))
xt = np.ascontiguousarray(bvecs(D + "/learn.bvecs", 100_000))
xq = np.ascontiguousarray(bvecs(D + "/query.bvecs", 1000))
d = xb.shape[1]
out = {"lib": lib, "spec": spec, "n": n}

if lib == "vq":
    import vq
    mk = lambda: vq.index_factory(d, spec, vq.METRIC_L2)
    def rep(ix):
        m = dict(ix.memory_usage()); return m
else:
    import faiss
    faiss.omp_set_num_threads(2)
    mk = lambda: faiss.index_factory(d, spec, faiss.METRIC_L2)
    rep = lambda ix: None

def summ(m):
    if m is None: return None
    return sum(v for k, v in m.items() if k not in ("total",))

# warm up library code paths (so code pages/thread pools are not charged to the index)
w = mk()
if not w.is_trained: w.train(xt[:5000]) if "IVF1024" not in spec else w.train(xt[:40000])
w.add(xb[:1000]); w.search(xq[:10], 10)
del w
r0 = rss(); reset_hwm(); a0 = inuse(); h0 = held()
t = time.time()
ix = mk()
if not ix.is_trained:
    ix.train(xt)
ix.add(xb)
out["build_s"] = round(time.time() - t, 1)
r1 = rss()
m = rep(ix)
out["reported"] = summ(m); out["parts"] = m
out["rss_growth"] = r1["VmRSS"] - r0["VmRSS"]
out["malloc_live_growth"] = inuse() - a0
out["malloc_held_growth"] = held() - h0
out["anon_growth"] = r1["RssAnon"] - r0["RssAnon"]
out["peak_over_base"] = r1["VmHWM"] - r0["VmRSS"]

if "search" in extras:
    ix.search(xq, 10)
    r = rss(); out["after_search_rss"] = r["VmRSS"] - r0["VmRSS"]; out["after_search_rep"] = summ(rep(ix)); out["after_search_live"] = inuse() - a0
if "remove" in extras:
    if lib == "vq":
        ix.remove_ids(np.arange(0, n, 2, dtype=np.int64))
    else:
        ix.remove_ids(faiss.IDSelectorBatch(np.arange(0, n, 2, dtype=np.int64)))
    r = rss(); out["after_remove_rss"] = r["VmRSS"] - r0["VmRSS"]; out["after_remove_rep"] = summ(rep(ix))
    out["after_remove_parts"] = rep(ix); out["after_remove_live"] = inuse() - a0; out["ntotal_after_remove"] = ix.ntotal
if "reset" in extras:
    ix.reset()
    r = rss(); out["after_reset_rss"] = r["VmRSS"] - r0["VmRSS"]; out["after_reset_rep"] = summ(rep(ix))
    out["after_reset_parts"] = rep(ix); out["after_reset_live"] = inuse() - a0
if "save" in extras or "mmap" in extras:
    p = os.path.join(os.environ.get("TMPDIR", "/tmp"), "memprobe_ix_%d.bin" % os.getpid())
    (vq.write_index if lib == "vq" else faiss.write_index)(ix, p)
    out["file_bytes"] = os.path.getsize(p)
    del ix; m = None
    rA = rss()
    out["after_del_rss"] = rA["VmRSS"] - r0["VmRSS"]
    for mode in ([False] + ([True] if "mmap" in extras else [])):
        rA = rss(); aA = inuse()
        if lib == "vq":
            j = vq.read_index(p, mmap=mode)
        else:
            j = faiss.read_index(p, faiss.IO_FLAG_MMAP if mode else 0)
        rB = rss()
        key = "read_mmap" if mode else "read"
        out[key + "_rss"] = rB["VmRSS"] - rA["VmRSS"]
        out[key + "_anon"] = rB["RssAnon"] - rA["RssAnon"]
        out[key + "_file"] = rB["RssFile"] - rA["RssFile"]
        out[key + "_parts"] = rep(j); out[key + "_live"] = inuse() - aA
        j.search(xq, 10)
        rC = rss()
        out[key + "_after_search_rss"] = rC["VmRSS"] - rA["VmRSS"]
        out[key + "_after_search_parts"] = rep(j)
        del j
    os.remove(p)
if "merge" in extras:
    # second index over the other half, merged into a fresh one trained alike
    a = mk(); b = mk()
    if not a.is_trained:
        a.train(xt); b.train(xt)
    h = n // 2
    rA = rss()
    a.add(xb[:h]);
    rB = rss()
    b.add(xb[h:])
    rC = rss()
    out["merge_a_rep"] = summ(rep(a)); out["merge_b_rep"] = summ(rep(b))
    out["merge_a_rss"] = rB["VmRSS"] - rA["VmRSS"]; out["merge_b_rss"] = rC["VmRSS"] - rB["VmRSS"]
    if lib == "vq":
        a.merge_from(b, h)  # vq ids are explicit: b's automatic ids 0..h-1 would collide
    else:
        a.merge_from(b, 0)
    rD = rss()
    out["merge_after_rep_a"] = summ(rep(a)); out["merge_after_rep_b"] = summ(rep(b))
    out["merge_after_parts_a"] = rep(a)
    out["merge_delta_rss"] = rD["VmRSS"] - rC["VmRSS"]
    del b
    rE = rss()
    out["merge_after_del_b_rss"] = rE["VmRSS"] - rA["VmRSS"]
print(json.dumps(out))
