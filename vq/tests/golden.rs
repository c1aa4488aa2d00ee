//! Backward compatibility: index files written by earlier builds (`tests/golden/`, made by
//! `examples/make_golden.rs`) must keep loading and answering as they did when written.
//! A format change that breaks one of these files needs a reader for the old layout, not a
//! new golden file.

use std::path::Path;

use serde_json::Value;
use vq::{Error, SearchParams};

fn golden() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

#[test]
fn every_golden_file_loads_and_answers_as_when_written() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(golden().join("expected.json")).unwrap()).unwrap();
    let queries: Vec<f32> = doc["queries"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let params = SearchParams {
        k: doc["k"].as_u64().unwrap() as usize,
        ef: doc["ef"].as_u64().map(|e| e as usize),
        refine_k: doc["refine_k"].as_u64().map(|e| e as usize),
        nprobe: doc["nprobe"].as_u64().map(|e| e as usize),
        ..Default::default()
    };
    let indexes = doc["indexes"].as_object().unwrap();
    assert!(indexes.len() >= 16, "a golden file per index kind");
    for (name, want) in indexes {
        let index = vq::read_index(golden().join(format!("{name}.vq"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(index.spec().to_string(), want["spec"].as_str().unwrap(), "{name}");
        assert_eq!(index.metric().name(), want["metric"].as_str().unwrap(), "{name}");
        assert_eq!(index.len() as u64, want["len"].as_u64().unwrap(), "{name}");
        if !want["trained"].as_bool().unwrap() {
            assert!(matches!(index.search_with(&queries, &params), Err(Error::NotTrained { .. })), "{name}");
            continue;
        }
        let hits = index.search_with(&queries, &params).unwrap();
        let ids: Vec<u64> = want["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(hits.ids(), &ids[..], "{name}: ids");
        // Scores may differ in the last bits between SIMD levels (the file may have been
        // written on a machine with another one); ids may not.
        for (got, want) in hits.scores().iter().zip(want["scores"].as_array().unwrap()) {
            let want = want.as_f64().map_or(f32::INFINITY, |w| w as f32);
            assert!(got == &want || (got - want).abs() <= 1e-4 * want.abs().max(1.0), "{name}: score {got} vs {want}");
        }
    }
}
