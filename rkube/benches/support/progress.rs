//! Progress lines: each phase announces itself, long ones report every few seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a long phase prints a progress line.
const EVERY: Duration = Duration::from_secs(3);

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the benchmark started.
pub fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

pub fn phase(title: &str) {
    println!("[{:>7.1}s] == {title}", elapsed());
}

pub fn note(msg: &str) {
    println!("[{:>7.1}s]    {msg}", elapsed());
}

/// A counter shared by the workers of a phase.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Prints `label: done/total (rate/s)` every few seconds until dropped.
pub struct Progress {
    pub counter: Counter,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: &str, total: u64) -> Progress {
        let counter = Counter::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s, label) = (counter.clone(), stop.clone(), label.to_string());
        let thread = std::thread::spawn(move || {
            let begun = Instant::now();
            let mut next = begun + EVERY;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= next {
                    next += EVERY;
                    let done = c.get();
                    let secs = begun.elapsed().as_secs_f64();
                    note(&format!(
                        "{label}: {done}/{total} ({:.0}/s)",
                        done as f64 / secs
                    ));
                }
            }
        });
        Progress {
            counter,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleeps `total`, printing a line every few seconds.
pub async fn idle(label: &str, total: Duration) {
    let end = Instant::now() + total;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(EVERY)).await;
        note(&format!(
            "{label}: {:.0}s left",
            end.saturating_duration_since(Instant::now()).as_secs_f64()
        ));
    }
}
