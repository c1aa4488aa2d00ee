//! Large output buffers backed by transparent huge pages, as NumPy does for its arrays.
//!
//! Filling a fresh 50 MB buffer costs about as much in page faults as reading and converting
//! the file it comes from: with 4 KiB pages that is 12,800 faults. Asking the kernel for
//! huge pages (`madvise(MADV_HUGEPAGE)`, honoured when transparent huge pages are in
//! `madvise` or `always` mode) cuts them 512-fold. NumPy does this for every array of 4 MiB
//! or more; without it, reading a texmex file is slower than `numpy.fromfile` (BENCHMARKS.md).

/// Buffers at least this large are advised.
const MIN_BYTES: usize = 4 << 20;

/// Reserves room for `additional` more elements in `v` and, for a large reservation on
/// Linux, advises the kernel to back the new room with huge pages.
pub(crate) fn reserve<T>(v: &mut Vec<T>, additional: usize) {
    v.reserve(additional);
    advise_huge_pages(v.spare_capacity_mut());
}

/// `n` zeroed values, backed by huge pages where large ([`reserve`], then filled: the faults
/// of the fill are served with 2 MiB pages).
pub(crate) fn zeroed<T: bytemuck::Zeroable + Clone>(n: usize) -> Vec<T> {
    let mut v = Vec::new();
    reserve(&mut v, n);
    v.resize(n, T::zeroed());
    v
}

/// Asks the kernel to back `spare` with transparent huge pages when it is at least 4 MiB and
/// the OS is Linux (a no-op otherwise, and harmless where THP is off).
///
/// Call it on memory not touched yet (a vector's spare capacity, before filling it): the page
/// faults that follow are then served with 2 MiB pages, 512 times fewer faults and TLB entries.
/// vq-graph uses it for its arenas, which searches touch at random.
pub fn advise_huge_pages<T>(spare: &mut [std::mem::MaybeUninit<T>]) {
    let bytes = std::mem::size_of_val(spare);
    if bytes >= MIN_BYTES {
        advise(spare.as_mut_ptr().cast::<u8>(), bytes);
    }
}

#[cfg(target_os = "linux")]
fn advise(start: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    let skip = start.align_offset(PAGE);
    if skip >= len {
        return;
    }
    let len = (len - skip) / PAGE * PAGE;
    // SAFETY: FFI call into the kernel. `start + skip .. + len` lies inside the vector's
    // allocation (its spare capacity) and is page-aligned, as madvise requires.
    // MADV_HUGEPAGE only changes how the kernel backs future page faults: it reads, writes
    // and frees nothing, so no Rust-visible memory changes. Failure (e.g. no THP support)
    // is harmless and ignored.
    unsafe {
        libc::madvise(start.add(skip).cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_start: *mut u8, _len: usize) {}
