//! The id rules every index shares: `u64::MAX` is no one's id (it pads short answers, see
//! [`Neighbors`](crate::Neighbors)), and automatic ids go on past every id ever added, so an
//! `add` after an `add_with_ids` never hands out an id the caller already used.

use std::ops::Range;

use crate::error::{Error, Result};

/// The id of a missing hit: answers shorter than `k` are padded with it.
pub const NO_ID: u64 = u64::MAX;

/// The ids an automatic `add` gives `n` vectors from `next`; [`Error::IdsExhausted`] when they
/// would reach [`NO_ID`].
pub fn auto_ids(next: u64, n: usize) -> Result<Range<u64>> {
    // The range ends before `end`: an `end` of `NO_ID` hands out ids up to `NO_ID - 1`.
    let end = next.checked_add(n as u64).ok_or(Error::IdsExhausted { next, n })?;
    Ok(next..end)
}

/// [`Error::ReservedId`] if `ids` (the caller's) holds [`NO_ID`].
pub fn check_caller_ids(ids: &[u64]) -> Result<()> {
    match ids.contains(&NO_ID) {
        true => Err(Error::ReservedId),
        false => Ok(()),
    }
}

/// The first automatic id after `ids` were added while it was `next`: past every one of them
/// and past the `ids.len()` numbers counted since `next`.
pub fn next_auto_id(next: u64, ids: &[u64]) -> u64 {
    let past = ids.iter().max().map_or(0, |&m| m.saturating_add(1));
    next.saturating_add(ids.len() as u64).max(past)
}

/// `id + shift` (a merge's renumbering); [`Error::IdShift`] when it overflows or lands on
/// [`NO_ID`].
pub fn shifted_id(id: u64, shift: u64) -> Result<u64> {
    id.checked_add(shift).filter(|&s| s != NO_ID).ok_or(Error::IdShift { id, shift })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_ids_stop_before_the_padding_id() {
        assert_eq!(auto_ids(5, 3).unwrap(), 5..8);
        assert_eq!(auto_ids(NO_ID - 2, 2).unwrap(), NO_ID - 2..NO_ID, "the last id is u64::MAX - 1");
        assert!(matches!(auto_ids(NO_ID - 2, 3), Err(Error::IdsExhausted { next, n: 3 }) if next == NO_ID - 2));
        assert!(matches!(auto_ids(NO_ID, 1), Err(Error::IdsExhausted { .. })));
        assert_eq!(auto_ids(NO_ID, 0).unwrap(), NO_ID..NO_ID, "no vectors need no ids");
    }

    #[test]
    fn the_next_automatic_id_passes_every_id_given() {
        assert_eq!(next_auto_id(0, &[0, 1, 2]), 3);
        assert_eq!(next_auto_id(3, &[40]), 41, "past the caller's largest");
        assert_eq!(next_auto_id(41, &[7]), 42, "past the count when the id is below it");
        assert_eq!(next_auto_id(0, &[NO_ID - 1]), NO_ID, "then exhausted");
        assert_eq!(next_auto_id(NO_ID - 1, &[1, 2]), NO_ID, "saturates");
        assert!(check_caller_ids(&[1, NO_ID - 1]).is_ok());
        assert!(matches!(check_caller_ids(&[1, NO_ID]), Err(Error::ReservedId)));
        assert_eq!(shifted_id(7, 10).unwrap(), 17);
        assert_eq!(shifted_id(7, NO_ID - 8).unwrap(), NO_ID - 1);
        assert!(matches!(shifted_id(8, NO_ID - 8), Err(Error::IdShift { id: 8, .. })), "the padding id");
        assert!(matches!(shifted_id(9, NO_ID - 8), Err(Error::IdShift { id: 9, .. })), "overflow");
    }
}
