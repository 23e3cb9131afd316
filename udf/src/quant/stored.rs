//! Where a quantized matrix's bytes live: in memory, or in a memory-mapped file of packed
//! weights (no copy; the pages are read at first use and shared by every process that
//! maps the same file).

use memmap2::Mmap;
use std::ops::Range;
use std::sync::Arc;

/// A slice of `T` owned in memory or lying in a mapped file.
#[derive(Debug, Clone)]
pub(crate) enum Stored<T> {
    Owned(Vec<T>),
    Mapped { map: Arc<Mmap>, bytes: Range<usize> },
}

impl<T: bytemuck::Pod> Stored<T> {
    /// The `bytes` of `map` as a slice of `T`, or why they cannot be one (out of the
    /// file, or not aligned for `T`).
    pub(crate) fn mapped(map: Arc<Mmap>, bytes: Range<usize>) -> Result<Self, String> {
        let slice = map
            .get(bytes.clone())
            .ok_or_else(|| format!("bytes {bytes:?} lie outside a file of {}", map.len()))?;
        bytemuck::try_cast_slice::<u8, T>(slice)
            .map_err(|e| format!("bytes {bytes:?} do not hold whole aligned values: {e}"))?;
        Ok(Stored::Mapped { map, bytes })
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Stored::Owned(values) => values,
            // `mapped` checked that the range lies in the file and casts.
            Stored::Mapped { map, bytes } => bytemuck::cast_slice(&map[bytes.clone()]),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }
}
