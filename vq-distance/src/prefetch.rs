//! Software prefetch of whole slices into L2, for searches bound by memory latency.

/// Starts loading every cache line of `data` into L2 (and on); a hint, with no effect on
/// results, and a no-op off x86-64.
///
/// Whole slices, not just their first line: graph searches and re-ranking are bound by memory
/// latency, and the hardware prefetcher only follows a vector after its first lines were
/// demanded, so a one-line hint leaves most of each vector to be fetched on demand, one
/// latency later. Into L2 (`T1`), not L1: an L1 prefetch holds one of the core's few L1 fill
/// buffers until the line arrives, so many of them in flight stall the core on the prefetch
/// instruction itself (seen in profiles), while L2 tracks many more misses. Measured on
/// imgsift100k HNSW (1 thread, m = 16): first lines 8 ahead → whole vectors 3 ahead into L1:
/// +10–25 % QPS; → whole vectors 12 ahead into L2: +25–30 % more.
#[inline]
pub fn prefetch_l2<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        for line in lines_of(data.as_ptr().cast(), std::mem::size_of_val(data)) {
            // SAFETY: prefetching never faults, whatever the address (these are the lines
            // holding `data`); SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(line.cast::<i8>()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Cache lines of a long slice that [`prefetch_l2_head`] asks for: 1.5 KiB, all of an f32
/// vector up to 384 dimensions.
///
/// Past that the hardware prefetcher streams the rest of a vector once its first lines are
/// read, and asking for whole long vectors, several at a time, fills the core's queue of
/// outstanding misses so the prefetch instructions themselves wait: an HNSW search over
/// 1536-d vectors (six neighbours' whole vectors ahead, 576 lines) spent over 80 % of its walk
/// on them. Measured there (textemb carried to 1536 dimensions, HNSW32, 1 thread): heads of
/// 8–48 lines all beat whole vectors by 13–17 %, 24 the most with four neighbours scored a
/// pass; at 768, 24 lines beat whole vectors by 12 % and 32; at 384, heads of 8 or 16 lines
/// lost 4–17 % (BENCHMARKS.md, session 38).
pub const PREFETCH_HEAD_LINES: usize = 24;

/// [`prefetch_l2`] of at most the first [`PREFETCH_HEAD_LINES`] cache lines of `data`: for
/// scattered vectors read soon after, each from its start.
#[inline]
pub fn prefetch_l2_head<T>(data: &[T]) {
    let head = PREFETCH_HEAD_LINES * 64 / std::mem::size_of::<T>().max(1);
    prefetch_l2(&data[..data.len().min(head)]);
}

/// The start of every 64-byte cache line that holds some of the `len` bytes from `start`,
/// counted from the line `start` is in: bytes that do not start on a line can span one line
/// more than `len / 64` rounded up (88 bytes 56 bytes into a line span three), and stepping
/// 64 bytes from `start` itself would skip that last line.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn lines_of(start: *const u8, len: usize) -> impl Iterator<Item = *const u8> {
    let lead = start as usize % 64;
    let first = start.wrapping_sub(lead);
    let end = if len == 0 { 0 } else { lead + len };
    (0..end).step_by(64).map(move |off| first.wrapping_add(off))
}

#[cfg(test)]
mod tests {
    use super::lines_of;

    #[test]
    fn prefetched_lines_are_exactly_the_lines_the_bytes_occupy() {
        for lead in 0..64usize {
            for len in 1..300usize {
                let start: *const u8 = std::ptr::without_provenance(4096 + lead);
                let got: Vec<usize> = lines_of(start, len).map(|p| p as usize).collect();
                let mut want: Vec<usize> = (start as usize..start as usize + len).map(|a| a & !63).collect();
                want.dedup();
                assert_eq!(got, want, "{len} bytes {lead} into a line");
            }
        }
        // Nothing to fetch for no bytes.
        assert_eq!(lines_of(std::ptr::without_provenance(4096 + 5), 0).count(), 0);
    }
}
