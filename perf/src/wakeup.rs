//! What a wake-up costs on this host: the CPU time a thread is charged for sleeping and being
//! woken, once by a timer and once by another thread, measured before a latency run.
//!
//! At a steady rate, much of a pipeline's CPU goes to waking its threads: every batch wakes
//! the source (its read timer), a shard (the source rings it) and the sink (a shard rings it,
//! then its linger timer, then the answer). On bare metal a wake-up costs a few microseconds,
//! but on a virtual machine the timer interrupts, the inter-processor interrupts and the idle
//! exits behind it trap to the hypervisor, and it can cost ten times that. Measuring it here
//! tells how much of Sluice's CPU at a steady rate is the host's price for wake-ups (the
//! process's wake-ups per second times this cost) and how much is work on the events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::Serialize;

/// CPU time charged per wake-up, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WakeupCost {
    /// A thread sleeping on a timer (`nanosleep`), woken when it expires.
    pub timer_us: f64,
    /// A thread blocked in the kernel (a futex), woken by a thread on another core (as a
    /// shard, pinned to its core, is woken by a connector thread); on a one-core host, by a
    /// thread on the same core.
    pub thread_us: f64,
}

impl WakeupCost {
    /// The mean of the two kinds, the figure used for a pipeline's mix of both.
    pub fn mean_us(&self) -> f64 {
        (self.timer_us + self.thread_us) / 2.0
    }
}

/// How long each sleep lasts: long enough that the CPU goes idle in between, as a pipeline's
/// threads do between batches at a steady rate.
const GAP: Duration = Duration::from_millis(1);

/// Measures both costs over `rounds` wake-ups each (about `rounds` ms apiece).
pub fn measure(rounds: u32) -> WakeupCost {
    let rounds = rounds.max(1);
    WakeupCost {
        timer_us: timer_wakeup_us(rounds),
        thread_us: thread_wakeup_us(rounds),
    }
}

/// This thread's CPU time (user + system), in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn timer_wakeup_us(rounds: u32) -> f64 {
    let start = thread_cpu_seconds();
    for _ in 0..rounds {
        thread::sleep(GAP);
    }
    (thread_cpu_seconds() - start) * 1e6 / f64::from(rounds)
}

/// A waiter parks; a waker sleeps [`GAP`], counts a round and unparks it, `rounds` times. The
/// waiter's own CPU time per round is the cost (the waker's sleeps are not counted). Both
/// are pinned to two different cores when this process may use two: left unpinned, the
/// scheduler would run the waiter on the waker's core, where a wake-up is a plain switch.
/// Rounds are counted, not flagged: two that come before the waiter runs are both seen.
fn thread_wakeup_us(rounds: u32) -> f64 {
    let cores = allowed_cores();
    let (waiter_core, waker_core) = match cores.as_slice() {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    let sent = Arc::new(AtomicU32::new(0));
    let waiter = {
        let sent = sent.clone();
        thread::spawn(move || {
            if let Some(core) = waiter_core {
                pin_to(core);
            }
            let start = thread_cpu_seconds();
            let mut seen = 0;
            while seen < rounds {
                let now = sent.load(Ordering::Acquire);
                if now == seen {
                    thread::park();
                } else {
                    seen = now;
                }
            }
            (thread_cpu_seconds() - start) * 1e6 / f64::from(rounds)
        })
    };
    let waiter_thread = waiter.thread().clone();
    let waker = thread::spawn(move || {
        if let Some(core) = waker_core {
            pin_to(core);
        }
        for _ in 0..rounds {
            thread::sleep(GAP);
            sent.fetch_add(1, Ordering::Release);
            waiter_thread.unpark();
        }
    });
    let _ = waker.join();
    waiter.join().unwrap_or(f64::NAN)
}

/// The cores this process may run on.
fn allowed_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `core` (best effort: unpinned if refused).
fn pin_to(core: usize) {
    // SAFETY: as above; sched_setaffinity(0, ..) changes only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The cores that `wakeups_per_s` wake-ups cost at `cost_us` each.
pub fn wakeup_cores(wakeups_per_s: u64, cost_us: f64) -> f64 {
    wakeups_per_s as f64 * cost_us * 1e-6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeup_cores_is_rate_times_cost() {
        assert!((wakeup_cores(4_000, 35.0) - 0.14).abs() < 1e-12);
        assert_eq!(wakeup_cores(0, 35.0), 0.0);
    }

    #[test]
    fn measured_costs_are_positive_and_below_the_gap() {
        let cost = measure(20);
        for us in [cost.timer_us, cost.thread_us] {
            // Each round sleeps 1 ms; the thread is charged only for waking, never the sleep.
            assert!(us > 0.0 && us < 1_000.0, "{cost:?}");
        }
        assert!((cost.mean_us() - (cost.timer_us + cost.thread_us) / 2.0).abs() < 1e-9);
    }
}
