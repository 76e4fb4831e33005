//! Handing freed memory back to the system after a large state (thousands of apps) shrinks.
//!
//! glibc's allocator keeps freed heap memory for reuse; after EVE stops reporting 10,000 apps the
//! gateway's RSS would stay at its peak. `malloc_trim` returns free pages at the top of each arena
//! and, since glibc 2.8, unused whole pages inside them too.

use std::time::Duration;

/// After a large shrink, the old state is still held for a moment elsewhere: the broker's router
/// thread has yet to process the queued clears (and drop the retained payloads they replace), the
/// link and EVE's handlers still hold older snapshots. A trim at once misses all of that, so a
/// second one runs after this delay.
const LATE_TRIM: Duration = Duration::from_secs(2);

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

/// [`give_back`] now and again once the other holders of the old state have let go of it.
pub fn give_back_soon() {
    give_back();
    // A short-lived thread of its own: callers are synchronous (telemetry), and this must not
    // hold a runtime worker. Failing to spawn only skips the late trim. Not in the stop order:
    // it holds nothing and ends by itself after LATE_TRIM (or with the process).
    let _ = std::thread::Builder::new()
        .name("mem-trim".into())
        .spawn(|| {
            std::thread::sleep(LATE_TRIM);
            give_back();
        });
}
