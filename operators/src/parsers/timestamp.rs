//! Timestamps: the normalised form every parser emits, and its RFC 3339 rendering.
//!
//! Parsing of the many input layouts lives here too (see the functions below); every parser
//! turns what it reads into a [`Timestamp`] (nanoseconds since the Unix epoch, UTC) and the
//! sink writes it as RFC 3339 with the shortest fraction (`.003`, `.123456`, or none).

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
}
