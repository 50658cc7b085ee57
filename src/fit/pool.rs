//! The fitting threads: `models.fit.threads` OS threads (fits are CPU-bound and must never
//! run on the request path's tokio workers) that take the most urgent series from the
//! backlog, fit it, and then rest so that their CPU share stays within `models.fit.cpu_budget`.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{lock, Fitter, BUCKETS};
use crate::config::FitConfig;

/// How long an idle thread waits for work before it checks for shutdown and sweeps.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How often the first thread sweeps idle histories out of the store.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The running fitting threads; stopped (and joined) by [`FitPool::stop`] or on drop.
pub struct FitPool {
    stop: Arc<(Mutex<bool>, Condvar)>,
    fitter: Arc<Fitter>,
    threads: Vec<JoinHandle<()>>,
}

impl FitPool {
    /// Starts `config.threads` threads fitting from `fitter`'s backlog. Each thread rests after
    /// a fit for `cpu * (threads / cpu_budget - 1)`, so the pool's CPU time over wall time
    /// stays at or below `cpu_budget` cores.
    ///
    /// # Panics
    /// If the OS refuses to start a thread (at startup, like the runtime's own threads).
    pub fn start(fitter: Arc<Fitter>, config: &FitConfig) -> FitPool {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let share = (config.cpu_budget / config.threads as f64).min(1.0);
        let threads = (0..config.threads)
            .map(|n| {
                let (fitter, stop) = (fitter.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("omen-fit-{n}"))
                    .spawn(move || work(&fitter, &stop, share, n == 0))
                    .expect("starting a fitting thread")
            })
            .collect();
        FitPool {
            stop,
            fitter,
            threads,
        }
    }

    /// Stops the threads after their current fit and waits for them.
    pub fn stop(&mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        self.fitter.wake_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for FitPool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn work(fitter: &Fitter, stop: &(Mutex<bool>, Condvar), share: f64, sweeps: bool) {
    let mut buf = Vec::with_capacity(BUCKETS);
    let mut swept = Instant::now();
    let stopped = || *lock(&stop.0);
    while !stopped() {
        if sweeps && swept.elapsed() >= SWEEP_EVERY {
            fitter.sweep();
            swept = Instant::now();
        }
        let Some(key) = fitter.next_due(IDLE_WAIT) else {
            continue;
        };
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        fitter.fit_one(key, &mut buf);
        let cpu = thread_cpu().saturating_sub(cpu0);
        fitter
            .metrics
            .fit_duration
            .observe(wall0.elapsed().as_secs_f64());
        fitter.metrics.fit_cpu.inc_by(cpu.as_secs_f64());
        let rest = cpu.mul_f64(1.0 / share - 1.0);
        if !rest.is_zero() {
            // Interruptible by shutdown.
            let guard = lock(&stop.0);
            let _ = stop.1.wait_timeout_while(guard, rest, |stopped| !*stopped);
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
