//! The senders of the network workloads, run by the harness in threads of its own: W4 replays
//! the data file over one TCP connection in 256 KiB writes (what `socat -u -b 262144` does in
//! the bench rules), W5 POSTs it as NDJSON bodies over keep-alive HTTP/1.1 connections (what
//! `send_http.py` does). Everything that can be prepared (reading the file, cutting the bodies)
//! is done before the clock starts.

use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::workloads::Delivery;

/// Size of each write of the TCP replay (socat's `-b 262144`).
const REPLAY_CHUNK: usize = 256 << 10;
/// The request path of W5: NDJSON (or a JSON array) of events.
const HTTP_PATH: &str = "/logs";
/// How often a request answered 503 (backpressure) is sent again before the run fails.
const MAX_RETRIES_PER_REQUEST: u32 = 10_000;
/// Longest wait between two tries of a refused request.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// A sender with its input ready.
pub enum Sender {
    /// Replay this file over one TCP connection.
    TcpReplay { path: std::path::PathBuf },
    /// POST these bodies over `connections` connections.
    HttpPost {
        data: Arc<Vec<u8>>,
        /// Byte ranges of `data`, one request each.
        bodies: Arc<Vec<(usize, usize)>>,
        connections: usize,
    },
}

/// What a finished sender did.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendStats {
    pub bytes: u64,
    pub requests: u64,
    /// Requests answered 503 and sent again.
    pub retries: u64,
}

impl Sender {
    /// Prepares the sender for `delivery` over the file at `path` (`None` for file workloads).
    pub fn prepare(delivery: Delivery, path: &Path) -> Result<Option<Sender>> {
        match delivery {
            Delivery::File => Ok(None),
            Delivery::TcpReplay => Ok(Some(Sender::TcpReplay {
                path: path.to_path_buf(),
            })),
            Delivery::HttpPost { batch, connections } => {
                let mut data = Vec::new();
                File::open(path)
                    .and_then(|mut f| f.read_to_end(&mut data))
                    .with_context(|| format!("reading {}", path.display()))?;
                let bodies = cut_bodies(&data, batch);
                Ok(Some(Sender::HttpPost {
                    data: Arc::new(data),
                    bodies: Arc::new(bodies),
                    connections: connections.max(1),
                }))
            }
        }
    }

    /// Starts sending to `addr`; the thread's result says what was sent.
    pub fn start(self, addr: SocketAddr) -> JoinHandle<Result<SendStats>> {
        thread::spawn(move || match self {
            Sender::TcpReplay { path } => replay_tcp(&path, addr),
            Sender::HttpPost {
                data,
                bodies,
                connections,
            } => post_http(data, bodies, connections, addr),
        })
    }
}

/// Byte ranges of `data` holding `batch` whole lines each (the last one fewer).
pub fn cut_bodies(data: &[u8], batch: usize) -> Vec<(usize, usize)> {
    let batch = batch.max(1);
    let mut bodies = Vec::new();
    let mut start = 0;
    let mut lines = 0;
    for nl in memchr::memchr_iter(b'\n', data) {
        lines += 1;
        if lines == batch {
            bodies.push((start, nl + 1));
            start = nl + 1;
            lines = 0;
        }
    }
    if start < data.len() {
        bodies.push((start, data.len()));
    }
    bodies
}

fn replay_tcp(path: &Path, addr: SocketAddr) -> Result<SendStats> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("connecting to {addr} (W4 replay)"))?;
    let mut buf = vec![0u8; REPLAY_CHUNK];
    let mut stats = SendStats::default();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        stream
            .write_all(&buf[..n])
            .with_context(|| format!("writing to {addr} after {} bytes", stats.bytes))?;
        stats.bytes += n as u64;
    }
    stream.flush()?;
    // Closing our side tells the source the stream ended; wait for it to close too so every
    // byte was read before the thread reports.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.read(&mut buf[..1]);
    stats.requests = 1;
    Ok(stats)
}

fn post_http(
    data: Arc<Vec<u8>>,
    bodies: Arc<Vec<(usize, usize)>>,
    connections: usize,
    addr: SocketAddr,
) -> Result<SendStats> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (data, bodies, next) = (data.clone(), bodies.clone(), next.clone());
            thread::spawn(move || http_worker(&data, &bodies, &next, addr))
        })
        .collect();
    let mut total = SendStats::default();
    for w in workers {
        let s = w
            .join()
            .map_err(|_| anyhow!("an HTTP sender thread panicked"))??;
        total.bytes += s.bytes;
        total.requests += s.requests;
        total.retries += s.retries;
    }
    Ok(total)
}

/// One keep-alive connection taking the next body until none is left.
fn http_worker(
    data: &[u8],
    bodies: &[(usize, usize)],
    next: &AtomicUsize,
    addr: SocketAddr,
) -> Result<SendStats> {
    let mut stats = SendStats::default();
    let mut conn: Option<Connection> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(start, end)) = bodies.get(i) else {
            return Ok(stats);
        };
        let body = &data[start..end];
        let mut tries = 0u32;
        loop {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(Connection::open(addr)?),
            };
            match c.post(addr, body) {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    stats.requests += 1;
                    stats.bytes += body.len() as u64;
                    if answer.close {
                        conn = None;
                    }
                    break;
                }
                Ok(answer) if answer.status == 503 || answer.status == 429 => {
                    tries += 1;
                    stats.retries += 1;
                    if tries > MAX_RETRIES_PER_REQUEST {
                        bail!(
                            "request {i} was refused {tries} times (HTTP {})",
                            answer.status
                        );
                    }
                    if answer.close {
                        conn = None;
                    }
                    let wait = answer.retry_after.unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF);
                    thread::sleep(wait.min(Duration::from_millis(u64::from(tries))));
                }
                Ok(answer) => bail!(
                    "request {i} answered HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ),
                Err(e) => {
                    // A dropped keep-alive connection: reconnect and send again, a few times.
                    tries += 1;
                    conn = None;
                    if tries > 5 {
                        return Err(e).context(format!("request {i} to {addr}"));
                    }
                }
            }
        }
    }
}

struct Answer {
    status: u16,
    close: bool,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 client connection (Content-Length bodies only, which is all the
/// `http` source sends).
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Result<Connection> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn post(&mut self, addr: SocketAddr, body: &[u8]) -> io::Result<Answer> {
        let head = format!(
            "POST {HTTP_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\n\
             Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        read_answer(&mut self.reader)
    }
}

fn read_answer(reader: &mut impl BufRead) -> io::Result<Answer> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, format!("status line {line:?}")))?;
    let mut length = 0usize;
    let mut close = false;
    let mut retry_after = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed in head"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .parse()
                .map_err(|_| io::Error::new(ErrorKind::InvalidData, "bad content-length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry_after = value.parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Answer {
        status,
        close,
        retry_after,
        body,
    })
}

/// Waits until something accepts TCP connections on `addr` (the source is up).
pub fn wait_listening(addr: SocketAddr, deadline: Instant) -> Result<()> {
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("the source never listened on {addr}"))
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn bodies_hold_whole_lines() {
        let data = b"a\nb\nc\nd\ne\n";
        assert_eq!(cut_bodies(data, 2), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(cut_bodies(b"a\nb", 5), vec![(0, 3)]);
        assert_eq!(cut_bodies(b"", 5), Vec::<(usize, usize)>::new());
    }

    #[test]
    fn answers_are_read_with_their_bodies() {
        let text = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\ncontent-length: 3\r\nConnection: close\r\n\r\nnop";
        let a = read_answer(&mut &text[..]).unwrap();
        assert_eq!(a.status, 503);
        assert!(a.close);
        assert_eq!(a.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(a.body, b"nop");
        assert!(read_answer(&mut &b""[..]).is_err());
        assert!(read_answer(&mut &b"garbage\r\n\r\n"[..]).is_err());
    }

    /// A one-connection HTTP server that refuses the first request with 503, then accepts:
    /// the sender sends that body again and every body arrives once.
    #[test]
    fn refused_requests_are_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut got = Vec::new();
            for n in 0.. {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let mut length = 0;
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line.trim_end().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                if n == 0 {
                    writer
                        .write_all(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                } else {
                    got.push(body);
                    writer
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .unwrap();
                }
            }
            got
        });
        let data: Vec<u8> = (0..10)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        let bodies = cut_bodies(&data, 3);
        let sender = Sender::HttpPost {
            data: Arc::new(data.clone()),
            bodies: Arc::new(bodies),
            connections: 1,
        };
        let stats = sender.start(addr).join().unwrap().unwrap();
        assert_eq!((stats.requests, stats.retries), (4, 1));
        assert_eq!(stats.bytes, data.len() as u64);
        let got = server.join().unwrap();
        assert_eq!(got.concat(), data);
    }

    #[test]
    fn tcp_replay_sends_the_whole_file() {
        let dir = std::env::temp_dir().join(format!("sluice-perf-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data");
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        std::fs::write(&path, &data).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let sender = Sender::prepare(Delivery::TcpReplay, &path)
            .unwrap()
            .unwrap();
        let stats = sender.start(addr).join().unwrap().unwrap();
        assert_eq!(stats.bytes, data.len() as u64);
        assert_eq!(server.join().unwrap(), data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
