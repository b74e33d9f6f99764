//! Syslog over UDP: one datagram is one message (one trailing LF, and a CR before it, is
//! stripped). Datagrams are received 64 at a time with `recvmmsg` into fixed slots of
//! `min(max_frame_bytes, 65535) + 1` bytes, then copied into the batch buffer; a datagram
//! longer than `max_frame_bytes` is dropped and counted (`oversized`), and so is one over the
//! peer's `rate_limit` (`rate_limited`).
//!
//! A batch is handed on when it is full or when the socket's queue was emptied (a `recvmmsg`
//! call returned fewer datagrams than it asked for), so a trickle is not held back. The
//! socket has a 100 ms receive timeout so the thread sees the drain. Every second the
//! socket's drop counter is read from `/proc/net/udp` (or `udp6`) into
//! `sluice_syslog_udp_kernel_drops`.

use super::framing::trim_lf;
use super::peers::{Peers, Published};
use super::{Drops, FrameBatch, Settings, SyslogMetrics};
use sluice_engine::source::ConnectorOutput;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Datagrams per `recvmmsg` call.
const SLOTS: usize = 64;

/// Binds the socket and asks for a receive buffer of `rcvbuf` bytes.
pub(crate) fn bind(addr: SocketAddr, rcvbuf: usize, m: &SyslogMetrics) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr)?;
    let fd = sock.as_raw_fd();
    let want = rcvbuf.min(i32::MAX as usize) as libc::c_int;
    if want > 0 {
        // SO_RCVBUFFORCE passes net.core.rmem_max when the process may (CAP_NET_ADMIN).
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
        let forced = unsafe { setsockopt_int(fd, libc::SO_RCVBUFFORCE, want) };
        if forced != 0 {
            // SAFETY: as above.
            unsafe { setsockopt_int(fd, libc::SO_RCVBUF, want) };
        }
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    m.receive_buffer.store(
        getsockopt_int(fd, libc::SO_RCVBUF).unwrap_or(0) as i64,
        Ordering::Relaxed,
    );
    Ok(sock)
}

/// # Safety
/// `fd` must be a socket.
unsafe fn setsockopt_int(fd: i32, opt: libc::c_int, v: libc::c_int) -> libc::c_int {
    libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        opt,
        &v as *const libc::c_int as *const libc::c_void,
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    )
}

fn getsockopt_int(fd: i32, opt: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the live c_int `v`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// The source address of a received datagram.
fn ip_of(ss: &libc::sockaddr_storage) -> IpAddr {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage, which
            // is larger and suitably aligned.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)).to_canonical()
        }
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// Reads the `drops` column of the socket with inode `inode` from `/proc/net/udp{,6}`.
fn kernel_drops(inode: u64, v6: bool) -> Option<u64> {
    let path = if v6 {
        "/proc/net/udp6"
    } else {
        "/proc/net/udp"
    };
    let text = std::fs::read_to_string(path).ok()?;
    let want = inode.to_string();
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() >= 13 && cols[9] == want).then(|| cols[12].parse().ok())?
    })
}

fn socket_inode(fd: i32) -> Option<u64> {
    // SAFETY: fstat writes into a zeroed, live `stat` struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

/// The receive slots and the headers pointing into them (built once; never moved).
struct Slots {
    slot: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Slots {
    fn new(slot: usize) -> Slots {
        let mut s = Slots {
            slot,
            bufs: vec![0u8; slot * SLOTS],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
            names: vec![unsafe { std::mem::zeroed() }; SLOTS],
            iovs: Vec::with_capacity(SLOTS),
            hdrs: Vec::with_capacity(SLOTS),
        };
        for i in 0..SLOTS {
            s.iovs.push(libc::iovec {
                iov_base: s.bufs[i * slot..].as_mut_ptr() as *mut libc::c_void,
                iov_len: slot,
            });
        }
        for i in 0..SLOTS {
            // SAFETY: mmsghdr is plain data (pointers and integers); zeroes are valid.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name =
                &mut s.names[i] as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_hdr.msg_iov = &mut s.iovs[i] as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 1;
            s.hdrs.push(h);
        }
        s
    }

    /// Receives up to [`SLOTS`] datagrams (blocking for the first, up to the socket timeout).
    fn recv(&mut self, fd: i32) -> io::Result<usize> {
        for h in &mut self.hdrs {
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at a live slot, name and iovec owned by `self`, which
        // stay in place (the vectors are never resized) for the duration of the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Datagram `i` of the last receive: its bytes, whether the kernel cut it, its sender.
    fn get(&self, i: usize) -> (&[u8], bool, IpAddr) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.slot);
        let cut = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (
            &self.bufs[i * self.slot..i * self.slot + len],
            cut,
            ip_of(&self.names[i]),
        )
    }
}

pub(crate) fn run(
    mut out: ConnectorOutput,
    sock: UdpSocket,
    st: Settings,
    m: SyslogMetrics,
    published: Published,
) {
    let drops = Drops::new(&out, true);
    let fd = sock.as_raw_fd();
    let v6 = sock.local_addr().map(|a| a.is_ipv6()).unwrap_or(false);
    let inode = socket_inode(fd);
    let mut slots = Slots::new(st.max_frame.min(65_535) + 1);
    let mut peers = Peers::new(st.peer_capacity(), st.rate_limit, published);
    let mut batch = FrameBatch::new(st.batch_size);
    let lifecycle = out.lifecycle().clone();
    let mut last_housekeeping: Option<Instant> = None;
    out.handle.mark_started();
    'recv: loop {
        if lifecycle.is_draining() {
            break;
        }
        let got = match slots.recv(fd) {
            Ok(n) => n,
            Err(e) => {
                let timeout = matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                );
                if !timeout {
                    tracing::warn!(error = %e, "syslog udp receive failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
                0
            }
        };
        let now = Instant::now();
        for i in 0..got {
            let (data, cut, ip) = slots.get(i);
            let frame = trim_lf(data);
            if cut || frame.len() > st.max_frame {
                drops.oversized.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if frame.is_empty() {
                continue;
            }
            if !peers.admit(ip, frame.len(), now) {
                drops.rate_limited.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            batch.push(frame, false);
            if batch.is_full() && batch.flush(&mut out).is_err() {
                break 'recv;
            }
        }
        // Fewer than asked for: the queue is empty, so nothing is gained by waiting.
        if got < SLOTS && batch.flush(&mut out).is_err() {
            break;
        }
        let due = match last_housekeeping {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= Duration::from_secs(1),
        };
        if due {
            last_housekeeping = Some(now);
            if let Some(d) = inode.and_then(|i| kernel_drops(i, v6)) {
                m.kernel_drops.store(d as i64, Ordering::Relaxed);
            }
            peers.publish(now, false);
        }
    }
    let _ = batch.flush(&mut out);
    peers.publish(Instant::now(), true);
    if let Some(d) = inode.and_then(|i| kernel_drops(i, v6)) {
        m.kernel_drops.store(d as i64, Ordering::Relaxed);
    }
    out.handle.mark_finished();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_udp_has_our_socket() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(sock.as_raw_fd()).unwrap();
        assert_eq!(kernel_drops(inode, false), Some(0));
    }
}
