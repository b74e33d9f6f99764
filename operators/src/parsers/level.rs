//! Log levels: the seven normalised names every parser emits in `level`
//! (`trace debug info notice warn error fatal`), from free-form level words and from syslog
//! severities, plus the syslog severity and facility names.

/// The normalised level names, most verbose first.
pub const LEVELS: [&str; 7] = ["trace", "debug", "info", "notice", "warn", "error", "fatal"];

/// The longest level word [`normalize_level`] knows (`informational`).
const MAX_LEVEL_WORD: usize = 13;

/// Maps a level word, case-insensitively, to one of [`LEVELS`]; `None` if it is not a level.
///
/// * trace: `trace trc t verbose v finest finer`
/// * debug: `debug dbg d fine config`
/// * info: `info inf i information informational`
/// * notice: `notice`
/// * warn: `warn warning wrn w`
/// * error: `error err e severe`
/// * fatal: `fatal f critical crit alert emerg emergency panic a` (`a` is Android's assert)
///
/// Surrounding whitespace is not trimmed: pass the word itself.
pub fn normalize_level(word: &[u8]) -> Option<&'static str> {
    if word.is_empty() || word.len() > MAX_LEVEL_WORD {
        return None;
    }
    let mut lower = [0u8; MAX_LEVEL_WORD];
    for (dst, src) in lower.iter_mut().zip(word) {
        *dst = src.to_ascii_lowercase();
    }
    let level = match &lower[..word.len()] {
        b"trace" | b"trc" | b"t" | b"verbose" | b"v" | b"finest" | b"finer" => "trace",
        b"debug" | b"dbg" | b"d" | b"fine" | b"config" => "debug",
        b"info" | b"inf" | b"i" | b"information" | b"informational" => "info",
        b"notice" => "notice",
        b"warn" | b"warning" | b"wrn" | b"w" => "warn",
        b"error" | b"err" | b"e" | b"severe" => "error",
        b"fatal" | b"f" | b"critical" | b"crit" | b"alert" | b"emerg" | b"emergency" | b"panic"
        | b"a" => "fatal",
        _ => return None,
    };
    Some(level)
}

/// The syslog severity names (RFC 5424 table 2, as Vector's `parse_syslog` writes them),
/// indexed by severity 0..=7.
pub const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The name of a syslog severity (`emerg` .. `debug`); `None` above 7.
pub fn severity_name(severity: u8) -> Option<&'static str> {
    SEVERITY_NAMES.get(severity as usize).copied()
}

/// The normalised level of a syslog severity: 0-2 fatal, 3 error, 4 warn, 5 notice, 6 info,
/// 7 debug. Severities above 7 do not exist; they map to `debug`, the least severe.
pub fn severity_level(severity: u8) -> &'static str {
    match severity {
        0..=2 => "fatal",
        3 => "error",
        4 => "warn",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

/// The syslog facility names (as Vector's `parse_syslog` writes them), indexed by facility
/// 0..=23.
pub const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// The name of a syslog facility (`kern` .. `local7`); `None` above 23.
pub fn facility_name(facility: u8) -> Option<&'static str> {
    FACILITY_NAMES.get(facility as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_word_in_every_case() {
        let table: &[(&str, &str)] = &[
            ("trace", "trace"),
            ("trc", "trace"),
            ("t", "trace"),
            ("verbose", "trace"),
            ("v", "trace"),
            ("finest", "trace"),
            ("finer", "trace"),
            ("debug", "debug"),
            ("dbg", "debug"),
            ("d", "debug"),
            ("fine", "debug"),
            ("config", "debug"),
            ("info", "info"),
            ("inf", "info"),
            ("i", "info"),
            ("information", "info"),
            ("informational", "info"),
            ("notice", "notice"),
            ("warn", "warn"),
            ("warning", "warn"),
            ("wrn", "warn"),
            ("w", "warn"),
            ("error", "error"),
            ("err", "error"),
            ("e", "error"),
            ("severe", "error"),
            ("fatal", "fatal"),
            ("f", "fatal"),
            ("critical", "fatal"),
            ("crit", "fatal"),
            ("alert", "fatal"),
            ("emerg", "fatal"),
            ("emergency", "fatal"),
            ("panic", "fatal"),
            ("a", "fatal"),
        ];
        for (word, level) in table {
            let upper = word.to_ascii_uppercase();
            let mut title = word.to_string();
            title[..1].make_ascii_uppercase();
            for w in [word.to_string(), upper, title] {
                assert_eq!(normalize_level(w.as_bytes()), Some(*level), "{w}");
            }
        }
        // Every normalised name maps to itself.
        for level in LEVELS {
            assert_eq!(normalize_level(level.as_bytes()), Some(level));
        }
    }

    #[test]
    fn non_levels() {
        for w in [
            "",
            " info",
            "info ",
            "inform",
            "warnings",
            "x",
            "errors",
            "3",
            "INFOO",
            "levels",
            "informationalx",
            "\u{e9}",
        ] {
            assert_eq!(normalize_level(w.as_bytes()), None, "{w:?}");
        }
        assert_eq!(normalize_level(&[0xff, 0xfe]), None);
        assert_eq!(normalize_level(&[b'a'; 1000]), None);
    }

    #[test]
    fn severities() {
        let expected = [
            ("emerg", "fatal"),
            ("alert", "fatal"),
            ("crit", "fatal"),
            ("err", "error"),
            ("warning", "warn"),
            ("notice", "notice"),
            ("info", "info"),
            ("debug", "debug"),
        ];
        for (sev, (name, level)) in expected.iter().enumerate() {
            assert_eq!(severity_name(sev as u8), Some(*name));
            assert_eq!(severity_level(sev as u8), *level);
            // The severity name is itself a level word with the same meaning.
            assert_eq!(normalize_level(name.as_bytes()), Some(*level));
        }
        assert_eq!(severity_name(8), None);
        assert_eq!(severity_level(8), "debug");
        assert_eq!(severity_level(255), "debug");
    }

    #[test]
    fn facilities() {
        assert_eq!(facility_name(0), Some("kern"));
        assert_eq!(facility_name(4), Some("auth"));
        assert_eq!(facility_name(10), Some("authpriv"));
        assert_eq!(facility_name(15), Some("solaris-cron"));
        assert_eq!(facility_name(16), Some("local0"));
        assert_eq!(facility_name(23), Some("local7"));
        assert_eq!(facility_name(24), None);
        for (i, name) in FACILITY_NAMES.iter().enumerate().skip(16) {
            assert_eq!(*name, format!("local{}", i - 16));
        }
    }
}
