//! Deterministic synthetic log lines for the generator source.
//!
//! This module owns the synthetic *event model* (level, service, host, trace
//! id, HTTP request, user, message, client address, ...) and its rendering into
//! the three line formats used by the benchmarks. It mirrors
//! `shared/bench/gen_logs.py`: same fields, same value ranges and
//! distributions, same line layouts. Byte-identity with the Python script is
//! not a goal (we use our own PRNG, wyrand), but for a given seed the output is
//! fully deterministic, and every format draws the same event stream, so the
//! json / syslog / apache outputs for one seed describe the same events.
//!
//! * `json`: `{"ts":"2026-11-20T12:00:00.001Z","level":"info","service":"cart-03",
//!   "host":"web-017","trace_id":"<32 hex>","msg":"...","http":{"method":"GET",
//!   "path":"/api/v1/orders/123","status":200,"latency_ms":12.3},"user":{"id":48213}}`
//! * `syslog`: RFC 5424, facility local0, severity from the level
//!   (debug=7 info=6 warn=4 error=3), MSG is exactly the JSON line:
//!   `<134>1 TS HOST SERVICE PID req - {json}`
//! * `apache`: Apache combined log format:
//!   `10.1.2.3 - user48213 [20/Nov/2026:12:00:00 +0000] "GET /api/v1/orders/123 HTTP/1.1" 200 5120 "-" "curl/8.5.0"`
//!
//! Level mix: debug 40 %, info 45 %, warn 10 %, error 5 %. Timestamps start at
//! 2026-11-20T12:00:00.000Z (overridable) and advance by 0..=3 ms per event.
//!
//! [`Synth::next_into`] appends one line to a caller-owned buffer and never
//! allocates on its own (it only grows the buffer when it lacks capacity).
//! Dates are formatted by hand (civil-from-days), without chrono.

/// Output line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthFormat {
    /// One JSON object per line.
    Json,
    /// RFC 5424 syslog whose MSG part is the JSON object.
    Syslog,
    /// Apache combined log format.
    Apache,
}

/// Level of a generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl SynthLevel {
    /// Lowercase name, as written in the `level` field.
    pub fn as_str(self) -> &'static str {
        match self {
            SynthLevel::Debug => "debug",
            SynthLevel::Info => "info",
            SynthLevel::Warn => "warn",
            SynthLevel::Error => "error",
        }
    }

    /// Syslog PRI for facility local0 (16): `16 * 8 + severity`.
    fn syslog_pri(self) -> &'static [u8] {
        match self {
            SynthLevel::Debug => b"<135>",
            SynthLevel::Info => b"<134>",
            SynthLevel::Warn => b"<132>",
            SynthLevel::Error => b"<131>",
        }
    }
}

/// 2026-11-20T12:00:00.000Z in ms since the Unix epoch.
const DEFAULT_START_MS: u64 = 1_795_176_000_000;
/// 10000-01-01T00:00:00Z: timestamps are written with a 4-digit year.
const MAX_START_MS: u64 = 253_402_300_800_000;

const SERVICES: [&[u8]; 10] = [
    b"checkout",
    b"cart",
    b"payments",
    b"search",
    b"auth",
    b"catalog",
    b"stock",
    b"shipping",
    b"gateway",
    b"notify",
];
const HOST_PREFIXES: [&[u8]; 4] = [b"web", b"api", b"worker", b"edge"];
const METHODS: [&[u8]; 8] = [
    b"GET", b"GET", b"GET", b"GET", b"POST", b"POST", b"PUT", b"DELETE",
];
const RESOURCES: [&[u8]; 8] = [
    b"orders",
    b"users",
    b"carts",
    b"items",
    b"payments",
    b"sessions",
    b"products",
    b"invoices",
];
const PATH_SUFFIXES: [&[u8]; 2] = [b"items", b"status"];
const TABLES: [&[u8]; 6] = [
    b"orders",
    b"users",
    b"line_items",
    b"payments",
    b"sessions",
    b"stock",
];
const CACHE_KEYS: [&[u8]; 5] = [
    b"user_profile",
    b"cart_summary",
    b"price_list",
    b"flags",
    b"geo",
];
const UPSTREAMS: [&[u8]; 5] = [
    b"stock-svc",
    b"payments-gw",
    b"search-idx",
    b"auth-svc",
    b"ship-api",
];
const CURRENCIES: [&[u8]; 4] = [b"EUR", b"USD", b"GBP", b"JPY"];
const UAS: [&[u8]; 5] = [
    b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    b"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    b"curl/8.5.0",
    b"okhttp/4.12.0",
    b"python-requests/2.32.3",
];
const REFERERS: [&[u8]; 4] = [
    b"-",
    b"https://shop.example.com/",
    b"https://shop.example.com/cart",
    b"https://www.google.com/",
];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const STATUS_ERROR: [u16; 4] = [500, 502, 503, 504];
const STATUS_WARN: [u16; 4] = [200, 404, 409, 429];
const STATUS_OK: [u16; 6] = [200, 200, 200, 201, 204, 304];
const HEX: &[u8; 16] = b"0123456789abcdef";

/// wyrand: a tiny, fast 64-bit PRNG (Wang Yi). Not cryptographic.
#[derive(Debug, Clone)]
struct WyRand(u64);

impl WyRand {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is negligible for small `n`).
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniformly chosen index into a slice of length `n`.
    #[inline]
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The message of an event: template plus its parameters (indices into the
/// word tables above or plain numbers).
#[derive(Debug, Clone, Copy)]
enum Msg {
    CacheHit(usize),
    CacheMiss(usize),
    Pool(u8, u8),
    Resolved(usize),
    HeadersParsed(u8),
    OrderPlaced(u32),
    UserLoggedIn,
    PaymentOk(u32, usize),
    RequestDone(u32),
    CartUpdated(u8),
    SlowQuery(usize, u32),
    Retry(usize, u8),
    RateLimitNear,
    Returned503(usize),
    Deadlock(usize),
    ConnReset(usize),
}

/// One synthetic event, all fields drawn regardless of the output format.
#[derive(Debug, Clone, Copy)]
struct Event {
    level: SynthLevel,
    service: usize,
    service_n: u8,
    host_prefix: usize,
    host_n: u8,
    trace_hi: u64,
    trace_lo: u64,
    method: usize,
    resource: usize,
    rid: u32,
    suffix: Option<usize>,
    status: u16,
    latency_tenths: u64,
    uid: u32,
    msg: Msg,
    ip: [u8; 3],
    bytes: u32,
    ua: usize,
    referer: usize,
    pid: u32,
}

/// Deterministic synthetic log-line generator (see the module docs).
#[derive(Debug, Clone)]
pub struct Synth {
    format: SynthFormat,
    rng: WyRand,
    /// Timestamp of the previous event, ms since the epoch.
    t_ms: u64,
    /// Second (since the epoch) that `iso` and `apache` currently describe.
    cached_sec: u64,
    /// `YYYY-MM-DDTHH:MM:SS.` for `cached_sec`.
    iso: [u8; 20],
    /// `DD/Mon/YYYY:HH:MM:SS +0000` for `cached_sec`.
    apache: [u8; 26],
}

impl Synth {
    /// A generator for `format` whose output is fully determined by `seed`.
    pub fn new(format: SynthFormat, seed: u64) -> Synth {
        // Scramble the seed once (splitmix64 finalizer) so that nearby seeds
        // start from unrelated states.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Synth {
            format,
            rng: WyRand(z),
            t_ms: DEFAULT_START_MS,
            cached_sec: u64::MAX,
            iso: [0; 20],
            apache: [0; 26],
        }
    }

    /// Override the start time (ms since the epoch) of the timestamps; the
    /// default is 1795176000000 (2026-11-20T12:00:00.000Z). The first event is
    /// 0..=3 ms after it.
    ///
    /// # Panics
    /// If `ms` is not before the year 10000.
    pub fn with_start_ms(mut self, ms: u64) -> Synth {
        assert!(
            ms < MAX_START_MS,
            "synth start time must be before year 10000"
        );
        self.t_ms = ms;
        self.cached_sec = u64::MAX;
        self
    }

    /// Appends one line (WITHOUT a trailing newline) to `out` and returns its
    /// level. Never allocates except by growing `out` when it lacks capacity.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> SynthLevel {
        let ev = self.draw();
        let sec = self.t_ms / 1000;
        if sec != self.cached_sec {
            self.set_second(sec);
        }
        let frac = (self.t_ms % 1000) as u32;
        match self.format {
            SynthFormat::Json => self.render_json(&ev, frac, out),
            SynthFormat::Syslog => {
                out.extend_from_slice(ev.level.syslog_pri());
                out.extend_from_slice(b"1 ");
                self.put_iso(frac, out);
                out.push(b' ');
                put_host(&ev, out);
                out.push(b' ');
                put_service(&ev, out);
                out.push(b' ');
                put_u64(out, u64::from(ev.pid));
                out.extend_from_slice(b" req - ");
                self.render_json(&ev, frac, out);
            }
            SynthFormat::Apache => self.render_apache(&ev, out),
        }
        ev.level
    }

    /// Draws the next event (advancing the clock) in the fixed field order.
    fn draw(&mut self) -> Event {
        let r = &mut self.rng;
        self.t_ms += r.range(0, 3);
        let p = r.below(100);
        let level = if p < 40 {
            SynthLevel::Debug
        } else if p < 85 {
            SynthLevel::Info
        } else if p < 95 {
            SynthLevel::Warn
        } else {
            SynthLevel::Error
        };
        let service = r.index(SERVICES.len());
        let service_n = r.range(1, 12) as u8;
        let host_prefix = r.index(HOST_PREFIXES.len());
        let host_n = r.range(1, 240) as u8;
        let trace_hi = r.next_u64();
        let trace_lo = r.next_u64();
        let method = r.index(METHODS.len());
        let resource = r.index(RESOURCES.len());
        let rid = r.range(1, 99_999) as u32;
        let suffix = if r.unit() < 0.1 {
            Some(r.index(PATH_SUFFIXES.len()))
        } else {
            None
        };
        let status = match level {
            SynthLevel::Error => STATUS_ERROR[r.index(STATUS_ERROR.len())],
            SynthLevel::Warn => STATUS_WARN[r.index(STATUS_WARN.len())],
            _ => STATUS_OK[r.index(STATUS_OK.len())],
        };
        // expovariate(1/40) + 0.3, rounded to one decimal.
        let latency = -(1.0 - r.unit()).ln() * 40.0 + 0.3;
        let latency_tenths = (latency * 10.0).round() as u64;
        let uid = r.range(1000, 99_999) as u32;
        let msg = match level {
            SynthLevel::Debug => match r.below(5) {
                0 => Msg::CacheHit(r.index(CACHE_KEYS.len())),
                1 => Msg::CacheMiss(r.index(CACHE_KEYS.len())),
                2 => Msg::Pool(r.range(0, 255) as u8, r.range(0, 255) as u8),
                3 => Msg::Resolved(r.index(UPSTREAMS.len())),
                _ => Msg::HeadersParsed(r.range(0, 255) as u8),
            },
            SynthLevel::Info => match r.below(5) {
                0 => Msg::OrderPlaced(r.range(1, 999_999) as u32),
                1 => Msg::UserLoggedIn,
                2 => Msg::PaymentOk(r.below(50_000) as u32, r.index(CURRENCIES.len())),
                3 => Msg::RequestDone(r.range(0, 65_536) as u32),
                _ => Msg::CartUpdated(r.range(0, 255) as u8),
            },
            SynthLevel::Warn => match r.below(3) {
                0 => Msg::SlowQuery(r.index(TABLES.len()), r.range(50, 5000) as u32),
                1 => Msg::Retry(r.index(UPSTREAMS.len()), r.range(0, 255) as u8),
                _ => Msg::RateLimitNear,
            },
            SynthLevel::Error => match r.below(3) {
                0 => Msg::Returned503(r.index(UPSTREAMS.len())),
                1 => Msg::Deadlock(r.index(TABLES.len())),
                _ => Msg::ConnReset(r.index(UPSTREAMS.len())),
            },
        };
        let ip = [
            r.range(0, 255) as u8,
            r.range(0, 255) as u8,
            r.range(1, 254) as u8,
        ];
        let bytes = r.range(0, 50_000) as u32;
        let ua = r.index(UAS.len());
        let referer = r.index(REFERERS.len());
        let pid = r.range(100, 65_000) as u32;
        Event {
            level,
            service,
            service_n,
            host_prefix,
            host_n,
            trace_hi,
            trace_lo,
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
        }
    }

    /// Recomputes the cached per-second timestamp prefixes.
    fn set_second(&mut self, sec: u64) {
        let (y, m, d) = civil_from_days(sec / 86_400);
        let sod = (sec % 86_400) as u32;
        let (hh, mm, ss) = (sod / 3600, sod / 60 % 60, sod % 60);

        let iso = &mut self.iso;
        write_digits(&mut iso[0..4], y);
        iso[4] = b'-';
        write_digits(&mut iso[5..7], m);
        iso[7] = b'-';
        write_digits(&mut iso[8..10], d);
        iso[10] = b'T';
        write_digits(&mut iso[11..13], hh);
        iso[13] = b':';
        write_digits(&mut iso[14..16], mm);
        iso[16] = b':';
        write_digits(&mut iso[17..19], ss);
        iso[19] = b'.';

        let ap = &mut self.apache;
        write_digits(&mut ap[0..2], d);
        ap[2] = b'/';
        ap[3..6].copy_from_slice(MONTHS[(m - 1) as usize]);
        ap[6] = b'/';
        write_digits(&mut ap[7..11], y);
        ap[11] = b':';
        write_digits(&mut ap[12..14], hh);
        ap[14] = b':';
        write_digits(&mut ap[15..17], mm);
        ap[17] = b':';
        write_digits(&mut ap[18..20], ss);
        ap[20..26].copy_from_slice(b" +0000");

        self.cached_sec = sec;
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`
    #[inline]
    fn put_iso(&self, frac: u32, out: &mut Vec<u8>) {
        let mut ms = [0u8; 4];
        write_digits(&mut ms[0..3], frac);
        ms[3] = b'Z';
        out.extend_from_slice(&self.iso);
        out.extend_from_slice(&ms);
    }

    fn render_json(&self, ev: &Event, frac: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ts\":\"");
        self.put_iso(frac, out);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(ev.level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"service\":\"");
        put_service(ev, out);
        out.extend_from_slice(b"\",\"host\":\"");
        put_host(ev, out);
        out.extend_from_slice(b"\",\"trace_id\":\"");
        let mut hex = [0u8; 32];
        write_hex(&mut hex[0..16], ev.trace_hi);
        write_hex(&mut hex[16..32], ev.trace_lo);
        out.extend_from_slice(&hex);
        out.extend_from_slice(b"\",\"msg\":\"");
        put_msg(ev, out);
        out.extend_from_slice(b"\",\"http\":{\"method\":\"");
        out.extend_from_slice(METHODS[ev.method]);
        out.extend_from_slice(b"\",\"path\":\"");
        put_path(ev, out);
        out.extend_from_slice(b"\",\"status\":");
        put_u64(out, u64::from(ev.status));
        out.extend_from_slice(b",\"latency_ms\":");
        put_u64(out, ev.latency_tenths / 10);
        out.push(b'.');
        out.push(b'0' + (ev.latency_tenths % 10) as u8);
        out.extend_from_slice(b"},\"user\":{\"id\":");
        put_u64(out, u64::from(ev.uid));
        out.extend_from_slice(b"}}");
    }

    fn render_apache(&self, ev: &Event, out: &mut Vec<u8>) {
        out.extend_from_slice(b"10.");
        put_u64(out, u64::from(ev.ip[0]));
        out.push(b'.');
        put_u64(out, u64::from(ev.ip[1]));
        out.push(b'.');
        put_u64(out, u64::from(ev.ip[2]));
        out.extend_from_slice(b" - user");
        put_u64(out, u64::from(ev.uid));
        out.extend_from_slice(b" [");
        out.extend_from_slice(&self.apache);
        out.extend_from_slice(b"] \"");
        out.extend_from_slice(METHODS[ev.method]);
        out.push(b' ');
        put_path(ev, out);
        out.extend_from_slice(b" HTTP/1.1\" ");
        put_u64(out, u64::from(ev.status));
        out.push(b' ');
        put_u64(out, u64::from(ev.bytes));
        out.extend_from_slice(b" \"");
        out.extend_from_slice(REFERERS[ev.referer]);
        out.extend_from_slice(b"\" \"");
        out.extend_from_slice(UAS[ev.ua]);
        out.push(b'"');
    }
}

/// `checkout-07`
#[inline]
fn put_service(ev: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(SERVICES[ev.service]);
    let mut b = [b'-', 0, 0];
    write_digits(&mut b[1..3], u32::from(ev.service_n));
    out.extend_from_slice(&b);
}

/// `web-113`
#[inline]
fn put_host(ev: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(HOST_PREFIXES[ev.host_prefix]);
    let mut b = [b'-', 0, 0, 0];
    write_digits(&mut b[1..4], u32::from(ev.host_n));
    out.extend_from_slice(&b);
}

/// `/api/v1/orders/123` or `/api/v1/orders/123/status`
#[inline]
fn put_path(ev: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b"/api/v1/");
    out.extend_from_slice(RESOURCES[ev.resource]);
    out.push(b'/');
    put_u64(out, u64::from(ev.rid));
    if let Some(s) = ev.suffix {
        out.push(b'/');
        out.extend_from_slice(PATH_SUFFIXES[s]);
    }
}

/// The message text; never contains `"` or `\`, so it is embedded verbatim.
fn put_msg(ev: &Event, out: &mut Vec<u8>) {
    match ev.msg {
        Msg::CacheHit(k) => {
            out.extend_from_slice(b"cache hit key=");
            out.extend_from_slice(CACHE_KEYS[k]);
        }
        Msg::CacheMiss(k) => {
            out.extend_from_slice(b"cache miss key=");
            out.extend_from_slice(CACHE_KEYS[k]);
        }
        Msg::Pool(a, b) => {
            out.extend_from_slice(b"pool idle=");
            put_u64(out, u64::from(a));
            out.extend_from_slice(b" busy=");
            put_u64(out, u64::from(b));
        }
        Msg::Resolved(u) => {
            out.extend_from_slice(b"resolved ");
            out.extend_from_slice(UPSTREAMS[u]);
        }
        Msg::HeadersParsed(a) => {
            out.extend_from_slice(b"headers parsed n=");
            put_u64(out, u64::from(a));
        }
        Msg::OrderPlaced(n) => {
            out.extend_from_slice(b"order ");
            put_u64(out, u64::from(n));
            out.extend_from_slice(b" placed");
        }
        Msg::UserLoggedIn => {
            out.extend_from_slice(b"user ");
            put_u64(out, u64::from(ev.uid));
            out.extend_from_slice(b" logged in");
        }
        Msg::PaymentOk(cents, cur) => {
            out.extend_from_slice(b"payment ok ");
            put_u64(out, u64::from(cents / 100));
            let mut c = [b'.', 0, 0, b' '];
            write_digits(&mut c[1..3], cents % 100);
            out.extend_from_slice(&c);
            out.extend_from_slice(CURRENCIES[cur]);
        }
        Msg::RequestDone(len) => {
            out.extend_from_slice(b"request done ");
            put_u64(out, u64::from(len));
            out.push(b'B');
        }
        Msg::CartUpdated(a) => {
            out.extend_from_slice(b"cart updated qty=");
            put_u64(out, u64::from(a));
        }
        Msg::SlowQuery(t, ms) => {
            out.extend_from_slice(b"slow query ");
            out.extend_from_slice(TABLES[t]);
            out.push(b' ');
            put_u64(out, u64::from(ms));
            out.extend_from_slice(b"ms");
        }
        Msg::Retry(u, a) => {
            out.extend_from_slice(b"retry ");
            out.extend_from_slice(UPSTREAMS[u]);
            out.extend_from_slice(b" attempt=");
            put_u64(out, u64::from(a));
        }
        Msg::RateLimitNear => out.extend_from_slice(b"rate limit near"),
        Msg::Returned503(u) => {
            out.extend_from_slice(UPSTREAMS[u]);
            out.extend_from_slice(b" returned 503");
        }
        Msg::Deadlock(t) => {
            out.extend_from_slice(b"deadlock on ");
            out.extend_from_slice(TABLES[t]);
        }
        Msg::ConnReset(u) => {
            out.extend_from_slice(b"conn reset by ");
            out.extend_from_slice(UPSTREAMS[u]);
        }
    }
}

/// Appends the decimal representation of `v` (no padding).
#[inline]
fn put_u64(out: &mut Vec<u8>, mut v: u64) {
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

/// Writes `v` zero-padded to exactly `dst.len()` digits (higher digits of a
/// too-large `v` are dropped; callers guarantee they fit).
#[inline]
fn write_digits(dst: &mut [u8], mut v: u32) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Writes `v` as 16 lowercase hex digits.
#[inline]
fn write_hex(dst: &mut [u8], v: u64) {
    for (i, b) in dst.iter_mut().enumerate() {
        *b = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`, restricted to days >= 0).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y as u32, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const FORMATS: [SynthFormat; 3] = [SynthFormat::Json, SynthFormat::Syslog, SynthFormat::Apache];

    fn lines(format: SynthFormat, seed: u64, n: usize) -> Vec<String> {
        let mut g = Synth::new(format, seed);
        let mut buf = Vec::new();
        (0..n)
            .map(|_| {
                buf.clear();
                g.next_into(&mut buf);
                String::from_utf8(buf.clone()).expect("utf-8")
            })
            .collect()
    }

    /// Checks `YYYY-MM-DDTHH:MM:SS.mmmZ` with in-range fields.
    fn assert_rfc3339(ts: &str) {
        let b = ts.as_bytes();
        assert_eq!(b.len(), 24, "{ts}");
        for (i, &c) in b.iter().enumerate() {
            match i {
                4 | 7 => assert_eq!(c, b'-', "{ts}"),
                10 => assert_eq!(c, b'T', "{ts}"),
                13 | 16 => assert_eq!(c, b':', "{ts}"),
                19 => assert_eq!(c, b'.', "{ts}"),
                23 => assert_eq!(c, b'Z', "{ts}"),
                _ => assert!(c.is_ascii_digit(), "{ts}"),
            }
        }
        let num = |r: std::ops::Range<usize>| ts[r].parse::<u32>().unwrap();
        let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
        assert!((1..=12).contains(&mo), "{ts}");
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mdays = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        assert!(d >= 1 && d <= mdays[mo as usize - 1], "{ts}");
        assert!(
            num(11..13) < 24 && num(14..16) < 60 && num(17..19) < 60,
            "{ts}"
        );
    }

    fn is_level(s: &str) -> bool {
        matches!(s, "debug" | "info" | "warn" | "error")
    }

    #[test]
    fn deterministic_per_seed() {
        for f in FORMATS {
            assert_eq!(lines(f, 42, 2000), lines(f, 42, 2000));
            assert_ne!(lines(f, 42, 2000), lines(f, 43, 2000));
        }
        assert_ne!(
            lines(SynthFormat::Json, 0, 100),
            lines(SynthFormat::Json, 1, 100)
        );
    }

    #[test]
    fn json_lines_parse_with_fields_and_order() {
        let keys = [
            "\"ts\":",
            "\"level\":",
            "\"service\":",
            "\"host\":",
            "\"trace_id\":",
            "\"msg\":",
            "\"http\":",
            "\"method\":",
            "\"path\":",
            "\"status\":",
            "\"latency_ms\":",
            "\"user\":",
            "\"id\":",
        ];
        for (i, line) in lines(SynthFormat::Json, 7, 20_000).iter().enumerate() {
            assert!(!line.contains('\n') && !line.contains('\\'), "{line}");
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let o = v.as_object().unwrap();
            assert_eq!(o.len(), 8, "{line}");
            assert_rfc3339(o["ts"].as_str().unwrap());
            assert!(is_level(o["level"].as_str().unwrap()));
            let svc = o["service"].as_str().unwrap();
            let (name, n) = svc.rsplit_once('-').unwrap();
            assert!(SERVICES.contains(&name.as_bytes()) && n.len() == 2, "{svc}");
            assert!((1..=12).contains(&n.parse::<u32>().unwrap()));
            let host = o["host"].as_str().unwrap();
            let (pre, n) = host.rsplit_once('-').unwrap();
            assert!(
                HOST_PREFIXES.contains(&pre.as_bytes()) && n.len() == 3,
                "{host}"
            );
            assert!((1..=240).contains(&n.parse::<u32>().unwrap()));
            let tid = o["trace_id"].as_str().unwrap();
            assert_eq!(tid.len(), 32);
            assert!(tid
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert!(!o["msg"].as_str().unwrap().is_empty());
            let http = o["http"].as_object().unwrap();
            assert_eq!(http.len(), 4);
            assert!(["GET", "POST", "PUT", "DELETE"].contains(&http["method"].as_str().unwrap()));
            assert!(http["path"].as_str().unwrap().starts_with("/api/v1/"));
            assert!(http["status"].is_u64());
            let lat = &http["latency_ms"];
            assert!(lat.is_f64() && lat.as_f64().unwrap() >= 0.3, "{line}");
            let user = o["user"].as_object().unwrap();
            assert_eq!(user.len(), 1);
            let uid = user["id"].as_u64().unwrap();
            assert!((1000..=99_999).contains(&uid));
            // Field order, as written.
            let mut pos = 0;
            for k in keys {
                let at = line[pos..]
                    .find(k)
                    .unwrap_or_else(|| panic!("{k} order: {line}"));
                pos += at + k.len();
            }
            if i == 0 {
                assert!(
                    line.starts_with("{\"ts\":\"2026-11-20T12:00:00.00"),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn level_mix_within_one_percent() {
        for f in FORMATS {
            let mut g = Synth::new(f, 1234);
            let mut buf = Vec::with_capacity(512);
            let mut hist = [0usize; 4];
            let n = 100_000;
            for _ in 0..n {
                buf.clear();
                hist[g.next_into(&mut buf) as usize] += 1;
            }
            for (count, target) in hist.iter().zip([40.0, 45.0, 10.0, 5.0]) {
                let pct = *count as f64 * 100.0 / n as f64;
                assert!((pct - target).abs() <= 1.0, "{f:?} {hist:?}");
            }
        }
    }

    #[test]
    fn returned_level_matches_line() {
        let mut g = Synth::new(SynthFormat::Json, 5);
        let mut buf = Vec::new();
        for _ in 0..5000 {
            buf.clear();
            let lvl = g.next_into(&mut buf);
            let v: Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(v["level"], lvl.as_str());
        }
    }

    #[test]
    fn syslog_pri_and_json_msg() {
        for line in lines(SynthFormat::Syslog, 99, 20_000) {
            let parts: Vec<&str> = line.splitn(8, ' ').collect();
            assert_eq!(parts.len(), 8, "{line}");
            let (pri_ver, ts, host, app, pid, msgid, sd, msg) = (
                parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7],
            );
            let pri: u32 = pri_ver
                .strip_prefix('<')
                .and_then(|s| s.strip_suffix(">1"))
                .unwrap()
                .parse()
                .unwrap();
            assert_rfc3339(ts);
            assert!((100..=65_000).contains(&pid.parse::<u32>().unwrap()));
            assert_eq!((msgid, sd), ("req", "-"));
            let v: Value = serde_json::from_str(msg).unwrap_or_else(|e| panic!("{e}: {line}"));
            let sev = match v["level"].as_str().unwrap() {
                "debug" => 7,
                "info" => 6,
                "warn" => 4,
                "error" => 3,
                other => panic!("level {other}"),
            };
            assert_eq!(pri, 16 * 8 + sev, "{line}");
            assert_eq!(v["ts"], ts);
            assert_eq!(v["host"], host);
            assert_eq!(v["service"], app);
        }
    }

    #[test]
    fn apache_combined_layout() {
        for line in lines(SynthFormat::Apache, 3, 20_000) {
            // ip - user [ts] "req" status bytes "referer" "ua"
            let q: Vec<&str> = line.split('"').collect();
            assert_eq!(q.len(), 7, "{line}");
            assert_eq!((q[4], q[6]), (" ", ""), "{line}");

            let head: Vec<&str> = q[0].split(' ').collect();
            assert_eq!(head.len(), 6, "{line}"); // ip, -, user, [date, +0000], ""
            let octets: Vec<u32> = head[0].split('.').map(|o| o.parse().unwrap()).collect();
            assert_eq!(octets.len(), 4);
            assert!(octets[0] == 10 && octets.iter().all(|&o| o <= 255) && octets[3] >= 1);
            assert_eq!(head[1], "-");
            let uid: u32 = head[2].strip_prefix("user").unwrap().parse().unwrap();
            assert!((1000..=99_999).contains(&uid));
            let date = head[3].strip_prefix('[').unwrap().as_bytes();
            assert_eq!(date.len(), 20, "{line}");
            assert_eq!(
                (date[2], date[6], date[11], date[14], date[17]),
                (b'/', b'/', b':', b':', b':')
            );
            assert!(MONTHS.iter().any(|m| &date[3..6] == *m), "{line}");
            assert_eq!((head[4], head[5]), ("+0000]", ""));

            let req: Vec<&str> = q[1].split(' ').collect();
            assert_eq!(req.len(), 3, "{line}");
            assert!(METHODS.contains(&req[0].as_bytes()));
            assert!(req[1].starts_with("/api/v1/"));
            assert_eq!(req[2], "HTTP/1.1");

            let mid: Vec<&str> = q[2].split(' ').collect();
            assert_eq!(mid.len(), 4, "{line}"); // "", status, bytes, ""
            let status: u16 = mid[1].parse().unwrap();
            assert!((200..600).contains(&status));
            assert!(mid[2].parse::<u32>().unwrap() <= 50_000);
            assert!(REFERERS.contains(&q[3].as_bytes()));
            assert!(UAS.contains(&q[5].as_bytes()));
        }
    }

    #[test]
    fn timestamps_valid_and_non_decreasing() {
        let mut prev = String::new();
        let mut prev_ms = 0u64;
        for (i, line) in lines(SynthFormat::Syslog, 11, 50_000).iter().enumerate() {
            let ts = line.split(' ').nth(1).unwrap().to_string();
            assert_rfc3339(&ts);
            assert!(ts >= prev, "{prev} > {ts}");
            // Step is 0..=3 ms.
            let ms = ts[17..19].parse::<u64>().unwrap() * 1000 + ts[20..23].parse::<u64>().unwrap();
            if i > 0 {
                assert!((ms + 60_000 - prev_ms) % 60_000 <= 3, "{prev} -> {ts}");
            }
            prev = ts;
            prev_ms = ms;
        }
        // ~50k events at 1.5 ms average: over a minute, so the clock rolled.
        assert!(prev.starts_with("2026-11-20T12:01:"), "{prev}");
    }

    #[test]
    fn start_time_override_crosses_dates() {
        // 1999-12-31T23:59:59.999Z: crosses day, month and year at once.
        let mut g = Synth::new(SynthFormat::Apache, 1).with_start_ms(946_684_799_999);
        let mut j = Synth::new(SynthFormat::Json, 1).with_start_ms(946_684_799_999);
        let mut saw_next_year = false;
        let mut buf = Vec::new();
        for _ in 0..50 {
            buf.clear();
            g.next_into(&mut buf);
            let a = String::from_utf8(buf.clone()).unwrap();
            buf.clear();
            j.next_into(&mut buf);
            let v: Value = serde_json::from_slice(&buf).unwrap();
            let ts = v["ts"].as_str().unwrap();
            assert_rfc3339(ts);
            if ts.starts_with("2000-01-01T00:00:00.") {
                saw_next_year = true;
                assert!(a.contains("[01/Jan/2000:00:00:00 +0000]"), "{a}");
            } else {
                assert_eq!(ts, "1999-12-31T23:59:59.999Z");
                assert!(a.contains("[31/Dec/1999:23:59:59 +0000]"), "{a}");
            }
        }
        assert!(saw_next_year);
    }

    #[test]
    fn civil_from_days_matches_day_walk() {
        let (mut y, mut m, mut d) = (1970u32, 1u32, 1u32);
        for days in 0..(400 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let mdays = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > mdays[m as usize - 1] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!(
            civil_from_days(DEFAULT_START_MS / 86_400_000),
            (2026, 11, 20)
        );
        assert_eq!(DEFAULT_START_MS % 86_400_000, 12 * 3_600_000);
    }

    #[test]
    fn formats_describe_the_same_events() {
        let j = lines(SynthFormat::Json, 21, 2000);
        let s = lines(SynthFormat::Syslog, 21, 2000);
        let a = lines(SynthFormat::Apache, 21, 2000);
        for ((j, s), a) in j.iter().zip(&s).zip(&a) {
            assert!(s.ends_with(j.as_str()), "{s} / {j}");
            let v: Value = serde_json::from_str(j).unwrap();
            let req = format!(
                "\"{} {} HTTP/1.1\" {} ",
                v["http"]["method"].as_str().unwrap(),
                v["http"]["path"].as_str().unwrap(),
                v["http"]["status"]
            );
            assert!(a.contains(&req), "{a} / {j}");
            assert!(
                a.contains(&format!(" - user{} [", v["user"]["id"])),
                "{a} / {j}"
            );
        }
    }

    #[test]
    fn no_hidden_allocation() {
        for f in FORMATS {
            let mut g = Synth::new(f, 77);
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
            let cap = buf.capacity();
            for _ in 0..1000 {
                g.next_into(&mut buf);
                buf.push(b'\n');
            }
            assert_eq!(buf.capacity(), cap, "{f:?}");
            assert!(
                buf.len() > 100_000 && buf.len() < cap,
                "{f:?} {}",
                buf.len()
            );
        }
    }

    #[test]
    fn format_deserializes_lowercase() {
        let f: Vec<SynthFormat> = serde_json::from_str(r#"["json","syslog","apache"]"#).unwrap();
        assert_eq!(f, FORMATS);
        assert!(serde_json::from_str::<SynthFormat>(r#""Json""#).is_err());
        assert_eq!(SynthLevel::Warn.as_str(), "warn");
    }
}
