//! texmex `fvecs` / `ivecs` / `bvecs`; the first byte picks the format.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use vq_io::Format;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else { return };
    match sel % 3 {
        0 => common::read_all_ways::<f32>(Format::Fvecs, sel, data),
        1 => common::read_all_ways::<i32>(Format::Ivecs, sel, data),
        _ => common::read_all_ways::<u8>(Format::Bvecs, sel, data),
    }
});
