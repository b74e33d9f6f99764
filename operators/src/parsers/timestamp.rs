//! Timestamps: the normalised form every parser emits, its RFC 3339 rendering, and the
//! parsing of the many input layouts.
//!
//! Every parser turns what it reads into a [`Timestamp`] (nanoseconds since the Unix epoch,
//! UTC) and the sink writes it as RFC 3339 with the shortest fraction (`.003`, `.123456`, or
//! none). The layouts (RFC 3339, RFC 2822, BSD syslog, Apache, nginx's error log, epoch
//! numbers, Go's and Java's defaults) have hand-written parsers over bytes: no allocation, no chrono, no clock read
//! except for a BSD time without year. [`parse_any`] detects the layout; [`TimestampFormat`]
//! is the configured form (`timestamp_format` / `timezone`), where chrono serves only
//! strftime formats and the `local` zone.

/// A point in time: nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub unix_nanos: i64,
}

impl Timestamp {
    pub const fn from_unix_nanos(unix_nanos: i64) -> Timestamp {
        Timestamp { unix_nanos }
    }

    /// From a civil date and time in UTC, plus a UTC offset in seconds to subtract
    /// (`+02:00` is `offset_secs = 7200`). `None` if a field is out of range.
    #[allow(clippy::too_many_arguments)]
    pub fn from_civil(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nanos: u32,
        offset_secs: i32,
    ) -> Option<Timestamp> {
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
            || nanos >= 1_000_000_000
        {
            return None;
        }
        // A leap second is folded into the next second, as most log tools do.
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs as i64;
        secs.checked_mul(1_000_000_000)?
            .checked_add(nanos as i64)
            .map(Timestamp::from_unix_nanos)
    }

    /// Civil fields in UTC: (year, month, day, hour, minute, second, nanos).
    pub fn to_civil(self) -> (i32, u32, u32, u32, u32, u32, u32) {
        let secs = self.unix_nanos.div_euclid(1_000_000_000);
        let nanos = self.unix_nanos.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, nanos)
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let (y, mo, d, h, mi, s, ns) = self.to_civil();
        if (0..=9999).contains(&y) {
            push_num(out, y as u32, 4);
        } else {
            out.extend_from_slice(y.to_string().as_bytes());
        }
        out.push(b'-');
        push_num(out, mo, 2);
        out.push(b'-');
        push_num(out, d, 2);
        out.push(b'T');
        push_num(out, h, 2);
        out.push(b':');
        push_num(out, mi, 2);
        out.push(b':');
        push_num(out, s, 2);
        if ns != 0 {
            out.push(b'.');
            if ns % 1_000_000 == 0 {
                push_num(out, ns / 1_000_000, 3);
            } else if ns % 1_000 == 0 {
                push_num(out, ns / 1_000, 6);
            } else {
                push_num(out, ns, 9);
            }
        }
        out.push(b'Z');
    }
}

fn push_num(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

pub fn is_leap_year(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = y as i64 - (m <= 2) as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + (m <= 2) as i64) as i32, m, d)
}

// ---------------------------------------------------------------------------------------------
// Parsing. Every layout has a hand-written parser over bytes (no allocation, no chrono); only
// the strftime path of `TimestampFormat` uses chrono.
// ---------------------------------------------------------------------------------------------

/// A civil date and time as read from the input, with its UTC offset when the input had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilDateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    /// Seconds east of UTC (`+02:00` is 7200); `None` when the input named no zone.
    pub offset: Option<i32>,
}

impl CivilDateTime {
    /// The instant, reading a zone-less time at `default_offset` (seconds east of UTC).
    /// `None` if a field is out of range (February 30, hour 24).
    pub fn to_timestamp(self, default_offset: i32) -> Option<Timestamp> {
        Timestamp::from_civil(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos,
            self.offset.unwrap_or(default_offset),
        )
    }
}

/// What decides the year of a timestamp that has none (`Oct 11 22:14:15`), and the zone of
/// such local times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearContext {
    /// The current time.
    pub now: Timestamp,
    /// Seconds east of UTC of the local time in which year-less timestamps are written.
    pub offset: i32,
}

impl YearContext {
    pub const fn new(now: Timestamp, offset: i32) -> YearContext {
        YearContext { now, offset }
    }

    /// The context of the system clock, now.
    pub fn system(offset: i32) -> YearContext {
        YearContext {
            now: system_now(),
            offset,
        }
    }

    /// The year of a timestamp in `month` (1..=12): the current year, unless the month lies
    /// more than one month after the current one, which means last year (December lines read
    /// in January). One month ahead is allowed for clocks that run slightly ahead.
    pub fn year_for_month(&self, month: u32) -> i32 {
        let local = self
            .now
            .unix_nanos
            .saturating_add(self.offset as i64 * 1_000_000_000);
        let (year, current_month, ..) = Timestamp::from_unix_nanos(local).to_civil();
        if month > current_month + 1 {
            year - 1
        } else {
            year
        }
    }
}

/// The system clock as a [`Timestamp`] (a vDSO call, no syscall, on Linux).
pub fn system_now() -> Timestamp {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    };
    Timestamp::from_unix_nanos(nanos)
}

/// A read position in the input. Every access is bounds-checked; a failed step returns
/// `None` and leaves the position as it was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    /// A cursor at `pos` (past the end reads as the end).
    pub(crate) fn at(bytes: &'a [u8], pos: usize) -> Cursor<'a> {
        Cursor { bytes, pos }
    }

    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    #[inline(always)]
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += hit as usize;
        hit
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Exactly `n` ASCII digits (`n` <= 9).
    #[inline(always)]
    fn digits(&mut self, n: usize) -> Option<u32> {
        let run = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        let mut value = 0u32;
        for &b in run {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + (b - b'0') as u32;
        }
        self.pos += n;
        Some(value)
    }

    /// `min..=max` ASCII digits (`max` <= 9), not followed by another digit.
    fn digits_between(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        let mut value = 0u32;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            if self.pos - start == max {
                self.pos = start;
                return None;
            }
            value = value * 10 + (b - b'0') as u32;
            self.pos += 1;
        }
        if self.pos - start < min {
            self.pos = start;
            return None;
        }
        Some(value)
    }

    /// The next `n` bytes, whatever they are.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let run = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(run)
    }

    /// Skips spaces; how many.
    fn spaces(&mut self) -> usize {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A run of ASCII letters (possibly empty).
    #[inline]
    pub(crate) fn letters(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    /// `HH:MM:SS`.
    #[inline(always)]
    fn time_of_day(&mut self) -> Option<(u32, u32, u32)> {
        let hour = self.digits(2)?;
        self.expect(b':')?;
        let minute = self.digits(2)?;
        self.expect(b':')?;
        let second = self.digits(2)?;
        Some((hour, minute, second))
    }

    /// An optional `.fraction` (and `,fraction` when `comma` is allowed) as nanoseconds.
    /// `None` if a separator is there but not 1 to 9 digits after it.
    fn optional_fraction(&mut self, comma: bool) -> Option<u32> {
        match self.peek() {
            Some(b'.') => {}
            Some(b',') if comma => {}
            _ => return Some(0),
        }
        let start = self.pos;
        self.pos += 1;
        let digits_start = self.pos;
        match self.digits_between(1, 9) {
            Some(value) => Some(value * 10u32.pow(9 - (self.pos - digits_start) as u32)),
            None => {
                self.pos = start;
                None
            }
        }
    }

    /// `YYYY`, `sep`, `MM`, `sep`, `DD` (not range-checked).
    #[inline(always)]
    fn date(&mut self, sep: u8) -> Option<(i32, u32, u32)> {
        let year = self.digits(4)? as i32;
        self.expect(sep)?;
        let month = self.digits(2)?;
        self.expect(sep)?;
        let day = self.digits(2)?;
        Some((year, month, day))
    }

    /// An optional `.fraction` of any length as nanoseconds: the first 9 digits count, later
    /// ones are read and ignored. `None` if the `.` is not followed by a digit.
    #[inline(always)]
    fn optional_long_fraction(&mut self) -> Option<u32> {
        if self.peek() != Some(b'.') {
            return Some(0);
        }
        let start = self.pos + 1;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let mut nanos = 0u32;
        let mut kept = 0;
        for &b in rest.iter().take(9) {
            if !b.is_ascii_digit() {
                break;
            }
            nanos = nanos * 10 + (b - b'0') as u32;
            kept += 1;
        }
        if kept == 0 {
            return None;
        }
        let mut end = start + kept;
        if kept == 9 {
            while self.bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
        }
        self.pos = end;
        Some(nanos * 10u32.pow(9 - kept as u32))
    }

    /// Exactly `+HH:MM` (with `colon`) or `+HHMM` (or `-`): the sign, hours and minutes, not
    /// range-checked.
    #[inline(always)]
    fn offset_fields(&mut self, colon: bool) -> Option<(i32, u32, u32)> {
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let mut c = *self;
        c.pos += 1;
        let hours = c.digits(2)?;
        if colon {
            c.expect(b':')?;
        }
        let minutes = c.digits(2)?;
        *self = c;
        Some((sign, hours, minutes))
    }

    /// `+HH:MM`, `+HHMM` or `+HH` (or `-`), as seconds east of UTC.
    fn numeric_offset(&mut self) -> Option<i32> {
        let start = self.pos;
        let parsed = (|| {
            let sign = match self.peek()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            self.pos += 1;
            let hours = self.digits(2)?;
            let minutes = if self.eat(b':') {
                self.digits(2)?
            } else {
                self.digits(2).unwrap_or(0)
            };
            (hours <= 23 && minutes <= 59).then(|| sign * (hours * 3600 + minutes * 60) as i32)
        })();
        if parsed.is_none() {
            self.pos = start;
        }
        parsed
    }
}

/// `jan` .. `dec` (any case) as 1..=12.
#[inline(always)]
pub fn month_from_abbreviation(word: &[u8]) -> Option<u32> {
    let [a, b, c] = *word else { return None };
    let month = match [a | 0x20, b | 0x20, c | 0x20] {
        [b'j', b'a', b'n'] => 1,
        [b'f', b'e', b'b'] => 2,
        [b'm', b'a', b'r'] => 3,
        [b'a', b'p', b'r'] => 4,
        [b'm', b'a', b'y'] => 5,
        [b'j', b'u', b'n'] => 6,
        [b'j', b'u', b'l'] => 7,
        [b'a', b'u', b'g'] => 8,
        [b's', b'e', b'p'] => 9,
        [b'o', b'c', b't'] => 10,
        [b'n', b'o', b'v'] => 11,
        [b'd', b'e', b'c'] => 12,
        _ => return None,
    };
    Some(month)
}

fn is_weekday_abbreviation(word: &[u8]) -> bool {
    let [a, b, c] = *word else { return false };
    matches!(
        [a | 0x20, b | 0x20, c | 0x20],
        [b'm', b'o', b'n']
            | [b't', b'u', b'e']
            | [b'w', b'e', b'd']
            | [b't', b'h', b'u']
            | [b'f', b'r', b'i']
            | [b's', b'a', b't']
            | [b's', b'u', b'n']
    )
}

/// The offset of a zone abbreviation (any case), seconds east of UTC. Only unambiguous or
/// conventional ones: UT UTC GMT Z, the RFC 2822 North American zones (EST EDT CST CDT MST
/// MDT PST PDT, so CST is US Central, not China), and a few common others. `None` otherwise.
pub fn zone_abbreviation_offset(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 4 {
        return None;
    }
    let mut upper = [0u8; 4];
    for (dst, src) in upper.iter_mut().zip(name) {
        *dst = src.to_ascii_uppercase();
    }
    let minutes = match &upper[..name.len()] {
        b"UT" | b"UTC" | b"GMT" | b"Z" | b"WET" => 0,
        b"WEST" | b"CET" | b"MET" | b"BST" => 60,
        b"CEST" | b"MEST" | b"EET" => 120,
        b"EEST" | b"MSK" => 180,
        b"EST" => -300,
        b"EDT" => -240,
        b"CST" => -360,
        b"CDT" => -300,
        b"MST" => -420,
        b"MDT" => -360,
        b"PST" => -480,
        b"PDT" => -420,
        b"AKST" => -540,
        b"AKDT" => -480,
        b"HST" => -600,
        b"HKT" | b"SGT" | b"AWST" => 480,
        b"JST" | b"KST" => 540,
        b"ACST" => 570,
        b"AEST" => 600,
        b"AEDT" => 660,
        b"NZST" => 720,
        b"NZDT" => 780,
        _ => return None,
    };
    Some(minutes * 60)
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[(.|,)fraction][Z|±HH:MM|±HHMM|±HH]`, from the cursor on.
pub(crate) fn iso_datetime(c: &mut Cursor<'_>) -> Option<CivilDateTime> {
    let (year, month, day) = c.date(b'-')?;
    match c.peek()? {
        b'T' | b't' | b' ' => c.pos += 1,
        _ => return None,
    }
    let (hour, minute, second) = c.time_of_day()?;
    let nanos = c.optional_fraction(true)?;
    let offset = match c.peek() {
        Some(b'Z' | b'z') => {
            c.pos += 1;
            Some(0)
        }
        Some(b'+' | b'-') => Some(c.numeric_offset()?),
        _ => None,
    };
    Some(CivilDateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset,
    })
}

/// `Mmm dd[ yyyy] HH:MM:SS[.fraction]` (BSD syslog), from the cursor on: the year when the
/// text has one, and the time (its `year` is 0 when the text has none).
pub(crate) fn bsd_datetime(c: &mut Cursor<'_>) -> Option<(Option<i32>, CivilDateTime)> {
    let month = month_from_abbreviation(c.letters())?;
    if c.spaces() == 0 {
        return None;
    }
    let day = c.digits_between(1, 2)?;
    c.expect(b' ')?;
    let before_year = *c;
    let year = match c.digits(4) {
        Some(y) if c.eat(b' ') => Some(y as i32),
        _ => {
            *c = before_year;
            None
        }
    };
    let (hour, minute, second) = c.time_of_day()?;
    let nanos = c.optional_fraction(false)?;
    Some((
        year,
        CivilDateTime {
            year: year.unwrap_or(0),
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset: None,
        },
    ))
}

fn whole<'a, T>(bytes: &'a [u8], read: impl FnOnce(&mut Cursor<'a>) -> Option<T>) -> Option<T> {
    let mut c = Cursor::new(bytes);
    let value = read(&mut c)?;
    c.at_end().then_some(value)
}

pub(crate) fn rfc3339_civil(bytes: &[u8]) -> Option<CivilDateTime> {
    whole(bytes, iso_datetime)
}

/// RFC 3339 / ISO 8601: `2003-10-11T22:14:15.003Z`, `2003-10-11 22:14:15+02:00`,
/// `...+0200`, `...+02`, a fraction of 1 to 9 digits after `.` or `,` (so log4j's
/// `2026-11-21 09:34:39,123` too). Without a zone the time is UTC.
pub fn parse_rfc3339(bytes: &[u8]) -> Option<Timestamp> {
    parse_rfc3339_with_default_offset(bytes, 0)
}

/// [`parse_rfc3339`], reading a time without a zone at `default_offset` (seconds east of
/// UTC).
pub fn parse_rfc3339_with_default_offset(bytes: &[u8], default_offset: i32) -> Option<Timestamp> {
    rfc3339_civil(bytes)?.to_timestamp(default_offset)
}

fn rfc2822_civil(bytes: &[u8]) -> Option<CivilDateTime> {
    whole(bytes, |c| {
        c.spaces();
        if c.peek()?.is_ascii_alphabetic() {
            if !is_weekday_abbreviation(c.letters()) {
                return None;
            }
            c.expect(b',')?;
            c.spaces();
        }
        let day = c.digits_between(1, 2)?;
        if c.spaces() == 0 {
            return None;
        }
        let month = month_from_abbreviation(c.letters())?;
        if c.spaces() == 0 {
            return None;
        }
        let year = c.digits_between(4, 4)? as i32;
        if c.spaces() == 0 {
            return None;
        }
        let hour = c.digits(2)?;
        c.expect(b':')?;
        let minute = c.digits(2)?;
        let second = if c.eat(b':') { c.digits(2)? } else { 0 };
        let spaced = c.spaces() > 0;
        let offset = match c.peek() {
            None => None,
            Some(_) if !spaced => return None,
            Some(b'+' | b'-') => Some(c.numeric_offset()?),
            Some(b) if b.is_ascii_alphabetic() => Some(zone_abbreviation_offset(c.letters())?),
            Some(_) => return None,
        };
        c.spaces();
        // A trailing comment, as mail clients write: `+0000 (UTC)`.
        if c.eat(b'(') {
            while c.peek().is_some_and(|b| b != b')') {
                c.pos += 1;
            }
            c.expect(b')')?;
            c.spaces();
        }
        Some(CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos: 0,
            offset,
        })
    })
}

/// RFC 2822 (mail) dates: `Tue, 1 Jul 2003 10:52:37 +0200`, weekday optional, seconds
/// optional, zones `±HHMM` or an abbreviation (`GMT`, `EST`, see
/// [`zone_abbreviation_offset`]), an optional trailing `(comment)`. Without a zone: UTC.
pub fn parse_rfc2822(bytes: &[u8]) -> Option<Timestamp> {
    rfc2822_civil(bytes)?.to_timestamp(0)
}

/// BSD syslog `Mmm dd HH:MM:SS` (`Oct 11 22:14:15`, `Oct  1 22:14:15`, optionally
/// `Oct 11 2026 22:14:15` and a `.fraction`), in the local time of `year_ctx.offset`. With no
/// year in the text, [`YearContext::year_for_month`] picks it.
pub fn parse_syslog_3164(bytes: &[u8], year_ctx: &YearContext) -> Option<Timestamp> {
    let (year, civil) = whole(bytes, bsd_datetime)?;
    resolve_bsd(year, civil, year_ctx)
}

pub(crate) fn resolve_bsd(
    year: Option<i32>,
    mut civil: CivilDateTime,
    year_ctx: &YearContext,
) -> Option<Timestamp> {
    civil.year = year.unwrap_or_else(|| year_ctx.year_for_month(civil.month));
    civil.to_timestamp(year_ctx.offset)
}

fn httpdate_civil(bytes: &[u8]) -> Option<CivilDateTime> {
    whole(bytes, |c| {
        let bracketed = c.eat(b'[');
        let day = c.digits_between(1, 2)?;
        c.expect(b'/')?;
        let month = month_from_abbreviation(c.letters())?;
        c.expect(b'/')?;
        let year = c.digits(4)? as i32;
        c.expect(b':')?;
        let (hour, minute, second) = c.time_of_day()?;
        let nanos = c.optional_fraction(false)?;
        let offset = if c.eat(b' ') {
            Some(c.numeric_offset()?)
        } else {
            None
        };
        if bracketed {
            c.expect(b']')?;
        }
        Some(CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset,
        })
    })
}

/// Apache / NCSA common log format: `10/Oct/2000:13:55:36 -0700`, optionally in brackets
/// (`[10/Oct/2000:13:55:36 -0700]`). Without a zone: UTC.
pub fn parse_httpdate(bytes: &[u8]) -> Option<Timestamp> {
    httpdate_civil(bytes)?.to_timestamp(0)
}

/// The access log time as Apache's `%t` (and nginx's `$time_local`) writes it, without the
/// brackets: `10/Oct/2000:13:55:36 -0700`. Stricter than [`parse_httpdate`]: a two-digit
/// day and a `±HHMM` offset, both required; the offset's hours are not range-checked (the
/// minutes are). The seconds may have a fraction of any length (`13:55:36.123`, as
/// `%{msec_frac}t` layouts write; digits past the ninth are ignored).
pub fn parse_apache_time(bytes: &[u8]) -> Option<Timestamp> {
    whole(bytes, |c| {
        let day = c.digits(2)?;
        c.expect(b'/')?;
        let month = month_from_abbreviation(c.take(3)?)?;
        c.expect(b'/')?;
        let year = c.digits(4)? as i32;
        c.expect(b':')?;
        let (hour, minute, second) = c.time_of_day()?;
        let nanos = c.optional_long_fraction()?;
        c.expect(b' ')?;
        let (sign, hours, minutes) = c.offset_fields(false)?;
        if minutes > 59 {
            return None;
        }
        Some(CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset: Some(sign * (hours * 3600 + minutes * 60) as i32),
        })
    })?
    .to_timestamp(0)
}

/// The nginx error log time, `2026/11/21 09:34:39` (no fraction, no zone: nginx writes local
/// time; it is read as UTC).
pub fn parse_nginx_time(bytes: &[u8]) -> Option<Timestamp> {
    whole(bytes, |c| {
        let (year, month, day) = c.date(b'/')?;
        c.expect(b' ')?;
        let (hour, minute, second) = c.time_of_day()?;
        Some(CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos: 0,
            offset: None,
        })
    })?
    .to_timestamp(0)
}

/// An RFC 3339 timestamp in the strict form container runtimes write, at the start of
/// `bytes`, and how many bytes it took: `2016-10-06T00:17:09.669794202Z` or `...+02:00`
/// (`T` and `Z` in either case; the zone is required, as `Z` or `±HH:MM`; the fraction may
/// have any length, digits past the ninth are read and ignored). Unlike [`parse_rfc3339`]
/// it takes no space for `T`, no `,` fraction and no `±HHMM`/`±HH` zone, and anything may
/// follow.
pub fn parse_rfc3339_prefix(bytes: &[u8]) -> Option<(Timestamp, usize)> {
    let mut c = Cursor::new(bytes);
    let (year, month, day) = c.date(b'-')?;
    if !(c.eat(b'T') || c.eat(b't')) {
        return None;
    }
    let (hour, minute, second) = c.time_of_day()?;
    let nanos = c.optional_long_fraction()?;
    let offset = if c.eat(b'Z') || c.eat(b'z') {
        0
    } else {
        let (sign, hours, minutes) = c.offset_fields(true)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        sign * (hours * 3600 + minutes * 60) as i32
    };
    let t = Timestamp::from_civil(year, month, day, hour, minute, second, nanos, offset)?;
    Some((t, c.pos))
}

fn go_civil(bytes: &[u8]) -> Option<CivilDateTime> {
    whole(bytes, |c| {
        let mut civil = iso_datetime(c)?;
        if civil.offset.is_some() {
            return None;
        }
        c.expect(b' ')?;
        civil.offset = Some(c.numeric_offset()?);
        if c.eat(b' ') {
            // The zone name, or Go's numeric stand-in for zones without one (`+03`).
            let name_start = c.pos;
            while c
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
            {
                c.pos += 1;
            }
            if c.pos == name_start {
                return None;
            }
            // `time.Time.String()` appends the monotonic clock reading: ` m=+0.000000001`.
            if c.eat(b' ') {
                c.expect(b'm')?;
                c.expect(b'=')?;
                if !(c.eat(b'+') || c.eat(b'-')) {
                    return None;
                }
                c.digits_between(1, 9)?;
                if c.eat(b'.') {
                    c.digits_between(1, 9)?;
                }
            }
        }
        Some(civil)
    })
}

/// Go's default layout (`time.Time.String()`): `2006-01-02 15:04:05.999999999 -0700 MST`,
/// with an optional monotonic suffix ` m=+0.000000001`. The zone name is ignored; the
/// numeric offset decides.
pub fn parse_go(bytes: &[u8]) -> Option<Timestamp> {
    go_civil(bytes)?.to_timestamp(0)
}

fn java_civil(bytes: &[u8]) -> Option<CivilDateTime> {
    whole(bytes, |c| {
        if !is_weekday_abbreviation(c.letters()) {
            return None;
        }
        c.expect(b' ')?;
        let month = month_from_abbreviation(c.letters())?;
        if c.spaces() == 0 {
            return None;
        }
        let day = c.digits_between(1, 2)?;
        c.expect(b' ')?;
        let (hour, minute, second) = c.time_of_day()?;
        let nanos = c.optional_fraction(false)?;
        c.expect(b' ')?;
        let offset = if c.peek()?.is_ascii_alphabetic() {
            let name = c.letters();
            let mut offset = zone_abbreviation_offset(name)?;
            // Java writes zones without a name as `GMT+02:00`.
            if matches!(c.peek(), Some(b'+' | b'-')) && offset == 0 {
                offset = c.numeric_offset()?;
            }
            c.expect(b' ')?;
            Some(offset)
        } else {
            None
        };
        let year = c.digits_between(4, 4)? as i32;
        Some(CivilDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset,
        })
    })
}

/// Java's `Date.toString()`: `Tue Nov 21 09:34:39 UTC 2026` (zone by abbreviation, see
/// [`zone_abbreviation_offset`], or `GMT+02:00`); also C's `ctime` without a zone
/// (`Tue Nov  1 09:34:39 2026`, read as UTC).
pub fn parse_java(bytes: &[u8]) -> Option<Timestamp> {
    java_civil(bytes)?.to_timestamp(0)
}

/// The unit of an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    const fn nanos(self) -> i128 {
        match self {
            EpochUnit::Seconds => 1_000_000_000,
            EpochUnit::Millis => 1_000_000,
            EpochUnit::Micros => 1_000,
            EpochUnit::Nanos => 1,
        }
    }

    /// The unit a number of this size most likely has: below 1e11 seconds (up to the year
    /// 5138), below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
    pub const fn by_magnitude(integer: u64) -> EpochUnit {
        if integer < 100_000_000_000 {
            EpochUnit::Seconds
        } else if integer < 100_000_000_000_000 {
            EpochUnit::Millis
        } else if integer < 100_000_000_000_000_000 {
            EpochUnit::Micros
        } else {
            EpochUnit::Nanos
        }
    }
}

/// `[-]digits[.digits]`, as read.
#[derive(Debug, Clone, Copy)]
struct EpochNumber {
    negative: bool,
    integer: u64,
    integer_digits: usize,
    fraction: u32,
    fraction_digits: u32,
}

impl EpochNumber {
    fn read(bytes: &[u8]) -> Option<EpochNumber> {
        whole(bytes, |c| {
            let negative = c.eat(b'-');
            let start = c.pos;
            let mut integer = 0u64;
            while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
                integer = integer.checked_mul(10)?.checked_add((b - b'0') as u64)?;
                c.pos += 1;
            }
            let integer_digits = c.pos - start;
            if integer_digits == 0 {
                return None;
            }
            let (fraction, fraction_digits) = if c.eat(b'.') {
                let digits_start = c.pos;
                let value = c.digits_between(1, 9)?;
                (value, (c.pos - digits_start) as u32)
            } else {
                (0, 0)
            };
            Some(EpochNumber {
                negative,
                integer,
                integer_digits,
                fraction,
                fraction_digits,
            })
        })
    }

    fn to_timestamp(self, unit: EpochUnit) -> Option<Timestamp> {
        let unit_nanos = unit.nanos();
        let whole = self.integer as i128 * unit_nanos;
        let part = self.fraction as i128 * unit_nanos / 10i128.pow(self.fraction_digits);
        let total = whole + part;
        let total = if self.negative { -total } else { total };
        i64::try_from(total).ok().map(Timestamp::from_unix_nanos)
    }
}

/// An epoch number in the unit its size suggests ([`EpochUnit::by_magnitude`]):
/// `1700000000`, `1700000000123`, `1700000000.123` (a fraction of 1 to 9 digits), `-5`.
/// `None` for anything else, or beyond the range of [`Timestamp`].
pub fn parse_epoch(bytes: &[u8]) -> Option<Timestamp> {
    let number = EpochNumber::read(bytes)?;
    number.to_timestamp(EpochUnit::by_magnitude(number.integer))
}

/// An epoch number in a given unit (a fraction is a fraction of that unit).
pub fn parse_epoch_unit(bytes: &[u8], unit: EpochUnit) -> Option<Timestamp> {
    EpochNumber::read(bytes)?.to_timestamp(unit)
}

/// What [`read_any`] found: an instant, a civil time (maybe without zone), or a BSD syslog
/// time (maybe without year).
#[derive(Debug, Clone, Copy)]
enum Reading {
    Instant(Timestamp),
    Civil(CivilDateTime),
    Bsd(Option<i32>, CivilDateTime),
}

/// Tries the layouts by the first byte: a digit leads to RFC 3339 (then Go's layout) when a
/// `-` follows the year, the Apache layout when a `/` follows the day, RFC 2822 without
/// weekday when a space follows the day, else an epoch number of at least 9 integer digits
/// (smaller numbers are rarely times); `[` to the Apache layout; a weekday to RFC 2822 (with
/// `,`) or Java's layout; a month to BSD syslog. Surrounding whitespace is ignored.
fn read_any(bytes: &[u8]) -> Option<Reading> {
    let bytes = bytes.trim_ascii();
    let civil = match *bytes.first()? {
        b'0'..=b'9' => match (bytes.get(1), bytes.get(2), bytes.get(4)) {
            (_, _, Some(b'-')) => rfc3339_civil(bytes).or_else(|| go_civil(bytes))?,
            (Some(b'/'), _, _) | (_, Some(b'/'), _) => httpdate_civil(bytes)?,
            (Some(b' '), _, _) | (_, Some(b' '), _) => rfc2822_civil(bytes)?,
            _ => {
                let number = EpochNumber::read(bytes)?;
                if number.integer_digits < 9 {
                    return None;
                }
                let unit = EpochUnit::by_magnitude(number.integer);
                return number.to_timestamp(unit).map(Reading::Instant);
            }
        },
        b'[' => httpdate_civil(bytes)?,
        b'A'..=b'Z' | b'a'..=b'z' => {
            let word_len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            let word = bytes.get(..word_len)?;
            if is_weekday_abbreviation(word) {
                if bytes.get(3) == Some(&b',') {
                    rfc2822_civil(bytes)?
                } else {
                    java_civil(bytes)?
                }
            } else if month_from_abbreviation(word).is_some() {
                let (year, civil) = whole(bytes, bsd_datetime)?;
                return Some(Reading::Bsd(year, civil));
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(Reading::Civil(civil))
}

/// Any of the layouts above, detected from the text (see the order at `read_any`); a time
/// without a zone is read at `default_offset` (seconds east of UTC); a BSD syslog time
/// without a year takes it from the system clock ([`YearContext::year_for_month`]).
pub fn parse_any(bytes: &[u8], default_offset: i32) -> Option<Timestamp> {
    match read_any(bytes)? {
        Reading::Instant(t) => Some(t),
        Reading::Civil(civil) => civil.to_timestamp(default_offset),
        Reading::Bsd(year, civil) => resolve_bsd(year, civil, &YearContext::system(default_offset)),
    }
}

/// [`parse_any`] with a given year context (its offset is the default offset).
pub fn parse_any_with_year(bytes: &[u8], year_ctx: &YearContext) -> Option<Timestamp> {
    match read_any(bytes)? {
        Reading::Instant(t) => Some(t),
        Reading::Civil(civil) => civil.to_timestamp(year_ctx.offset),
        Reading::Bsd(year, civil) => resolve_bsd(year, civil, year_ctx),
    }
}

/// The zone in which times without one are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Utc,
    /// The system's local zone (with its daylight saving rules, through chrono).
    Local,
    /// Seconds east of UTC.
    Fixed(i32),
}

impl Zone {
    /// `"UTC"` (also `"Z"`, `"GMT"`), `"local"`, or a fixed offset `"+02:00"` / `"-0530"`.
    pub fn from_config(name: &str) -> Result<Zone, String> {
        let name = name.trim();
        if ["utc", "z", "gmt"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return Ok(Zone::Utc);
        }
        if name.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        whole(name.as_bytes(), Cursor::numeric_offset)
            .map(Zone::Fixed)
            .ok_or_else(|| {
                format!(
                    "unknown timezone {name:?}: use \"UTC\", \"local\" or an offset like \"+02:00\""
                )
            })
    }

    /// The offset of this zone now (seconds east of UTC).
    pub fn offset_now(self) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(offset) => offset,
            Zone::Local => {
                use chrono::Offset;
                chrono::Local::now().offset().fix().local_minus_utc()
            }
        }
    }

    /// The instant of `civil`: at its own offset if it has one, else in this zone.
    pub fn resolve(self, civil: CivilDateTime) -> Option<Timestamp> {
        let offset = match (civil.offset, self) {
            (Some(offset), _) => offset,
            (None, Zone::Utc) => 0,
            (None, Zone::Fixed(offset)) => offset,
            (None, Zone::Local) => local_offset_at(&civil)?,
        };
        civil.to_timestamp(offset)
    }
}

/// The local zone's offset at a local civil time (the earlier one when the time is
/// ambiguous, the one before the change when it falls in a gap).
fn local_offset_at(civil: &CivilDateTime) -> Option<i32> {
    use chrono::{Offset, TimeZone};
    let naive = chrono::NaiveDate::from_ymd_opt(civil.year, civil.month, civil.day)?.and_hms_opt(
        civil.hour,
        civil.minute,
        civil.second.min(59),
    )?;
    let local = chrono::Local;
    let offset = match local.offset_from_local_datetime(&naive).earliest() {
        Some(offset) => offset.fix(),
        None => local.offset_from_utc_datetime(&naive).fix(),
    };
    Some(offset.local_minus_utc())
}

/// A configured way of reading timestamps (`timestamp_format` / `timezone` options).
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    layout: Layout,
    zone: Zone,
}

#[derive(Debug, Clone)]
enum Layout {
    Auto,
    Rfc3339,
    Rfc2822,
    Syslog,
    HttpDate,
    Epoch,
    EpochUnit(EpochUnit),
    Strftime(Vec<chrono::format::Item<'static>>),
}

impl TimestampFormat {
    /// `format`: `None` or `"auto"` ([`parse_any`]), `"rfc3339"` (alias `"iso8601"`),
    /// `"rfc2822"`, `"syslog"`, `"httpdate"`, `"epoch"` (unit by magnitude), `"epoch_ms"`,
    /// `"epoch_us"`, `"epoch_ns"`, or a strftime format with `%` directives
    /// (`"%d.%m.%Y %H:%M:%S"`, chrono's syntax). `timezone` (default UTC): the zone of times
    /// that carry none, see [`Zone::from_config`].
    pub fn from_config(
        format: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<TimestampFormat, String> {
        let zone = match timezone {
            None => Zone::Utc,
            Some(name) => Zone::from_config(name)?,
        };
        let layout = match format.map(str::trim) {
            None | Some("auto") => Layout::Auto,
            Some("rfc3339" | "iso8601") => Layout::Rfc3339,
            Some("rfc2822") => Layout::Rfc2822,
            Some("syslog") => Layout::Syslog,
            Some("httpdate") => Layout::HttpDate,
            Some("epoch") => Layout::Epoch,
            Some("epoch_ms") => Layout::EpochUnit(EpochUnit::Millis),
            Some("epoch_us") => Layout::EpochUnit(EpochUnit::Micros),
            Some("epoch_ns") => Layout::EpochUnit(EpochUnit::Nanos),
            Some(strftime) => Layout::Strftime(strftime_items(strftime)?),
        };
        Ok(TimestampFormat { layout, zone })
    }

    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The instant `bytes` names in this format; `None` if it does not match.
    pub fn parse(&self, bytes: &[u8]) -> Option<Timestamp> {
        let zone = self.zone;
        let civil = match &self.layout {
            Layout::Auto => match read_any(bytes)? {
                Reading::Instant(t) => return Some(t),
                Reading::Civil(civil) => civil,
                Reading::Bsd(year, civil) => return self.resolve_bsd(year, civil),
            },
            Layout::Rfc3339 => rfc3339_civil(bytes)?,
            Layout::Rfc2822 => rfc2822_civil(bytes)?,
            Layout::Syslog => {
                let (year, civil) = whole(bytes, bsd_datetime)?;
                return self.resolve_bsd(year, civil);
            }
            Layout::HttpDate => httpdate_civil(bytes)?,
            Layout::Epoch => return parse_epoch(bytes),
            Layout::EpochUnit(unit) => return parse_epoch_unit(bytes, *unit),
            Layout::Strftime(items) => return strftime_parse(items, bytes, zone),
        };
        zone.resolve(civil)
    }

    fn resolve_bsd(&self, year: Option<i32>, mut civil: CivilDateTime) -> Option<Timestamp> {
        civil.year = match year {
            Some(year) => year,
            None => YearContext::system(self.zone.offset_now()).year_for_month(civil.month),
        };
        self.zone.resolve(civil)
    }
}

fn strftime_items(format: &str) -> Result<Vec<chrono::format::Item<'static>>, String> {
    use chrono::format::{Item, StrftimeItems};
    if !format.contains('%') {
        return Err(format!(
            "unknown timestamp format {format:?}: use auto, rfc3339, rfc2822, syslog, httpdate, \
             epoch, epoch_ms, epoch_us, epoch_ns, or a strftime format such as \"%Y-%m-%d %H:%M:%S\""
        ));
    }
    let items: Vec<Item<'static>> = StrftimeItems::new(format).map(Item::to_owned).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(format!("invalid strftime format {format:?}"));
    }
    Ok(items)
}

fn strftime_parse(
    items: &[chrono::format::Item<'static>],
    bytes: &[u8],
    zone: Zone,
) -> Option<Timestamp> {
    use chrono::{Datelike, Timelike};
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, text, items.iter()).ok()?;
    if parsed.offset().is_some() {
        let nanos = parsed.to_datetime().ok()?.timestamp_nanos_opt()?;
        return Some(Timestamp::from_unix_nanos(nanos));
    }
    if parsed.timestamp().is_some() {
        let nanos = parsed
            .to_naive_datetime_with_offset(0)
            .ok()?
            .and_utc()
            .timestamp_nanos_opt()?;
        return Some(Timestamp::from_unix_nanos(nanos));
    }
    let naive = match parsed.to_naive_datetime_with_offset(0) {
        Ok(naive) => naive,
        Err(_) => parsed.to_naive_date().ok()?.and_hms_opt(0, 0, 0)?,
    };
    // chrono keeps a leap second as second 59 with nanoseconds past one second.
    let (second, nanos) = match naive.nanosecond() {
        n if n >= 1_000_000_000 => (naive.second() + 1, n - 1_000_000_000),
        n => (naive.second(), n),
    };
    zone.resolve(CivilDateTime {
        year: naive.year(),
        month: naive.month(),
        day: naive.day(),
        hour: naive.hour(),
        minute: naive.minute(),
        second,
        nanos,
        offset: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: Timestamp) -> String {
        let mut v = Vec::new();
        t.write_rfc3339(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn civil_round_trip_and_rendering() {
        let t = Timestamp::from_civil(2003, 10, 11, 22, 14, 15, 3_000_000, 0).unwrap();
        assert_eq!(render(t), "2003-10-11T22:14:15.003Z");
        let t = Timestamp::from_civil(2003, 8, 24, 5, 14, 15, 3_000, -7 * 3600).unwrap();
        assert_eq!(render(t), "2003-08-24T12:14:15.000003Z");
        assert_eq!(
            render(Timestamp::from_unix_nanos(0)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            render(Timestamp::from_unix_nanos(-1)),
            "1969-12-31T23:59:59.999999999Z"
        );
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert!(Timestamp::from_civil(2023, 2, 29, 0, 0, 0, 0, 0).is_none());
        assert!(Timestamp::from_civil(2024, 2, 29, 0, 0, 0, 0, 0).is_some());
    }

    const NOV_2026: YearContext =
        YearContext::new(Timestamp::from_unix_nanos(1_795_262_400_000_000_000), 0);

    fn render_opt(t: Option<Timestamp>) -> Option<String> {
        t.map(render)
    }

    #[test]
    fn year_context_fixture_is_2026_11_21_noon() {
        assert_eq!(render(NOV_2026.now), "2026-11-21T12:00:00Z");
    }

    /// Every case: a parser, an input, and the exact RFC 3339 rendering (or `None`).
    #[test]
    fn table_of_layouts() {
        type Parser = fn(&[u8]) -> Option<Timestamp>;
        let rfc3339: Parser = parse_rfc3339;
        let rfc2822: Parser = parse_rfc2822;
        let syslog: Parser = |b| parse_syslog_3164(b, &NOV_2026);
        let httpdate: Parser = parse_httpdate;
        let epoch: Parser = parse_epoch;
        let go: Parser = parse_go;
        let java: Parser = parse_java;
        let any: Parser = |b| parse_any_with_year(b, &NOV_2026);
        let cases: &[(Parser, &str, Option<&str>)] = &[
            (
                rfc3339,
                "2003-10-11T22:14:15.003Z",
                Some("2003-10-11T22:14:15.003Z"),
            ),
            (
                rfc3339,
                "2003-08-24T05:14:15.000003-07:00",
                Some("2003-08-24T12:14:15.000003Z"),
            ),
            (
                rfc3339,
                "1985-04-12T23:20:50.52Z",
                Some("1985-04-12T23:20:50.520Z"),
            ),
            (
                rfc3339,
                "1996-12-19T16:39:57-08:00",
                Some("1996-12-20T00:39:57Z"),
            ),
            (
                rfc3339,
                "1990-12-31T23:59:60Z",
                Some("1991-01-01T00:00:00Z"),
            ),
            (rfc3339, "2026-11-21 09:34:39", Some("2026-11-21T09:34:39Z")),
            (
                rfc3339,
                "2026-11-21t09:34:39z",
                Some("2026-11-21T09:34:39Z"),
            ),
            (
                rfc3339,
                "2026-11-21T09:34:39+0200",
                Some("2026-11-21T07:34:39Z"),
            ),
            (
                rfc3339,
                "2026-11-21T09:34:39+02",
                Some("2026-11-21T07:34:39Z"),
            ),
            (
                rfc3339,
                "2026-11-21T09:34:39.123456789+05:30",
                Some("2026-11-21T04:04:39.123456789Z"),
            ),
            (
                rfc3339,
                "2026-11-21 09:34:39,123",
                Some("2026-11-21T09:34:39.123Z"),
            ),
            (
                rfc3339,
                "2024-02-29T00:00:00Z",
                Some("2024-02-29T00:00:00Z"),
            ),
            (
                rfc3339,
                "2262-04-11T23:47:16.854775807Z",
                Some("2262-04-11T23:47:16.854775807Z"),
            ),
            // Beyond the nanosecond range of Timestamp (1677..2262).
            (rfc3339, "0001-01-01T00:00:00Z", None),
            (rfc3339, "2262-04-11T23:47:16.854775808Z", None),
            (rfc3339, "2026-11-21T09:34:39.1234567890Z", None),
            (rfc3339, "2026-11-21T09:34:39.Z", None),
            (rfc3339, "2026-02-30T00:00:00Z", None),
            (rfc3339, "2023-02-29T00:00:00Z", None),
            (rfc3339, "2026-11-21T24:00:00Z", None),
            (rfc3339, "2026-11-21T23:60:00Z", None),
            (rfc3339, "2026-13-01T00:00:00Z", None),
            (rfc3339, "2026-00-01T00:00:00Z", None),
            (rfc3339, "2026-11-21T09:34:39+24:00", None),
            (rfc3339, "2026-11-21T09:34:39Z ", None),
            (rfc3339, "2026-11-21", None),
            (rfc3339, "2026-11-21T09:34", None),
            (rfc3339, "", None),
            (rfc3339, "garbage", None),
            (
                rfc2822,
                "Tue, 1 Jul 2003 10:52:37 +0200",
                Some("2003-07-01T08:52:37Z"),
            ),
            (
                rfc2822,
                "1 Jul 2003 10:52:37 +0200",
                Some("2003-07-01T08:52:37Z"),
            ),
            (
                rfc2822,
                "Fri, 21 Nov 1997 09:55:06 -0600",
                Some("1997-11-21T15:55:06Z"),
            ),
            (
                rfc2822,
                "Thu, 13 Feb 1969 23:32 -0330",
                Some("1969-02-14T03:02:00Z"),
            ),
            (
                rfc2822,
                "Sun, 06 Nov 1994 08:49:37 GMT",
                Some("1994-11-06T08:49:37Z"),
            ),
            (
                rfc2822,
                "Tue, 1 Jul 2003 10:52:37 EST",
                Some("2003-07-01T15:52:37Z"),
            ),
            (
                rfc2822,
                "Tue, 1 Jul 2003 10:52:37 +0000 (UTC)",
                Some("2003-07-01T10:52:37Z"),
            ),
            (rfc2822, "Tue, 31 Jun 2003 10:52:37 +0200", None),
            (rfc2822, "Tue, 1 Jul 2003 10:52:37 XYZ", None),
            (rfc2822, "Tue 1 Jul 2003 10:52:37 +0200", None),
            (rfc2822, "Tue, 1 Jul 03 10:52:37 +0200", None),
            (syslog, "Oct 11 22:14:15", Some("2026-10-11T22:14:15Z")),
            (syslog, "Oct  1 22:14:15", Some("2026-10-01T22:14:15Z")),
            (syslog, "Oct 1 22:14:15", Some("2026-10-01T22:14:15Z")),
            (syslog, "Dec 31 23:59:59", Some("2026-12-31T23:59:59Z")),
            (syslog, "Jan  5 00:00:00", Some("2026-01-05T00:00:00Z")),
            (syslog, "Oct 11 2025 22:14:15", Some("2025-10-11T22:14:15Z")),
            (
                syslog,
                "Oct 11 22:14:15.123456",
                Some("2026-10-11T22:14:15.123456Z"),
            ),
            (syslog, "oct 11 22:14:15", Some("2026-10-11T22:14:15Z")),
            (syslog, "Feb 29 10:00:00", None),
            (syslog, "Oct 11 22:14", None),
            (syslog, "Okt 11 22:14:15", None),
            (syslog, "Oct 11 22:14:15 ", None),
            (syslog, "October 11 22:14:15", None),
            (
                httpdate,
                "10/Oct/2000:13:55:36 -0700",
                Some("2000-10-10T20:55:36Z"),
            ),
            (
                httpdate,
                "[10/Oct/2000:13:55:36 -0700]",
                Some("2000-10-10T20:55:36Z"),
            ),
            (
                httpdate,
                "10/Oct/2000:13:55:36",
                Some("2000-10-10T13:55:36Z"),
            ),
            (
                httpdate,
                "1/Oct/2000:13:55:36 +0000",
                Some("2000-10-01T13:55:36Z"),
            ),
            (httpdate, "[10/Oct/2000:13:55:36 -0700", None),
            (httpdate, "32/Oct/2000:13:55:36 +0000", None),
            (httpdate, "10/Oct/2000 13:55:36 +0000", None),
            (epoch, "1700000000", Some("2023-11-14T22:13:20Z")),
            (epoch, "1700000000123", Some("2023-11-14T22:13:20.123Z")),
            (
                epoch,
                "1700000000123456",
                Some("2023-11-14T22:13:20.123456Z"),
            ),
            (
                epoch,
                "1700000000123456789",
                Some("2023-11-14T22:13:20.123456789Z"),
            ),
            (epoch, "1700000000.123", Some("2023-11-14T22:13:20.123Z")),
            (epoch, "1700000000.5", Some("2023-11-14T22:13:20.500Z")),
            (epoch, "0", Some("1970-01-01T00:00:00Z")),
            (epoch, "-1", Some("1969-12-31T23:59:59Z")),
            (epoch, "-1.5", Some("1969-12-31T23:59:58.500Z")),
            (epoch, "99999999999999999999", None),
            (epoch, "9999999999999999999", None),
            (epoch, "1700000000.", None),
            (epoch, "1700000000.1234567891", None),
            (epoch, "17000a", None),
            (epoch, "1e9", None),
            (epoch, "", None),
            (epoch, "-", None),
            (
                go,
                "2006-01-02 15:04:05.999999999 -0700 MST",
                Some("2006-01-02T22:04:05.999999999Z"),
            ),
            (
                go,
                "2009-11-10 23:00:00 +0000 UTC m=+0.000000001",
                Some("2009-11-10T23:00:00Z"),
            ),
            (
                go,
                "2026-11-21 09:34:39 +0300 +03",
                Some("2026-11-21T06:34:39Z"),
            ),
            (
                go,
                "2026-11-21 09:34:39 +0300",
                Some("2026-11-21T06:34:39Z"),
            ),
            (go, "2006-01-02 15:04:05 MST", None),
            (go, "2006-01-02 15:04:05Z -0700 MST", None),
            (
                java,
                "Tue Nov 21 09:34:39 UTC 2026",
                Some("2026-11-21T09:34:39Z"),
            ),
            (
                java,
                "Sat Nov 21 09:34:39 CET 2026",
                Some("2026-11-21T08:34:39Z"),
            ),
            (
                java,
                "Sat Nov 21 09:34:39 GMT+02:00 2026",
                Some("2026-11-21T07:34:39Z"),
            ),
            (
                java,
                "Sun Nov  1 09:34:39 2026",
                Some("2026-11-01T09:34:39Z"),
            ),
            (java, "Sat Nov 21 09:34:39 XYZ 2026", None),
            (java, "Sat Nov 21 24:34:39 UTC 2026", None),
            (
                any,
                "2003-10-11T22:14:15.003Z",
                Some("2003-10-11T22:14:15.003Z"),
            ),
            (
                any,
                "  2003-10-11T22:14:15.003Z\n",
                Some("2003-10-11T22:14:15.003Z"),
            ),
            (
                any,
                "2026-11-21 09:34:39,123",
                Some("2026-11-21T09:34:39.123Z"),
            ),
            (
                any,
                "2006-01-02 15:04:05.999999999 -0700 MST",
                Some("2006-01-02T22:04:05.999999999Z"),
            ),
            (
                any,
                "Tue, 1 Jul 2003 10:52:37 +0200",
                Some("2003-07-01T08:52:37Z"),
            ),
            (
                any,
                "1 Jul 2003 10:52:37 +0200",
                Some("2003-07-01T08:52:37Z"),
            ),
            (
                any,
                "Tue Nov 21 09:34:39 UTC 2026",
                Some("2026-11-21T09:34:39Z"),
            ),
            (any, "Oct 11 22:14:15", Some("2026-10-11T22:14:15Z")),
            (
                any,
                "[10/Oct/2000:13:55:36 -0700]",
                Some("2000-10-10T20:55:36Z"),
            ),
            (
                any,
                "10/Oct/2000:13:55:36 -0700",
                Some("2000-10-10T20:55:36Z"),
            ),
            (any, "1700000000.123", Some("2023-11-14T22:13:20.123Z")),
            (any, "1700000000123", Some("2023-11-14T22:13:20.123Z")),
            (any, "123456789", Some("1973-11-29T21:33:09Z")),
            (any, "12345678", None),
            (any, "2026", None),
            (any, "Monday", None),
            (any, "info", None),
            (any, "-1700000000", None),
            (any, "", None),
            (any, "   ", None),
            (any, "\u{feff}2026-11-21", None),
        ];
        for (parse, input, expected) in cases {
            assert_eq!(
                render_opt(parse(input.as_bytes())).as_deref(),
                *expected,
                "{input:?}"
            );
        }
        assert!(cases.len() >= 40);
    }

    /// The strict layouts of log formats: Apache's `%t`, nginx's error log, and the RFC 3339
    /// prefix of container runtime lines.
    #[test]
    fn strict_log_layouts() {
        let apache: &[(&str, Option<&str>)] = &[
            ("10/Oct/2000:13:55:36 -0700", Some("2000-10-10T20:55:36Z")),
            ("29/Feb/2024:23:59:59 -0000", Some("2024-02-29T23:59:59Z")),
            ("05/jun/2025:07:08:09 +0530", Some("2025-06-05T01:38:09Z")),
            (
                "10/Oct/2000:13:55:36.250 -0700",
                Some("2000-10-10T20:55:36.250Z"),
            ),
            (
                "10/Oct/2000:13:55:36.1234567891 +0000",
                Some("2000-10-10T13:55:36.123456789Z"),
            ),
            ("1/Oct/2000:13:55:36 +0000", None),
            ("10/Oct/2000:13:55:36", None),
            ("10/Oct/2000:13:55:36 +00:00", None),
            ("10/Oct/2000:13:55:36 +02", None),
            ("10/Oct/2000:13:55:36 +0060", None),
            ("10/Oct/2000:13:55:36. +0000", None),
            ("10/Oct/2000:13:55:36 -0700 ", None),
            ("[10/Oct/2000:13:55:36 -0700]", None),
            ("32/Oct/2000:13:55:36 -0700", None),
            ("10/Octo/2000:13:55:36 -0700", None),
            ("10/Oct/2000:25:55:36 -0700", None),
            ("", None),
        ];
        for (input, expected) in apache {
            let got = render_opt(parse_apache_time(input.as_bytes()));
            assert_eq!(got.as_deref(), *expected, "apache {input:?}");
        }
        let nginx: &[(&str, Option<&str>)] = &[
            ("2026/11/21 09:34:39", Some("2026-11-21T09:34:39Z")),
            ("2024/02/29 23:59:59", Some("2024-02-29T23:59:59Z")),
            ("2026/11/21 09:34:39.5", None),
            ("2026/11/21 09:34:39 ", None),
            ("2026-11-21 09:34:39", None),
            ("2026/11/21T09:34:39", None),
            ("2026/11/21 9:34:39", None),
            ("2026/02/30 00:00:00", None),
            ("2026/11/21", None),
        ];
        for (input, expected) in nginx {
            let got = render_opt(parse_nginx_time(input.as_bytes()));
            assert_eq!(got.as_deref(), *expected, "nginx {input:?}");
        }
        let prefix: &[(&str, Option<(&str, usize)>)] = &[
            (
                "2016-10-06T00:17:09.669794202Z stdout F x",
                Some(("2016-10-06T00:17:09.669794202Z", 30)),
            ),
            (
                "2026-11-21T10:34:39.123456789+01:00",
                Some(("2026-11-21T09:34:39.123456789Z", 35)),
            ),
            (
                "1999-12-31t23:59:59.999999999999z",
                Some(("1999-12-31T23:59:59.999999999Z", 33)),
            ),
            (
                "2026-01-01T00:30:00-05:30 west",
                Some(("2026-01-01T06:00:00Z", 25)),
            ),
            (
                "2026-11-21T09:34:39Zjunk",
                Some(("2026-11-21T09:34:39Z", 20)),
            ),
            (
                "2026-11-21T09:34:39.5Z",
                Some(("2026-11-21T09:34:39.500Z", 22)),
            ),
            ("2016-10-06 00:17:09Z", None),
            ("2016-10-06T00:17:09", None),
            ("2016-10-06T00:17:09 stdout", None),
            ("2016-10-06T00:17:09.Z", None),
            ("2016-10-06T00:17:09,5Z", None),
            ("2016-10-06T00:17:09+0200", None),
            ("2016-10-06T00:17:09+02", None),
            ("2016-10-06T00:17:09+24:00", None),
            ("2016-10-06T00:17:09+02:60", None),
            ("2016-13-06T00:17:09Z", None),
            ("2016-10-06", None),
            ("", None),
        ];
        for (input, expected) in prefix {
            let got = parse_rfc3339_prefix(input.as_bytes()).map(|(t, used)| (render(t), used));
            let expected = expected.map(|(t, used)| (t.to_string(), used));
            assert_eq!(got, expected, "prefix {input:?}");
        }
    }

    #[test]
    fn year_rollover_and_zone_of_syslog_times() {
        let january = YearContext::new(parse_rfc3339(b"2027-01-05T08:00:00Z").unwrap(), 0);
        let syslog = |b: &str, ctx: &YearContext| render_opt(parse_syslog_3164(b.as_bytes(), ctx));
        assert_eq!(
            syslog("Dec 31 23:59:59", &january).as_deref(),
            Some("2026-12-31T23:59:59Z")
        );
        assert_eq!(
            syslog("Jan  5 07:00:00", &january).as_deref(),
            Some("2027-01-05T07:00:00Z")
        );
        assert_eq!(
            syslog("Feb  1 00:00:00", &january).as_deref(),
            Some("2027-02-01T00:00:00Z")
        );
        assert_eq!(
            syslog("Mar  1 00:00:00", &january).as_deref(),
            Some("2026-03-01T00:00:00Z")
        );
        // The current month is taken in the local zone: 23:30 UTC on Dec 31 is already
        // January at +02:00, so December lines belong to the year before.
        let new_year_eve = YearContext::new(parse_rfc3339(b"2026-12-31T23:30:00Z").unwrap(), 7200);
        assert_eq!(new_year_eve.year_for_month(12), 2026);
        assert_eq!(new_year_eve.year_for_month(1), 2027);
        assert_eq!(new_year_eve.year_for_month(3), 2026);
        let plus_two = YearContext::new(NOV_2026.now, 7200);
        assert_eq!(
            syslog("Oct 11 22:14:15", &plus_two).as_deref(),
            Some("2026-10-11T20:14:15Z")
        );
        assert!(YearContext::system(0).year_for_month(1) >= 2025);
    }

    #[test]
    fn default_offsets() {
        assert_eq!(
            render_opt(parse_rfc3339_with_default_offset(
                b"2026-11-21 09:34:39",
                -3600
            ))
            .as_deref(),
            Some("2026-11-21T10:34:39Z")
        );
        // An explicit zone wins over the default.
        assert_eq!(
            render_opt(parse_rfc3339_with_default_offset(
                b"2026-11-21 09:34:39Z",
                -3600
            ))
            .as_deref(),
            Some("2026-11-21T09:34:39Z")
        );
        assert_eq!(
            render_opt(parse_any(b"2026-11-21T09:34:39", 3600)).as_deref(),
            Some("2026-11-21T08:34:39Z")
        );
        assert!(parse_any(b"Oct 11 22:14:15", 0).is_some());
    }

    #[test]
    fn configured_formats() {
        let parse = |format: Option<&str>, tz: Option<&str>, input: &str| {
            let f = TimestampFormat::from_config(format, tz).unwrap();
            render_opt(f.parse(input.as_bytes()))
        };
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (
                None,
                None,
                "2026-11-21T09:34:39Z",
                Some("2026-11-21T09:34:39Z"),
            ),
            (
                Some("auto"),
                Some("+02:00"),
                "2026-11-21 09:34:39",
                Some("2026-11-21T07:34:39Z"),
            ),
            (
                Some("auto"),
                Some("+02:00"),
                "1700000000",
                Some("2023-11-14T22:13:20Z"),
            ),
            (
                Some("rfc3339"),
                Some("-0130"),
                "2026-11-21 09:34:39",
                Some("2026-11-21T11:04:39Z"),
            ),
            (
                Some("rfc3339"),
                Some("+02:00"),
                "2026-11-21 09:34:39Z",
                Some("2026-11-21T09:34:39Z"),
            ),
            (
                Some("iso8601"),
                None,
                "2026-11-21T09:34:39Z",
                Some("2026-11-21T09:34:39Z"),
            ),
            (Some("rfc3339"), None, "Oct 11 22:14:15", None),
            (
                Some("rfc2822"),
                None,
                "Tue, 1 Jul 2003 10:52:37 +0200",
                Some("2003-07-01T08:52:37Z"),
            ),
            (
                Some("httpdate"),
                Some("UTC"),
                "10/Oct/2000:13:55:36 -0700",
                Some("2000-10-10T20:55:36Z"),
            ),
            (
                Some("syslog"),
                Some("+01:00"),
                "Oct 11 2025 22:14:15",
                Some("2025-10-11T21:14:15Z"),
            ),
            (
                Some("epoch"),
                None,
                "1700000000123",
                Some("2023-11-14T22:13:20.123Z"),
            ),
            (
                Some("epoch_ms"),
                None,
                "1700000000123",
                Some("2023-11-14T22:13:20.123Z"),
            ),
            (
                Some("epoch_ms"),
                None,
                "5.5",
                Some("1970-01-01T00:00:00.005500Z"),
            ),
            (
                Some("epoch_us"),
                None,
                "1700000000123456",
                Some("2023-11-14T22:13:20.123456Z"),
            ),
            (
                Some("epoch_ns"),
                None,
                "1700000000123456789",
                Some("2023-11-14T22:13:20.123456789Z"),
            ),
            (Some("epoch_ns"), None, "x", None),
            (
                Some("%d.%m.%Y %H:%M:%S"),
                Some("+01:00"),
                "21.11.2026 09:34:39",
                Some("2026-11-21T08:34:39Z"),
            ),
            (
                Some("%Y-%m-%d %H:%M:%S %z"),
                Some("+01:00"),
                "2026-11-21 09:34:39 +0200",
                Some("2026-11-21T07:34:39Z"),
            ),
            (
                Some("%Y-%m-%d %H:%M:%S%.f"),
                None,
                "2026-11-21 09:34:39.25",
                Some("2026-11-21T09:34:39.250Z"),
            ),
            (
                Some("%Y-%m-%d"),
                None,
                "2026-11-21",
                Some("2026-11-21T00:00:00Z"),
            ),
            (
                Some("%s"),
                Some("+05:00"),
                "1700000000",
                Some("2023-11-14T22:13:20Z"),
            ),
            (Some("%Y-%m-%d"), None, "2026-02-30", None),
            (Some("%Y-%m-%d"), None, "21.11.2026", None),
        ];
        for (format, tz, input, expected) in cases {
            assert_eq!(
                parse(*format, *tz, input).as_deref(),
                *expected,
                "{format:?} {tz:?} {input:?}"
            );
        }
        assert!(parse(Some("%Y-%m-%d"), None, "2026-11-21\u{0}").is_none());
        let invalid_utf8 = TimestampFormat::from_config(Some("%Y"), None).unwrap();
        assert_eq!(invalid_utf8.parse(&[0xff, 0xfe]), None);
    }

    #[test]
    fn configuration_errors() {
        for (format, tz) in [
            (Some("rfc3399"), None),
            (Some(""), None),
            (Some("%Y-%"), None),
            (None, Some("Mars/Phobos")),
            (None, Some("+25:00")),
            (None, Some("")),
        ] {
            assert!(
                TimestampFormat::from_config(format, tz).is_err(),
                "{format:?} {tz:?}"
            );
        }
        assert_eq!(Zone::from_config("utc"), Ok(Zone::Utc));
        assert_eq!(Zone::from_config("Local"), Ok(Zone::Local));
        assert_eq!(Zone::from_config("+05:30"), Ok(Zone::Fixed(19_800)));
        assert_eq!(Zone::from_config("-0800"), Ok(Zone::Fixed(-28_800)));
    }

    #[test]
    fn local_zone_reads_within_a_day_of_utc() {
        let local = TimestampFormat::from_config(Some("rfc3339"), Some("local")).unwrap();
        assert_eq!(local.zone(), Zone::Local);
        let utc = parse_rfc3339(b"2026-06-01T12:00:00").unwrap();
        let t = local.parse(b"2026-06-01T12:00:00").unwrap();
        assert!((t.unix_nanos - utc.unix_nanos).abs() <= 14 * 3600 * 1_000_000_000);
        // With an explicit zone the local zone plays no part.
        assert_eq!(local.parse(b"2026-06-01T12:00:00Z"), Some(utc));
    }

    #[test]
    fn zone_abbreviations() {
        assert_eq!(zone_abbreviation_offset(b"UTC"), Some(0));
        assert_eq!(zone_abbreviation_offset(b"gmt"), Some(0));
        assert_eq!(zone_abbreviation_offset(b"PDT"), Some(-7 * 3600));
        assert_eq!(zone_abbreviation_offset(b"CEST"), Some(2 * 3600));
        assert_eq!(zone_abbreviation_offset(b"ACST"), Some(9 * 3600 + 1800));
        assert_eq!(zone_abbreviation_offset(b"IST"), None);
        assert_eq!(zone_abbreviation_offset(b""), None);
        assert_eq!(zone_abbreviation_offset(b"UTCXX"), None);
        for (i, m) in [
            "Jan", "FEB", "mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(month_from_abbreviation(m.as_bytes()), Some(i as u32 + 1));
        }
        assert_eq!(month_from_abbreviation(b"Ja"), None);
        assert_eq!(month_from_abbreviation(b"Janu"), None);
    }

    #[test]
    fn no_panic_on_prefixes_of_valid_inputs() {
        let inputs = [
            "2006-01-02 15:04:05.999999999 -0700 MST m=+0.000000001",
            "Tue, 1 Jul 2003 10:52:37 +0000 (UTC)",
            "[10/Oct/2000:13:55:36.123 -0700]",
            "Sat Nov 21 09:34:39 GMT+02:00 2026",
            "Oct 11 2026 22:14:15.123456789",
            "-1700000000.123456789",
            "10/Oct/2000:13:55:36.123456789012 -0700",
            "2026/11/21 09:34:39",
            "2026-11-21T10:34:39.123456789123+01:00 stdout",
        ];
        let ctx = NOV_2026;
        for input in inputs {
            for cut in 0..=input.len() {
                let b = &input.as_bytes()[..cut];
                let _ = parse_any_with_year(b, &ctx);
                let _ = parse_rfc3339(b);
                let _ = parse_rfc2822(b);
                let _ = parse_syslog_3164(b, &ctx);
                let _ = parse_httpdate(b);
                let _ = parse_epoch(b);
                let _ = parse_go(b);
                let _ = parse_java(b);
                let _ = parse_apache_time(b);
                let _ = parse_nginx_time(b);
                let _ = parse_rfc3339_prefix(b);
            }
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

        #[derive(Debug, Clone, Copy)]
        struct Local {
            year: i32,
            month: u32,
            day: u32,
            hour: u32,
            minute: u32,
            second: u32,
            nanos: u32,
            /// Minutes east of UTC.
            offset_minutes: i32,
        }

        impl Local {
            fn instant(self, nanos: u32) -> Timestamp {
                Timestamp::from_civil(
                    self.year,
                    self.month,
                    self.day,
                    self.hour,
                    self.minute,
                    self.second,
                    nanos,
                    self.offset_minutes * 60,
                )
                .unwrap()
            }
            fn weekday(self) -> &'static str {
                let days = days_from_civil(self.year, self.month, self.day);
                WEEKDAYS[(days + 4).rem_euclid(7) as usize]
            }
            fn month_name(self) -> &'static str {
                MONTHS[self.month as usize - 1]
            }
            fn offset(self, colon: bool) -> String {
                let sign = if self.offset_minutes < 0 { '-' } else { '+' };
                let m = self.offset_minutes.abs();
                if colon {
                    format!("{sign}{:02}:{:02}", m / 60, m % 60)
                } else {
                    format!("{sign}{:02}{:02}", m / 60, m % 60)
                }
            }
            fn date(self) -> String {
                format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
            }
            fn time(self) -> String {
                format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
            }
        }

        fn local() -> impl Strategy<Value = Local> {
            (
                1974i32..=2200,
                1u32..=12,
                1u32..=31,
                0u32..24,
                0u32..60,
                0u32..60,
                0u32..1_000_000_000,
                -14 * 60..=14 * 60i32,
            )
                .prop_map(
                    |(year, month, day, hour, minute, second, nanos, offset_minutes)| Local {
                        year,
                        month,
                        day: day.min(days_in_month(year, month)),
                        hour,
                        minute,
                        second,
                        nanos,
                        offset_minutes,
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn rendered_layouts_parse_back(t in local(), digits in 0usize..=9) {
                let scale = 10u32.pow(9 - digits as u32);
                let truncated = t.nanos / scale * scale;
                let fraction = if digits == 0 {
                    String::new()
                } else {
                    format!(".{:0width$}", t.nanos / scale, width = digits)
                };
                let exact = t.instant(truncated);
                let whole_second = t.instant(0);
                let millis = t.instant(t.nanos / 1_000_000 * 1_000_000);
                let ctx = YearContext::new(Timestamp::from_unix_nanos(0), t.offset_minutes * 60);
                let (date, time) = (t.date(), t.time());
                let rendered: Vec<(String, Option<Timestamp>, Timestamp)> = vec![
                    (format!("{date}T{time}{fraction}{}", t.offset(true)), parse_rfc3339(format!("{date}T{time}{fraction}{}", t.offset(true)).as_bytes()), exact),
                    (format!("{date} {time}{fraction}{}", t.offset(false)), parse_rfc3339(format!("{date} {time}{fraction}{}", t.offset(false)).as_bytes()), exact),
                    (format!("{date}T{time}{fraction}"), parse_rfc3339_with_default_offset(format!("{date}T{time}{fraction}").as_bytes(), t.offset_minutes * 60), exact),
                    (format!("{date} {time},{:03}", t.nanos / 1_000_000), parse_rfc3339_with_default_offset(format!("{date} {time},{:03}", t.nanos / 1_000_000).as_bytes(), t.offset_minutes * 60), millis),
                    (format!("{}, {} {} {} {time} {}", t.weekday(), t.day, t.month_name(), t.year, t.offset(false)), None, whole_second),
                    (format!("[{:02}/{}/{}:{time} {}]", t.day, t.month_name(), t.year, t.offset(false)), None, whole_second),
                    (format!("{date} {time}{fraction} {} XYZ", t.offset(false)), None, exact),
                    (format!("{} {} {:2} {time}{fraction} {}", t.month_name(), t.year, t.day, ""), None, exact),
                    (format!("{} {:2} {} {time}{fraction}", t.month_name(), t.day, t.year), None, exact),
                ];
                for (text, direct, expected) in &rendered {
                    if let Some(direct) = direct {
                        prop_assert_eq!(*direct, *expected, "{}", text);
                    }
                }
                // Through the layout-specific parsers and through parse_any.
                let rfc2822 = &rendered[4].0;
                prop_assert_eq!(parse_rfc2822(rfc2822.as_bytes()), Some(whole_second), "{}", rfc2822);
                prop_assert_eq!(parse_any_with_year(rfc2822.as_bytes(), &ctx), Some(whole_second));
                let apache = &rendered[5].0;
                prop_assert_eq!(parse_httpdate(apache.as_bytes()), Some(whole_second), "{}", apache);
                prop_assert_eq!(parse_any_with_year(apache.as_bytes(), &ctx), Some(whole_second));
                let go = &rendered[6].0;
                prop_assert_eq!(parse_go(go.as_bytes()), Some(exact), "{}", go);
                prop_assert_eq!(parse_any_with_year(go.as_bytes(), &ctx), Some(exact));
                let syslog = &rendered[8].0;
                prop_assert_eq!(parse_syslog_3164(syslog.as_bytes(), &ctx), Some(exact), "{}", syslog);
                prop_assert_eq!(parse_any_with_year(syslog.as_bytes(), &ctx), Some(exact));
                for (text, _, expected) in rendered.iter().take(4) {
                    prop_assert_eq!(parse_any_with_year(text.as_bytes(), &ctx), Some(*expected), "{}", text);
                }
                // Java's layout, in UTC.
                let utc = Timestamp::from_civil(t.year, t.month, t.day, t.hour, t.minute, t.second, 0, 0).unwrap();
                let java = format!("{} {} {:02} {time} UTC {}", Local { offset_minutes: 0, ..t }.weekday(), t.month_name(), t.day, t.year);
                prop_assert_eq!(parse_java(java.as_bytes()), Some(utc), "{}", java);
                prop_assert_eq!(parse_any_with_year(java.as_bytes(), &ctx), Some(utc));
                // Epoch numbers in every unit, read by magnitude.
                let instant = t.instant(t.nanos);
                let nanos = instant.unix_nanos;
                let secs = nanos.div_euclid(1_000_000_000);
                let sub = nanos.rem_euclid(1_000_000_000);
                let epochs = [
                    (format!("{secs}"), secs * 1_000_000_000),
                    (format!("{secs}.{sub:09}"), nanos),
                    (format!("{}", nanos.div_euclid(1_000_000)), nanos.div_euclid(1_000_000) * 1_000_000),
                    (format!("{}", nanos.div_euclid(1_000)), nanos.div_euclid(1_000) * 1_000),
                    (format!("{nanos}"), nanos),
                ];
                for (text, expected) in epochs {
                    prop_assert_eq!(parse_epoch(text.as_bytes()), Some(Timestamp::from_unix_nanos(expected)), "{}", text);
                    prop_assert_eq!(parse_any(text.as_bytes(), 0), Some(Timestamp::from_unix_nanos(expected)), "{}", text);
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
                let ctx = YearContext::new(Timestamp::from_unix_nanos(0), 0);
                let _ = parse_any_with_year(&bytes, &ctx);
                let _ = parse_rfc2822(&bytes);
                let _ = parse_java(&bytes);
                let _ = parse_go(&bytes);
                let _ = parse_httpdate(&bytes);
                let _ = parse_epoch(&bytes);
                let _ = parse_apache_time(&bytes);
                let _ = parse_nginx_time(&bytes);
                let _ = parse_rfc3339_prefix(&bytes);
            }
        }
    }
}
