//! The extraction pipeline's work loop, shared by `extract` (folder → cache) and
//! [`crate::extractor::Extractor`] (paths or bytes → codes): every worker thread pulls the next
//! item (in input order) as soon as it is free and works it; results go through a bounded
//! queue to one consumer (the calling thread), in completion order. No barrier: decoding and
//! inference of different items overlap and no thread idles until the slowest item of a batch
//! is done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Result;

/// Results in flight between the workers and the consumer, per worker thread.
pub const QUEUE_PER_THREAD: usize = 2;

/// Run `work(i)` for every `i` in `0..n` on every thread of `pool`, and hand each result to
/// `consume(i, result)` on the calling thread as it comes. An error from `consume` stops the
/// workers (each finishes the item it holds) and is returned.
pub fn pull_each<T: Send>(
    pool: &rayon::ThreadPool,
    n: usize,
    work: &(dyn Fn(usize) -> T + Sync),
    consume: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let threads = pool.current_num_threads().max(1);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, T)>(QUEUE_PER_THREAD * threads);
    std::thread::scope(|s| {
        let next = &next;
        let workers = s.spawn(move || {
            pool.scope(|ps| {
                for _ in 0..threads {
                    let tx = tx.clone();
                    ps.spawn(move |_| loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        // The consumer stopped (an error): stop too.
                        if tx.send((i, work(i))).is_err() {
                            break;
                        }
                    });
                }
            });
        });
        let consumed = rx.iter().try_for_each(|(i, r)| consume(i, r));
        // On an error, the workers' next send fails and they stop.
        drop(rx);
        if let Err(panic) = workers.join() {
            std::panic::resume_unwind(panic);
        }
        consumed
    })
}

/// A pool of `threads` worker threads (default: rayon's, i.e. all cores), at most
/// [`THREADS_PER_CORE`] per core.
pub fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    use anyhow::Context;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked = threads.unwrap_or_else(rayon::current_num_threads);
    let (n, _) = worker_threads(Some(asked), usize::MAX, cores);
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .context("starting worker threads")
}

/// Worker threads per core at most: the workers overlap decoding with inference, and more than
/// a few per core only adds threads (each with its own activations) that wait for a core.
pub const THREADS_PER_CORE: usize = 4;

/// The worker threads of a run over `files` images on `cores` cores: `asked` (default: one per
/// core), at most one per image and [`THREADS_PER_CORE`] per core; with a note when `asked` was
/// more than that (`--threads 100000` started 4,100 threads and did not finish in a minute).
pub fn worker_threads(asked: Option<usize>, files: usize, cores: usize) -> (usize, Option<String>) {
    let cap = files.min(THREADS_PER_CORE * cores.max(1)).max(1);
    let want = asked.unwrap_or(cores).max(1);
    if want <= cap {
        return (want, None);
    }
    let per_core = THREADS_PER_CORE * cores.max(1);
    let why = if files < per_core {
        format!("one per image, {files} to do")
    } else {
        format!("{THREADS_PER_CORE} per core, {cores} cores")
    };
    let note = asked
        .map(|n| format!("note: --threads {n} is more than this run can use; using {cap} ({why})"));
    (cap, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_capped_by_the_images_and_the_cores_with_a_note_when_asked() {
        assert_eq!(worker_threads(None, 24, 2), (2, None));
        assert_eq!(worker_threads(None, 1, 16), (1, None));
        assert_eq!(worker_threads(Some(6), 24, 2), (6, None));
        let (n, note) = worker_threads(Some(100_000), 24, 2);
        assert_eq!(n, 8);
        let note = note.unwrap();
        assert!(
            note.contains("--threads 100000") && note.contains("using 8"),
            "{note}"
        );
        assert_eq!(worker_threads(Some(1000), 3, 64).0, 3);
        assert_eq!(worker_threads(Some(0), 10, 4), (1, None));
    }

    #[test]
    fn every_item_is_worked_once_and_a_consumer_error_stops_the_run() {
        let pool = pool(Some(3)).unwrap();
        let mut seen = vec![0usize; 50];
        pull_each(&pool, 50, &|i| i * 2, &mut |i, r| {
            assert_eq!(r, i * 2);
            seen[i] += 1;
            Ok(())
        })
        .unwrap();
        assert!(seen.iter().all(|&c| c == 1));
        let mut got = 0;
        let e = pull_each(&pool, 1000, &|i| i, &mut |_, _| {
            got += 1;
            anyhow::ensure!(got < 5, "stop");
            Ok(())
        });
        assert_eq!(e.unwrap_err().to_string(), "stop");
        assert_eq!(got, 5);
    }
}
