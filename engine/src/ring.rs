//! Bounded single-producer/single-consumer rings between threads (rtrb underneath).
//!
//! Every thread boundary of a running pipeline is one of these. A full ring applies the
//! producer's `when_full`: `block` hands the item back so the producer stops reading its input
//! until there is room; `drop_newest` drops the item and counts it; `sample` keeps one item in
//! N while the ring stays full (that one waits for room, as with `block`) and drops and counts
//! the others. A consumer that runs on an ordinary thread can park on the ring's [`Doorbell`];
//! producers ring it after a push.

use serde::Deserialize;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// What a producer does when the ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: the producer stops reading its input (backpressure).
    #[default]
    Block,
    /// Drop the new item and count it.
    DropNewest,
    /// While the ring is full keep one item in `rate` (it waits for room, as with `Block`)
    /// and drop the others, counted. Set by the config loader (`when_full = "sample"`,
    /// `sample_rate`), never read from serde (sources do not offer it).
    #[serde(skip)]
    Sample { rate: u32 },
}

/// The decision `when_full = "sample"` makes for an item that finds its ring full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleVerdict {
    /// Keep it: hand it back to wait for room, like `block`.
    Hold,
    /// Drop it (the caller counts it).
    Drop,
}

/// The state of `when_full = "sample"` for one producer: of the items that find the ring
/// full, the first of every `rate` is held (handed back until there is room) and the others
/// are dropped. While an item is held, the producer retries that same item; it is not
/// sampled again until a push succeeds ([`FullSampler::room`]).
#[derive(Debug, Clone, Default)]
pub struct FullSampler {
    seen: u64,
    holding: bool,
}

impl FullSampler {
    /// An item found the ring full.
    pub fn full(&mut self, rate: u32) -> SampleVerdict {
        if self.holding {
            return SampleVerdict::Hold;
        }
        let keep = self.seen.is_multiple_of(rate.max(1) as u64);
        self.seen = self.seen.wrapping_add(1);
        if keep {
            self.holding = true;
            SampleVerdict::Hold
        } else {
            SampleVerdict::Drop
        }
    }

    /// An item went into the ring: the held one (if any) is through.
    pub fn room(&mut self) {
        self.holding = false;
    }
}

/// Wakes a sleeping consumer: an ordinary thread (parked) or a shard (through its eventfd).
///
/// A consumer is awake, asleep (every push wakes it), or lingering: asleep until a deadline
/// of its own (a request body it lets fill for `batch_timeout`), when only a push that leaves
/// a ring at least half full wakes it early; the rest wait for the deadline, which saves a
/// wake-up of the consumer (and a system call of the producer) per push.
///
/// A consumer that would linger from the first push on (its deadline is `delay` after the
/// first event it gets) can also defer ([`Doorbell::set_deferring`], with
/// [`Doorbell::use_first_ring_timer`]): the first push then arms the consumer's timer for
/// `delay` instead of waking it, and the consumer lingers from there on. That saves the
/// wake-up whose only use was to start the linger.
#[derive(Debug, Default)]
pub struct Doorbell {
    state: AtomicU8,
    thread: OnceLock<Thread>,
    eventfd: OnceLock<i32>,
    /// A timerfd the consumer watches, and how long after the first push it should fire.
    first_ring_timer: OnceLock<(i32, Duration)>,
}

const AWAKE: u8 = 0;
const SLEEPING: u8 = 1;
const LINGERING: u8 = 2;
const DEFERRING: u8 = 3;

impl Doorbell {
    pub fn new() -> Arc<Doorbell> {
        Arc::new(Doorbell::default())
    }

    /// Wakes the consumer if it is asleep or lingering. One atomic load when it is awake.
    pub fn ring(&self) {
        self.ring_after_push(|| true);
    }

    /// Wakes the consumer if it is asleep, or if it lingers and `urgent()` (the push left the
    /// ring at least half full; only asked then).
    pub fn ring_after_push(&self, urgent: impl FnOnce() -> bool) {
        // Pairs with the fence in `set_sleeping` / `set_lingering`: either the consumer sees
        // our push when it re-checks its rings, or we see that it sleeps. Once per batch, not
        // per event.
        std::sync::atomic::fence(Ordering::SeqCst);
        let wake = match self.state.load(Ordering::Relaxed) {
            SLEEPING => true,
            LINGERING => urgent(),
            DEFERRING => match self.first_ring_timer.get() {
                None => true,
                Some(_) if urgent() => true,
                Some(&(timerfd, delay)) => {
                    // Only the push that ends the deferring arms the timer; the consumer then
                    // lingers until it fires.
                    if self
                        .state
                        .compare_exchange(DEFERRING, LINGERING, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        // Best effort: if it fails, the consumer still wakes for its
                        // own deadlines and its periodic checks.
                        let _ = arm_timerfd(timerfd, delay);
                    }
                    false
                }
            },
            _ => false,
        };
        if wake {
            if let Some(&fd) = self.eventfd.get() {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a live u64 to an eventfd the shard owns for the
                // life of the process; a failed write (counter overflow) still leaves it readable.
                unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
            } else if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    /// Makes `ring` write to `eventfd` (a shard's wake-up descriptor) instead of unparking.
    pub fn use_eventfd(&self, eventfd: i32) {
        let _ = self.eventfd.set(eventfd);
    }

    /// Lets the consumer defer ([`Doorbell::set_deferring`]): the first push arms `timerfd`
    /// (which the consumer watches, and never closes while producers may ring) to fire `delay`
    /// later.
    pub fn use_first_ring_timer(&self, timerfd: i32, delay: Duration) {
        let _ = self.first_ring_timer.set((timerfd, delay));
    }

    /// Announces that the consumer is about to sleep with nothing to linger on: the first push
    /// arms its timer instead of waking it (a plain sleep without
    /// [`Doorbell::use_first_ring_timer`]). Urgent pushes wake it at once, as when lingering.
    pub fn set_deferring(&self) {
        self.announce(DEFERRING);
    }

    /// Announces that the consumer is about to sleep (true) or is awake (false). A consumer
    /// re-checks its rings after announcing sleep, so no wake-up is lost.
    pub fn set_sleeping(&self, sleeping: bool) {
        self.announce(if sleeping { SLEEPING } else { AWAKE });
    }

    /// Announces that the consumer is about to sleep until a deadline of its own, to be woken
    /// before it only by a push that leaves a ring half full (see the type's docs).
    pub fn set_lingering(&self) {
        self.announce(LINGERING);
    }

    fn announce(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Parks the calling (consumer) thread until a producer rings or `timeout` passes.
    /// `ready` is re-checked after announcing the sleep, so no wake-up is lost.
    pub fn wait(&self, timeout: Duration, ready: impl Fn() -> bool) {
        let _ = self.thread.set(std::thread::current());
        self.set_sleeping(true);
        if !ready() {
            std::thread::park_timeout(timeout);
        }
        self.state.store(AWAKE, Ordering::SeqCst);
    }
}

/// Arms the one-shot timerfd `fd` to fire `after` from now (at least 1 ns later: an all-zero
/// value would disarm it). Shared with the connectors' precise timer.
pub fn arm_timerfd(fd: i32, after: Duration) -> std::io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: after.as_secs() as libc::time_t,
            tv_nsec: (after.subsec_nanos().max(u32::from(after.as_secs() == 0))) as libc::c_long,
        },
    };
    // SAFETY: `spec` is a live itimerspec and the old value is not asked for; a bad
    // descriptor is an error return, not undefined behaviour.
    if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The producing end.
pub struct RingTx<T> {
    inner: rtrb::Producer<T>,
    doorbell: Arc<Doorbell>,
    dropped: Arc<AtomicU64>,
    when_full: WhenFull,
    sampler: FullSampler,
}

/// The consuming end.
pub struct RingRx<T> {
    inner: rtrb::Consumer<T>,
    doorbell: Arc<Doorbell>,
}

/// Result of a push.
#[derive(Debug)]
pub enum Pushed<T> {
    Sent,
    /// The ring is full and `when_full = "block"`: try again later with this item.
    Full(T),
    /// The ring is full and the item was dropped (counted; `drop_newest`, or `sample` for
    /// an item not kept).
    Dropped,
}

/// Creates a ring of `capacity` items. `dropped` counts items dropped by `drop_newest` or
/// `sample`.
pub fn ring<T>(
    capacity: usize,
    when_full: WhenFull,
    doorbell: Arc<Doorbell>,
    dropped: Arc<AtomicU64>,
) -> (RingTx<T>, RingRx<T>) {
    let (p, c) = rtrb::RingBuffer::new(capacity.max(1));
    (
        RingTx {
            inner: p,
            doorbell: doorbell.clone(),
            dropped,
            when_full,
            sampler: FullSampler::default(),
        },
        RingRx { inner: c, doorbell },
    )
}

impl<T> RingTx<T> {
    /// At most half of the ring is free.
    fn half_full(&self) -> bool {
        self.inner.slots() * 2 <= self.inner.buffer().capacity()
    }

    /// Pushes an item, applying `when_full` if there is no room. `weight` is what a drop adds
    /// to the drop counter (the number of events in a batch). With `sample`, an item handed
    /// back is expected to be pushed again (it is not sampled twice).
    pub fn push(&mut self, item: T, weight: u64) -> Pushed<T> {
        match self.inner.push(item) {
            Ok(()) => {
                self.sampler.room();
                self.doorbell.ring_after_push(|| self.half_full());
                Pushed::Sent
            }
            Err(rtrb::PushError::Full(item)) => match self.when_full {
                WhenFull::Block => Pushed::Full(item),
                WhenFull::DropNewest => {
                    self.dropped.fetch_add(weight, Ordering::Relaxed);
                    drop(item);
                    Pushed::Dropped
                }
                WhenFull::Sample { rate } => match self.sampler.full(rate) {
                    SampleVerdict::Hold => Pushed::Full(item),
                    SampleVerdict::Drop => {
                        self.dropped.fetch_add(weight, Ordering::Relaxed);
                        drop(item);
                        Pushed::Dropped
                    }
                },
            },
        }
    }

    /// Pushes without applying `when_full`: the item comes back if the ring is full.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        match self.inner.push(item) {
            Ok(()) => {
                self.doorbell.ring_after_push(|| self.half_full());
                Ok(())
            }
            Err(rtrb::PushError::Full(item)) => Err(item),
        }
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// Free slots: how many items a push can add now (the consumer only ever adds room).
    pub fn free_slots(&self) -> usize {
        self.inner.slots()
    }

    /// The consumer is gone (its thread ended).
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }
}

impl<T> RingRx<T> {
    pub fn pop(&mut self) -> Option<T> {
        self.inner.pop().ok()
    }

    /// The item `pop` would return, left in the ring.
    pub fn peek(&self) -> Option<&T> {
        self.inner.peek().ok()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn len(&self) -> usize {
        self.inner.slots()
    }

    pub fn doorbell(&self) -> &Arc<Doorbell> {
        &self.doorbell
    }

    /// The producer is gone and nothing is left to read.
    pub fn is_closed(&self) -> bool {
        self.inner.is_abandoned() && self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rings written so far to a (non-blocking) eventfd, and resets it.
    fn rings(fd: i32) -> u64 {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from the test's own eventfd.
        let n = unsafe { libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
        if n == 8 {
            v
        } else {
            0
        }
    }

    /// Nanoseconds left before `timerfd` fires (0: disarmed).
    fn timer_left_ns(timerfd: i32) -> u64 {
        // SAFETY: itimerspec is plain data, written by timerfd_gettime.
        let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
        // SAFETY: `cur` is live; the descriptor is the test's own timerfd.
        assert_eq!(unsafe { libc::timerfd_gettime(timerfd, &mut cur) }, 0);
        cur.it_value.tv_sec as u64 * 1_000_000_000 + cur.it_value.tv_nsec as u64
    }

    /// A deferring consumer is not rung by the first push: the push arms its timer, once;
    /// an urgent push still rings; without a timer, deferring is sleeping.
    #[test]
    fn a_deferring_consumer_is_timed_by_the_first_push_not_rung() {
        // SAFETY: plain syscalls; the results are checked.
        let (fd, timerfd) = unsafe {
            (
                libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC),
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                ),
            )
        };
        assert!(fd >= 0 && timerfd >= 0);
        let bell = Doorbell::new();
        bell.use_eventfd(fd);
        bell.use_first_ring_timer(timerfd, Duration::from_secs(30));
        let (mut tx, mut rx) = ring::<u32>(8, WhenFull::Block, bell.clone(), Default::default());
        bell.set_deferring();
        assert_eq!(timer_left_ns(timerfd), 0);
        assert!(matches!(tx.push(1, 1), Pushed::Sent));
        assert_eq!(
            rings(fd),
            0,
            "the first push arms the timer instead of ringing"
        );
        let left = timer_left_ns(timerfd);
        assert!(left > 29_000_000_000 && left <= 30_000_000_000, "{left}");
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(tx.push(2, 1), Pushed::Sent));
        assert_eq!(rings(fd), 0, "later pushes linger");
        assert!(
            timer_left_ns(timerfd) < left,
            "a later push must not re-arm the timer"
        );
        assert!(matches!(tx.push(3, 1), Pushed::Sent));
        assert!(matches!(tx.push(4, 1), Pushed::Sent));
        assert_eq!(rings(fd), 1, "half full: wake it at once");
        while rx.pop().is_some() {}
        // Without a first-ring timer, deferring is sleeping.
        let plain = Doorbell::new();
        plain.use_eventfd(fd);
        plain.set_deferring();
        plain.ring_after_push(|| false);
        assert_eq!(rings(fd), 1, "no timer: the push rings");
        // SAFETY: closes the test's own descriptors once.
        unsafe {
            libc::close(fd);
            libc::close(timerfd);
        }
    }

    /// A lingering consumer is woken only by a push that leaves the ring half full; a
    /// sleeping one by every push; an awake one by none.
    #[test]
    fn a_lingering_consumer_is_rung_only_when_a_ring_fills_up() {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        let bell = Doorbell::new();
        bell.use_eventfd(fd);
        let (mut tx, mut rx) = ring::<u32>(8, WhenFull::Block, bell.clone(), Default::default());
        bell.set_lingering();
        for i in 0..3 {
            assert!(matches!(tx.push(i, 1), Pushed::Sent));
        }
        assert_eq!(rings(fd), 0, "3 of 8: the consumer waits for its deadline");
        assert!(matches!(tx.push(3, 1), Pushed::Sent));
        assert_eq!(rings(fd), 1, "4 of 8: half full, wake it");
        while rx.pop().is_some() {}
        bell.set_sleeping(true);
        assert!(tx.try_push(9).is_ok());
        assert_eq!(rings(fd), 1, "asleep: every push rings");
        bell.set_sleeping(false);
        assert!(tx.try_push(10).is_ok());
        assert_eq!(rings(fd), 0, "awake: no ring");
        // SAFETY: closes the test's own descriptor once.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn block_hands_item_back_and_drop_counts() {
        let dropped = Arc::new(AtomicU64::new(0));
        let (mut tx, mut rx) = ring::<u32>(2, WhenFull::Block, Doorbell::new(), dropped.clone());
        assert!(matches!(tx.push(1, 1), Pushed::Sent));
        assert!(matches!(tx.push(2, 1), Pushed::Sent));
        assert!(matches!(tx.push(3, 1), Pushed::Full(3)));
        assert_eq!(rx.pop(), Some(1));
        let (mut tx2, _rx2) =
            ring::<u32>(1, WhenFull::DropNewest, Doorbell::new(), dropped.clone());
        tx2.push(1, 10);
        assert!(matches!(tx2.push(2, 10), Pushed::Dropped));
        assert_eq!(dropped.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn sample_keeps_one_in_n_while_full_and_blocks_otherwise() {
        let dropped = Arc::new(AtomicU64::new(0));
        let (mut tx, mut rx) = ring::<u32>(
            1,
            WhenFull::Sample { rate: 3 },
            Doorbell::new(),
            dropped.clone(),
        );
        // Room: like block, everything goes in.
        assert!(matches!(tx.push(0, 1), Pushed::Sent));
        // Full: the first item is held (handed back), and stays held however often it is
        // retried while the ring is full.
        assert!(matches!(tx.push(1, 5), Pushed::Full(1)));
        assert!(matches!(tx.push(1, 5), Pushed::Full(1)));
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        assert_eq!(rx.pop(), Some(0));
        assert!(matches!(tx.push(1, 5), Pushed::Sent));
        // Still full: of the next items, 2 of every 3 are dropped and counted, the third held.
        assert!(matches!(tx.push(2, 5), Pushed::Dropped));
        assert!(matches!(tx.push(3, 5), Pushed::Dropped));
        assert!(matches!(tx.push(4, 5), Pushed::Full(4)));
        assert_eq!(dropped.load(Ordering::Relaxed), 10);
        assert_eq!(rx.pop(), Some(1));
        assert!(matches!(tx.push(4, 5), Pushed::Sent));
        assert_eq!(rx.pop(), Some(4));
        assert_eq!(rx.pop(), None);
    }

    #[test]
    fn sampler_counts_only_items_that_find_the_ring_full() {
        let mut s = FullSampler::default();
        let verdicts: Vec<SampleVerdict> = (0..10)
            .map(|_| {
                let v = s.full(5);
                if v == SampleVerdict::Hold {
                    s.room();
                }
                v
            })
            .collect();
        let held = verdicts
            .iter()
            .filter(|v| **v == SampleVerdict::Hold)
            .count();
        assert_eq!(held, 2, "{verdicts:?}");
        assert_eq!(verdicts[0], SampleVerdict::Hold);
        assert_eq!(verdicts[5], SampleVerdict::Hold);
        // A rate of 0 or 1 keeps everything.
        let mut s = FullSampler::default();
        for _ in 0..4 {
            assert_eq!(s.full(1), SampleVerdict::Hold);
            s.room();
        }
    }

    #[test]
    fn doorbell_wakes_parked_consumer() {
        let bell = Doorbell::new();
        let (mut tx, mut rx) = ring::<u32>(4, WhenFull::Block, bell.clone(), Arc::default());
        let h = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            loop {
                if let Some(v) = rx.pop() {
                    return (v, start.elapsed());
                }
                let b = rx.doorbell().clone();
                b.wait(Duration::from_secs(10), || !rx.is_empty());
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        tx.push(9, 1);
        let (v, waited) = h.join().unwrap();
        assert_eq!(v, 9);
        assert!(waited < Duration::from_secs(5));
    }
}
