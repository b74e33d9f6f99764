//! The synthetic event model of `sluice-loadgen` and its seven line formats.
//!
//! Value distributions follow `shared/bench/gen_logs.py` (level mix debug 40 % / info 45 % /
//! warn 10 % / error 5 %, `service-NN`, `host-NNN`, `/api/v1/RESOURCE/ID` paths, status codes
//! by level, exponential latency with mean 40 ms, ...). The PRNG is our own (wyrand), so the
//! output is not byte-identical to the Python script, but one seed always gives the same
//! events, and every format renders the same event stream.
//!
//! Each event can carry a *stamp*: its sequence number `seq` and a send time `sent_ns` (Unix
//! nanoseconds), written where it survives parsing by Sluice and can be found again by
//! [`crate::listen::scan_stamp`]:
//!
//! | format | where the stamp goes |
//! |---|---|
//! | `json` | last members: `"seq":N,"sent_ns":T` |
//! | `syslog5424` | structured data `[loadgen@32473 seq="N" sent_ns="T"]` (MSG is the JSON line without the stamp) |
//! | `syslog3164` | end of the message: `... seq=N sent_ns=T` |
//! | `apache`, `nginx` | query string of the request path: `?seq=N&sent_ns=T` |
//! | `logfmt` | last pairs: `seq=N sent_ns=T` |
//! | `java-multiline` | end of the first line |
//!
//! Rendering appends to a caller-owned buffer and allocates nothing on its own.

use std::fmt;

/// Output format of the generated events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Syslog5424,
    Syslog3164,
    Apache,
    Nginx,
    Logfmt,
    JavaMultiline,
}

impl Format {
    pub const NAMES: &'static str =
        "json, syslog5424 (alias syslog), syslog3164, apache, nginx, logfmt, java-multiline";

    pub fn parse(s: &str) -> Result<Format, String> {
        Ok(match s {
            "json" => Format::Json,
            "syslog" | "syslog5424" => Format::Syslog5424,
            "syslog3164" => Format::Syslog3164,
            "apache" => Format::Apache,
            "nginx" => Format::Nginx,
            "logfmt" => Format::Logfmt,
            "java-multiline" | "java" => Format::JavaMultiline,
            _ => return Err(format!("unknown format `{s}` ({})", Format::NAMES)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Syslog5424 => "syslog5424",
            Format::Syslog3164 => "syslog3164",
            Format::Apache => "apache",
            Format::Nginx => "nginx",
            Format::Logfmt => "logfmt",
            Format::JavaMultiline => "java-multiline",
        }
    }

    /// Whether one rendered event is a JSON object (sent as is in HTTP bodies).
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The stamp written into an event.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub seq: u64,
    pub sent_ns: u64,
}

const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
const LEVELS_UPPER: [&str; 4] = ["DEBUG", "INFO", "WARN", "ERROR"];
/// Syslog severity per level (debug=7 info=6 warn=4 error=3), facility local0.
const PRI: [&str; 4] = ["<135>", "<134>", "<132>", "<131>"];
const SERVICES: [&str; 10] = [
    "checkout", "cart", "payments", "search", "auth", "catalog", "stock", "shipping", "gateway",
    "notify",
];
const HOSTS: [&str; 4] = ["web", "api", "worker", "edge"];
const METHODS: [&str; 8] = ["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];
const RESOURCES: [&str; 8] = [
    "orders", "users", "carts", "items", "payments", "sessions", "products", "invoices",
];
const SUFFIXES: [&str; 2] = ["items", "status"];
const STATIC: [&str; 5] = [
    "/static/app.js",
    "/static/app.css",
    "/favicon.ico",
    "/img/logo.png",
    "/healthz",
];
const TABLES: [&str; 6] = [
    "orders",
    "users",
    "line_items",
    "payments",
    "sessions",
    "stock",
];
const CACHE_KEYS: [&str; 5] = ["user_profile", "cart_summary", "price_list", "flags", "geo"];
const UPSTREAMS: [&str; 5] = [
    "stock-svc",
    "payments-gw",
    "search-idx",
    "auth-svc",
    "ship-api",
];
const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "JPY"];
const UAS: [&str; 5] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];
const REFERERS: [&str; 4] = [
    "-",
    "https://shop.example.com/",
    "https://shop.example.com/cart",
    "https://www.google.com/",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const STATUS_ERROR: [u16; 4] = [500, 502, 503, 504];
const STATUS_WARN: [u16; 4] = [200, 404, 409, 429];
const STATUS_OK: [u16; 6] = [200, 200, 200, 201, 204, 304];
const EXCEPTIONS: [&str; 5] = [
    "java.lang.IllegalStateException",
    "java.lang.NullPointerException",
    "java.util.concurrent.TimeoutException",
    "java.lang.IllegalArgumentException",
    "org.springframework.dao.DataAccessException",
];
const CAUSES: [&str; 3] = [
    "java.io.IOException: Connection reset by peer",
    "java.net.SocketTimeoutException: Read timed out",
    "java.sql.SQLTransientConnectionException: pool exhausted",
];
const CLASSES: [&str; 8] = [
    "OrderService",
    "CartController",
    "PaymentClient",
    "SearchIndex",
    "AuthFilter",
    "StockRepository",
    "ShippingGateway",
    "NotifyWorker",
];
const METHODS_JAVA: [&str; 8] = [
    "handle",
    "process",
    "invoke",
    "doFilter",
    "call",
    "execute",
    "lambda$run$0",
    "apply",
];
const FRAMEWORK: [&str; 6] = [
    "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
    "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:564)",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1144)",
    "java.base/java.util.concurrent.FutureTask.run(FutureTask.java:317)",
    "java.base/java.lang.Thread.run(Thread.java:1583)",
];

/// 2026-11-20T12:00:00.000Z in ms since the Unix epoch.
const START_MS: u64 = 1_795_176_000_000;

/// wyrand: a small, fast 64-bit PRNG. Not cryptographic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// One drawn event.
struct Event {
    level: usize,
    service: &'static str,
    service_n: u64,
    host: &'static str,
    host_n: u64,
    trace: (u64, u64),
    method: &'static str,
    resource: &'static str,
    rid: u64,
    suffix: Option<&'static str>,
    status: u16,
    latency_tenths: u64,
    uid: u64,
    msg: Msg,
    ip: [u64; 3],
    bytes: u64,
    ua: &'static str,
    referer: &'static str,
    pid: u64,
    /// Static asset path for nginx (30 % of its requests), else None.
    asset: Option<&'static str>,
    /// Java stack: (exception, class, frames 5..=30, cause?, seed for frame details).
    java: (&'static str, &'static str, u64, Option<&'static str>, u64),
}

enum Msg {
    Key(&'static str, &'static str),
    Pool(u64, u64),
    Word(&'static str, &'static str),
    Num(&'static str, u64, &'static str),
    Payment(u64, &'static str),
    SlowQuery(&'static str, u64),
    Retry(&'static str, u64),
    Fixed(&'static str),
    Upstream(&'static str, &'static str),
}

/// Deterministic event generator for one format.
pub struct Generator {
    format: Format,
    rng: Rng,
    t_ms: u64,
    cached_sec: u64,
    /// `YYYY-MM-DDTHH:MM:SS`
    iso: [u8; 19],
    /// `DD/Mon/YYYY:HH:MM:SS +0000`
    clf: [u8; 26],
    /// `Mon DD HH:MM:SS` (RFC 3164, day space-padded)
    bsd: [u8; 15],
}

impl Generator {
    pub fn new(format: Format, seed: u64) -> Generator {
        // splitmix64 finalizer: nearby seeds start from unrelated states.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Generator {
            format,
            rng: Rng(z ^ (z >> 31)),
            t_ms: START_MS,
            cached_sec: u64::MAX,
            iso: [0; 19],
            clf: [0; 26],
            bsd: [0; 15],
        }
    }

    /// Appends one event (no trailing newline; `java-multiline` events hold newlines).
    pub fn next_into(&mut self, stamp: Option<Stamp>, out: &mut Vec<u8>) {
        let ev = self.draw();
        let sec = self.t_ms / 1000;
        if sec != self.cached_sec {
            self.set_second(sec);
        }
        let ms = self.t_ms % 1000;
        match self.format {
            Format::Json => {
                self.json(&ev, ms, out);
                out.pop();
                if let Some(s) = stamp {
                    out.extend_from_slice(b",\"seq\":");
                    num(out, s.seq);
                    out.extend_from_slice(b",\"sent_ns\":");
                    num(out, s.sent_ns);
                }
                out.push(b'}');
            }
            Format::Syslog5424 => {
                put(out, PRI[ev.level]);
                put(out, "1 ");
                self.iso_ts(ms, out);
                out.push(b' ');
                host(&ev, out);
                out.push(b' ');
                service(&ev, out);
                out.push(b' ');
                num(out, ev.pid);
                put(out, " req ");
                match stamp {
                    Some(s) => {
                        put(out, "[loadgen@32473 seq=\"");
                        num(out, s.seq);
                        put(out, "\" sent_ns=\"");
                        num(out, s.sent_ns);
                        put(out, "\"] ");
                    }
                    None => put(out, "- "),
                }
                self.json(&ev, ms, out);
            }
            Format::Syslog3164 => {
                put(out, PRI[ev.level]);
                out.extend_from_slice(&self.bsd);
                out.push(b' ');
                host(&ev, out);
                out.push(b' ');
                service(&ev, out);
                out.push(b'[');
                num(out, ev.pid);
                put(out, "]: ");
                put(out, LEVELS[ev.level]);
                put(out, ": ");
                msg(&ev, out);
                put(out, " (");
                put(out, ev.method);
                out.push(b' ');
                path(&ev, out);
                out.push(b' ');
                num(out, u64::from(ev.status));
                out.push(b' ');
                tenths(out, ev.latency_tenths);
                put(out, "ms)");
                if let Some(s) = stamp {
                    put(out, " seq=");
                    num(out, s.seq);
                    put(out, " sent_ns=");
                    num(out, s.sent_ns);
                }
            }
            Format::Apache | Format::Nginx => {
                let nginx = self.format == Format::Nginx;
                put(out, "10.");
                num(out, ev.ip[0]);
                out.push(b'.');
                num(out, ev.ip[1]);
                out.push(b'.');
                num(out, ev.ip[2]);
                if nginx {
                    put(out, " - - [");
                } else {
                    put(out, " - user");
                    num(out, ev.uid);
                    put(out, " [");
                }
                out.extend_from_slice(&self.clf);
                put(out, "] \"");
                put(out, ev.method);
                out.push(b' ');
                match ev.asset {
                    Some(a) if nginx => put(out, a),
                    _ => path(&ev, out),
                }
                if let Some(s) = stamp {
                    put(out, "?seq=");
                    num(out, s.seq);
                    put(out, "&sent_ns=");
                    num(out, s.sent_ns);
                }
                put(out, " HTTP/1.1\" ");
                num(out, u64::from(ev.status));
                out.push(b' ');
                num(out, ev.bytes);
                put(out, " \"");
                put(out, ev.referer);
                put(out, "\" \"");
                put(out, ev.ua);
                out.push(b'"');
            }
            Format::Logfmt => {
                put(out, "ts=");
                self.iso_ts(ms, out);
                put(out, " level=");
                put(out, LEVELS[ev.level]);
                put(out, " service=");
                service(&ev, out);
                put(out, " host=");
                host(&ev, out);
                put(out, " trace_id=");
                trace(&ev, out);
                put(out, " msg=\"");
                msg(&ev, out);
                put(out, "\" method=");
                put(out, ev.method);
                put(out, " path=");
                path(&ev, out);
                put(out, " status=");
                num(out, u64::from(ev.status));
                put(out, " latency_ms=");
                tenths(out, ev.latency_tenths);
                put(out, " user_id=");
                num(out, ev.uid);
                if let Some(s) = stamp {
                    put(out, " seq=");
                    num(out, s.seq);
                    put(out, " sent_ns=");
                    num(out, s.sent_ns);
                }
            }
            Format::JavaMultiline => self.java(&ev, ms, stamp, out),
        }
    }

    fn draw(&mut self) -> Event {
        let r = &mut self.rng;
        self.t_ms += r.range(0, 3);
        let p = r.below(100);
        let level = match p {
            0..=39 => 0,
            40..=84 => 1,
            85..=94 => 2,
            _ => 3,
        };
        let service = r.pick(&SERVICES);
        let service_n = r.range(1, 12);
        let host = r.pick(&HOSTS);
        let host_n = r.range(1, 240);
        let trace = (r.next(), r.next());
        let method = r.pick(&METHODS);
        let resource = r.pick(&RESOURCES);
        let rid = r.range(1, 99_999);
        let suffix = (r.unit() < 0.1).then(|| r.pick(&SUFFIXES));
        let status = match level {
            3 => r.pick(&STATUS_ERROR),
            2 => r.pick(&STATUS_WARN),
            _ => r.pick(&STATUS_OK),
        };
        // expovariate(1/40) + 0.3 ms, one decimal.
        let latency = -(1.0 - r.unit()).ln() * 40.0 + 0.3;
        let latency_tenths = (latency * 10.0).round() as u64;
        let uid = r.range(1000, 99_999);
        let msg = match (level, r.below(5)) {
            (0, 0) => Msg::Key("cache hit key=", r.pick(&CACHE_KEYS)),
            (0, 1) => Msg::Key("cache miss key=", r.pick(&CACHE_KEYS)),
            (0, 2) => Msg::Pool(r.range(0, 255), r.range(0, 255)),
            (0, 3) => Msg::Word("resolved ", r.pick(&UPSTREAMS)),
            (0, _) => Msg::Num("headers parsed n=", r.range(0, 255), ""),
            (1, 0) => Msg::Num("order ", r.range(1, 999_999), " placed"),
            (1, 1) => Msg::Num("user ", uid, " logged in"),
            (1, 2) => Msg::Payment(r.below(50_000), r.pick(&CURRENCIES)),
            (1, 3) => Msg::Num("request done ", r.range(0, 65_536), "B"),
            (1, _) => Msg::Num("cart updated qty=", r.range(0, 255), ""),
            (2, 0 | 1) => Msg::SlowQuery(r.pick(&TABLES), r.range(50, 5000)),
            (2, 2 | 3) => Msg::Retry(r.pick(&UPSTREAMS), r.range(0, 255)),
            (2, _) => Msg::Fixed("rate limit near"),
            (_, 0 | 1) => Msg::Upstream(r.pick(&UPSTREAMS), " returned 503"),
            (_, 2 | 3) => Msg::Word("deadlock on ", r.pick(&TABLES)),
            (_, _) => Msg::Word("conn reset by ", r.pick(&UPSTREAMS)),
        };
        let ip = [r.range(0, 255), r.range(0, 255), r.range(1, 254)];
        let bytes = r.range(0, 50_000);
        let ua = r.pick(&UAS);
        let referer = r.pick(&REFERERS);
        let pid = r.range(100, 65_000);
        let asset = (r.unit() < 0.3).then(|| r.pick(&STATIC));
        let java = (
            r.pick(&EXCEPTIONS),
            r.pick(&CLASSES),
            r.range(5, 30),
            (r.unit() < 0.3).then(|| r.pick(&CAUSES)),
            r.next(),
        );
        Event {
            level,
            service,
            service_n,
            host,
            host_n,
            trace,
            method,
            resource,
            rid,
            suffix,
            status,
            latency_tenths,
            uid,
            msg,
            ip,
            bytes,
            ua,
            referer,
            pid,
            asset,
            java,
        }
    }

    /// The gen_logs.py JSON line.
    fn json(&self, ev: &Event, ms: u64, out: &mut Vec<u8>) {
        put(out, "{\"ts\":\"");
        self.iso_ts(ms, out);
        put(out, "\",\"level\":\"");
        put(out, LEVELS[ev.level]);
        put(out, "\",\"service\":\"");
        service(ev, out);
        put(out, "\",\"host\":\"");
        host(ev, out);
        put(out, "\",\"trace_id\":\"");
        trace(ev, out);
        put(out, "\",\"msg\":\"");
        msg(ev, out);
        put(out, "\",\"http\":{\"method\":\"");
        put(out, ev.method);
        put(out, "\",\"path\":\"");
        path(ev, out);
        put(out, "\",\"status\":");
        num(out, u64::from(ev.status));
        put(out, ",\"latency_ms\":");
        tenths(out, ev.latency_tenths);
        put(out, "},\"user\":{\"id\":");
        num(out, ev.uid);
        put(out, "}}");
    }

    fn java(&self, ev: &Event, ms: u64, stamp: Option<Stamp>, out: &mut Vec<u8>) {
        let (exception, class, frames, cause, mut bits) = ev.java;
        // 2026-11-20 12:00:00.001 ERROR [checkout-07] [web-113] c.e.checkout.OrderService - msg
        out.extend_from_slice(&self.iso[..10]);
        out.push(b' ');
        out.extend_from_slice(&self.iso[11..]);
        out.push(b'.');
        pad3(out, ms);
        out.push(b' ');
        put(out, LEVELS_UPPER[ev.level]);
        put(out, " [");
        service(ev, out);
        put(out, "] [");
        host(ev, out);
        put(out, "] com.example.");
        put(out, ev.service);
        out.push(b'.');
        put(out, class);
        put(out, " - ");
        msg(ev, out);
        if let Some(s) = stamp {
            put(out, " seq=");
            num(out, s.seq);
            put(out, " sent_ns=");
            num(out, s.sent_ns);
        }
        out.push(b'\n');
        put(out, exception);
        put(out, ": ");
        msg(ev, out);
        let mut frame = |out: &mut Vec<u8>, i: u64| {
            put(out, "\n\tat ");
            // Own frames first, then framework frames.
            if i < 3 || bits & 1 == 0 {
                put(out, "com.example.");
                put(out, ev.service);
                out.push(b'.');
                put(out, CLASSES[(bits % 8) as usize]);
                out.push(b'.');
                put(out, METHODS_JAVA[((bits >> 3) % 8) as usize]);
                out.push(b'(');
                put(out, CLASSES[(bits % 8) as usize]);
                put(out, ".java:");
                num(out, 20 + (bits >> 6) % 900);
                out.push(b')');
            } else {
                put(out, FRAMEWORK[((bits >> 6) % 6) as usize]);
            }
            bits = bits.rotate_right(7) ^ 0x9e37_79b9;
        };
        for i in 0..frames {
            frame(out, i);
        }
        if let Some(c) = cause {
            put(out, "\nCaused by: ");
            put(out, c);
            for i in 0..3 {
                frame(out, i);
            }
            put(out, "\n\t... ");
            num(out, frames.saturating_sub(3));
            put(out, " more");
        }
    }

    fn iso_ts(&self, ms: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.iso);
        out.push(b'.');
        pad3(out, ms);
        out.push(b'Z');
    }

    fn set_second(&mut self, sec: u64) {
        let (y, m, d) = civil_from_days(sec / 86_400);
        let sod = sec % 86_400;
        let (hh, mm, ss) = (sod / 3600, sod / 60 % 60, sod % 60);
        let mut w = Vec::with_capacity(32);
        // (Once per simulated second, not per event.)
        use std::io::Write;
        let _ = write!(w, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
        self.iso.copy_from_slice(&w[..19]);
        w.clear();
        let mon = MONTHS[(m - 1) as usize];
        let _ = write!(w, "{d:02}/{mon}/{y:04}:{hh:02}:{mm:02}:{ss:02} +0000");
        self.clf.copy_from_slice(&w[..26]);
        w.clear();
        let _ = write!(w, "{mon} {d:>2} {hh:02}:{mm:02}:{ss:02}");
        self.bsd.copy_from_slice(&w[..15]);
        self.cached_sec = sec;
    }
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn service(ev: &Event, out: &mut Vec<u8>) {
    put(out, ev.service);
    out.push(b'-');
    pad(out, ev.service_n, 2);
}

fn host(ev: &Event, out: &mut Vec<u8>) {
    put(out, ev.host);
    out.push(b'-');
    pad(out, ev.host_n, 3);
}

fn trace(ev: &Event, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (i, b) in hex.iter_mut().enumerate() {
        let v = if i < 16 { ev.trace.0 } else { ev.trace.1 };
        *b = HEX[((v >> (60 - 4 * (i % 16))) & 0xf) as usize];
    }
    out.extend_from_slice(&hex);
}

fn path(ev: &Event, out: &mut Vec<u8>) {
    put(out, "/api/v1/");
    put(out, ev.resource);
    out.push(b'/');
    num(out, ev.rid);
    if let Some(s) = ev.suffix {
        out.push(b'/');
        put(out, s);
    }
}

/// The message text: never holds `"` or `\`, so it goes into JSON and logfmt verbatim.
fn msg(ev: &Event, out: &mut Vec<u8>) {
    match ev.msg {
        Msg::Key(a, b) | Msg::Word(a, b) => {
            put(out, a);
            put(out, b);
        }
        Msg::Upstream(a, b) => {
            put(out, a);
            put(out, b);
        }
        Msg::Pool(a, b) => {
            put(out, "pool idle=");
            num(out, a);
            put(out, " busy=");
            num(out, b);
        }
        Msg::Num(a, n, b) => {
            put(out, a);
            num(out, n);
            put(out, b);
        }
        Msg::Payment(cents, cur) => {
            put(out, "payment ok ");
            num(out, cents / 100);
            out.push(b'.');
            pad(out, cents % 100, 2);
            out.push(b' ');
            put(out, cur);
        }
        Msg::SlowQuery(t, ms) => {
            put(out, "slow query ");
            put(out, t);
            out.push(b' ');
            num(out, ms);
            put(out, "ms");
        }
        Msg::Retry(u, a) => {
            put(out, "retry ");
            put(out, u);
            put(out, " attempt=");
            num(out, a);
        }
        Msg::Fixed(s) => put(out, s),
    }
}

/// Appends `v` in decimal.
pub fn num(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn pad(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut x = v;
    for i in (0..width).rev() {
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

fn pad3(out: &mut Vec<u8>, v: u64) {
    pad(out, v, 3);
}

fn tenths(out: &mut Vec<u8>, t: u64) {
    num(out, t / 10);
    out.push(b'.');
    out.push(b'0' + (t % 10) as u8);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: Format, seed: u64, n: u64) -> Vec<String> {
        let mut g = Generator::new(f, seed);
        (0..n)
            .map(|seq| {
                let mut b = Vec::new();
                g.next_into(
                    Some(Stamp {
                        seq,
                        sent_ns: 1_700_000_000_000_000_000 + seq,
                    }),
                    &mut b,
                );
                String::from_utf8(b).unwrap()
            })
            .collect()
    }

    #[test]
    fn every_format_carries_the_stamp_where_the_scanner_finds_it() {
        for f in [
            Format::Json,
            Format::Syslog5424,
            Format::Syslog3164,
            Format::Apache,
            Format::Nginx,
            Format::Logfmt,
            Format::JavaMultiline,
        ] {
            for (seq, line) in render(f, 7, 200).iter().enumerate() {
                let st = crate::listen::scan_stamp(line.as_bytes()).expect(line);
                assert_eq!(st.seq, seq as u64, "{f}: {line}");
                assert_eq!(st.sent_ns, 1_700_000_000_000_000_000 + seq as u64);
            }
        }
    }

    #[test]
    fn dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_777), (2026, 11, 20));
        let mut g = Generator::new(Format::Syslog3164, 1);
        let mut b = Vec::new();
        g.next_into(None, &mut b);
        assert!(String::from_utf8(b).unwrap().contains(">Nov 20 12:00:00 "));
    }

    #[test]
    fn level_mix_is_about_right() {
        let lines = render(Format::Json, 3, 20_000);
        let errors = lines
            .iter()
            .filter(|l| l.contains("\"level\":\"error\""))
            .count();
        let debug = lines
            .iter()
            .filter(|l| l.contains("\"level\":\"debug\""))
            .count();
        assert!((800..1200).contains(&errors), "{errors}");
        assert!((7400..8600).contains(&debug), "{debug}");
    }
}
