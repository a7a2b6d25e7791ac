//! A memory budget for decoded pixels in flight across all worker threads.
//!
//! A small file can declare a huge image (a flat-colour 13000×13000 PNG is ~0.5 MB on disk and
//! 507 MB decoded): under the per-image limits of [`crate::decode`], every worker thread may
//! hold one such image, so the memory of a run grew with its thread count. Before a decoder
//! allocates, [`crate::decode`] reserves the bytes the image's *header* declares (see
//! [`crate::decode::decoded_bytes`]) from the one [`MemoryBudget`] of the run; the
//! [`Reservation`] is released when the decoded pixels are dropped. A thread whose image does not
//! fit waits until enough is released. Reservations are served first come, first served (a big
//! image is never starved by a stream of small ones), and an image larger than the whole budget
//! still runs, alone, once nothing else is reserved (images over the decoder's own limits are
//! refused before they get here).
//!
//! Default size: a quarter of the machine's memory (the smaller of `MemTotal` in `/proc/meminfo`
//! and the cgroup v2 limit `memory.max`, so a container's limit counts), or 2 GiB where neither
//! can be read (not Linux). Hand-written rather than the `sysinfo` crate: it is two small files
//! read once, and `sysinfo` would compile a system-inspection library for one number.
//! The caller may set another size ([`MemoryBudget::from_setting`]; the CLI's `--decode-memory`
//! or its environment variable `TLEARN_DECODE_MEMORY`, e.g. `2GiB`, `512 MiB`, `3G`).

use std::sync::{Condvar, Mutex};

pub use bytesize::ByteSize;

/// The default when the machine's memory cannot be read.
pub const FALLBACK: u64 = 2 << 30;

/// Images whose decoding reserves at least this much are reported as large.
pub const LARGE: u64 = 256 << 20;

/// Bytes of decoded pixels that may be in flight at once, shared by all threads of a run.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    used: u64,
    /// Tickets: the next to hand out and the one being served (first come, first served).
    next: u64,
    serving: u64,
    /// Most bytes reserved at once so far.
    peak: u64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> MemoryBudget {
        MemoryBudget {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// No bound (tests, single-image tools).
    pub fn unlimited() -> MemoryBudget {
        MemoryBudget::new(u64::MAX)
    }

    /// `limit` if given, else [`default_limit`].
    pub fn from_setting(limit: Option<u64>) -> MemoryBudget {
        MemoryBudget::new(limit.unwrap_or_else(default_limit))
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Most bytes that were reserved at once.
    pub fn peak(&self) -> u64 {
        self.state.lock().expect("budget lock").peak
    }

    /// Wait until `bytes` fit (or nothing else is reserved), then hold them until the
    /// reservation is dropped.
    pub fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let mut s = self.state.lock().expect("budget lock");
        let ticket = s.next;
        s.next += 1;
        while s.serving != ticket || (s.used > 0 && s.used.saturating_add(bytes) > self.limit) {
            s = self.changed.wait(s).expect("budget lock");
        }
        s.serving += 1;
        s.used += bytes;
        s.peak = s.peak.max(s.used);
        drop(s);
        // The next ticket may fit beside this one.
        self.changed.notify_all();
        Reservation {
            budget: self,
            bytes,
        }
    }
}

/// Bytes held from a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl Reservation<'_> {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut s = self.budget.state.lock().expect("budget lock");
        s.used -= self.bytes;
        drop(s);
        self.budget.changed.notify_all();
    }
}

/// A quarter of the machine's memory (see the module doc), or [`FALLBACK`].
pub fn default_limit() -> u64 {
    physical_memory().map_or(FALLBACK, |m| m / 4)
}

/// The smaller of `MemTotal` and the cgroup v2 `memory.max`, when readable.
pub fn physical_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| meminfo_total(&s));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal:  24684092 kB` → bytes.
fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `bytes` for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn meminfo_and_sizes_parse() {
        assert_eq!(
            meminfo_total("MemFree: 1 kB\nMemTotal:       24684092 kB\n"),
            Some(24684092 * 1024)
        );
        assert_eq!(meminfo_total("MemTotal: lots\n"), None);
        assert!(physical_memory().is_some(), "this test runs on Linux");
        assert_eq!("2GiB".parse::<ByteSize>().unwrap().as_u64(), 2 << 30);
        assert_eq!("512 MiB".parse::<ByteSize>().unwrap().as_u64(), 512 << 20);
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    /// Threads reserving at random never hold more than the limit at once, except one
    /// oversized reservation alone; and every thread gets through (no starvation, no deadlock).
    #[test]
    fn reservations_stay_under_the_limit_and_an_oversized_one_runs_alone() {
        let budget = MemoryBudget::new(100);
        let held = AtomicU64::new(0);
        let max_seen = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..6u64 {
                let (budget, held, max_seen) = (&budget, &held, &max_seen);
                s.spawn(move || {
                    for i in 0..30u64 {
                        let want = if t == 0 && i % 10 == 0 {
                            250
                        } else {
                            (t * 17 + i * 13) % 60 + 1
                        };
                        let r = budget.reserve(want);
                        let now = held.fetch_add(want, Ordering::SeqCst) + want;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        assert!(now <= 100 || now == want, "{now} held with {want}");
                        std::thread::sleep(Duration::from_micros(200));
                        held.fetch_sub(want, Ordering::SeqCst);
                        drop(r);
                    }
                });
            }
        });
        assert_eq!(held.load(Ordering::SeqCst), 0);
        assert!(max_seen.load(Ordering::SeqCst) > 60, "threads overlapped");
        assert_eq!(budget.peak(), 250);
        assert_eq!(budget.state.lock().unwrap().used, 0);
    }
}
