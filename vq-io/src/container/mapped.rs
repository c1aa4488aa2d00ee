//! [`MappedArray`]: an array section of a memory-mapped container that outlives the reader.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use crate::Element;

/// An array section of a memory-mapped container, or a contiguous part of one, as `&[T]`
/// without copying. It holds the mapping (an [`Arc`] shared with the reader and every other
/// view), so an index can keep serving its data from the file after the
/// [`ContainerReader`](super::ContainerReader) is dropped. Cloning is cheap and shares the map.
///
/// The pages belong to the page cache, not to the process heap: they are read in on first
/// access and the kernel may drop them again under memory pressure (they are clean). As for
/// every map, the file must not be modified or truncated while a view of it lives.
pub struct MappedArray<T> {
    map: Arc<memmap2::Mmap>,
    /// Byte offset of the first element in the map (a multiple of `align_of::<T>()`).
    start: usize,
    /// Elements.
    len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for MappedArray<T> {
    fn clone(&self) -> Self {
        MappedArray { map: Arc::clone(&self.map), start: self.start, len: self.len, _t: PhantomData }
    }
}

impl<T: Element> std::fmt::Debug for MappedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedArray<{}>({} at byte {})", T::TYPE, self.len, self.start)
    }
}

impl<T: Element> MappedArray<T> {
    /// The `len` elements at byte `start` of `map`, or `None` when they are out of bounds or
    /// not aligned for `T` (the map itself starts on a page boundary).
    pub(crate) fn new(map: Arc<memmap2::Mmap>, start: usize, len: usize) -> Option<Self> {
        let end = len.checked_mul(size_of::<T>())?.checked_add(start)?;
        bytemuck::try_cast_slice::<u8, T>(map.get(start..end)?).ok()?;
        Some(MappedArray { map, start, len, _t: PhantomData })
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        let bytes = &self.map[self.start..self.start + self.len * size_of::<T>()];
        // Bounds and alignment were checked in `new` (and `slice` keeps both: it moves the
        // start by whole elements), and the map never moves or shrinks, so this cast cannot
        // fail.
        bytemuck::cast_slice(bytes)
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements `range` as a view of the same map, or `None` when `range` is not within
    /// `0..len()`.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        if range.start > range.end || range.end > self.len {
            return None;
        }
        Some(MappedArray {
            map: Arc::clone(&self.map),
            start: self.start + range.start * size_of::<T>(),
            len: range.end - range.start,
            _t: PhantomData,
        })
    }
}

impl<T: Element> std::ops::Deref for MappedArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use crate::{ContainerReader, ContainerWriter, OpenOptions};

    #[test]
    fn views_outlive_the_reader_and_slice_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.vq");
        let mut w = ContainerWriter::create(&path).unwrap();
        let ids: Vec<u64> = (0..100u64).map(|i| i * 3 + 1).collect();
        w.add_array("codes", 1, &[9u8, 8, 7]).unwrap();
        w.add_array("ids", 1, &ids).unwrap();
        w.finish().unwrap();

        let read = ContainerReader::open(&path).unwrap();
        assert!(!read.is_mapped());
        assert!(read.mapped_array::<u64>("ids").unwrap().is_none());

        let r = ContainerReader::open_with(&path, OpenOptions { mmap: true, ..Default::default() }).unwrap();
        assert!(r.is_mapped());
        assert!(r.mapped_array::<u32>("ids").is_err(), "wrong element type");
        assert!(r.mapped_array::<u64>("missing").is_err());
        let view = r.mapped_array::<u64>("ids").unwrap().unwrap();
        let codes = r.mapped_array::<u8>("codes").unwrap().unwrap();
        drop(r);
        assert_eq!(&view[..], &ids[..]);
        assert_eq!(codes.as_slice(), &[9, 8, 7]);
        let part = view.slice(10..13).unwrap();
        assert_eq!((part.len(), part.as_slice()), (3, &ids[10..13]));
        assert_eq!(part.slice(1..3).unwrap().as_slice(), &ids[11..13]);
        assert!(view.slice(5..5).unwrap().is_empty());
        assert!(view.slice(90..101).is_none() && part.slice(2..4).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = view.slice(6..5);
        assert!(backwards.is_none());
    }
}
