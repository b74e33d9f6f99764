//! Sub-millisecond sleeps on a connector thread's tokio runtime.
//!
//! tokio's timers tick in whole milliseconds and round a deadline up to the next tick, so a
//! 1 ms linger lasts between 1 and 2 ms (and a 500 µs one as long). Where a connector waits on
//! purpose to gather work (the syslog source's batch linger and read pacing, the http sink's
//! `batch_timeout`), that rounding was most of Sluice's latency at a steady rate. A
//! [`PreciseTimer`] is a `timerfd` (CLOCK_MONOTONIC, the clock of [`Instant`]) registered with
//! the runtime's reactor: it fires when asked, to the kernel's timer slack (50 µs by
//! default). It costs two system calls per sleep (arm, read), so it is for lingers that
//! happen at most a few thousand times a second. A sleep dropped before it ended (the other
//! branch of a `select!` won) disarms the timer, one more call: left armed, it would wake the
//! thread for nothing when it expired.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// One timer; `sleep_until` may be called again once the previous sleep ended or was dropped.
pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    /// A disarmed timer; call inside the runtime that will await it.
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: timerfd_create has no memory preconditions; a negative result is an error.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just created and owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns the descriptor, so it stays open for as long as it is
        // registered (it is deregistered before the descriptor is closed on drop).
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)? };
        Ok(PreciseTimer { fd })
    }

    /// Sleeps until `deadline` (returns at once if it has passed).
    pub async fn sleep_until(&self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let raw = self.fd.get_ref().as_raw_fd();
        // A sleep dropped before it fired may have left an expiry behind: clear it first.
        drain(raw);
        if arm(raw, left).is_err() {
            // Not expected (the descriptor is ours and the value valid); fall back.
            tokio::time::sleep(left).await;
            return;
        }
        let mut armed = Armed {
            fd: raw,
            fired: false,
        };
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                tokio::time::sleep(left).await;
                return;
            };
            if drain(raw) {
                armed.fired = true;
                return;
            }
            guard.clear_ready();
        }
    }

    /// Sleeps for `d`.
    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(Instant::now() + d).await
    }
}

/// An armed timer; dropped before it fired (its sleep was cancelled), it disarms it.
struct Armed {
    fd: RawFd,
    fired: bool,
}

impl Drop for Armed {
    fn drop(&mut self) {
        if !self.fired {
            disarm(self.fd);
        }
    }
}

/// Stops the timer (an expiry it already counted stays readable; `drain` clears it).
fn disarm(fd: RawFd) {
    let off = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    // SAFETY: `off` is a live itimerspec; a zero it_value disarms the timer.
    unsafe { libc::timerfd_settime(fd, 0, &off, std::ptr::null_mut()) };
}

/// Arms `fd` to fire once, `after` from now.
fn arm(fd: RawFd, after: Duration) -> io::Result<()> {
    sluice_engine::ring::arm_timerfd(fd, after)
}

/// Reads the expiry count: true if the timer had fired.
fn drain(fd: RawFd) -> bool {
    let mut n = 0u64;
    // SAFETY: reads 8 bytes into a live u64 from our own non-blocking timerfd.
    let r = unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
    r == 8 && n > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A 300 µs sleep ends after 300 µs and well before tokio's millisecond tick would end
    /// it (the bound is loose: the test must not fail on a loaded machine).
    #[test]
    fn sleeps_for_about_the_time_asked() {
        rt().block_on(async {
            let t = PreciseTimer::new().unwrap();
            let mut best = Duration::MAX;
            for _ in 0..20 {
                let start = Instant::now();
                t.sleep(Duration::from_micros(300)).await;
                let took = start.elapsed();
                assert!(took >= Duration::from_micros(300), "{took:?}");
                best = best.min(took);
            }
            assert!(best < Duration::from_millis(5), "{best:?}");
        });
    }

    /// A sleep dropped before it fired leaves nothing that would end the next one early.
    #[test]
    fn a_dropped_sleep_does_not_cut_the_next_short() {
        rt().block_on(async {
            let t = PreciseTimer::new().unwrap();
            let _ = tokio::time::timeout(
                Duration::from_micros(100),
                t.sleep(Duration::from_micros(500)),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            let start = Instant::now();
            t.sleep(Duration::from_millis(3)).await;
            assert!(start.elapsed() >= Duration::from_millis(3));
            // A deadline in the past returns at once.
            t.sleep_until(Instant::now() - Duration::from_millis(1))
                .await;
        });
    }
    #[test]
    fn a_dropped_sleep_disarms_the_timer() {
        rt().block_on(async {
            let t = PreciseTimer::new().unwrap();
            let _ = tokio::time::timeout(
                Duration::from_micros(200),
                t.sleep(Duration::from_millis(2)),
            )
            .await;
            // Past the dropped sleep's deadline: left armed, it would have fired by now.
            std::thread::sleep(Duration::from_millis(6));
            assert!(!drain(t.fd.get_ref().as_raw_fd()), "the timer still fired");
        });
    }
}
