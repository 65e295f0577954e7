//! A work queue of keys with client-go's workqueue semantics: a key waits in the queue
//! at most once however often it is added, is never processed by two workers at once
//! (added while processed, it is queued again when done), and failures are retried
//! after a per-key exponential back-off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

/// First and longest retry delay of a failing key.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

struct State<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    delayed: mpsc::UnboundedSender<(Duration, K)>,
}

/// The delay before the `n`-th retry (from 0): base × 2ⁿ, at most the maximum.
pub fn backoff(n: u32) -> Duration {
    BACKOFF_BASE
        .checked_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
        .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX))
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// The queue, and the receiver of delayed additions that [`pump_delayed`] serves.
    pub fn new() -> (WorkQueue<K>, mpsc::UnboundedReceiver<(Duration, K)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let q = WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            notify: Notify::new(),
            delayed: tx,
        };
        (q, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // A worker never panics while holding the lock; recover the state if one did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// The next key to process; the caller must call [`WorkQueue::done`] with it.
    pub async fn get(&self) -> K {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Pass the wake-up on: more keys wait than this one.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Adds the key again after its back-off (which doubles with each failure).
    pub fn retry(&self, key: K) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let cur = *n;
            *n = n.saturating_add(1);
            cur
        };
        let _ = self.delayed.send((backoff(n), key));
    }

    /// Forgets the key's failures (it succeeded, or is gone).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many keys wait (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

/// Adds each delayed key to `queue` when its delay has passed; runs until the queue's
/// sender side is gone.
pub async fn pump_delayed<K: Clone + Eq + Hash + Send + 'static>(
    queue: &WorkQueue<K>,
    mut rx: mpsc::UnboundedReceiver<(Duration, K)>,
) {
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut timers = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some((delay, key)) => timers.push(async move {
                    tokio::time::sleep(delay).await;
                    key
                }),
                None => return,
            },
            Some(key) = timers.next(), if !timers.is_empty() => queue.add(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn backoff_doubles_to_max() {
        let cases: &[(u32, u64)] = &[
            (0, 100),
            (1, 200),
            (2, 400),
            (8, 25_600),
            (9, 30_000),
            (40, 30_000),
            (u32::MAX, 30_000),
        ];
        for (n, ms) in cases {
            assert_eq!(backoff(*n), Duration::from_millis(*ms), "n={n}");
        }
    }

    #[tokio::test]
    async fn dedup_and_no_concurrent_processing() {
        let (q, _rx) = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        let a = q.get().await;
        assert_eq!(a, "a");
        // Added while being processed: not handed out again until done.
        q.add("a");
        assert_eq!(q.get().await, "b");
        assert_eq!(q.len(), 0);
        q.done(&"b");
        assert_eq!(q.len(), 0);
        q.done(&"a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, "a");
        q.done(&"a");
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn waiting_workers_wake() {
        let (q, _rx) = WorkQueue::new();
        let q = Arc::new(q);
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move {
                    let k = q.get().await;
                    q.done(&k);
                    k
                })
            })
            .collect();
        tokio::task::yield_now().await;
        for k in [1, 2, 3] {
            q.add(k);
        }
        let mut got = Vec::new();
        for w in workers {
            got.push(w.await.unwrap());
        }
        got.sort();
        assert_eq!(got, [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_after_backoff() {
        let (q, rx) = WorkQueue::new();
        let q = Arc::new(q);
        let pump = tokio::spawn({
            let q = q.clone();
            async move { pump_delayed(&q, rx).await }
        });
        let start = tokio::time::Instant::now();
        q.retry("k"); // 100 ms
        assert_eq!(q.get().await, "k");
        q.done(&"k");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        q.retry("k"); // 200 ms
        assert_eq!(q.get().await, "k");
        q.done(&"k");
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        q.forget(&"k");
        q.retry("k"); // back to 100 ms
        assert_eq!(q.get().await, "k");
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        pump.abort();
    }
}
