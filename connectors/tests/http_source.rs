//! The `http` source over real loopback sockets: a source built from its config, running on
//! its own thread with a `ConnectorOutput` over real engine rings (as the topology makes
//! them), driven by a minimal HTTP/1.1 client written here.

use serde_json::{json, Value};
use sluice_connectors::sources::http::HttpSourceConfig;
use sluice_connectors::sources::SourceShape;
use sluice_engine::batch::Batch;
use sluice_engine::context::BuildCtx;
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_engine::ring::{ring, Doorbell, RingRx, WhenFull};
use sluice_engine::shutdown::Lifecycle;
use sluice_engine::source::{ConnectorOutput, Envelope, SourceHandle};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Harness {
    addr: SocketAddr,
    rings: Vec<RingRx<Envelope>>,
    handle: Arc<SourceHandle>,
    registry: Arc<Registry>,
    lifecycle: Arc<Lifecycle>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

struct Opts {
    shards: usize,
    ring_capacity: usize,
    batch_size: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            shards: 2,
            ring_capacity: 64,
            batch_size: 1024,
        }
    }
}

fn config(extra: Value) -> HttpSourceConfig {
    let mut v = json!({ "address": "127.0.0.1:0" });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).expect("config")
}

fn start(extra: Value) -> Harness {
    start_with(extra, Opts::default())
}

fn start_with(extra: Value, o: Opts) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let lifecycle = Lifecycle::new();
    let ctx = BuildCtx {
        shards: o.shards,
        batch_size: o.batch_size,
        data_dir: dir.path().to_path_buf(),
        registry: registry.clone(),
        lifecycle: lifecycle.clone(),
    };
    let cfg = config(extra);
    cfg.validate().expect("valid");
    let (rt, addr) = cfg.bind(&ctx, "web").expect("bind");
    let metrics = registry.component("web", ComponentKind::Source, "http");
    let handle = match rt.receiver.clone() {
        Some(r) => SourceHandle::with_receiver(0, "web", metrics, 1, r),
        None => SourceHandle::new(0, "web", metrics, 1),
    };
    let mut txs = Vec::new();
    let mut rings = Vec::new();
    for _ in 0..o.shards {
        let (tx, rx) = ring(
            o.ring_capacity,
            WhenFull::Block,
            Doorbell::new(),
            handle.metrics.dropped("ring_full"),
        );
        txs.push(tx);
        rings.push(rx);
    }
    let out = ConnectorOutput::new(handle.clone(), txs, lifecycle.clone());
    let SourceShape::Thread(f) = rt.shape else {
        panic!("the http source runs on a connector thread")
    };
    let thread = std::thread::spawn(move || f(out));
    let t0 = Instant::now();
    while !handle.is_started() {
        assert!(t0.elapsed() < Duration::from_secs(10), "never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    Harness {
        addr,
        rings,
        handle,
        registry,
        lifecycle,
        thread: Some(thread),
        _dir: dir,
    }
}

impl Harness {
    /// Every batch waiting in the rings.
    fn batches(&mut self) -> Vec<Batch> {
        let mut out = Vec::new();
        for r in &mut self.rings {
            while let Some(env) = r.pop() {
                out.push(env.batch);
            }
        }
        out
    }

    /// The events waiting in the rings, as text (the batches are dropped: acknowledged).
    fn events(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for b in self.batches() {
            for e in &b.events {
                out.push(String::from_utf8(b.line(e).to_vec()).unwrap());
            }
        }
        out
    }

    /// Waits for one batch.
    fn wait_batch(&mut self) -> Batch {
        let t0 = Instant::now();
        loop {
            for r in &mut self.rings {
                if let Some(env) = r.pop() {
                    return env.batch;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no batch arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn metric(&self, needle: &str) -> u64 {
        let text = self.registry.render_prometheus();
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {needle} in\n{text}"))
    }

    fn rejected(&self, reason: &str) -> u64 {
        self.metric(&format!(
            "sluice_http_rejected_total{{component=\"web\",reason=\"{reason}\"}}"
        ))
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(self.addr, "POST", path, headers, body)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.lifecycle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_response<S: Read>(s: &mut S, head: bool) -> std::io::Result<Resp> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = text.split("\r\n");
            let status: u16 = lines
                .next()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            let len = if head { 0 } else { len };
            if buf.len() >= end + 4 + len {
                return Ok(Resp {
                    status,
                    headers,
                    body: buf[end + 4..end + 4 + len].to_vec(),
                });
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn send_on<S: Read + Write>(
    s: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> std::io::Result<Resp> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    if !headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    }) {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    if close {
        req += "Connection: close\r\n";
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)?;
    read_response(s, method == "HEAD")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    send_on(&mut connect(addr), method, path, headers, body, true).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn elasticsearch_probes() {
    let h = start(json!({}));
    let r = request(h.addr, "GET", "/", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"]["number"], "8.11.0");
    assert_eq!(r.json()["tagline"], "You Know, for Search");
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = request(h.addr, "HEAD", "/", &[], b"");
    assert_eq!(r.status, 200);
    let r = request(h.addr, "GET", "/_license", &[], b"");
    assert_eq!(r.json()["license"]["status"], "active");
    let r = request(h.addr, "GET", "/_xpack", &[], b"");
    assert_eq!(r.json()["license"]["mode"], "basic");
    let r = request(
        h.addr,
        "GET",
        "/",
        &[(
            "Accept",
            "application/vnd.elasticsearch+json; compatible-with=8",
        )],
        b"",
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.elasticsearch+json;compatible-with=8")
    );
    assert_eq!(request(h.addr, "GET", "/nope", &[], b"").status, 404);
    let r = request(h.addr, "GET", "/logs", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(
        h.metric("sluice_http_requests_total{component=\"web\",endpoint=\"root\",status=\"200\"}"),
        3
    );
}

#[test]
fn log_logs_arrays_and_ndjson() {
    let mut h = start(json!({}));
    let r = h.post("/log", &[], b"{\"a\":1}");
    assert_eq!((r.status, r.json()["accepted"].as_u64()), (200, Some(1)));
    assert_eq!(h.events(), ["{\"a\":1}"]);
    // A pretty-printed object stays one event, on one line.
    let r = h.post("/log", &[], b"{\n  \"a\": \"x\",\r\n  \"b\": 2\n}\n");
    assert_eq!(r.status, 200);
    assert_eq!(h.events(), ["{   \"a\": \"x\",    \"b\": 2 }"]);
    // Arrays: each element's exact bytes (Fluentd's json_array).
    let arr = br#"[{"m":"a,b]"},{"n":{"x":[1,2]}} , {"e":"\"}"}]"#;
    let r = h.post("/logs", &[("Content-Type", "application/json")], arr);
    assert_eq!(r.json()["accepted"], 3);
    let mut ev = h.events();
    ev.sort();
    assert_eq!(
        ev,
        [r#"{"e":"\"}"}"#, r#"{"m":"a,b]"}"#, r#"{"n":{"x":[1,2]}}"#]
    );
    // NDJSON by content type, and detected; bad lines are the parser's business.
    let r = h.post(
        "/logs",
        &[("Content-Type", "application/x-ndjson")],
        b"{\"a\":1}\r\n\n{\"a\":2}\nnot json\n",
    );
    assert_eq!(r.json()["accepted"], 3);
    assert_eq!(h.events().len(), 3);
    let r = h.post("/logs", &[], b"{\"a\":1}\n{\"a\":2}");
    assert_eq!(r.json()["accepted"], 2);
    assert_eq!(h.events().len(), 2);
    // A broken array is refused whole.
    let r = h.post("/logs", &[], b"[{\"a\":1},");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "parse_exception");
    assert!(h.events().is_empty());
    assert_eq!(h.rejected("bad_body"), 1);
    // Fluentd's msgpack is refused.
    let r = h.post(
        "/logs",
        &[("Content-Type", "application/x-msgpack")],
        b"\x81",
    );
    assert_eq!(r.status, 415);
    // Empty bodies are fine and send nothing.
    assert_eq!(h.post("/logs", &[], b"").status, 200);
    assert!(h.events().is_empty());
    assert_eq!(
        h.metric("sluice_http_requests_total{component=\"web\",endpoint=\"logs\",status=\"200\"}"),
        4
    );
    assert!(h.metric("sluice_http_received_bytes_total{component=\"web\"}") > 50);
    assert_eq!(
        h.metric("sluice_events_in_total{component=\"web\""),
        1 + 1 + 3 + 3 + 2
    );
}

#[test]
fn keep_alive_serves_several_requests() {
    let mut h = start(json!({}));
    let mut s = connect(h.addr);
    for i in 0..3 {
        let body = format!("{{\"i\":{i}}}");
        let r = send_on(&mut s, "POST", "/log", &[], body.as_bytes(), false).unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(h.events().len(), 3);
}

#[test]
fn gzip_zstd_and_bombs() {
    let mut h = start(json!({ "max_body_bytes": "64KiB" }));
    let body = b"{\"a\":1}\n".repeat(100);
    let r = h.post("/logs", &[("Content-Encoding", "gzip")], &gzip(&body));
    assert_eq!(r.json()["accepted"], 100);
    let z = zstd::encode_all(&body[..], 3).unwrap();
    let r = h.post("/logs", &[("Content-Encoding", "zstd")], &z);
    assert_eq!(r.json()["accepted"], 100);
    assert_eq!(h.events().len(), 200);
    let r = h.post("/logs", &[("Content-Encoding", "br")], b"xx");
    assert_eq!(r.status, 415);
    let r = h.post("/logs", &[("Content-Encoding", "gzip")], b"not gzip at all");
    assert_eq!(r.status, 400);
    assert_eq!(h.rejected("decompress_error"), 2);
    // 16 MiB of zeros in about 16 KB: refused once the output passes 64 KiB.
    let bomb = gzip(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 << 10);
    let r = h.post("/logs", &[("Content-Encoding", "gzip")], &bomb);
    assert_eq!(r.status, 413);
    assert_eq!(h.rejected("too_large"), 1);
    assert!(h.events().is_empty());
    // Still serving.
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
}

#[test]
fn oversize_bodies() {
    let h = start(json!({ "max_body_bytes": 1000 }));
    // Declared too large: refused before the body is sent.
    let mut s = connect(h.addr);
    s.write_all(b"POST /logs HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // Chunked, with no length up front: counted while it streams.
    let big = "x".repeat(1500);
    let body = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let r = h.post(
        "/logs",
        &[("Transfer-Encoding", "chunked")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 413);
    assert_eq!(h.rejected("too_large"), 2);
    // At the limit exactly is fine.
    let ok = format!("\"{}\"", "y".repeat(998));
    assert_eq!(h.post("/log", &[], ok.as_bytes()).status, 200);
}

#[test]
fn bulk_answers_like_elasticsearch() {
    let mut h = start(json!({}));
    let body = concat!(
        "{\"index\":{\"_index\":\"logs\",\"_id\":\"1\"}}\n{\"msg\":\"one\"}\n",
        "{\"create\":{\"_index\":\"logs\"}}\n{\"msg\":\"two\"}\n",
        "{\"index\":{}}\n{\"msg\":\"three\"}\n"
    );
    let r = h.post(
        "/default/_bulk",
        &[("Content-Type", "application/x-ndjson")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["errors"], false);
    assert!(v["took"].is_u64());
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let first = &items[0]["index"];
    assert_eq!(first["_index"], "logs");
    assert_eq!(first["_id"], "1");
    assert_eq!(first["status"], 201);
    assert_eq!(first["result"], "created");
    assert_eq!(first["_version"], 1);
    assert_eq!(
        first["_shards"],
        json!({"total":1,"successful":1,"failed":0})
    );
    assert_eq!(items[1]["create"]["status"], 201);
    assert_eq!(items[1]["create"]["_id"].as_str().unwrap().len(), 20);
    assert_eq!(items[2]["index"]["_index"], "default");
    let mut ev = h.events();
    ev.sort();
    assert_eq!(
        ev,
        [
            "{\"msg\":\"one\"}",
            "{\"msg\":\"three\"}",
            "{\"msg\":\"two\"}"
        ]
    );

    // The error path: per-item errors, the good items still arrive.
    let body = concat!(
        "{\"index\":{}}\n{\"ok\":1}\n",
        "{\"index\":{}}\n[1,2]\n",
        "oops\n{\"lost\":1}\n",
        "{\"delete\":{\"_id\":\"7\"}}\n"
    );
    // No index in the URL or the actions: every item refused, like Elasticsearch.
    let r = h.post("/_bulk", &[], body.as_bytes());
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["errors"], true);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["index"]["status"], 400);
    assert_eq!(
        items[0]["index"]["error"]["type"],
        "action_request_validation_exception"
    );
    assert_eq!(items[3]["delete"]["status"], 400);
    assert!(h.events().is_empty());
    // With an index: the good item arrives, the others fail one by one.
    let r = h.post("/i/_bulk", &[], body.as_bytes());
    let v = r.json();
    assert_eq!(v["errors"], true);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["index"]["status"], 201);
    assert_eq!(items[1]["index"]["status"], 400);
    assert_eq!(
        items[1]["index"]["error"]["type"],
        "mapper_parsing_exception"
    );
    assert_eq!(
        items[2]["index"]["error"]["type"],
        "illegal_argument_exception"
    );
    assert_eq!(items[3]["delete"]["status"], 404);
    assert_eq!(items[3]["delete"]["result"], "not_found");
    assert!(items[3]["delete"].get("error").is_none());
    assert_eq!(h.events(), ["{\"ok\":1}"]);
    assert_eq!(
        h.metric("sluice_events_dropped_total{component=\"web\",reason=\"bulk_item_error\"}"),
        4 + 2
    );
    // A gzip bulk, as Filebeat sends with compression_level > 0.
    let r = h.post(
        "/x/_bulk",
        &[("Content-Encoding", "gzip")],
        &gzip(b"{\"index\":{}}\n{\"z\":1}\n"),
    );
    assert_eq!(r.json()["errors"], false);
    assert_eq!(h.events(), ["{\"z\":1}"]);
}

#[test]
fn api_keys_in_either_header() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "# keys\nfrom-file\n").unwrap();
    let mut h = start(json!({ "api_keys": ["inline"], "api_keys_file": file }));
    let r = h.post("/log", &[], b"{}");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"sluice\"")
    );
    assert_eq!(h.post("/log", &[("X-API-Key", "wrong")], b"{}").status, 401);
    assert_eq!(
        h.post("/log", &[("Authorization", "Bearer inlinex")], b"{}")
            .status,
        401
    );
    assert_eq!(request(h.addr, "GET", "/", &[], b"").status, 401);
    assert!(h.events().is_empty());
    assert_eq!(h.rejected("unauthorized"), 4);
    assert_eq!(
        h.post("/log", &[("X-API-Key", "inline")], b"{}").status,
        200
    );
    assert_eq!(
        h.post("/log", &[("Authorization", "Bearer from-file")], b"{}")
            .status,
        200
    );
    assert_eq!(
        h.post(
            "/_bulk",
            &[("Authorization", "ApiKey inline")],
            b"{\"index\":{\"_index\":\"a\"}}\n{}\n"
        )
        .status,
        200
    );
    assert_eq!(h.events().len(), 3);
}

#[test]
fn rate_limit_per_client() {
    let h = start(json!({ "rate_limit": { "requests_per_second": 0.5, "burst": 2 } }));
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
    let r = h.post("/log", &[], b"{}");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(h.rejected("rate_limited"), 1);
}

#[test]
fn backpressure_is_503_not_a_queue() {
    let mut h = start_with(
        json!({ "backpressure_wait": "0s" }),
        Opts {
            shards: 2,
            ring_capacity: 1,
            batch_size: 2,
        },
    );
    // One batch per request fills one ring slot each.
    assert_eq!(h.post("/log", &[], b"{\"n\":1}").status, 200);
    assert_eq!(h.post("/log", &[], b"{\"n\":2}").status, 200);
    let r = h.post("/log", &[], b"{\"n\":3}");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(h.rejected("backpressure"), 1);
    assert_eq!(h.events().len(), 2);
    // Five events make three batches of two: more than the two free slots, so none go.
    let five = b"{}\n{}\n{}\n{}\n{}\n";
    assert_eq!(h.post("/logs", &[], five).status, 503);
    assert!(h.events().is_empty());
    // Four make two: all go.
    assert_eq!(h.post("/logs", &[], b"{}\n{}\n{}\n{}\n").status, 200);
    let batches = h.batches();
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|b| b.len() == 2));
}

/// With `backpressure_wait`, a request that finds the rings full waits for room and is
/// answered 200 once the shards took a batch; past the wait it is a 503.
#[test]
fn backpressure_waits_for_room() {
    let mut h = start_with(
        json!({ "backpressure_wait": "10s" }),
        Opts {
            shards: 1,
            ring_capacity: 1,
            batch_size: 2,
        },
    );
    assert_eq!(h.post("/log", &[], b"{\"n\":1}").status, 200);
    let addr = h.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(request(addr, "POST", "/log", &[], b"{\"n\":2}"))
            .unwrap();
    });
    // Held while the ring is full.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    let first = h.wait_batch();
    assert_eq!(first.len(), 1);
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("answered");
    assert_eq!(r.status, 200);
    t.join().unwrap();
    assert_eq!(h.wait_batch().len(), 1);
    assert_eq!(h.rejected("backpressure"), 0);

    let h = start_with(
        json!({ "backpressure_wait": "200ms" }),
        Opts {
            shards: 1,
            ring_capacity: 1,
            batch_size: 2,
        },
    );
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
    let started = std::time::Instant::now();
    assert_eq!(h.post("/log", &[], b"{}").status, 503);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(h.rejected("backpressure"), 1);
}

#[test]
fn acknowledgements_answer_after_delivery() {
    let mut h = start(json!({ "acknowledgements": true }));
    let addr = h.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = request(addr, "POST", "/logs", &[], b"{\"a\":1}\n{\"a\":2}\n");
        tx.send(r).unwrap();
    });
    let batch = h.wait_batch();
    assert_eq!(batch.len(), 2);
    // Held until the batch is done with.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    drop(batch);
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("answered");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["accepted"], 2);
    t.join().unwrap();

    // A failed delivery is a 500.
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(request(addr, "POST", "/log", &[], b"{}")).unwrap();
    });
    let batch = h.wait_batch();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    batch.ack.as_ref().unwrap().fail();
    drop(batch);
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("answered");
    assert_eq!(r.status, 500);
    t.join().unwrap();

    // A bulk request is answered once delivered, with its items.
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(request(
            addr,
            "POST",
            "/i/_bulk",
            &[],
            b"{\"index\":{}}\n{\"b\":1}\n",
        ))
        .unwrap();
    });
    let batch = h.wait_batch();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    drop(batch);
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("answered");
    assert_eq!(r.json()["items"][0]["index"]["status"], 201);
    t.join().unwrap();
    assert_eq!(h.handle.inflight.in_flight(), 0);
}

#[test]
fn slowloris_is_cut() {
    let h = start(json!({ "request_timeout": "1s", "idle_timeout": "1s" }));
    // Slow headers.
    let mut s = connect(h.addr);
    let t0 = Instant::now();
    let mut cut = false;
    for b in b"POST /logs HTTP/1.1\r\nHost: slow\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !cut {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        // Closed (0 or reset), possibly after a 408.
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let t0 = Instant::now();
    while h.rejected("idle_timeout") < 1 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    // Slow body: the headers arrive, then a byte at a time.
    let mut s = connect(h.addr);
    s.write_all(b"POST /logs HTTP/1.1\r\nHost: slow\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let t0 = Instant::now();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..40 {
            if w.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if let Ok(r) = read_response(&mut s, false) {
        assert_eq!(r.status, 408);
    }
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    writer.join().unwrap();
    assert_eq!(h.rejected("timeout"), 1);
    // The server is fine.
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
}

#[test]
fn malformed_requests_are_answered_400_and_counted() {
    let h = start(json!({}));
    assert_eq!(h.rejected("bad_request"), 0);
    for garbage in [
        &b"GARBAGE \x00\xff NONSENSE\r\n\r\n"[..],
        b"POST /log HTTP/1.1\r\nHost x no colon\r\n\r\n",
    ] {
        let mut s = connect(h.addr);
        s.write_all(garbage).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.status, 400);
    }
    let t0 = Instant::now();
    while h.rejected("bad_request") < 2 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.rejected("bad_request"), 2);
    assert_eq!(h.rejected("idle_timeout"), 0);
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
}

/// A burst of connections is queued by the kernel, not refused: 600 handshakes complete
/// while nothing accepts them yet (std's default backlog of 128 would drop the rest).
#[test]
fn accept_backlog_holds_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let ctx = BuildCtx {
        shards: 1,
        batch_size: 64,
        data_dir: dir.path().to_path_buf(),
        registry: registry.clone(),
        lifecycle: Lifecycle::new(),
    };
    // Bound, not served: the listener accepts nothing.
    let (_rt, addr) = config(json!({})).bind(&ctx, "web").expect("bind");
    let conns: Vec<TcpStream> = (0..600)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(900))
                .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"))
        })
        .collect();
    assert_eq!(conns.len(), 600);
}

#[test]
fn connection_limit() {
    let h = start(json!({ "max_connections": 2 }));
    let a = connect(h.addr);
    let b = connect(h.addr);
    let t0 = Instant::now();
    while h.metric("sluice_http_connections_open{component=\"web\"}") < 2 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut c = connect(h.addr);
    let mut buf = [0u8; 16];
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)), "closed at once");
    assert_eq!(h.rejected("too_many_connections"), 1);
    drop((a, b));
    let t0 = Instant::now();
    while h.metric("sluice_http_connections_open{component=\"web\"}") > 0 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
}

#[test]
fn drain_finishes_the_source() {
    let h = start(json!({}));
    assert_eq!(h.post("/log", &[], b"{}").status, 200);
    let idle = connect(h.addr);
    h.lifecycle.begin_drain();
    let t0 = Instant::now();
    while !h.handle.is_finished() {
        assert!(t0.elapsed() < Duration::from_secs(5), "did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(idle);
    assert!(TcpStream::connect(h.addr).is_err(), "no longer listening");
}

#[test]
fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let mut h = start(json!({ "tls": { "cert_file": cert, "key_file": key } }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect(h.addr));
    let r = send_on(
        &mut tls,
        "POST",
        "/logs",
        &[],
        b"{\"s\":1}\n{\"s\":2}\n",
        false,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = send_on(&mut tls, "GET", "/", &[], b"", false).unwrap();
    assert_eq!(r.json()["version"]["number"], "8.11.0");
    assert_eq!(h.events(), ["{\"s\":1}", "{\"s\":2}"]);
    // Plain HTTP to the TLS port gets nowhere and is counted.
    let mut plain = connect(h.addr);
    let _ = plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let t0 = Instant::now();
    while h.rejected("tls_handshake") < 1 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn config_errors_name_the_key() {
    let bad = |v: Value| config(v).validate().unwrap_err().0;
    assert_eq!(bad(json!({"address": "nope"})), "address");
    assert_eq!(bad(json!({"max_body_bytes": 0})), "max_body_bytes");
    assert_eq!(bad(json!({"max_body_bytes": "2GiB"})), "max_body_bytes");
    assert_eq!(bad(json!({"max_connections": 0})), "max_connections");
    assert_eq!(
        bad(json!({"rate_limit": {"requests_per_second": 0}})),
        "rate_limit.requests_per_second"
    );
    assert_eq!(
        bad(json!({"rate_limit": {"requests_per_second": 1, "burst": 0.5}})),
        "rate_limit.burst"
    );
    assert!(serde_json::from_value::<HttpSourceConfig>(
        json!({"address": "127.0.0.1:1", "nope": 1})
    )
    .is_err());
    // A busy port and unreadable files fail at build time.
    let dir = tempfile::tempdir().unwrap();
    let ctx = BuildCtx {
        shards: 1,
        batch_size: 16,
        data_dir: dir.path().to_path_buf(),
        registry: Registry::new(),
        lifecycle: Lifecycle::new(),
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let e = config(json!({"address": addr}))
        .build(&ctx, "x")
        .err()
        .unwrap();
    assert!(e.starts_with("address:"), "{e}");
    let e = config(json!({"api_keys_file": dir.path().join("missing")}))
        .build(&ctx, "x")
        .err()
        .unwrap();
    assert!(e.starts_with("api_keys_file:"), "{e}");
    let e = config(
        json!({"tls": {"cert_file": dir.path().join("c"), "key_file": dir.path().join("k")}}),
    )
    .build(&ctx, "x")
    .err()
    .unwrap();
    assert!(e.starts_with("tls.cert_file:"), "{e}");
}
