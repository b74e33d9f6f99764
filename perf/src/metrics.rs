//! Reading Sluice's counters: a hand-written HTTP/1.0 `GET /metrics` over a `TcpStream`, and a
//! parser for the Prometheus text exposition format that sums one counter for one component.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// The counter the harness watches: events that reached a component.
pub const EVENTS_IN: &str = "sluice_events_in_total";

/// One sample line of the text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one line. `None` for blank lines and comments (`# HELP`, `# TYPE`, `# EOF`).
pub fn parse_line(line: &str) -> Option<Result<Sample>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    Some(parse_sample(line).with_context(|| format!("bad metrics line: {line}")))
}

fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or_else(|| anyhow!("no value"))?;
    let name = &line[..name_end];
    if name.is_empty() {
        bail!("no metric name");
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next().ok_or_else(|| anyhow!("no value"))?)?;
    // An optional timestamp may follow; nothing else may.
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| anyhow!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        bail!("trailing text");
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `name="value",...}` (after the `{`), returning the text after the `}`.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| anyhow!("unterminated labels"))?;
        let name = &s[..name_end];
        if name.is_empty() {
            bail!("bad label name");
        }
        s = s[name_end..].trim_start();
        s = s
            .strip_prefix('=')
            .ok_or_else(|| anyhow!("no '=' after label {name}"))?;
        s = s.trim_start();
        s = s
            .strip_prefix('"')
            .ok_or_else(|| anyhow!("label {name} is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let close = loop {
            match chars.next() {
                None => bail!("unterminated value of label {name}"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated value of label {name}"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        s = s[close + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            bail!("expected ',' or '}}' after label {name}");
        }
    }
}

fn parse_value(v: &str) -> Result<f64> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| anyhow!("bad value {v:?}")),
    }
}

/// Sums `metric` over every series whose `component` label is `component` (a counter may be
/// split further, e.g. by shard). `None` while no such series exists yet. Lines of other metrics
/// are not parsed, so an odd line elsewhere does not break the scrape.
pub fn sum_for_component(text: &str, metric: &str, component: &str) -> Result<Option<f64>> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix(metric) else {
            continue;
        };
        if !rest.starts_with(|c: char| c == '{' || c.is_ascii_whitespace()) {
            continue; // a longer name, e.g. `..._total_created`
        }
        let Some(sample) = parse_line(line).transpose()? else {
            continue;
        };
        if sample.label("component") == Some(component) {
            *sum.get_or_insert(0.0) += sample.value;
        }
    }
    Ok(sum)
}

/// A counter value as a whole number of events.
pub fn as_count(value: f64) -> Result<u64> {
    if !value.is_finite() || value < 0.0 {
        bail!("counter value {value} is not a count");
    }
    Ok(value.round() as u64)
}

/// `sluice_events_in_total` of `component`, scraped from `http://ADDR/metrics`; `None` while the
/// component has no series yet.
pub fn scrape_events_in(addr: SocketAddr, component: &str) -> Result<Option<u64>> {
    let body = http_get(addr, "/metrics", Duration::from_secs(2))?;
    let text = String::from_utf8_lossy(&body);
    sum_for_component(&text, EVENTS_IN, component)?
        .map(as_count)
        .transpose()
}

/// `GET path` over HTTP/1.0 with `Connection: close`; returns the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let _ = stream.set_nodelay(true);
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::with_capacity(16 << 10);
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer of {addr}{path}"))?;
    parse_http_response(&raw).with_context(|| format!("GET http://{addr}{path}"))
}

/// Splits a whole HTTP/1.x answer; returns its body when the status is 200. Honours
/// `Content-Length` and `Transfer-Encoding: chunked`.
pub fn parse_http_response(raw: &[u8]) -> Result<Vec<u8>> {
    let (head_len, sep_len) = match memchr::memmem::find(raw, b"\r\n\r\n") {
        Some(i) => (i, 4),
        None => match memchr::memmem::find(raw, b"\n\n") {
            Some(i) => (i, 2),
            None => bail!("incomplete HTTP answer ({} bytes)", raw.len()),
        },
    };
    let head = std::str::from_utf8(&raw[..head_len]).context("HTTP head is not UTF-8")?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_ascii_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP answer: {status_line:?}");
    }
    if code != "200" {
        bail!("answered {status_line:?}");
    }
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            content_length = Some(v.parse::<usize>().context("bad Content-Length")?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = &raw[head_len + sep_len..];
    if chunked {
        return decode_chunked(body);
    }
    match content_length {
        Some(n) if n > body.len() => bail!("body cut short: {} of {n} bytes", body.len()),
        Some(n) => Ok(body[..n].to_vec()),
        None => Ok(body.to_vec()),
    }
}

fn decode_chunked(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let eol = memchr::memchr(b'\n', body).ok_or_else(|| anyhow!("bad chunk header"))?;
        let header = std::str::from_utf8(&body[..eol])?.trim();
        let size_hex = header.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| anyhow!("bad chunk size {size_hex:?}"))?;
        body = &body[eol + 1..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            bail!("chunk cut short");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size..];
        body = body
            .strip_prefix(b"\r\n")
            .or_else(|| body.strip_prefix(b"\n"))
            .unwrap_or(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample of a metrics text.
    fn parse(text: &str) -> Result<Vec<Sample>> {
        text.lines().filter_map(parse_line).collect()
    }

    const TEXT: &str = r#"# HELP sluice_events_in_total Events that reached the component.
# TYPE sluice_events_in_total counter
sluice_events_in_total{component="in",component_kind="source",component_type="file"} 2000000
sluice_events_in_total{component="count",component_kind="sink",component_type="blackhole"} 1199154
sluice_events_in_total_created{component="count"} 1700000000
sluice_events_in_totals{component="count"} 5
# HELP sluice_batch_latency_seconds Batch latency.
# TYPE sluice_batch_latency_seconds histogram
sluice_batch_latency_seconds_bucket{component="count",le="0.0005"} 0
sluice_batch_latency_seconds_bucket{component="count",le="0.001"} 1
sluice_batch_latency_seconds_bucket{component="count",le="+Inf"} 1171
sluice_batch_latency_seconds_sum{component="count"} 0.5
sluice_batch_latency_seconds_count{component="count"} 1171
sluice_up 1
"#;

    #[test]
    fn parses_labels_comments_and_histograms() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(samples.len(), 10);
        let bucket = &samples[6];
        assert_eq!(bucket.name, "sluice_batch_latency_seconds_bucket");
        assert_eq!(bucket.label("le"), Some("+Inf"));
        assert_eq!(bucket.value, 1171.0);
        assert_eq!(samples[7].value, 0.5);
        let up = samples.last().unwrap();
        assert_eq!(
            (up.name.as_str(), up.labels.len(), up.value),
            ("sluice_up", 0, 1.0)
        );
    }

    #[test]
    fn sums_the_component_counter_only() {
        assert_eq!(
            sum_for_component(TEXT, EVENTS_IN, "count").unwrap(),
            Some(1_199_154.0)
        );
        assert_eq!(
            sum_for_component(TEXT, EVENTS_IN, "in").unwrap(),
            Some(2_000_000.0)
        );
        assert_eq!(sum_for_component(TEXT, EVENTS_IN, "env").unwrap(), None);
        assert_eq!(sum_for_component("", EVENTS_IN, "count").unwrap(), None);
    }

    #[test]
    fn labels_in_any_order_and_split_by_shard() {
        let text = "sluice_events_in_total{shard=\"0\",component=\"count\"} 600000\n\
                    sluice_events_in_total{component=\"count\",shard=\"1\",} 599154 1700000000000\n\
                    sluice_events_in_total { component = \"count\" , shard = \"2\" } 0\n";
        assert_eq!(
            sum_for_component(text, EVENTS_IN, "count").unwrap(),
            Some(1_199_154.0)
        );
    }

    #[test]
    fn escaped_label_values() {
        let s = parse_line(r#"m{a="x\"y,}z",b="back\\slash",c="n\nl",component="count"} 1.5e3"#)
            .unwrap()
            .unwrap();
        assert_eq!(s.label("a"), Some("x\"y,}z"));
        assert_eq!(s.label("b"), Some("back\\slash"));
        assert_eq!(s.label("c"), Some("n\nl"));
        assert_eq!(s.label("component"), Some("count"));
        assert_eq!(s.value, 1500.0);
    }

    #[test]
    fn special_values_and_errors() {
        assert!(parse_line("m NaN").unwrap().unwrap().value.is_nan());
        assert_eq!(
            parse_line("m -Inf").unwrap().unwrap().value,
            f64::NEG_INFINITY
        );
        assert!(parse_line("m{a=\"x\"").unwrap().is_err());
        assert!(parse_line("m{a=x} 1").unwrap().is_err());
        assert!(parse_line("m").unwrap().is_err());
        assert!(parse_line("m one").unwrap().is_err());
        assert!(parse_line("   ").is_none());
        assert!(parse_line("# EOF").is_none());
        assert!(sum_for_component(
            "sluice_events_in_total{component=\"count\"} x",
            EVENTS_IN,
            "count"
        )
        .is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(as_count(1_199_154.0).unwrap(), 1_199_154);
        assert_eq!(as_count(1.199154e6).unwrap(), 1_199_154);
        assert!(as_count(f64::NAN).is_err());
        assert!(as_count(-1.0).is_err());
    }

    #[test]
    fn http_answers() {
        let raw =
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello+junk";
        assert_eq!(parse_http_response(raw).unwrap(), b"hello");
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(raw).unwrap(), b"hello world");
        let raw = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(parse_http_response(raw).unwrap(), b"until close");
        let err = parse_http_response(b"HTTP/1.0 404 Not Found\r\n\r\n").unwrap_err();
        assert!(format!("{err}").contains("404"));
        assert!(parse_http_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_http_response(b"HTTP/1.0 200").is_err());
    }

    #[test]
    fn scrapes_over_tcp() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = conn.read(&mut req).unwrap();
            assert!(req[..n].starts_with(b"GET /metrics HTTP/1.0\r\n"));
            let body = TEXT.as_bytes();
            write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .unwrap();
            conn.write_all(body).unwrap();
        });
        assert_eq!(scrape_events_in(addr, "count").unwrap(), Some(1_199_154));
        server.join().unwrap();
    }
}
