//! A minimal blocking HTTP/1.1 client: keep-alive `POST`s over one `TcpStream`.
//!
//! Enough for the `http` target (one client per worker thread): it writes a request, reads
//! the status line and headers, and skips the response body (`content-length`, chunked, or
//! until close). Responses are bounded (64 KiB head, 16 MiB body skipped at most). A request
//! on a kept-alive connection that fails before any answer is retried once on a fresh one
//! (the server may have closed the idle connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const MAX_HEAD: u64 = 64 * 1024;
const MAX_SKIP: u64 = 16 * 1024 * 1024;

pub struct Client {
    addr: SocketAddr,
    host: String,
    conn: Option<(BufReader<TcpStream>, TcpStream)>,
    head: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr, host: String) -> Client {
        Client {
            addr,
            host,
            conn: None,
            head: Vec::with_capacity(512),
        }
    }

    fn connect(&mut self) -> std::io::Result<()> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let w = s.try_clone()?;
        self.conn = Some((BufReader::with_capacity(16 * 1024, s), w));
        Ok(())
    }

    /// Sends one `POST` and returns the status code.
    pub fn post(
        &mut self,
        path: &str,
        content_type: &str,
        extra_headers: &[(String, String)],
        body: &[u8],
    ) -> std::io::Result<u16> {
        self.head.clear();
        let _ = write!(
            self.head,
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in extra_headers {
            let _ = write!(self.head, "{k}: {v}\r\n");
        }
        self.head.extend_from_slice(b"\r\n");
        let reused = self.conn.is_some();
        match self.once(body) {
            Ok(s) => Ok(s),
            Err(e) if reused && e.kind() != std::io::ErrorKind::InvalidData => {
                self.conn = None;
                self.once(body)
            }
            Err(e) => Err(e),
        }
    }

    fn once(&mut self, body: &[u8]) -> std::io::Result<u16> {
        if self.conn.is_none() {
            self.connect()?;
        }
        let result = (|| {
            let (r, w) = self.conn.as_mut().expect("connected");
            w.write_all(&self.head)?;
            w.write_all(body)?;
            read_response(r)
        })();
        match result {
            Ok((status, close)) => {
                if close {
                    self.conn = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads a response; returns (status, connection closes).
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    loop {
        let mut line = Vec::new();
        let n = r.by_ref().take(MAX_HEAD).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let status_line = String::from_utf8_lossy(&line).trim_end().to_string();
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(invalid("not an HTTP/1.x response"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let mut close = version == "HTTP/1.0";
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut total = n as u64;
        loop {
            line.clear();
            let n = r.by_ref().take(MAX_HEAD).read_until(b'\n', &mut line)?;
            total += n as u64;
            if n == 0 || total > MAX_HEAD {
                return Err(invalid("response head too long or cut"));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                break;
            }
            if let Some((k, v)) = text.split_once(':') {
                let v = v.trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.parse().ok(),
                    "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends: the real answer follows.
        }
        if chunked {
            skip_chunked(r)?;
        } else if let Some(n) = length {
            if n > MAX_SKIP {
                return Err(invalid("response body too large"));
            }
            std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink())?;
        } else if status != 204 && status != 304 {
            std::io::copy(&mut r.by_ref().take(MAX_SKIP), &mut std::io::sink())?;
            close = true;
        }
        return Ok((status, close));
    }
}

fn skip_chunked(r: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut total = 0u64;
    loop {
        line.clear();
        r.by_ref().take(1024).read_until(b'\n', &mut line)?;
        let s = String::from_utf8_lossy(&line);
        let size = u64::from_str_radix(s.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        total += size;
        if total > MAX_SKIP {
            return Err(invalid("response body too large"));
        }
        if size == 0 {
            loop {
                line.clear();
                let n = r.by_ref().take(8192).read_until(b'\n', &mut line)?;
                if n == 0 || line == b"\r\n" || line == b"\n" {
                    return Ok(());
                }
            }
        }
        std::io::copy(&mut r.by_ref().take(size + 2), &mut std::io::sink())?;
    }
}
