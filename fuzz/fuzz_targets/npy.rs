//! NumPy `.npy`, every dtype; the first byte picks the type asked for.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use vq_io::{Format, f16};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else { return };
    match sel % 6 {
        0 => common::read_all_ways::<f32>(Format::Npy, sel, data),
        1 => common::read_all_ways::<f16>(Format::Npy, sel, data),
        2 => common::read_all_ways::<u8>(Format::Npy, sel, data),
        3 => common::read_all_ways::<i8>(Format::Npy, sel, data),
        4 => common::read_all_ways::<i32>(Format::Npy, sel, data),
        _ => common::read_all_ways::<i64>(Format::Npy, sel, data),
    }
});
