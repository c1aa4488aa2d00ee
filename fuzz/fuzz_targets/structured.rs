//! Shared by the container and index targets (`container`, `hnsw`, `quantizers`,
//! `read_index`): the selector byte and the container.
//!
//! The first byte's bit 0 turns checksum verification on; bit 1 makes the target recompute
//! the header checksum first. Section checksums are then left unverified (bit 0 off), so a
//! mutation inside a section reaches the index's own structural checks instead of stopping
//! at the checksum, as in a forged file.

use vq_io::ContainerReader;

/// Splits off the selector byte and opens the rest as a container (`None` if it is not one).
pub fn container(data: &[u8]) -> Option<(u8, ContainerReader)> {
    let (&sel, data) = data.split_first()?;
    let mut bytes = data.to_vec();
    if sel & 2 != 0 && bytes.len() >= 64 {
        let table = u64::from_le_bytes(bytes[24..32].try_into().ok()?);
        if let Some(t) = usize::try_from(table).ok().filter(|&t| t <= bytes.len()) {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(&bytes[..40]);
            h.update(&bytes[t..]);
            let sum = h.digest();
            bytes[40..48].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let r = ContainerReader::from_bytes(&bytes, sel & 1 != 0).ok()?;
    Some((sel, r))
}

/// A query for a `dim`-dimensional index, not zero (cosine needs a direction); `None` above
/// 4096 components, where the query itself would be the harness's large allocation.
#[allow(dead_code)] // the `container` target opens containers only
pub fn query(dim: usize) -> Option<Vec<f32>> {
    (dim <= 4096).then(|| (0..dim).map(|i| (i % 7) as f32 - 2.5).collect())
}
