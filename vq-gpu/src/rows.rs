//! Host-side bookkeeping of the device's rows, kept free of CUDA where it can be so `cargo
//! test` checks it on any machine: which rows a filtered search may return ([`RowMask`], a bit
//! per row for the kernels, uploaded by [`upload_mask`] and passed as [`device_ptr_or_null`])
//! and how a removal packs the rows that stay ([`kept_runs`]; the device copies are
//! [`compact`]'s, one per run).

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DeviceRepr, SyncOnDrop};
use vq_distance::IdFilter;

use crate::error::{Error, Result};

/// Which rows of the device's arrays a filtered search may return: one bit per row, in 32-bit
/// words, lowest bit first, as the kernels read it (`vq_allowed`). Built on the host once per
/// search from an [`IdFilter`] (one call per row) and uploaded with it (`n / 8` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowMask {
    words: Vec<u32>,
}

impl RowMask {
    /// The rows whose id `filter` accepts, `ids` giving every row's id in row order.
    pub(crate) fn new(filter: &dyn IdFilter, ids: impl IntoIterator<Item = u64>) -> Self {
        let mut words = Vec::new();
        for (row, id) in ids.into_iter().enumerate() {
            if row % 32 == 0 {
                words.push(0);
            }
            words[row / 32] |= u32::from(filter.accepts(id)) << (row % 32);
        }
        RowMask { words }
    }

    /// Whether `row` may be returned (the kernels' `vq_allowed`; the CPU twins ask it).
    #[cfg(test)]
    pub(crate) fn allows(&self, row: usize) -> bool {
        self.words.get(row / 32).is_some_and(|w| (w >> (row % 32)) & 1 == 1)
    }

    /// The words, as uploaded.
    pub(crate) fn words(&self) -> &[u32] {
        &self.words
    }
}

/// The runs of consecutive kept rows, in order, each with the row it starts at once the kept
/// rows are packed from 0: `(source rows, first destination row)`.
pub(crate) fn kept_runs(keep: &[bool]) -> Vec<(Range<usize>, usize)> {
    let mut runs: Vec<(Range<usize>, usize)> = Vec::new();
    let kept_rows = keep.iter().enumerate().filter(|(_, k)| **k).map(|(row, _)| row);
    for (packed, row) in kept_rows.enumerate() {
        match runs.last_mut() {
            Some((run, _)) if run.end == row => run.end += 1,
            _ => runs.push((row..row + 1, packed)),
        }
    }
    runs
}

/// A new device array of the rows `runs` keep from `src` (`row_len` elements each), packed in
/// order by one device-to-device copy per run; `None` when nothing is kept. `src` is left as it
/// is, so a failure changes nothing.
pub(crate) fn compact<T: DeviceRepr>(
    stream: &Arc<CudaStream>,
    src: &CudaSlice<T>,
    row_len: usize,
    runs: &[(Range<usize>, usize)],
) -> Result<Option<CudaSlice<T>>> {
    let kept: usize = runs.iter().map(|(rows, _)| rows.len()).sum();
    if kept == 0 {
        return Ok(None);
    }
    // SAFETY: every element is written below: the runs' destinations are consecutive from 0
    // and together cover the kept rows (kept_runs).
    let mut dst = unsafe { stream.alloc::<T>(kept * row_len) }.map_err(Error::cuda("cuMemAlloc"))?;
    for (rows, at) in runs {
        let src = src.slice(rows.start * row_len..rows.end * row_len);
        let mut to = dst.slice_mut(at * row_len..(at + rows.len()) * row_len);
        stream.memcpy_dtod(&src, &mut to).map_err(Error::cuda("cuMemcpyDtoD"))?;
    }
    Ok(Some(dst))
}

/// Uploads a search's row mask (`None`: no filter, nothing uploaded).
pub(crate) fn upload_mask(stream: &Arc<CudaStream>, mask: Option<&RowMask>) -> Result<Option<CudaSlice<u32>>> {
    mask.map(|m| stream.clone_htod(m.words()).map_err(Error::cuda("cuMemcpyHtoD"))).transpose()
}

/// A kernel's optional pointer argument: the buffer's device address, or null (0, what the
/// kernels read as "none"). The guard orders the buffer's use on `stream`; keep it alive until
/// the launch is queued.
pub(crate) fn device_ptr_or_null<'a, T>(
    slice: Option<&'a CudaSlice<T>>,
    stream: &'a CudaStream,
) -> (u64, Option<SyncOnDrop<'a>>) {
    match slice {
        Some(s) => {
            let (ptr, guard) = s.device_ptr(stream);
            (ptr, Some(guard))
        }
        None => (0, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The mask holds exactly the accepted rows, in the kernels' bit order.
        #[test]
        fn a_row_mask_allows_exactly_the_accepted_rows(n in 0usize..200, every in 1u64..6, shift in 0u64..7) {
            let accept = |id: u64| id.is_multiple_of(every);
            let mask = RowMask::new(&accept, (0..n as u64).map(|row| row + shift));
            prop_assert_eq!(mask.words().len(), n.div_ceil(32));
            for row in 0..n + 40 {
                prop_assert_eq!(mask.allows(row), row < n && accept(row as u64 + shift));
                if row < n {
                    prop_assert_eq!((mask.words()[row / 32] >> (row % 32)) & 1 == 1, mask.allows(row));
                }
            }
        }

        /// Copying each run to its destination, as `compact` does on the device, leaves the
        /// kept rows packed in order.
        #[test]
        fn kept_runs_pack_the_kept_rows_in_order(keep in prop::collection::vec(any::<bool>(), 0..80), row_len in 1usize..4) {
            let src: Vec<usize> = (0..keep.len() * row_len).collect();
            let runs = kept_runs(&keep);
            let kept = keep.iter().filter(|k| **k).count();
            let mut packed = vec![usize::MAX; kept * row_len];
            for (rows, at) in &runs {
                prop_assert!(!rows.is_empty());
                packed[at * row_len..(at + rows.len()) * row_len]
                    .copy_from_slice(&src[rows.start * row_len..rows.end * row_len]);
            }
            let want: Vec<usize> = (0..keep.len())
                .filter(|&r| keep[r])
                .flat_map(|r| r * row_len..(r + 1) * row_len)
                .collect();
            prop_assert_eq!(packed, want);
            // Runs are maximal: two runs never touch.
            prop_assert!(runs.windows(2).all(|w| w[0].0.end < w[1].0.start));
        }
    }
}
