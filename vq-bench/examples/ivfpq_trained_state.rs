//! Issue 19's recall-gap experiment: IVF-PQ recall per nprobe with the trained state (coarse
//! centroids, PQ codebooks) swapped one stage at a time between vq and Faiss, so that the
//! stage that costs recall shows. Faiss' state comes from `benchmarks/ivfpq_trained_state.py`
//! (fvecs files); this program writes vq's the same way for that script.
//!
//! ```text
//! cargo run --release -p vq-bench --example ivfpq_trained_state -- imgsift100k ~/.cache/vq/data /tmp/state 1024 16 2000
//! ```
//!
//! Variants (each searched with vq's IVF-PQ code; recall@10 against the dataset's `gt`):
//! - `vq`: vq's training (`train`);
//! - `faiss`: Faiss' centroids and codebooks (vq encodes and searches);
//! - `faiss-coarse+vq-pq`: Faiss' centroids, vq's PQ trained on the residuals against them;
//! - `vq-coarse+faiss-pq`: vq's centroids, the PQ Faiss trained on the residuals against them
//!   (written by the script when it was given vq's centroids).
//!
//! Printed per variant: the coarse k-means objective on the learn set, the PQ's on the learn
//! residuals, Faiss' list imbalance factor; per nprobe: recall@10 of the codes alone, after
//! re-ranking the top 20 / 80 exactly (k_factor 2 / 8, as `…,RFlat`), and the codes scanned
//! per query (the probed lists' sizes).

use std::path::{Path, PathBuf};

use vq::vq_ivf::{IvfCodec, IvfIndex, IvfParams, IvfSearch, PqCodec};
use vq::vq_quant::{PqParams, ProductQuantizer, Quantizer};
use vq::{Metric, Neighbors};
use vq_bench::dataset::{Source, load};

const NPROBES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

fn read_fvecs(path: &Path) -> Option<(Vec<f32>, usize)> {
    if !path.exists() {
        return None;
    }
    let m = vq::vq_io::read::<f32>(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dim = m.dim();
    Some((m.into_vec(), dim))
}

fn write_fvecs(path: &Path, data: &[f32], dim: usize) {
    vq::vq_io::write(path, vq::vq_io::Format::Fvecs, data, dim).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// recall@10 of `ids` (`nq × k`, best first, first 10 used) against the ground truth's top 10.
fn recall10(ids: &[u64], k: usize, gt: &[u64], depth: usize) -> f64 {
    let nq = ids.len() / k;
    let mut hits = 0;
    for q in 0..nq {
        let truth = &gt[q * depth..q * depth + 10];
        hits += ids[q * k..q * k + 10].iter().filter(|id| truth.contains(id)).count();
    }
    hits as f64 / (nq * 10) as f64
}

/// The top 10 of each query's candidates by exact L2 (ties to the smaller id).
fn rerank(hits: &Neighbors, base: &[f32], queries: &[f32], dim: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for (q, (ids, _)) in queries.chunks(dim).zip(hits.iter()) {
        let mut scored: Vec<(f32, u64)> = ids
            .iter()
            .map(|&id| {
                let row = &base[id as usize * dim..][..dim];
                (row.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), id)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out.extend(scored.iter().take(10).map(|s| s.1));
        out.resize(out.len().div_ceil(10) * 10, u64::MAX);
    }
    out
}

/// Mean squared distance of every `x` row to its nearest centroid, and the residuals.
fn coarse_mse(x: &[f32], centroids: &[f32], dim: usize) -> (f64, Vec<f32>) {
    let hits = vq::knn_exact(centroids, x, dim, 1, Metric::L2).unwrap();
    let mut residuals = x.to_vec();
    let mut sum = 0f64;
    for (r, &c) in residuals.chunks_mut(dim).zip(hits.ids()) {
        let c = &centroids[c as usize * dim..][..dim];
        r.iter_mut().zip(c).for_each(|(v, c)| *v -= c);
        sum += r.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>();
    }
    (sum / (x.len() / dim) as f64, residuals)
}

fn pq_mse(pq: &ProductQuantizer, x: &[f32]) -> f64 {
    let dim = pq.dim();
    let mut codes = vec![0u8; x.len() / dim * pq.code_size()];
    pq.encode(x, &mut codes).unwrap();
    let mut rec = vec![0f32; x.len()];
    pq.decode(&codes, &mut rec).unwrap();
    x.iter().zip(&rec).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / (x.len() / dim) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (name, data_dir, state, nlist, m, nq, seeds) = match &args[..] {
        [_, name, data_dir, state, nlist, m, nq] => (name, data_dir, state, nlist, m, nq, None),
        [_, name, data_dir, state, nlist, m, nq, seeds] => (name, data_dir, state, nlist, m, nq, Some(seeds)),
        _ => {
            eprintln!("usage: ivfpq_trained_state DATASET DATA_DIR STATE_DIR NLIST M NQ [SEEDS]");
            std::process::exit(2);
        }
    };
    let (nlist, m, nq): (usize, usize, usize) = (nlist.parse().unwrap(), m.parse().unwrap(), nq.parse().unwrap());
    let state = PathBuf::from(state);
    std::fs::create_dir_all(&state).unwrap();
    let ds = load(&Source::resolve(name, Path::new(data_dir), None, None).unwrap(), Some(nq)).unwrap();
    let dim = ds.dim;
    let (base, queries, learn) = (ds.base.to_f32(), ds.queries.to_f32(), ds.training_set().to_f32());
    let gt = ds.gt.as_ref().expect("the dataset's gt");
    println!("{name}: {} base, {} queries, {} learn, d {dim}; IVF{nlist},PQ{m}", ds.nb(), ds.nq(), learn.len() / dim);

    let params = IvfParams::new(nlist);
    let mut variants: Vec<(String, IvfIndex<PqCodec>)> = Vec::new();
    if let Some(seeds) = seeds {
        // The spread one seed's luck gives: vq's coarse and PQ k-means with each seed.
        for seed in seeds.split(',').map(|s| s.parse::<u64>().unwrap()) {
            let pq = ProductQuantizer::with_params(dim, Metric::L2, PqParams { seed, ..PqParams::new(m, 8) }).unwrap();
            let codec = PqCodec::from_quantizer(Metric::L2, pq).unwrap();
            let mut index = IvfIndex::new(dim, Metric::L2, IvfParams { seed, ..params.clone() }, codec).unwrap();
            index.train(&learn).unwrap();
            variants.push((format!("vq seed {seed}"), index));
        }
        report(&mut variants, &learn, &base, &queries, gt, &[16, 256]);
        return;
    }
    let t = std::time::Instant::now();
    let mut ours =
        IvfIndex::new(dim, Metric::L2, params.clone(), PqCodec::new(dim, Metric::L2, m, 8).unwrap()).unwrap();
    ours.train(&learn).unwrap();
    println!("vq train {:.1} s", t.elapsed().as_secs_f64());
    write_fvecs(&state.join("vq_centroids.fvecs"), ours.centroids(), dim);
    let books = ours.codec().quantizer().centroids();
    write_fvecs(&state.join("vq_pq.fvecs"), books, dim / m);
    variants.push(("vq".into(), ours));

    let faiss_pq = |books: Vec<f32>| {
        let mut pq = ProductQuantizer::with_params(dim, Metric::L2, PqParams::new(m, 8)).unwrap();
        pq.set_centroids(books).unwrap();
        pq
    };
    if let (Some((fc, _)), Some((fpq, _))) =
        (read_fvecs(&state.join("faiss_centroids.fvecs")), read_fvecs(&state.join("faiss_pq.fvecs")))
    {
        let codec = PqCodec::from_quantizer(Metric::L2, faiss_pq(fpq)).unwrap();
        let mut both = IvfIndex::new(dim, Metric::L2, params.clone(), codec).unwrap();
        both.train_with_centroids(fc.clone(), None).unwrap();
        variants.push(("faiss".into(), both));
        let mut mixed =
            IvfIndex::new(dim, Metric::L2, params.clone(), PqCodec::new(dim, Metric::L2, m, 8).unwrap()).unwrap();
        mixed.train_with_centroids(fc, Some(&learn)).unwrap();
        variants.push(("faiss-coarse+vq-pq".into(), mixed));
    }
    if let (Some((vc, _)), Some((fpq, _))) =
        (read_fvecs(&state.join("vq_centroids.fvecs")), read_fvecs(&state.join("faiss_pq_on_vq_coarse.fvecs")))
    {
        let codec = PqCodec::from_quantizer(Metric::L2, faiss_pq(fpq)).unwrap();
        let mut mixed = IvfIndex::new(dim, Metric::L2, params.clone(), codec).unwrap();
        mixed.train_with_centroids(vc, None).unwrap();
        variants.push(("vq-coarse+faiss-pq".into(), mixed));
    }

    report(&mut variants, &learn, &base, &queries, gt, &NPROBES);
}

/// Adds the base to every variant, then prints its objectives and recall per nprobe.
fn report(
    variants: &mut [(String, IvfIndex<PqCodec>)],
    learn: &[f32],
    base: &[f32],
    queries: &[f32],
    gt: &vq_bench::dataset::GroundTruth,
    nprobes: &[usize],
) {
    let Some(dim) = variants.first().map(|v| v.1.dim()) else { return };
    for (label, index) in variants.iter_mut() {
        let nlist = index.params().nlist;
        let (cmse, residuals) = coarse_mse(learn, index.centroids(), dim);
        let pmse = pq_mse(index.codec().quantizer(), &residuals);
        index.add(base).unwrap();
        let sizes: Vec<usize> = (0..nlist).map(|l| index.list_ids(l).map_or(0, <[u64]>::len)).collect();
        println!(
            "{label}: coarse MSE on learn {cmse:.1}, PQ MSE of the learn residuals {pmse:.2}, list imbalance {:.4}",
            index.list_stats().imbalance
        );
        for &nprobe in nprobes.iter().filter(|&&p| p <= nlist) {
            let opts = IvfSearch { nprobe: Some(nprobe), filter: None, coarse_ef: None };
            let plain = index.search(queries, 10, &opts).unwrap();
            let r = recall10(plain.ids(), 10, &gt.ids, gt.depth);
            let kf: Vec<f64> = [2usize, 8]
                .iter()
                .map(|&f| {
                    let hits = index.search(queries, 10 * f, &opts).unwrap();
                    recall10(&rerank(&hits, base, queries, dim), 10, &gt.ids, gt.depth)
                })
                .collect();
            // Codes scanned per query: the sizes of the probed lists.
            let probed = vq::knn_exact(index.centroids(), queries, dim, nprobe, Metric::L2).unwrap();
            let scanned =
                probed.ids().iter().map(|&l| sizes[l as usize]).sum::<usize>() as f64 / probed.num_queries() as f64;
            println!(
                "{{\"variant\":\"{label}\",\"nprobe\":{nprobe},\"recall\":{r:.4},\"recall_kf2\":{:.4},\"recall_kf8\":{:.4},\"scanned\":{scanned:.1}}}",
                kf[0], kf[1]
            );
        }
    }
}
