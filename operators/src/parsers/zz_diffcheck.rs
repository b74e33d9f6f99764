#![allow(dead_code)]
use super::timestamp::*;
fn digit(s: &[u8], i: usize) -> Option<u32> {
    match s.get(i) {
        Some(b @ b'0'..=b'9') => Some((b - b'0') as u32),
        _ => None,
    }
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    (at..at + n).try_fold(0, |acc, i| Some(acc * 10 + digit(s, i)?))
}

fn expect(s: &[u8], i: usize, c: u8) -> Option<()> {
    (s.get(i) == Some(&c)).then_some(())
}

/// `Jan`..`Dec` (any case) → 1..12.
fn month_from_abbr(s: &[u8]) -> Option<u32> {
    let m = [
        s.first()?.to_ascii_lowercase(),
        s.get(1)?.to_ascii_lowercase(),
        s.get(2)?.to_ascii_lowercase(),
    ];
    Some(match &m {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// `10/Oct/2000:13:55:36 -0700`, optionally with a fraction of a second after the seconds
/// (`%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t`-style layouts write `13:55:36.123`).
fn parse_apache_time_old(s: &[u8]) -> Option<Timestamp> {
    let day = digits(s, 0, 2)?;
    expect(s, 2, b'/')?;
    let month = month_from_abbr(s.get(3..6)?)?;
    expect(s, 6, b'/')?;
    let year = digits(s, 7, 4)?;
    expect(s, 11, b':')?;
    let hour = digits(s, 12, 2)?;
    expect(s, 14, b':')?;
    let minute = digits(s, 15, 2)?;
    expect(s, 17, b':')?;
    let second = digits(s, 18, 2)?;
    let mut i = 20;
    let mut nanos = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = digit(s, i) {
            if i - start < 9 {
                nanos = nanos * 10 + d;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        nanos *= 10u32.pow(9 - n.min(9) as u32);
    }
    expect(s, i, b' ')?;
    let sign = match s.get(i + 1)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off_h = digits(s, i + 2, 2)?;
    let off_m = digits(s, i + 4, 2)?;
    if s.len() != i + 6 || off_m > 59 {
        return None;
    }
    let offset = sign * (off_h * 3600 + off_m * 60) as i32;
    Timestamp::from_civil(year as i32, month, day, hour, minute, second, nanos, offset)
}

/// `2026/11/21 09:34:39` (nginx writes local time without a zone; read as UTC).
fn parse_nginx_time_old(s: &[u8]) -> Option<Timestamp> {
    let year = digits(s, 0, 4)?;
    expect(s, 4, b'/')?;
    let month = digits(s, 5, 2)?;
    expect(s, 7, b'/')?;
    let day = digits(s, 8, 2)?;
    expect(s, 10, b' ')?;
    let hour = digits(s, 11, 2)?;
    expect(s, 13, b':')?;
    let minute = digits(s, 14, 2)?;
    expect(s, 16, b':')?;
    let second = digits(s, 17, 2)?;
    Timestamp::from_civil(year as i32, month, day, hour, minute, second, 0, 0)
}

/// An RFC 3339 timestamp at the start of `s` (`2016-10-06T00:17:09.669794202Z`,
/// `...+02:00`; `t`/`z` in either case; up to 9 fraction digits are kept, more are read and
/// ignored) and how many bytes it took.
fn old_rfc3339_prefix(s: &[u8]) -> Option<(Timestamp, usize)> {
    let year = digits(s, 0, 4)?;
    expect(s, 4, b'-')?;
    let month = digits(s, 5, 2)?;
    expect(s, 7, b'-')?;
    let day = digits(s, 8, 2)?;
    if !matches!(s.get(10), Some(b'T' | b't')) {
        return None;
    }
    let hour = digits(s, 11, 2)?;
    expect(s, 13, b':')?;
    let minute = digits(s, 14, 2)?;
    expect(s, 16, b':')?;
    let second = digits(s, 17, 2)?;
    let mut i = 19;
    let mut nanos = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = digit(s, i) {
            if i - start < 9 {
                nanos = nanos * 10 + d;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        nanos *= 10u32.pow(9 - n.min(9) as u32);
    }
    let offset = match s.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let h = digits(s, i + 1, 2)?;
            expect(s, i + 3, b':')?;
            let m = digits(s, i + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            i += 6;
            let secs = (h * 3600 + m * 60) as i32;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let t = Timestamp::from_civil(year as i32, month, day, hour, minute, second, nanos, offset)?;
    Some((t, i))
}

use proptest::prelude::*;

fn mutate(base: &[u8], picks: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(at, op, b) in picks {
        if v.is_empty() {
            v.push(b);
            continue;
        }
        let i = at % (v.len() + 1);
        match op % 3 {
            0 => v.insert(i, b),
            1 => {
                if i < v.len() {
                    v.remove(i);
                }
            }
            _ => {
                if i < v.len() {
                    v[i] = b;
                }
            }
        }
    }
    v
}

const ALPHA: &[u8] = b"0123456789/:-+ .TtZz,OoCcTtJjAaNn[]x";

fn check(b: &[u8]) {
    assert_eq!(
        parse_apache_time(b),
        old_apache(b),
        "apache {:?}",
        String::from_utf8_lossy(b)
    );
    assert_eq!(
        parse_nginx_time(b),
        parse_nginx_time_old(b).filter(|_| b.len() == 19),
        "nginx {:?}",
        String::from_utf8_lossy(b)
    );
    assert_eq!(
        parse_rfc3339_prefix(b),
        old_rfc3339_prefix(b),
        "cri {:?}",
        String::from_utf8_lossy(b)
    );
}
fn old_apache(b: &[u8]) -> Option<Timestamp> {
    parse_apache_time_old(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200_000, ..ProptestConfig::default() })]
    #[test]
    fn same_as_before(which in 0usize..6, picks in proptest::collection::vec((any::<usize>(), any::<u8>(), proptest::sample::select(ALPHA.to_vec())), 0..4)) {
        let bases: [&[u8]; 6] = [b"10/Oct/2000:13:55:36 -0700", b"10/Oct/2000:13:55:36.123456789012 +2459", b"2026/11/21 09:34:39",
            b"2016-10-06T00:17:09.669794202Z stdout", b"2026-11-21T10:34:39.123456789123+01:00", b"1999-12-31t23:59:59.9z"];
        let line = mutate(bases[which], &picks);
        check(&line);
    }
    #[test]
    fn random_same(bytes in proptest::collection::vec(proptest::sample::select(ALPHA.to_vec()), 0..40)) {
        check(&bytes);
    }
}

fn time<F: Fn(&[u8]) -> i64>(name: &str, inp: &[u8], f: F) -> f64 {
    use std::hint::black_box;
    let n = 20_000_000;
    let t = std::time::Instant::now();
    let mut acc = 0i64;
    for _ in 0..n {
        acc = acc.wrapping_add(f(black_box(inp)));
    }
    black_box(acc);
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("{name}: {ns:.2} ns/op");
    ns
}

#[test]
#[ignore]
fn bench_old_new() {
    let a: &[u8] = b"10/Oct/2000:13:55:36 -0700";
    let ng: &[u8] = b"2026/11/21 09:34:39";
    let c: &[u8] = b"2016-10-06T00:17:09.669794202Z stdout F x";
    for _ in 0..3 {
        time("apache old", a, |b| {
            parse_apache_time_old(b).unwrap().unix_nanos
        });
        time("apache new", a, |b| {
            parse_apache_time(b).unwrap().unix_nanos
        });
        time("nginx old", ng, |b| {
            parse_nginx_time_old(b).unwrap().unix_nanos
        });
        time("nginx new", ng, |b| parse_nginx_time(b).unwrap().unix_nanos);
        time("cri old", c, |b| {
            old_rfc3339_prefix(b).unwrap().0.unix_nanos
        });
        time("cri new", c, |b| {
            parse_rfc3339_prefix(b).unwrap().0.unix_nanos
        });
        time("from_civil", a, |b| {
            Timestamp::from_civil(2000 + b[0] as i32 % 2, 10, 10, 13, 55, 36, 0, -7 * 3600)
                .unwrap()
                .unix_nanos
        });
    }
}

#[test]
#[ignore]
fn bench_one() {
    use std::hint::black_box;
    let which = std::env::var("BENCH_WHICH").unwrap_or_default();
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let a: &[u8] = b"10/Oct/2000:13:55:36 -0700";
    let ng: &[u8] = b"2026/11/21 09:34:39";
    let c: &[u8] = b"2016-10-06T00:17:09.669794202Z stdout F x";
    let mut acc = 0i64;
    for _ in 0..n {
        let v = match which.as_str() {
            "apache_old" => parse_apache_time_old(black_box(a)).map_or(0, |t| t.unix_nanos),
            "apache_new" => parse_apache_time(black_box(a)).map_or(0, |t| t.unix_nanos),
            "nginx_old" => parse_nginx_time_old(black_box(ng)).map_or(0, |t| t.unix_nanos),
            "nginx_new" => parse_nginx_time(black_box(ng)).map_or(0, |t| t.unix_nanos),
            "cri_old" => old_rfc3339_prefix(black_box(c)).map_or(0, |t| t.0.unix_nanos),
            "cri_new" => parse_rfc3339_prefix(black_box(c)).map_or(0, |t| t.0.unix_nanos),
            "rfc3339" => parse_rfc3339(black_box(b"2026-11-21T09:34:39.123456789+05:30"))
                .map_or(0, |t| t.unix_nanos),
            "httpdate" => parse_httpdate(black_box(a)).map_or(0, |t| t.unix_nanos),
            "syslog" => {
                parse_any(black_box(b"Oct 11 2025 22:14:15.123456"), 0).map_or(0, |t| t.unix_nanos)
            }
            "rfc2822" => parse_rfc2822(black_box(b"Tue, 1 Jul 2003 10:52:37 +0200"))
                .map_or(0, |t| t.unix_nanos),
            _ => black_box(1),
        };
        acc = acc.wrapping_add(v);
    }
    black_box(acc);
}
