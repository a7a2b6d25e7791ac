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

/// A pool of `threads` worker threads (default: rayon's, i.e. all cores).
pub fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    use anyhow::Context;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or_else(rayon::current_num_threads).max(1))
        .build()
        .context("starting worker threads")
}

#[cfg(test)]
mod tests {
    use super::*;

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
