//! big-ann `fbin` / `ibin` / `u8bin` / `i8bin`; the first byte picks the format.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use vq_io::Format;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else { return };
    match sel % 4 {
        0 => common::read_all_ways::<f32>(Format::Fbin, sel, data),
        1 => common::read_all_ways::<i32>(Format::Ibin, sel, data),
        2 => common::read_all_ways::<u8>(Format::U8bin, sel, data),
        _ => common::read_all_ways::<i8>(Format::I8bin, sel, data),
    }
});
