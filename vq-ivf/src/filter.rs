//! What a filter changes in an inverted-file search: how many lists a k-NN search probes, and
//! which entries of a probed list are scored.
//!
//! **Probing.** A filter passing a fraction `p` of the vectors leaves `p` of every probed
//! list's entries: the `k` nearest *passing* vectors lie about as far out as the `k / p`
//! nearest of all, in more lists than `nprobe` reaches. Probing `nprobe` lists regardless (as
//! Faiss does) lets recall fall with `p`: IVF1024,Flat at nprobe 16 on imgsift100k finds
//! 0.90 of the exact top 10 unfiltered, 0.58 at 1 % passing, 0.34 at 0.3 %. A filtered k-NN
//! search here probes `nprobe / √p` lists (at most all), which keeps recall near the
//! unfiltered figure (measured in BENCHMARKS.md, "Filtered IVF search"), `p` estimated from a
//! fixed, evenly spaced sample of the stored entries. Range search is not widened: the ball
//! does not grow when fewer vectors pass.
//!
//! **Scoring.** Rejected entries are skipped before they are scored or decoded: a probed list
//! costs a filter check per entry and a score per passing one, so the widened probing costs
//! about what the unwidened scan of every entry did.
//!
//! **Listed ids.** A filter that can list its ids and passes few vectors skips all of this:
//! [`IvfIndex::search`](crate::IvfIndex::search) and
//! [`IvfFastScan::search`](crate::IvfFastScan::search) score exactly those entries, found
//! through a map from ids to entries, when that costs less than the coarse search and the scan.
//!
//! Public so an inverted file kept elsewhere (vq-gpu's, on a device) widens its filtered
//! searches the same way.

use vq_distance::{IdFilter, sample_places};

/// Entries checked to estimate a filter's pass rate.
const PASS_SAMPLE: usize = 1024;

/// The fraction of the stored entries (`id_lists`, the lists' ids) that `filter` accepts,
/// estimated from at most 1,024 entries ([`vq_distance::sample_places`]: deterministic and
/// jittered; every entry of a smaller index). A sample no entry passes counts as half an
/// entry passing: rare, not impossible. `1.0` for an empty index.
pub fn pass_rate<'a>(id_lists: impl Iterator<Item = &'a [u64]> + Clone, filter: &dyn IdFilter) -> f64 {
    let total: usize = id_lists.clone().map(<[u64]>::len).sum();
    if total == 0 {
        return 1.0;
    }
    let mut places = sample_places(total, PASS_SAMPLE).peekable();
    let (mut seen, mut passed, mut offset) = (0usize, 0usize, 0usize);
    for ids in id_lists {
        // The places are increasing: take those in this list, then move on.
        while let Some(at) = places.next_if(|&at| at < offset + ids.len()) {
            passed += usize::from(filter.accepts(ids[at - offset]));
            seen += 1;
        }
        offset += ids.len();
    }
    (passed as f64).max(0.5) / seen.max(1) as f64
}

/// Lists a filtered k-NN search probes for `nprobe` requested (already at most `nlist`)
/// under a filter passing `pass_rate` of the entries: `nprobe / √pass_rate`, at most `nlist`.
pub fn widened_nprobe(nprobe: usize, nlist: usize, pass_rate: f64) -> usize {
    let widened = (nprobe as f64 / pass_rate.clamp(f64::MIN_POSITIVE, 1.0).sqrt()).ceil();
    if widened >= nlist as f64 { nlist.max(nprobe) } else { (widened as usize).max(nprobe) }
}

/// How many of `nlist` lists hold at least one of `count` entries spread over them evenly
/// at random (the expectation `nlist · (1 − e^(−count / nlist))`): the lists a search from
/// listed ids enters.
pub(crate) fn lists_holding(count: usize, nlist: usize) -> f64 {
    let nlist = nlist.max(1) as f64;
    nlist * (1.0 - (-(count as f64) / nlist).exp())
}

/// A filtered k-NN search's rows: `scan(queries, nprobe)` (the index's scan of `queries`,
/// each probing `nprobe` lists, into a top `k`) over the widened `nprobe`, then again over
/// twice as many lists for the queries that found fewer than `k`, until every query has `k`
/// or every list was probed. `nprobe` is the search's (at most `nlist`).
pub fn filtered_rows<E>(
    queries: &[f32],
    dim: usize,
    k: usize,
    (nprobe, nlist, pass_rate): (usize, usize, f64),
    scan: impl Fn(&[f32], usize) -> Result<Vec<Vec<(u64, f32)>>, E>,
) -> Result<Vec<Vec<(u64, f32)>>, E> {
    let mut nprobe = widened_nprobe(nprobe, nlist, pass_rate);
    let mut rows = scan(queries, nprobe)?;
    while nprobe < nlist {
        let short: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].len() < k).collect();
        if short.is_empty() {
            break;
        }
        nprobe = (2 * nprobe).min(nlist);
        let again: Vec<f32> = short.iter().flat_map(|&i| &queries[i * dim..][..dim]).copied().collect();
        for (i, row) in short.into_iter().zip(scan(&again, nprobe)?) {
            rows[i] = row;
        }
    }
    Ok(rows)
}

/// Scratch for [`Gather::for_each_block`]: the passing positions of a list and copies of
/// their ids and codes.
#[derive(Default)]
pub(crate) struct Gather {
    positions: Vec<usize>,
    ids: Vec<u64>,
    codes: Vec<u8>,
}

impl Gather {
    /// Calls `each(ids, codes)` over the entries of one list (`ids`, and `codes` of
    /// `code_size` bytes each) that `filter` accepts, at most `block` at a time, codes
    /// contiguous: the list's own slices where every entry passes (or there is no filter),
    /// copies of the passing entries otherwise; never for an empty block.
    pub(crate) fn for_each_block<E>(
        &mut self,
        ids: &[u64],
        codes: &[u8],
        code_size: usize,
        block: usize,
        filter: Option<&dyn IdFilter>,
        mut each: impl FnMut(&[u64], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let every = match filter {
            None => true,
            Some(f) => {
                self.positions.clear();
                f.accepted_positions(ids, &mut self.positions);
                self.positions.len() == ids.len()
            }
        };
        if every {
            return ids.chunks(block).zip(codes.chunks(block * code_size)).try_for_each(|(i, c)| each(i, c));
        }
        for chunk in self.positions.chunks(block) {
            self.ids.clear();
            self.codes.clear();
            for &p in chunk {
                self.ids.push(ids[p]);
                self.codes.extend_from_slice(&codes[p * code_size..][..code_size]);
            }
            each(&self.ids, &self.codes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_rate_samples_every_entry_of_a_small_index_and_evenly_a_large_one() {
        let small: Vec<Vec<u64>> = vec![(0..10).collect(), vec![], (10..40).collect()];
        let thirds = |id: u64| id.is_multiple_of(3);
        // 0, 3, …, 39: 14 of 40.
        assert_eq!(pass_rate(small.iter().map(Vec::as_slice), &thirds), 14.0 / 40.0);
        let large: Vec<Vec<u64>> = (0..100).map(|l| (l * 1000..(l + 1) * 1000).collect()).collect();
        // Periodic filters, whatever their period, against the stride (98 entries here).
        for period in [2, 4, 7, 49, 98] {
            let one_in = |id: u64| id % period == 1;
            let p = pass_rate(large.iter().map(Vec::as_slice), &one_in);
            let want = 1.0 / period as f64;
            assert!((p - want).abs() < 0.3 * want + 0.005, "period {period}: {p}");
        }
        let none = |_: u64| false;
        let p = pass_rate(large.iter().map(Vec::as_slice), &none);
        assert!(p > 0.0 && p <= 0.5 / 1000.0, "{p}");
        assert_eq!(pass_rate(std::iter::empty(), &none), 1.0);
    }

    #[test]
    fn widening_grows_as_the_root_of_the_pass_rate_and_stops_at_every_list() {
        assert_eq!(widened_nprobe(16, 1024, 1.0), 16);
        assert_eq!(widened_nprobe(16, 1024, 0.25), 32);
        assert_eq!(widened_nprobe(16, 1024, 0.01), 160);
        assert_eq!(widened_nprobe(16, 1024, 1e-6), 1024);
        assert_eq!(widened_nprobe(16, 100, 0.0), 100);
        assert_eq!(widened_nprobe(4, 4, 0.5), 4);
    }

    #[test]
    fn lists_holding_grows_with_the_count_and_stops_at_every_list() {
        assert_eq!(lists_holding(0, 1024), 0.0);
        // Few entries fall in lists of their own; many fill every list.
        assert!((lists_holding(10, 1024) - 10.0).abs() < 0.1);
        assert!((lists_holding(1024, 1024) - 1024.0 * (1.0 - (-1f64).exp())).abs() < 1e-9);
        assert!(lists_holding(100_000, 1024) > 1023.9 && lists_holding(100_000, 1024) <= 1024.0);
    }

    #[test]
    fn gathered_blocks_hold_the_passing_entries_in_order_with_their_codes() {
        let ids: Vec<u64> = (100..110).collect();
        let codes: Vec<u8> = (0..20).collect();
        let odd = |id: u64| id % 2 == 1;
        let mut seen = Vec::new();
        let mut g = Gather::default();
        g.for_each_block(&ids, &codes, 2, 3, Some(&odd), |i, c| {
            assert!(i.len() <= 3 && c.len() == 2 * i.len());
            seen.extend(i.iter().zip(c.chunks(2)).map(|(&id, c)| (id, c.to_vec())));
            Ok::<(), ()>(())
        })
        .unwrap();
        let expected: Vec<(u64, Vec<u8>)> =
            (0..10).filter(|p| p % 2 == 1).map(|p| (100 + p as u64, vec![2 * p as u8, 2 * p as u8 + 1])).collect();
        assert_eq!(seen, expected);
        // No filter, or one passing all: the list's own blocks; one passing nothing: no call.
        for filter in [None, Some(&(|_: u64| true) as &dyn IdFilter)] {
            let mut blocks = Vec::new();
            g.for_each_block(&ids, &codes, 2, 4, filter, |i, c| {
                blocks.push((i.to_vec(), c.to_vec()));
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(blocks.len(), 3);
            assert_eq!(blocks.iter().flat_map(|b| b.0.clone()).collect::<Vec<_>>(), ids);
            assert_eq!(blocks.iter().flat_map(|b| b.1.clone()).collect::<Vec<_>>(), codes);
        }
        let mut calls = 0;
        g.for_each_block(&ids, &codes, 2, 4, Some(&|_: u64| false), |_, _| {
            calls += 1;
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(calls, 0);
    }
}
