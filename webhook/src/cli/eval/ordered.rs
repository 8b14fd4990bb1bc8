//! Runs one function over a sequence on several threads and hands the results on in the
//! sequence's order, so that what `eval` prints does not depend on how many threads it uses.
//!
//! Owns threads and ordering only; what the function does is the caller's. The sequence is
//! pulled on a thread of its own (it may read files), in batches; at most a few batches per
//! worker are between being pulled and being handed on, so memory stays bounded however long
//! the sequence is. With one job, everything runs on the calling thread.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// Items a worker takes at once: enough to make handing them over cheap, few enough to share
/// the work evenly.
const BATCH: usize = 16;

/// Batches in flight per worker, pulled but not yet handed on.
const IN_FLIGHT_PER_WORKER: usize = 4;

/// The number of jobs to run with: `requested`, else one per core this process may use.
pub fn jobs(requested: Option<NonZeroUsize>) -> NonZeroUsize {
    requested
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN)
}

/// Calls `work` on every item of `items` on `jobs` threads, and `sink` on every result in the
/// order of the items, on the calling thread. `sink` stops it early with `Break`; items not yet
/// pulled are then never pulled. A panic in `work` is raised again here.
pub fn for_each<T, R>(
    items: impl Iterator<Item = T> + Send,
    jobs: NonZeroUsize,
    work: impl Fn(T) -> R + Sync,
    mut sink: impl FnMut(R) -> ControlFlow<()>,
) where
    T: Send,
    R: Send,
{
    if jobs.get() == 1 {
        for item in items {
            if sink(work(item)).is_break() {
                return;
            }
        }
        return;
    }
    let stop = AtomicBool::new(false);
    let (batch_tx, batch_rx) = mpsc::sync_channel::<(usize, Vec<T>)>(jobs.get());
    // Shared by the workers only: once they are all gone, the puller's sends fail.
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    let (done_tx, done_rx) = mpsc::channel::<(usize, std::thread::Result<Vec<R>>)>();
    // A permit per batch in flight: the puller takes one per batch, the sink returns it.
    let (permit_tx, permit_rx) = mpsc::channel::<()>();
    for _ in 0..jobs.get() * IN_FLIGHT_PER_WORKER {
        let _ = permit_tx.send(());
    }
    let mut panicked = None;
    std::thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || {
            let mut items = items;
            for seq in 0.. {
                if permit_rx.recv().is_err() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let batch: Vec<T> = items.by_ref().take(BATCH).collect();
                if batch.is_empty() || batch_tx.send((seq, batch)).is_err() {
                    break;
                }
            }
        });
        for _ in 0..jobs.get() {
            let (batch_rx, done_tx, work) = (Arc::clone(&batch_rx), done_tx.clone(), &work);
            scope.spawn(move || {
                loop {
                    let next = batch_rx.lock().ok().and_then(|rx| rx.recv().ok());
                    let Some((seq, batch)) = next else { break };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let out = catch_unwind(AssertUnwindSafe(|| {
                        batch.into_iter().map(work).collect::<Vec<R>>()
                    }));
                    if done_tx.send((seq, out)).is_err() {
                        break;
                    }
                }
            });
        }
        drop((batch_rx, done_tx));
        let mut next = 0;
        let mut waiting = BTreeMap::new();
        'receive: while let Ok((seq, out)) = done_rx.recv() {
            waiting.insert(seq, out);
            while let Some(out) = waiting.remove(&next) {
                next += 1;
                let results = match out {
                    Ok(results) => results,
                    Err(payload) => {
                        panicked = Some(payload);
                        break 'receive;
                    }
                };
                for result in results {
                    if sink(result).is_break() {
                        break 'receive;
                    }
                }
                let _ = permit_tx.send(());
            }
        }
        // Everything still running sees this, and stops at its next step.
        stop.store(true, Ordering::Relaxed);
        drop((done_rx, permit_tx));
    });
    if let Some(payload) = panicked {
        resume_unwind(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squares(n: usize, jobs: usize, stop_at: Option<usize>) -> Vec<usize> {
        let mut out = Vec::new();
        for_each(
            0..n,
            NonZeroUsize::new(jobs).unwrap_or(NonZeroUsize::MIN),
            |i| {
                // Uneven work, so that batches finish out of order.
                if i % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                i * i
            },
            |sq| {
                out.push(sq);
                if Some(out.len()) == stop_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        out
    }

    #[test]
    fn results_come_in_the_order_of_the_items_whatever_the_jobs() {
        let expected: Vec<usize> = (0..1000).map(|i| i * i).collect();
        for jobs in [1, 2, 3, 8] {
            assert_eq!(squares(1000, jobs, None), expected, "{jobs} jobs");
        }
        assert!(squares(0, 4, None).is_empty());
    }

    #[test]
    fn a_break_stops_pulling_items() {
        let pulled = std::sync::atomic::AtomicUsize::new(0);
        let items = (0..100_000).inspect(|_| {
            pulled.fetch_add(1, Ordering::Relaxed);
        });
        let mut seen = 0;
        for_each(
            items,
            NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            |i| i,
            |_| {
                seen += 1;
                if seen == 10 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(seen, 10);
        // Only the batches in flight were pulled beyond the tenth item.
        assert!(pulled.load(Ordering::Relaxed) < 1000);
        assert_eq!(squares(1000, 3, Some(17)).len(), 17);
    }

    #[test]
    fn a_panic_in_the_work_is_raised_again() {
        let caught = catch_unwind(|| {
            for_each(
                0..100,
                NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
                |i| {
                    assert!(i != 50, "item 50");
                    i
                },
                |_| ControlFlow::Continue(()),
            );
        });
        assert!(caught.is_err());
    }
}
