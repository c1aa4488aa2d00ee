//! Quantizer sections: `read_sections` of SQ, PQ, OPQ, RaBitQ, and OPQ's rotation and PCA's
//! projection alone under prefix `q`, and `FlatCodes::read_sections` of each (and RaBitQ's
//! fast-scan store, `RaBitQFastScan`) under prefix `f`, each followed by scoring and a search.
//! Any error is fine; a panic, a hang or an allocation out of proportion to the input is a
//! finding.
#![no_main]

mod structured;

use libfuzzer_sys::fuzz_target;
use vq_quant::fastscan::RaBitQFastScan;
use vq_quant::{
    CodeScorer, FlatCodes, OpqQuantizer, OpqRotation, PcaMatrix, ProductQuantizer, Quantizer, RaBitQuantizer,
    ScalarQuantizer,
};

fuzz_target!(|data: &[u8]| {
    let Some((_, r)) = structured::container(data) else { return };
    if let Ok(q) = ScalarQuantizer::read_sections(&r, "q") {
        exercise(&q);
    }
    if let Ok(q) = ProductQuantizer::read_sections(&r, "q") {
        exercise(&q);
    }
    if let Ok(q) = OpqQuantizer::read_sections(&r, "q") {
        exercise(&q);
    }
    if let Ok(q) = RaBitQuantizer::read_sections(&r, "q") {
        exercise(&q);
    }
    // The rotation of `OPQ{m},IVF…` (vq's PreTransformIndex), read on its own.
    if let Ok(rot) = OpqRotation::read_sections(&r, "q.opq")
        && let Some(x) = structured::query(rot.dim())
    {
        let _ = rot.apply(&x);
    }
    // The projection of `PCA{d},…`, read on its own.
    if let Ok(pca) = PcaMatrix::read_sections(&r, "q.pca")
        && let Some(x) = structured::query(pca.d_in())
        && let Ok(y) = pca.apply(&x)
    {
        let _ = pca.apply_inverse(&y);
    }
    if let Ok(f) = FlatCodes::<ScalarQuantizer>::read_sections(&r, "f") {
        search(f);
    }
    if let Ok(f) = FlatCodes::<ProductQuantizer>::read_sections(&r, "f") {
        search(f);
    }
    if let Ok(f) = FlatCodes::<OpqQuantizer>::read_sections(&r, "f") {
        search(f);
    }
    if let Ok(f) = FlatCodes::<RaBitQuantizer>::read_sections(&r, "f") {
        search(f);
    }
    // The same sections as RaBitQ's `FlatCodes`, packed for the fast scan.
    if let Ok(mut f) = RaBitQFastScan::read_sections(&r, "f")
        && let Some(query) = structured::query(f.quantizer().dim())
    {
        let n = f.len();
        for k in [1, 5, n + 2] {
            let _ = f.search(&query, k);
        }
        let _ = f.search_filtered(&query, 3, Some(&|row| row % 2 == 0));
        let _ = f.range_filtered(&query, 1.0, None);
        let removed = f.retain(|row| row % 2 == 1);
        assert_eq!(removed + f.len(), n);
        let _ = f.decode_row(0, &mut vec![0f32; f.quantizer().dim()]);
        let _ = f.search(&query, 3);
    }
});

fn exercise<Q: Quantizer>(q: &Q) {
    let Some(query) = structured::query(q.dim()) else { return };
    let code = vec![0x5au8; q.code_size()];
    if let Ok(s) = q.scorer(&query) {
        let _ = s.distance(&code);
        let _ = s.distance(&code[..code.len() / 2]);
    }
    let _ = q.code_distance(&code, &code);
    let mut out = vec![0f32; q.dim()];
    let _ = q.decode(&code, &mut out);
    let _ = q.encode(&query, &mut vec![0u8; q.code_size()]);
}

fn search<Q: Quantizer>(mut f: FlatCodes<Q>) {
    let Some(query) = structured::query(f.quantizer().dim()) else { return };
    let n = f.len();
    for k in [1, 5, n + 2] {
        let _ = f.search(&query, k);
    }
    let _ = f.search_filtered(&query, 3, Some(&|row| row % 2 == 0));
    let _ = f.range_filtered(&query, 1.0, None);
    let _ = f.decode_row(0, &mut vec![0f32; f.quantizer().dim()]);
    // Whole codes, however the store holds them (multi-bit RaBitQ's heads apart).
    assert_eq!(f.codes().len(), n * f.quantizer().code_size());
    let removed = f.retain(|row| row % 2 == 1);
    assert_eq!(removed + f.len(), n);
    let _ = f.search(&query, 3);
}
