//! Giving freed heap memory back to the operating system, in the real world only.
//!
//! A burst of sessions (a thousand clients each streaming a big message, issue #9) leaves
//! glibc's heap with tens of megabytes of free chunks scattered between live ones: the
//! session buffers, spool chunks and TLS records were all freed, but glibc returns memory
//! to the kernel only from the top of the heap (`M_TRIM_THRESHOLD`), so RSS stays at the
//! burst's level for good. Measured with `benches/scripts/ingest-rss.sh` (N=300, 10 MB
//! messages): 36.8 MB resident after the sessions had ended, 13.7 MB after one
//! `malloc_trim(0)` (idle is 11 MB), i.e. the memory was free, not leaked. `malloc_trim`
//! `madvise`s the free pages inside the heap away as well.
//!
//! So a low-priority thread calls it every few seconds. The call only walks free chunks
//! and costs microseconds to a few milliseconds; it runs on its own thread so that no
//! tokio worker waits on the allocator's lock. This is process plumbing: the simulated
//! world has no RSS to give back and never starts the thread. On other allocators or
//! platforms (musl, macOS) it is a no-op.

use std::time::Duration;

/// How often the heap is trimmed: short enough that RSS falls within seconds of a burst.
const PERIOD: Duration = Duration::from_secs(2);

/// Starts the trimming thread (once per process; see the module docs).
pub fn start_trimming() {
    if !glibc::AVAILABLE {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(|| loop {
            std::thread::sleep(PERIOD);
            glibc::trim();
        });
    // Without the thread the server runs as before, only with a higher RSS after bursts.
    if let Err(e) = spawned {
        eprintln!("heap-trim thread not started: {e}");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    pub const AVAILABLE: bool = true;

    extern "C" {
        /// glibc `malloc_trim(3)`: returns free memory at the top of every arena and, since
        /// glibc 2.8, `madvise(MADV_DONTNEED)`s whole free pages inside them.
        fn malloc_trim(pad: usize) -> i32;
    }

    pub fn trim() {
        // SAFETY: malloc_trim takes no pointers, is thread-safe (it takes each arena's
        // lock) and only changes which free pages are backed by memory.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub const AVAILABLE: bool = false;
    pub fn trim() {}
}
