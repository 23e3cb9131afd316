//! glibc's heap, told to keep the CPU encoder's large buffers.
//!
//! A forward pass allocates and frees activation buffers of megabytes in every layer (a
//! 1,024-token batch's MLP output is 20 MB). By default glibc maps blocks above a
//! threshold that adapts between 128 KiB and 32 MiB and returns a heap top above twice
//! that, so most of those buffers came back as fresh pages each time: 3.1 million page
//! faults over the encoder bench's 32 chunks in q8. With the fixed thresholds below, 1.1
//! million, and 7-16% more tokens per second in q8 and in f32 (BENCHMARKS.md, "glibc's
//! thresholds: large freed buffers kept in the heap"). Set when a model loads on the CPU,
//! not for every process: ingestion without an encoder ran 5-10% slower with them and
//! peaked 100 MB higher.

/// glibc maps blocks of this many bytes and more on their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 64 << 20;

/// glibc returns the top of its heap to the system once this many bytes there are free:
/// a process that embeds keeps at most this much freed memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Fixes glibc's thresholds (see the module's doc), once per process; does nothing with
/// other C libraries. The program's own global allocator, if it is not the system's, is
/// not affected.
pub(super) fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static TUNED: std::sync::Once = std::sync::Once::new();
        TUNED.call_once(|| {
            // SAFETY: `mallopt` only sets malloc's parameters (any time, thread-safe);
            // if it refuses one, glibc's defaults stay, which also work.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        });
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};

    /// Minor page faults of the calling thread so far.
    fn thread_minor_faults() -> i64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `getrusage` fills the struct it is given.
        unsafe {
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()), 0);
            usage.assume_init().ru_minflt
        }
    }

    /// Writes a byte into every page of the block.
    unsafe fn touch(ptr: *mut u8, size: usize) {
        for offset in (0..size).step_by(4096) {
            std::ptr::write_volatile(ptr.add(offset), 1);
        }
    }

    /// Page faults of touching a block of `size` that was allocated, touched and freed
    /// just before.
    fn faults_of_a_reused_block(size: usize) -> i64 {
        // Aligned as an f32 buffer is: glibc serves it with `malloc` (larger alignments
        // take `posix_memalign`, whose padding keeps a freed block from fitting again).
        let layout = Layout::from_size_align(size, 4).unwrap();
        unsafe {
            let first = System.alloc(layout);
            assert!(!first.is_null());
            touch(first, size);
            System.dealloc(first, layout);
            let before = thread_minor_faults();
            let second = System.alloc(layout);
            assert!(!second.is_null());
            touch(second, size);
            let faults = thread_minor_faults() - before;
            System.dealloc(second, layout);
            faults
        }
    }

    #[test]
    fn a_freed_large_block_is_reused_without_faulting_its_pages_again() {
        // With glibc's defaults a 16 MiB block is mapped afresh each time: all its pages
        // fault again (measured: 4096 of 4096).
        keep_large_buffers();
        let size = 16 << 20;
        let pages = (size / 4096) as i64;
        let faults = faults_of_a_reused_block(size);
        assert!(
            faults < pages / 8,
            "{faults} of {pages} pages faulted again"
        );
    }
}
