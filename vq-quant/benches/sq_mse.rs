//! Reconstruction error of every scalar quantizer type on a real dataset: trains on its
//! learn set, encodes the base, decodes it, and prints bytes per vector and the mean squared
//! reconstruction error per vector (`mean ‖x − x̂‖²`) and per component.
//!
//! ```text
//! cargo bench -p vq-quant --bench sq_mse -- ~/.cache/vq/data/imgsift100k
//! ```
//! (a folder holding `base.*` and `learn.*` in a format vq-io reads). Without a folder
//! argument, or when it is missing, it says so and does nothing, so `cargo bench` never fails
//! for want of data.

use std::path::{Path, PathBuf};

use vq_distance::Metric;
use vq_io::Matrix;
use vq_quant::{Quantizer, ScalarQuantizer, SqType};

fn find(folder: &Path, stem: &str) -> Option<PathBuf> {
    ["bvecs", "fvecs", "u8bin", "fbin", "npy"]
        .iter()
        .map(|ext| folder.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

fn main() {
    let Some(folder) = std::env::args().skip(1).find(|a| !a.starts_with('-')).map(PathBuf::from) else {
        eprintln!("sq_mse: no dataset folder given (cargo bench -p vq-quant --bench sq_mse -- FOLDER); skipping");
        return;
    };
    let (Some(base), Some(learn)) = (find(&folder, "base"), find(&folder, "learn")) else {
        eprintln!("sq_mse: {} has no base.* and learn.*; skipping", folder.display());
        return;
    };
    let base: Matrix<f32> = vq_io::read(&base).expect("base");
    let learn: Matrix<f32> = vq_io::read(&learn).expect("learn");
    let dim = base.dim();
    let n = base.rows();
    println!("{}: base {n} x {dim}, learn {}", folder.display(), learn.rows());
    println!("{:<8} {:>10} {:>16} {:>16}", "type", "bytes/vec", "MSE per vector", "MSE per comp.");
    for sq_type in SqType::ALL {
        let mut sq = ScalarQuantizer::new(dim, Metric::L2, sq_type).expect("quantizer");
        sq.train(learn.as_slice()).expect("train");
        let mut codes = vec![0u8; n * sq.code_size()];
        sq.encode(base.as_slice(), &mut codes).expect("encode");
        let mut decoded = vec![0f32; n * dim];
        sq.decode(&codes, &mut decoded).expect("decode");
        let sse: f64 = base.as_slice().iter().zip(&decoded).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
        println!(
            "{:<8} {:>10} {:>16.4} {:>16.6}",
            sq_type.factory_name(),
            sq.code_size(),
            sse / n as f64,
            sse / (n * dim) as f64
        );
    }
}
