//! The built-in grok pattern library: the names of the Logstash / Elastic "legacy" pattern
//! set with the same meaning, written afresh for regex-automata.
//!
//! regex-automata has no look-around, backreferences or atomic groups, so where the
//! Logstash originals use them the definitions here differ a little:
//!
//! * `(?<![0-9])` / `(?![0-9])` guards around numbers and IPv4 addresses become `\b` (a
//!   number glued to a letter or `_` does not match `IPV4`/`POSINT`/`NONNEGINT`/`WORD`) or are
//!   dropped (`INT`, `NUMBER`, `TIME` match inside longer digit runs in an unanchored search).
//! * atomic groups become plain groups (the match can differ only where backtracking into
//!   the group finds another way to match, which the originals forbid).
//! * `IPV6` is the RFC 4291 grammar (all `::` forms, embedded IPv4, optional `%zone`) rather
//!   than the long Logstash alternation; `HOSTNAME` does not enforce the 63-byte label limit.
//! * `QUOTEDSTRING` accepts `\` escapes inside the quotes; its value keeps the quotes.
//!
//! Classes are ASCII (`\w` is `[0-9A-Za-z_]`), as in Logstash's Ruby regexes.
//! Captures inside library patterns (`port` in `URIHOST`, `program`/`pid` in `SYSLOGPROG`,
//! the Apache fields) are the legacy (pre-ECS) names.

/// `(name, definition)`. A definition may refer to other names with `%{NAME}` or
/// `%{NAME:field}`; user-defined patterns may refer to these and override them.
pub const PATTERNS: &[(&str, &str)] = &[
    // --- words, users, numbers
    ("USERNAME", r"[a-zA-Z0-9._-]+"),
    ("USER", r"%{USERNAME}"),
    (
        "EMAILLOCALPART",
        r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*",
    ),
    ("EMAILADDRESS", r"%{EMAILLOCALPART}@%{HOSTNAME}"),
    ("INT", r"[+-]?[0-9]+"),
    ("BASE10NUM", r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"),
    ("NUMBER", r"%{BASE10NUM}"),
    ("BASE16NUM", r"[+-]?(?:0x)?[0-9A-Fa-f]+"),
    (
        "BASE16FLOAT",
        r"[+-]?(?:0x)?(?:[0-9A-Fa-f]+(?:\.[0-9A-Fa-f]*)?|\.[0-9A-Fa-f]+)\b",
    ),
    ("POSINT", r"\b[1-9][0-9]*\b"),
    ("NONNEGINT", r"\b[0-9]+\b"),
    ("WORD", r"\b\w+\b"),
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    (
        "QUOTEDSTRING",
        r#""(?:\\.|[^\\"])*"|'(?:\\.|[^\\'])*'|`(?:\\.|[^\\`])*`"#,
    ),
    ("QS", r"%{QUOTEDSTRING}"),
    (
        "UUID",
        r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    ),
    (
        "URN",
        r"urn:[0-9A-Za-z][0-9A-Za-z-]{0,31}:(?:%[0-9A-Fa-f]{2}|[0-9A-Za-z()+,.:=@;$_!*'/?#-])+",
    ),
    // --- network
    ("CISCOMAC", r"(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4}"),
    ("WINDOWSMAC", r"(?:[A-Fa-f0-9]{2}-){5}[A-Fa-f0-9]{2}"),
    ("COMMONMAC", r"(?:[A-Fa-f0-9]{2}:){5}[A-Fa-f0-9]{2}"),
    ("MAC", r"%{CISCOMAC}|%{WINDOWSMAC}|%{COMMONMAC}"),
    ("IPV4OCTET", r"25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9]"),
    (
        "IPV4",
        r"\b(?:%{IPV4OCTET})\.(?:%{IPV4OCTET})\.(?:%{IPV4OCTET})\.(?:%{IPV4OCTET})\b",
    ),
    ("IPV6H16", r"[0-9A-Fa-f]{1,4}"),
    // RFC 4291 section 2.2 / RFC 3986 `IPv6address`: the seven forms that end in 32 bits
    // (two groups or an IPv4 address) share that tail; two forms end in one group or `::`.
    (
        "IPV6",
        concat!(
            r"(?:",
            r"(?:(?:%{IPV6H16}:){6}",
            r"|::(?:%{IPV6H16}:){5}",
            r"|(?:%{IPV6H16})?::(?:%{IPV6H16}:){4}",
            r"|(?:(?:%{IPV6H16}:)?%{IPV6H16})?::(?:%{IPV6H16}:){3}",
            r"|(?:(?:%{IPV6H16}:){0,2}%{IPV6H16})?::(?:%{IPV6H16}:){2}",
            r"|(?:(?:%{IPV6H16}:){0,3}%{IPV6H16})?::%{IPV6H16}:",
            r"|(?:(?:%{IPV6H16}:){0,4}%{IPV6H16})?::",
            r")(?:%{IPV6H16}:%{IPV6H16}|%{IPV4})",
            r"|(?:(?:%{IPV6H16}:){0,5}%{IPV6H16})?::%{IPV6H16}",
            r"|(?:(?:%{IPV6H16}:){0,6}%{IPV6H16})?::",
            r")(?:%[0-9A-Za-z._~-]+)?",
        ),
    ),
    ("IP", r"%{IPV6}|%{IPV4}"),
    (
        "HOSTNAME",
        r"\b[0-9A-Za-z][0-9A-Za-z-]*(?:\.[0-9A-Za-z][0-9A-Za-z-]*)*\.?",
    ),
    ("IPORHOST", r"%{IP}|%{HOSTNAME}"),
    ("HOSTPORT", r"%{IPORHOST}:%{POSINT}"),
    // --- paths and URIs
    ("UNIXPATH", r"(?:/(?:[\w%!$@:.,+~-]|\\.)*)+"),
    ("WINPATH", r"(?:[A-Za-z]+:|\\)(?:\\[^\\?*]*)+"),
    ("PATH", r"%{UNIXPATH}|%{WINPATH}"),
    ("TTY", r"/dev/(?:pts|tty[pq]?)\w*/?[0-9]+"),
    ("URIPROTO", r"[A-Za-z][A-Za-z0-9+.-]+"),
    ("URIHOST", r"%{IPORHOST}(?::%{POSINT:port})?"),
    ("URIPATH", r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_-]*)+"),
    ("URIQUERY", r"[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\[\]<>-]*"),
    ("URIPARAM", r"\?%{URIQUERY}"),
    ("URIPATHPARAM", r"%{URIPATH}(?:%{URIPARAM})?"),
    (
        "URI",
        r"%{URIPROTO}://(?:%{USER}(?::[^@]*)?@)?(?:%{URIHOST})?(?:%{URIPATHPARAM})?",
    ),
    // --- dates and times (English month and day names; German month names too)
    (
        "MONTH",
        concat!(
            r"\b(?:[Jj]an(?:uary|uar)?|[Ff]eb(?:ruary|ruar)?|[Mm](?:ar(?:ch)?|är(?:z)?|rz)",
            r"|[Aa]pr(?:il)?|[Mm]a[yi]|[Jj]un[ei]?|[Jj]ul[yi]?|[Aa]ug(?:ust)?",
            r"|[Ss]ept?(?:ember)?|[Oo][ck]t(?:ober)?|[Nn]ov(?:ember)?|[Dd]e[cz](?:ember)?)\b",
        ),
    ),
    ("MONTHNUM", r"0?[1-9]|1[0-2]"),
    ("MONTHNUM2", r"0[1-9]|1[0-2]"),
    ("MONTHDAY", r"0[1-9]|[12][0-9]|3[01]|[1-9]"),
    (
        "DAY",
        r"Mon(?:day)?|Tue(?:s(?:day)?)?|Wed(?:nesday)?|Thu(?:r(?:s(?:day)?)?)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?",
    ),
    ("YEAR", r"(?:[0-9]{2}){1,2}"),
    ("HOUR", r"2[0-3]|[01]?[0-9]"),
    ("MINUTE", r"[0-5][0-9]"),
    ("SECOND", r"(?:[0-5]?[0-9]|60)(?:[.,:][0-9]+)?"),
    ("TIME", r"%{HOUR}:%{MINUTE}:%{SECOND}"),
    ("DATE_US", r"%{MONTHNUM}[/-]%{MONTHDAY}[/-]%{YEAR}"),
    ("DATE_EU", r"%{MONTHDAY}[./-]%{MONTHNUM}[./-]%{YEAR}"),
    ("ISO8601_TIMEZONE", r"Z|[+-]%{HOUR}:?%{MINUTE}"),
    ("ISO8601_SECOND", r"%{SECOND}"),
    (
        "TIMESTAMP_ISO8601",
        r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?(?:%{ISO8601_TIMEZONE})?",
    ),
    ("DATE", r"%{DATE_US}|%{DATE_EU}"),
    ("DATESTAMP", r"%{DATE}[- ]%{TIME}"),
    ("TZ", r"[APMCE][SD]T|UTC|GMT"),
    (
        "DATESTAMP_RFC822",
        r"%{DAY} %{MONTH} %{MONTHDAY} %{YEAR} %{TIME} %{TZ}",
    ),
    (
        "DATESTAMP_RFC2822",
        r"%{DAY}, %{MONTHDAY} %{MONTH} %{YEAR} %{TIME} %{ISO8601_TIMEZONE}",
    ),
    (
        "DATESTAMP_OTHER",
        r"%{DAY} %{MONTH} %{MONTHDAY} %{TIME} %{TZ} %{YEAR}",
    ),
    (
        "DATESTAMP_EVENTLOG",
        r"%{YEAR}%{MONTHNUM2}%{MONTHDAY}%{HOUR}%{MINUTE}%{SECOND}",
    ),
    ("HTTPDATE", r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}"),
    (
        "HTTPDERROR_DATE",
        r"%{DAY} %{MONTH} %{MONTHDAY} %{TIME} %{YEAR}",
    ),
    // --- syslog
    ("SYSLOGTIMESTAMP", r"%{MONTH} +%{MONTHDAY} %{TIME}"),
    ("PROG", r"[\x21-\x5a\x5c\x5e-\x7e]+"),
    ("SYSLOGPROG", r"%{PROG:program}(?:\[%{POSINT:pid}\])?"),
    ("SYSLOGHOST", r"%{IPORHOST}"),
    (
        "SYSLOGFACILITY",
        r"<%{NONNEGINT:facility}\.%{NONNEGINT:priority}>",
    ),
    ("SYSLOG5424PRI", r"<%{NONNEGINT:syslog5424_pri}>"),
    (
        "SYSLOGBASE",
        r"%{SYSLOGTIMESTAMP:timestamp} (?:%{SYSLOGFACILITY} )?%{SYSLOGHOST:logsource} %{SYSLOGPROG}:",
    ),
    (
        "SYSLOGBASE2",
        r"(?:%{SYSLOGTIMESTAMP:timestamp}|%{TIMESTAMP_ISO8601:timestamp8601}) (?:%{SYSLOGFACILITY} )?%{SYSLOGHOST:logsource}(?: %{SYSLOGPROG}:|)",
    ),
    ("SYSLOGLINE", r"%{SYSLOGBASE2} %{GREEDYDATA:message}"),
    // --- log levels, Apache, Nagios
    (
        "LOGLEVEL",
        concat!(
            r"[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo(?:rmation)?|INFO(?:RMATION)?",
            r"|[Ww]arn(?:ing)?|WARN(?:ING)?|[Ee]rr(?:or)?|ERR(?:OR)?|[Cc]rit(?:ical)?|CRIT(?:ICAL)?",
            r"|[Ff]atal|FATAL|[Ss]evere|SEVERE|[Aa]lert|ALERT|[Ee]merg(?:ency)?|EMERG(?:ENCY)?",
        ),
    ),
    ("HTTPDUSER", r"%{EMAILADDRESS}|%{USER}"),
    (
        "COMMONAPACHELOG",
        concat!(
            r"%{IPORHOST:clientip} %{HTTPDUSER:ident} %{HTTPDUSER:auth} \[%{HTTPDATE:timestamp}\] ",
            r#""(?:%{WORD:verb} %{NOTSPACE:request}(?: HTTP/%{NUMBER:httpversion})?|%{DATA:rawrequest})" "#,
            r"%{NUMBER:response} (?:%{NUMBER:bytes}|-)",
        ),
    ),
    (
        "COMBINEDAPACHELOG",
        r"%{COMMONAPACHELOG} %{QS:referrer} %{QS:agent}",
    ),
    ("NAGIOSTIME", r"\[%{NUMBER:nagios_epoch}\]"),
];

/// The definition of a built-in pattern.
pub fn builtin(name: &str) -> Option<&'static str> {
    PATTERNS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, definition)| *definition)
}
