//! The `lancet` binary's global allocator, so that a bench built with `--features
//! jemalloc` measures what the CLI does; without the feature, the system allocator.

#[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: lancet_udf::allocator::SplitAllocator = lancet_udf::allocator::SplitAllocator;

/// The allocator this bench runs on, for its report.
pub fn name() -> &'static str {
    if cfg!(all(feature = "jemalloc", unix, not(target_env = "musl"))) {
        "jemalloc small, system large (the lancet binary's)"
    } else {
        "system"
    }
}
