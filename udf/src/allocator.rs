//! The global allocator the `lancet` binary installs (feature `jemalloc`): jemalloc for
//! small blocks, the system allocator for large buffers.
//!
//! jemalloc made bulk ingestion faster (its many small Arrow buffers and chunk strings),
//! but the encoder allocates and frees activation buffers of megabytes in every layer, and
//! jemalloc hands those back as fresh pages each time: 9.1 million page faults instead of
//! glibc's 1.6 million over 32 chunks, and 30% fewer tokens per second (BENCHMARKS.md, "One
//! quantization per input, and large buffers from the system allocator"). glibc keeps
//! freed large chunks in its heap and reuses them (more so once a model on the CPU has
//! fixed glibc's thresholds: `model::heap`). So each allocation is served by size: the
//! same size on allocation, reallocation and release always picks the same allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use tikv_jemallocator::Jemalloc;

/// Blocks of this many bytes and more come from the system allocator.
pub const LARGE: usize = 1 << 20;

/// jemalloc below [`LARGE`] bytes, the system allocator from there on.
///
/// ```ignore
/// #[global_allocator]
/// static ALLOCATOR: lancet_udf::allocator::SplitAllocator = lancet_udf::allocator::SplitAllocator;
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SplitAllocator;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE
}

// SAFETY: every block is released (or resized) by the allocator that served it, since
// that choice depends only on its size, which `dealloc` and `realloc` receive unchanged;
// a resize that crosses `LARGE` moves the block between the two by allocate, copy, free.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match is_large(&layout) {
            true => System.alloc(layout),
            false => Jemalloc.alloc(layout),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            return System.alloc_zeroed(layout);
        }
        // Zeros written here rather than jemalloc's `calloc`: it zeroes a recycled block
        // of 16 KiB and more by handing its pages back to the kernel (`madvise`) and
        // faulting them in again, interrupting the other cores to flush their TLBs. The
        // encoder's per-task buffers did that 46,000 times in one q8 run of 32 chunks.
        let ptr = Jemalloc.alloc(layout);
        if !ptr.is_null() {
            ptr.write_bytes(0, layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match is_large(&layout) {
            true => System.dealloc(ptr, layout),
            false => Jemalloc.dealloc(ptr, layout),
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc`'s contract: `new_size`, rounded up to
        // `layout.align()`, does not overflow `isize`.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (is_large(&layout), is_large(&new_layout)) {
            (true, true) => System.realloc(ptr, layout, new_size),
            (false, false) => Jemalloc.realloc(ptr, layout, new_size),
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes `0, 1, 2, ...` (mod 251) in a fresh block of `size`.
    unsafe fn filled(size: usize) -> (*mut u8, Layout) {
        let layout = Layout::from_size_align(size, 16).unwrap();
        let ptr = SplitAllocator.alloc(layout);
        assert!(!ptr.is_null());
        for i in 0..size {
            *ptr.add(i) = (i % 251) as u8;
        }
        (ptr, layout)
    }

    unsafe fn holds_pattern(ptr: *const u8, len: usize) -> bool {
        (0..len).all(|i| *ptr.add(i) == (i % 251) as u8)
    }

    #[test]
    fn resizing_across_the_threshold_keeps_the_contents() {
        // Small to large, large to small, and within each side.
        for (from, to) in [
            (1000, LARGE + 4096),
            (LARGE + 4096, 1000),
            (100, 5000),
            (LARGE, 2 * LARGE),
            (LARGE - 1, LARGE),
        ] {
            unsafe {
                let (ptr, layout) = filled(from);
                let resized = SplitAllocator.realloc(ptr, layout, to);
                assert!(!resized.is_null());
                assert!(holds_pattern(resized, from.min(to)), "{from} -> {to}");
                assert_eq!(resized as usize % 16, 0, "alignment kept");
                SplitAllocator.dealloc(resized, Layout::from_size_align(to, 16).unwrap());
            }
        }
    }

    #[test]
    fn a_zeroed_block_is_zero_where_a_freed_block_held_data() {
        // jemalloc hands a freed block of the same size back: its bytes must not show.
        for size in [100, 20_000, 116 * 1024] {
            unsafe {
                let (ptr, layout) = filled(size);
                SplitAllocator.dealloc(ptr, layout);
                let zeroed = SplitAllocator.alloc_zeroed(layout);
                assert!(!zeroed.is_null());
                assert!((0..size).all(|i| *zeroed.add(i) == 0), "{size}");
                SplitAllocator.dealloc(zeroed, layout);
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        for size in [64, LARGE + 1] {
            unsafe {
                let layout = Layout::from_size_align(size, 64).unwrap();
                let ptr = SplitAllocator.alloc_zeroed(layout);
                assert!(!ptr.is_null());
                assert_eq!(ptr as usize % 64, 0);
                assert!((0..size).all(|i| *ptr.add(i) == 0));
                SplitAllocator.dealloc(ptr, layout);
            }
        }
    }
}
