//! Handing freed memory back to the system after a large state (thousands of apps) shrinks.
//!
//! glibc's allocator keeps freed heap memory for reuse; after EVE stops reporting 10,000 apps the
//! gateway's RSS would stay at its peak. `malloc_trim` returns free pages at the top of each arena
//! and, since glibc 2.8, unused whole pages inside them too.

/// Returns freed heap memory to the system where the allocator supports it.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases memory the allocator holds as free; no pointer we
        // own is affected. It is thread-safe (it takes each arena's lock).
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(released, "freed memory handed back to the system");
    }
}
