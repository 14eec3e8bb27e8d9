//! Giving the allocator's free memory back to the system once start-up is over: loading
//! the configuration (YAML, JSON values, the descriptor pool's work, translation) frees
//! several MiB that glibc keeps in its arenas, and an idle process would carry them as
//! resident memory for its whole life.

/// Returns the free memory the allocator holds at the top of its heaps and in whole free
/// pages to the system (glibc's `malloc_trim`); nothing elsewhere. Costs a walk over the
/// free lists: call it after bursts of allocation such as start-up, not per request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes a plain integer (the padding to keep) and only touches
    // the allocator's own free lists, under its own locks.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::malloc_trim(0) };
}

/// Without glibc: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
