//! Syslog over TCP and TLS: a tokio current-thread runtime on the connector thread, one task
//! per connection.
//!
//! Each connection reads into its own buffer (it starts at 4 KiB and grows up to 256 KiB per
//! read; it never holds more than one pending frame, `max_frame_bytes` + 12, plus one read),
//! frames it with [`SyslogFramer`] and copies the messages into the source's one batch
//! buffer (consecutive frames of one read as one copy, see [`Sink`]). That buffer is handed
//! to the shards when it is full, or by a flusher task [`FLUSH_LINGER`] after the first
//! message of the batch arrived, so batches are full under load, a steady trickle makes one
//! batch per millisecond rather than one per read (each batch wakes a shard and the sink:
//! that is what costs CPU at moderate rates), and a lone message waits about a millisecond at
//! most. The linger is timed by a [`PreciseTimer`] (tokio's millisecond timers made it 1-2
//! ms).
//!
//! Pacing (`read_pacing`, 1 ms by default, `"0s"` turns it off): a connection that streams
//! (a read finds data again within [`PACE_ENTER`] of the previous one) stops being woken for
//! every segment that arrives: its socket gets a high `SO_RCVLOWAT` (the kernel then signals
//! readability only once that much is queued), and the task reads the socket directly
//! ([`recv_now`]) once per `read_pacing` tick whatever gathered meanwhile, handing the frames
//! on at once (they waited their linger in the socket). A tick that finds nothing puts the
//! connection back to waiting for readability. Plain TCP only (a TLS stream is read through
//! its decoder). A sender writing a few messages at a time at 100,000 events/s woke the
//! thread ~6,500 times a second; paced at 1 ms, ~1,200 (the thread's CPU 25% → 8% of a
//! core, median latency +0.1-0.3 ms), and ~900 since frames of a paced read also end a batch
//! linger already running ([`until_flush_due`]). A read that fills the buffer
//! is followed by another at once, so a fast sender is never held back.
//!
//! Backpressure: handing a batch on blocks the thread while every shard ring is full, which
//! pauses every connection of the source at once; the kernel's socket buffers then fill and
//! TCP flow control slows the senders. Over `rate_limit`, a connection's frames stay in its
//! buffer and it is not read until its peer's bucket has tokens again.
//!
//! A connection ends when the peer closes it, on an error, after `idle_timeout` without
//! data, or at drain; its complete frames are emitted, a last LF frame without its LF too,
//! and an octet-counted frame cut short is counted (`truncated_frame`). Beyond
//! `max_connections` a new connection is accepted and closed at once (counted).

use super::framing::{FrameDrop, FrameSink, SyslogFramer};
use super::peers::{Peers, Published};
use super::tls::Acceptor;
use super::{Drops, FrameBatch, Settings, SyslogMetrics};
use crate::precise_timer::PreciseTimer;
use bytes::{Buf, BytesMut};
use sluice_engine::source::ConnectorOutput;
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Largest single read of a connection.
const MAX_READ: usize = 256 * 1024;
/// Longest a TLS handshake may take (or `idle_timeout`, if shorter).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listening socket with a 1024-connection accept backlog.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    // Listening again only changes the backlog (std's default is small).
    // SAFETY: `listen` on a socket this function owns.
    unsafe { libc::listen(l.as_raw_fd(), 1024) };
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What every task of the source shares (single thread: `Rc` and `RefCell`, never borrowed
/// across an `await`).
struct Shared {
    state: RefCell<State>,
    st: Settings,
    m: SyslogMetrics,
    drops: Drops,
    flush_wanted: Notify,
    /// The frames waiting in the batch came from paced reads: hand them on without lingering.
    flush_now: std::cell::Cell<bool>,
}

struct State {
    out: ConnectorOutput,
    batch: FrameBatch,
    peers: Peers,
    /// The pipeline stopped: nothing more can be delivered.
    stopped: bool,
}

impl State {
    fn flush(&mut self) {
        if !self.stopped && self.batch.flush(&mut self.out).is_err() {
            self.stopped = true;
        }
    }
}

/// The framer's output into the shared batch, for one `feed` of a connection's buffer.
///
/// Frames that follow one another in that buffer (only a newline or an octet count between
/// them) are copied into the batch buffer as one run, with one copy when the run ends, rather
/// than one copy per frame: a few hundred bytes at a time into memory that another core read
/// last was a quarter of the source thread's time at 100,000 events/s. The bytes between the
/// frames come along (events are spans, so they are never read). The run is copied before
/// anything else is appended to the batch, before the batch is handed on, and when the sink
/// is dropped at the end of the feed, so it never outlives the buffer it points into.
struct Sink<'a> {
    state: &'a mut State,
    drops: &'a Drops,
    /// The bytes being framed.
    input: &'a [u8],
    /// `input[from..to]` holds frames already added as events, bytes not copied yet.
    run: Option<(usize, usize)>,
}

/// The most bytes between two frames that still continue a run.
const MAX_RUN_GAP: usize = 16;

impl<'a> Sink<'a> {
    fn new(state: &'a mut State, drops: &'a Drops, input: &'a [u8]) -> Sink<'a> {
        Sink {
            state,
            drops,
            input,
            run: None,
        }
    }

    /// Copies the pending run into the batch.
    fn copy_run(&mut self) {
        if let Some((from, to)) = self.run.take() {
            self.state.batch.append(&self.input[from..to]);
        }
    }

    /// Where `frame` starts in the input, if it lies inside it.
    fn offset_of(&self, frame: &[u8]) -> Option<usize> {
        let at = (frame.as_ptr() as usize).checked_sub(self.input.as_ptr() as usize)?;
        (at + frame.len() <= self.input.len()).then_some(at)
    }
}

impl FrameSink for Sink<'_> {
    fn frame(&mut self, frame: &[u8], truncated: bool) {
        if truncated {
            self.drops.truncated.fetch_add(1, Ordering::Relaxed);
        }
        if self.state.stopped {
            return;
        }
        match self.offset_of(frame) {
            Some(at) => {
                let from = match self.run {
                    Some((from, to)) if at >= to && at - to <= MAX_RUN_GAP => from,
                    _ => {
                        self.copy_run();
                        at
                    }
                };
                // The run lands at the end of the batch buffer when copied.
                let start = self.state.batch.byte_len() + (at - from);
                self.state.batch.push_span(start, frame.len(), truncated);
                self.run = Some((from, at + frame.len()));
            }
            None => {
                self.copy_run();
                self.state.batch.push(frame, truncated);
            }
        }
        let pending = self.run.map_or(0, |(from, to)| to - from);
        if self.state.batch.is_full_with(pending) {
            self.copy_run();
            self.state.flush();
        }
    }

    fn dropped(&mut self, why: FrameDrop) {
        self.drops.count(why);
    }
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        self.copy_run();
    }
}

/// Counts a connection open until dropped (also when the runtime drops the task).
struct ConnGuard {
    shared: Rc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.m.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut s) = self.shared.state.try_borrow_mut() {
            s.peers.disconnect(self.ip);
        }
    }
}

pub(crate) fn run(
    out: ConnectorOutput,
    listener: std::net::TcpListener,
    acceptor: Option<Acceptor>,
    st: Settings,
    m: SyslogMetrics,
    published: Published,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "syslog source cannot start its runtime");
            out.handle.mark_finished();
            return;
        }
    };
    let handle = out.handle.clone();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve_all(out, listener, acceptor, st, m, published));
    // Dropping the set drops any task still there (their guards run), then the runtime.
    {
        let _in_runtime = rt.enter();
        drop(local);
    }
    drop(rt);
    handle.mark_finished();
}

async fn serve_all(
    out: ConnectorOutput,
    listener: std::net::TcpListener,
    acceptor: Option<Acceptor>,
    st: Settings,
    m: SyslogMetrics,
    published: Published,
) {
    let lifecycle = out.lifecycle().clone();
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "syslog source cannot register its listener");
            return;
        }
    };
    let drops = Drops::new(&out, false);
    out.handle.mark_started();
    let shared = Rc::new(Shared {
        state: RefCell::new(State {
            out,
            batch: FrameBatch::new(st.batch_size),
            peers: Peers::new(st.peer_capacity(), st.rate_limit, published),
            stopped: false,
        }),
        st,
        m,
        drops,
        flush_wanted: Notify::new(),
        flush_now: std::cell::Cell::new(false),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let flusher = tokio::task::spawn_local(flush_loop(shared.clone()));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => accept(&shared, stream, peer, &acceptor, &shutdown_rx),
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "syslog accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tick.tick() => {
                let mut s = shared.state.borrow_mut();
                if lifecycle.is_draining() || s.stopped {
                    break;
                }
                s.peers.publish(Instant::now(), false);
            }
        }
    }
    // Drain: stop accepting, end every connection (each frames what it has), hand on the rest.
    drop(listener);
    let _ = shutdown_tx.send(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.m.open.load(Ordering::Relaxed) > 0
        && !lifecycle.is_stopped()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    flusher.abort();
    let mut s = shared.state.borrow_mut();
    s.flush();
    s.peers.publish(Instant::now(), true);
}

fn accept(
    shared: &Rc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: &Option<Acceptor>,
    shutdown: &watch::Receiver<bool>,
) {
    let m = &shared.m;
    if m.open.load(Ordering::Relaxed) >= shared.st.max_connections as i64 {
        m.rejected.fetch_add(1, Ordering::Relaxed);
        drop(stream);
        return;
    }
    m.accepted.fetch_add(1, Ordering::Relaxed);
    m.open.fetch_add(1, Ordering::Relaxed);
    let ip = peer.ip().to_canonical();
    shared.state.borrow_mut().peers.connect(ip, Instant::now());
    let guard = ConnGuard {
        shared: shared.clone(),
        ip,
    };
    let shared = shared.clone();
    let acceptor = acceptor.clone();
    let mut shutdown = shutdown.clone();
    let fd = stream.as_raw_fd();
    tokio::task::spawn_local(async move {
        let _guard = guard;
        match acceptor {
            None => serve(&shared, stream, fd, true, ip, &mut shutdown).await,
            Some(a) => {
                let limit = shared.st.idle_timeout.min(HANDSHAKE_TIMEOUT);
                let r = tokio::select! {
                    r = tokio::time::timeout(limit, a.accept(stream)) => r,
                    _ = shutdown.changed() => return,
                };
                match r {
                    Ok(Ok(tls)) => serve(&shared, tls, fd, false, ip, &mut shutdown).await,
                    Ok(Err(e)) => {
                        shared.m.tls_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, error = %e, "syslog tls handshake failed");
                    }
                    Err(_) => {
                        shared.m.tls_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "syslog tls handshake timed out");
                    }
                }
            }
        }
    });
}

/// How long a batch waits for more messages before it is handed on partly filled.
pub(crate) const FLUSH_LINGER: Duration = Duration::from_millis(1);

/// Hands the batch on [`FLUSH_LINGER`] after messages arrived (a batch that filled up in the
/// meantime was handed on by the framer's sink already), or at once when frames from a paced
/// read are in it ([`until_flush_due`]).
async fn flush_loop(shared: Rc<Shared>) {
    let timer = PreciseTimer::new().ok();
    loop {
        let linger = async {
            match &timer {
                Some(t) => t.sleep(FLUSH_LINGER).await,
                None => tokio::time::sleep(FLUSH_LINGER).await,
            }
        };
        until_flush_due(&shared.flush_wanted, &shared.flush_now, linger).await;
        if shared.flush_now.get() {
            // Let the other connections woken by the same tick add their frames first.
            tokio::task::yield_now().await;
        }
        shared.flush_now.set(false);
        let mut s = shared.state.borrow_mut();
        s.flush();
        if s.stopped {
            return;
        }
    }
}

/// Waits until the batch is due: frames arrived (`wanted` notified), then at once if they came
/// from a paced read (`paced` set), else when `linger` ends, unless frames from a paced read
/// join the batch meanwhile. Those waited their linger in the socket; holding them for a
/// linger that started before them would add up to a millisecond, and its timer, out of step
/// with the pace ticks, would wake the thread a second time per tick.
async fn until_flush_due(
    wanted: &Notify,
    paced: &std::cell::Cell<bool>,
    linger: impl std::future::Future<Output = ()>,
) {
    wanted.notified().await;
    if paced.get() {
        return;
    }
    tokio::pin!(linger);
    loop {
        tokio::select! {
            _ = &mut linger => return,
            _ = wanted.notified() => {
                if paced.get() {
                    return;
                }
            }
        }
    }
}

/// A read this soon after the previous one puts the connection in paced mode.
const PACE_ENTER: Duration = Duration::from_millis(2);
/// `SO_RCVLOWAT` of a paced connection: the kernel wakes the thread only past this much.
const PACED_LOWAT: i32 = 256 * 1024;

/// Sets the socket's `SO_RCVLOWAT` (best effort: pacing is an optimisation).
fn set_rcvlowat(fd: std::os::fd::RawFd, bytes: i32) -> bool {
    // SAFETY: setsockopt on a descriptor the connection's stream owns, with an i32 option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        ) == 0
    }
}

/// Reads whatever the socket holds into `buf` without waiting (`MSG_DONTWAIT`): `None` when
/// it holds nothing. Paced reads go to the socket directly: tokio's own read first checks the
/// readiness it saw from epoll, which it clears after any read that did not fill the buffer,
/// and under a high `SO_RCVLOWAT` epoll reports none, so every tick found "nothing" and the
/// connection fell back to waking per segment.
fn recv_now(fd: std::os::fd::RawFd, buf: &mut BytesMut) -> Option<io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: recv writes at most `spare.len()` bytes into the buffer's spare capacity, which
    // is valid for writes; `set_len` then covers exactly the bytes it reported writing.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
            _ => Some(Err(e)),
        };
    }
    let n = n as usize;
    // SAFETY: see above.
    unsafe { buf.set_len(buf.len() + n) };
    Some(Ok(n))
}

/// Reads and frames one connection until it ends. `plain`: `stream` reads `fd` directly (no
/// TLS), so the connection may be paced.
async fn serve<S: AsyncRead + Unpin>(
    shared: &Rc<Shared>,
    mut stream: S,
    fd: std::os::fd::RawFd,
    plain: bool,
    ip: IpAddr,
    shutdown: &mut watch::Receiver<bool>,
) {
    let st = shared.st;
    let mut framer = SyslogFramer::new(st.max_frame);
    let mut buf = BytesMut::with_capacity(4096);
    let mut read_size = 4096usize;
    let mut eof = false;
    // When the partial message at the front of `buf` started (None: `buf` holds nothing).
    let mut partial_since: Option<Instant> = None;
    // Paced mode (see the module doc), when the last read came from a pace tick, and when
    // the last read returned data.
    let mut paced = false;
    let mut read_was_paced = false;
    let mut last_read: Option<Instant> = None;
    // The last read filled the buffer: read again at once.
    let mut more_waiting = false;
    let pace_timer = if plain && st.read_pacing.is_some() {
        PreciseTimer::new().ok()
    } else {
        None
    };
    loop {
        if *shutdown.borrow() {
            // Drain: what is buffered ends here, like a close.
            eof = true;
        }
        if !buf.is_empty() || eof {
            let now = Instant::now();
            let (budget, wait) = if eof {
                (usize::MAX, Duration::ZERO)
            } else {
                shared.state.borrow_mut().peers.budget(ip, now)
            };
            if budget == 0 {
                shared.m.rate_limit_pauses.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let fed = {
                let mut s = shared.state.borrow_mut();
                if s.stopped {
                    return;
                }
                let fed = {
                    let mut sink = Sink::new(&mut s, &shared.drops, &buf);
                    framer.feed(&buf, eof, budget, &mut sink)
                };
                if fed.frames > 0 {
                    s.peers.charge(ip, fed.frames, fed.bytes, now);
                }
                fed
            };
            buf.advance(fed.consumed);
            partial_since = match (buf.is_empty(), partial_since) {
                (true, _) => None,
                // A message ended in this read: the one left over starts now.
                (false, Some(_)) if fed.consumed > 0 => Some(now),
                (false, Some(t)) => Some(t),
                (false, None) => Some(now),
            };
            if fed.frames > 0 {
                if read_was_paced {
                    shared.flush_now.set(true);
                }
                shared.flush_wanted.notify_one();
            }
            if fed.paused {
                continue;
            }
            if eof {
                return;
            }
        }
        if buf.capacity() - buf.len() < read_size / 2 {
            buf.reserve(read_size);
        }
        let before = buf.len();
        let spare = buf.capacity() - before;
        // Silent for idle_timeout, or a message not whole within frame_timeout: close.
        let frame_left = partial_since
            .map(|t| st.frame_timeout.saturating_sub(t.elapsed()))
            .unwrap_or(Duration::MAX);
        let slow = frame_left < st.idle_timeout;
        if paced {
            if !more_waiting {
                let tick = st.read_pacing.unwrap_or(PACE_ENTER);
                let nap = async {
                    match &pace_timer {
                        Some(t) => t.sleep(tick).await,
                        None => tokio::time::sleep(tick).await,
                    }
                };
                tokio::select! {
                    _ = nap => {}
                    _ = shutdown.changed() => {
                        eof = true;
                        continue;
                    }
                }
            }
            match recv_now(fd, &mut buf) {
                Some(Ok(0)) | Some(Err(_)) => eof = true,
                Some(Ok(n)) => {
                    more_waiting = n >= spare;
                    if more_waiting && read_size < MAX_READ {
                        read_size *= 2;
                    }
                    read_was_paced = true;
                    shared.m.paced_reads.fetch_add(1, Ordering::Relaxed);
                    last_read = Some(Instant::now());
                }
                None => {
                    // A whole tick without data: wait for readability again.
                    paced = false;
                    more_waiting = false;
                    set_rcvlowat(fd, 1);
                }
            }
            continue;
        }
        let r = tokio::select! {
            r = tokio::time::timeout(frame_left.min(st.idle_timeout), stream.read_buf(&mut buf)) => r,
            _ = shutdown.changed() => {
                eof = true;
                continue;
            }
        };
        match r {
            Err(_) if slow => {
                shared.m.slow_closed.fetch_add(1, Ordering::Relaxed);
                eof = true;
            }
            Err(_) => {
                shared.m.idle_closed.fetch_add(1, Ordering::Relaxed);
                eof = true;
            }
            Ok(Ok(0)) | Ok(Err(_)) => eof = true,
            Ok(Ok(n)) => {
                if n >= spare && read_size < MAX_READ {
                    read_size *= 2;
                }
                let now = Instant::now();
                read_was_paced = false;
                if plain
                    && st.read_pacing.is_some()
                    && last_read.is_some_and(|t| now.duration_since(t) < PACE_ENTER)
                    && set_rcvlowat(fd, PACED_LOWAT)
                {
                    paced = true;
                    more_waiting = n >= spare;
                }
                last_read = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Frames of a paced read end the linger of frames that came before them: the batch goes
    /// at once, not when the (here 10 s) linger ends.
    #[test]
    fn a_paced_read_cuts_a_running_linger_short() {
        rt().block_on(async {
            let (wanted, paced) = (Notify::new(), Cell::new(false));
            let linger = tokio::time::sleep(Duration::from_secs(10));
            let due = until_flush_due(&wanted, &paced, linger);
            tokio::pin!(due);
            // Frames from an unpaced read: the linger starts.
            wanted.notify_one();
            let early = tokio::time::timeout(Duration::from_millis(30), &mut due).await;
            assert!(early.is_err(), "due before the linger or a paced read");
            // More unpaced frames do not end it either.
            wanted.notify_one();
            let early = tokio::time::timeout(Duration::from_millis(30), &mut due).await;
            assert!(early.is_err(), "due after unpaced frames");
            // Frames from a paced read: due at once.
            paced.set(true);
            wanted.notify_one();
            let started = Instant::now();
            tokio::time::timeout(Duration::from_secs(2), &mut due)
                .await
                .expect("a paced read did not end the linger");
            assert!(started.elapsed() < Duration::from_secs(2));
        });
    }

    /// Without paced reads the batch waits out its linger; with one first, it does not wait.
    #[test]
    fn unpaced_frames_linger_and_paced_ones_go_at_once() {
        rt().block_on(async {
            let (wanted, paced) = (Notify::new(), Cell::new(false));
            wanted.notify_one();
            let started = Instant::now();
            until_flush_due(
                &wanted,
                &paced,
                tokio::time::sleep(Duration::from_millis(40)),
            )
            .await;
            assert!(started.elapsed() >= Duration::from_millis(40));

            paced.set(true);
            wanted.notify_one();
            let started = Instant::now();
            until_flush_due(&wanted, &paced, tokio::time::sleep(Duration::from_secs(10))).await;
            assert!(started.elapsed() < Duration::from_secs(2));
        });
    }
}
