//! Row-major fp16 vectors of one width: a memory-mapped file of the saved rows followed
//! by rows added in memory since.

use half::f16;
use memmap2::Mmap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Row-major fp16 vectors, `dim` values a row.
pub(crate) struct Matrix {
    dim: usize,
    mapped: Option<Mmap>,
    mapped_rows: usize,
    tail: Vec<f16>,
}

impl Matrix {
    /// An empty matrix of rows of `dim` values.
    pub(crate) fn new(dim: usize) -> Self {
        Matrix {
            dim,
            mapped: None,
            mapped_rows: 0,
            tail: Vec::new(),
        }
    }

    /// Maps the file at `path`, which must hold exactly `rows` rows of little-endian fp16.
    pub(crate) fn map(path: &Path, dim: usize, rows: usize) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let actual = file.metadata()?.len();
        let expected = rows
            .checked_mul(dim)
            .and_then(|values| values.checked_mul(2))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "matrix size overflows")
            })?;
        if actual != expected as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {actual} bytes, expected {expected}", path.display()),
            ));
        }
        if rows == 0 || cfg!(target_endian = "big") {
            let bytes = std::fs::read(path)?;
            let mut matrix = Matrix::new(dim);
            matrix.tail = bytes
                .chunks_exact(2)
                .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])))
                .collect();
            return Ok(matrix);
        }
        // SAFETY: the file is ours (written once, then only replaced by rename, never
        // modified in place), so the mapping does not change under us.
        let mapped = unsafe { Mmap::map(&file)? };
        Ok(Matrix {
            dim,
            mapped: Some(mapped),
            mapped_rows: rows,
            tail: Vec::new(),
        })
    }

    /// Values per row.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.mapped_rows + self.tail.len() / self.dim.max(1)
    }

    /// Row `i`.
    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f16] {
        if i < self.mapped_rows {
            let values = self.mapped_values();
            &values[i * self.dim..(i + 1) * self.dim]
        } else {
            let i = i - self.mapped_rows;
            &self.tail[i * self.dim..(i + 1) * self.dim]
        }
    }

    fn mapped_values(&self) -> &[f16] {
        match &self.mapped {
            Some(map) => {
                let len = self.mapped_rows * self.dim;
                debug_assert!(map.len() >= len * 2);
                // SAFETY: the map is page-aligned (so aligned for u16), holds at least
                // `len` fp16 values (checked in `map`), is little-endian like this host,
                // and every bit pattern is a valid f16.
                unsafe { std::slice::from_raw_parts(map.as_ptr() as *const f16, len) }
            }
            None => &[],
        }
    }

    /// Appends one row; `row` must hold `dim` values.
    pub(crate) fn push(&mut self, row: &[f16]) {
        debug_assert_eq!(row.len(), self.dim);
        self.tail.extend_from_slice(row);
    }

    /// Writes every row to `path` as little-endian fp16.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        for part in [self.mapped_values(), &self.tail[..]] {
            for value in part {
                out.write_all(&value.to_bits().to_le_bytes())?;
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_rows_map_back_and_new_rows_follow() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Matrix::new(3);
        for r in 0..4 {
            let row: Vec<f16> = (0..3).map(|c| f16::from_f32((r * 3 + c) as f32)).collect();
            m.push(&row);
        }
        let path = dir.path().join("m.f16");
        m.save(&path).unwrap();
        let mut mapped = Matrix::map(&path, 3, 4).unwrap();
        assert_eq!(mapped.rows(), 4);
        assert_eq!(mapped.row(2), m.row(2));
        mapped.push(&[f16::ONE, f16::ONE, f16::ONE]);
        assert_eq!(mapped.rows(), 5);
        assert_eq!(mapped.row(4), &[f16::ONE; 3]);
        assert!(Matrix::map(&path, 3, 5).is_err(), "a short file is refused");
    }
}
