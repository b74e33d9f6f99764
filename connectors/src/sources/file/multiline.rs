//! Multiline events for the file source: deciding where one event ends and the next begins
//! when a single event (a stack trace, a traceback, a panic) spans several lines.
//!
//! # What this module owns
//!
//! Only the *boundaries*. The file source keeps the lines of the event being assembled
//! contiguous in its read buffer and feeds each complete line (without its newline) to
//! [`Aggregator::push`]; the returned [`Boundary`] says whether the lines it holds form a
//! finished event. No bytes are copied or stored here: the state is a line counter and two
//! flags, so pushing a line never allocates. The regexes are compiled once, by
//! [`MultilineConfig::compile`], and match on bytes, so lines need not be valid UTF-8.
//!
//! The rules are those of Vector's `multiline` option on its `file` source:
//!
//! * While nothing is pending, a line matching `start_pattern` opens a pending event. Any other
//!   line is an event of its own, whatever the mode.
//! * While an event is pending, each new line is tested against `condition_pattern`, and the
//!   `mode` says what a match (or a miss) means. When the event ends *before* the new line, that
//!   line is then judged again as if nothing were pending: it either opens the next event or is
//!   an event of its own.
//! * An event never holds more than `max_lines` lines (default 500): the line that reaches the
//!   limit ends it.
//! * The caller ends the pending event itself ([`Aggregator::flush`]) when no line arrived for
//!   [`Aggregator::timeout`] (default 1s), at end of file and at shutdown.
//!
//! # The four modes
//!
//! `continue_through`: lines matching the condition are glued to the event; the first line that
//! does not match ends it and is not part of it. With start `^\S` and condition `^\s`:
//!
//! ```text
//! Error: boom          opens an event
//!     at a()           matches: joins
//!     at b()           matches: joins
//! next message         no match: the three lines above are one event; this one opens the next
//! ```
//!
//! `continue_past`: like `continue_through`, except that the first line that does not match is
//! the last line of the event. Useful for continuation markers at the end of a line; with start
//! and condition both `\\$`:
//!
//! ```text
//! run --a \            opens an event
//!     --b \            matches: joins
//!     --c              no match: joins, and the event (three lines) ends here
//! ```
//!
//! `halt_before`: every line that does *not* match joins; a matching line ends the event and is
//! not part of it (it usually opens the next one, since for this mode start and condition are
//! typically the same). With start and condition both `^\[`:
//!
//! ```text
//! [12:00:01] begin     opens an event
//!   detail one         no match: joins
//! [12:00:02] next      matches: the two lines above are one event; this one opens the next
//! ```
//!
//! `halt_with`: every line that does not match joins; the first matching line joins too and
//! ends the event. For statements ending with a semicolon, start `[^;]$` and condition `;$`:
//!
//! ```text
//! SELECT *             opens an event
//! FROM t               no match: joins
//! WHERE x = 1;         matches: joins, and the event (three lines) ends here
//! ```
//!
//! # Presets
//!
//! `preset = "java"`, `"python"` or `"go"` stands for a start pattern, condition and mode (see
//! [`Preset`]); `timeout` and `max_lines` may still be given with it.
//!
//! * java (`continue_through`): every line that does not begin with white space opens an event;
//!   `\tat ...` frames, `\t... 5 more`, `Caused by: ...` and `Suppressed: ...` lines join it.
//! * python (`continue_through`): `Traceback (most recent call last):` opens an event; indented
//!   lines, blank lines, the chaining sentences (`During handling of the above exception...`,
//!   `The above exception was the direct cause...`), further `Traceback` headers and exception
//!   lines (`ValueError: bad`, `pkg.mod.CustomError: x`, `KeyboardInterrupt`) join it, so a
//!   chained traceback ending in its last exception line is one event. Exception lines are
//!   recognised by a class name ending in `Error`, `Exception`, `Warning`, `Exit`, `Interrupt`,
//!   `Iteration` or `Group` (PEP 8 naming): the last line of an exception named otherwise
//!   becomes an event of its own.
//! * go (`continue_through`): `panic: `, `fatal error: `, `runtime: ` or a `goroutine N [...]`
//!   header opens an event; indented lines, blank lines, further goroutine headers, function
//!   lines (`main.main()`, `pkg.(*T).M(0xc000010000, ...)`), `created by ...`, `[signal ...]`,
//!   `runtime stack:`, `...additional frames elided...` and `exit status N` join it, so the whole
//!   output of a panic, every goroutine included, is one event.
//!
//! As with every `continue_through` configuration, such an event is complete only when the
//! next line that does not belong to it arrives, or after the timeout.

use regex_automata::meta::{BuildError, Regex};
use regex_automata::util::syntax;
use regex_automata::Input;
use serde::Deserialize;
use sluice_engine::units::parse_duration;
use std::time::Duration;

/// How `condition_pattern` decides, once an event is pending, whether a new line belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Matching lines join; the first line that does not match ends the event before it.
    ContinueThrough,
    /// Matching lines join; the first line that does not match joins and ends the event.
    ContinuePast,
    /// Lines that do not match join; the first matching line ends the event before it.
    HaltBefore,
    /// Lines that do not match join; the first matching line joins and ends the event.
    HaltWith,
}

/// Ready-made settings for common multiline outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Java stack traces: the exception line, its `at` frames, `Caused by:` sections,
    /// `Suppressed:` sections and `... N more` lines.
    Java,
    /// Python tracebacks, chained ones included, down to the final exception line.
    Python,
    /// Go panics and fatal errors with the stacks of every goroutine printed.
    Go,
}

/// Start pattern of the `java` preset: any line not beginning with white space.
pub const JAVA_START: &str = r"^[^\s]";
/// Condition of the `java` preset (`continue_through`).
pub const JAVA_CONDITION: &str = r"^\s+(at |\.\.\. \d+ more)|^Caused by: |^\s*Suppressed: ";

/// Start pattern of the `python` preset: a traceback header (plain or exception group).
pub const PYTHON_START: &str = concat!(
    r"^Traceback \(most recent call last\):",
    r"|^  \+ Exception Group Traceback \(most recent call last\):",
);
/// Condition of the `python` preset (`continue_through`): indented or blank lines, the
/// sentences that chain tracebacks, further headers, and exception lines.
pub const PYTHON_CONDITION: &str = concat!(
    r"^(?:\s|$)",
    r"|^Traceback \(most recent call last\):",
    r"|^During handling of the above exception, another exception occurred:",
    r"|^The above exception was the direct cause of the following exception:",
    r"|^(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*",
    r"(?:Error|Exception|Warning|Exit|Interrupt|Iteration|Group)(?::|\s*$)",
);

/// Start pattern of the `go` preset: the first line of a panic or a fatal runtime error, or a
/// goroutine header.
pub const GO_START: &str = r"^(?:panic: |fatal error: |runtime: |goroutine \d+ [^\[]*\[)";
/// Condition of the `go` preset (`continue_through`): everything the Go runtime prints after it.
pub const GO_CONDITION: &str = concat!(
    r"^(?:\s|$)",
    r"|^goroutine \d+ [^\[]*\[",
    r"|^\S+\(.*\)\s*$",
    r"|^created by ",
    r"|^\[signal ",
    r"|^runtime stack:",
    r"|^\.\.\.additional frames elided\.\.\.",
    r"|^exit status \d+",
    r"|^(?:fatal error|runtime): ",
);

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_MAX_LINES: usize = 500;

/// `multiline = { ... }` in a file source. Either `preset` alone (optionally with timeout/max_lines),
/// or `start_pattern` + `condition_pattern` + `mode`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Ready-made settings; excludes the three keys below.
    pub preset: Option<Preset>,
    /// A line matching this, while nothing is pending, opens an event.
    pub start_pattern: Option<String>,
    /// Tested on each line while an event is pending; `mode` says what a match means.
    pub condition_pattern: Option<String>,
    /// What a match of `condition_pattern` means.
    pub mode: Option<Mode>,
    /// Flush a pending event after this long without a new line (default "1s"); a string like "500ms".
    #[serde(default)]
    pub timeout: Option<String>,
    /// Most lines per event (default 500); the event is cut there.
    #[serde(default)]
    pub max_lines: Option<usize>,
}

impl MultilineConfig {
    /// Validates and compiles (regex-automata meta::Regex, compiled once). Errors say which key is wrong and why
    /// (e.g. "`condition_pattern`: invalid regex: ...", "give either `preset` or `start_pattern`/`condition_pattern`/`mode`",
    /// "`mode` is required with `condition_pattern`", "`timeout`: invalid duration `5x`").
    pub fn compile(&self) -> Result<Aggregator, String> {
        let (start, condition, mode): (&str, &str, Mode) = match self.preset {
            Some(preset) => {
                if self.start_pattern.is_some()
                    || self.condition_pattern.is_some()
                    || self.mode.is_some()
                {
                    return Err("give either `preset` or `start_pattern`/`condition_pattern`/`mode`, not both".into());
                }
                match preset {
                    Preset::Java => (JAVA_START, JAVA_CONDITION, Mode::ContinueThrough),
                    Preset::Python => (PYTHON_START, PYTHON_CONDITION, Mode::ContinueThrough),
                    Preset::Go => (GO_START, GO_CONDITION, Mode::ContinueThrough),
                }
            }
            None => match (&self.start_pattern, &self.condition_pattern, self.mode) {
                (Some(s), Some(c), Some(m)) => (s.as_str(), c.as_str(), m),
                (None, None, None) => {
                    return Err(
                        "give either `preset` or `start_pattern`/`condition_pattern`/`mode`".into(),
                    )
                }
                (_, Some(_), None) => {
                    return Err("`mode` is required with `condition_pattern`".into())
                }
                (_, None, Some(_)) => {
                    return Err("`condition_pattern` is required with `mode`".into())
                }
                (Some(_), None, None) => {
                    return Err(
                        "`condition_pattern` and `mode` are required with `start_pattern`".into(),
                    )
                }
                (None, Some(_), Some(_)) => {
                    return Err(
                        "`start_pattern` is required with `condition_pattern` and `mode`".into(),
                    )
                }
            },
        };
        let start = compile_regex("start_pattern", start)?;
        let condition = compile_regex("condition_pattern", condition)?;
        let timeout = match &self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(s) => parse_duration(s).map_err(|e| format!("`timeout`: {e}"))?,
        };
        if timeout.is_zero() {
            return Err("`timeout`: must be more than zero".into());
        }
        let max_lines = self.max_lines.unwrap_or(DEFAULT_MAX_LINES);
        if max_lines == 0 {
            return Err("`max_lines`: must be at least 1".into());
        }
        Ok(Aggregator {
            start,
            condition,
            mode,
            max_lines,
            timeout,
            pending: 0,
            complete: false,
        })
    }
}

/// Compiles like `regex::bytes::Regex`: Unicode classes by default, and `(?-u:\xFF)` may
/// match bytes that are not UTF-8.
fn compile_regex(key: &str, pattern: &str) -> Result<Regex, String> {
    Regex::builder()
        .syntax(syntax::Config::new().utf8(false))
        .configure(Regex::config().utf8_empty(false))
        .build(pattern)
        .map_err(|e| format!("`{key}`: invalid regex `{pattern}`: {}", why(&e)))
}

/// One line saying what is wrong with a pattern (the parser's own message spans several lines
/// to point at the offending character).
fn why(e: &BuildError) -> String {
    if let Some(syntax) = e.syntax_error() {
        let text = syntax.to_string();
        return match text.rfind("error: ") {
            Some(at) => text[at + "error: ".len()..].trim().to_string(),
            None => text.split_whitespace().collect::<Vec<_>>().join(" "),
        };
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// What the caller must do after pushing a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// The line joins the pending event; nothing is complete yet.
    Pending,
    /// The pending event (all lines BEFORE this one) is complete; this line starts a new pending event.
    EndBefore,
    /// The pending event INCLUDING this line is complete; nothing is pending.
    EndWith,
}

/// The boundary state of one stream of lines (one file). Built by [`MultilineConfig::compile`];
/// clone it for each file: clones share the compiled regexes.
#[derive(Debug, Clone)]
pub struct Aggregator {
    start: Regex,
    condition: Regex,
    mode: Mode,
    max_lines: usize,
    timeout: Duration,
    /// Lines of the pending event (held by the caller).
    pending: usize,
    /// The pending event is already complete but could not be reported yet: after an
    /// [`Boundary::EndBefore`], the line that followed the finished event is either not a start
    /// (so it is an event of its own) or fills `max_lines` by itself. The next push ends it.
    complete: bool,
}

impl Aggregator {
    /// Feeds the next complete line (without its newline).
    ///
    /// After [`Boundary::EndBefore`] the new pending event may already be complete (see
    /// [`Aggregator::pending_complete`]); the next push then returns `EndBefore` again, so a
    /// caller that ignores this still groups correctly and only holds that line longer.
    pub fn push(&mut self, line: &[u8]) -> Boundary {
        if self.pending == 0 {
            return self.open(line);
        }
        if self.complete {
            self.reopen(line);
            return Boundary::EndBefore;
        }
        let matched = self.condition.is_match(Input::new(line));
        let (joins, ends) = match (self.mode, matched) {
            (Mode::ContinueThrough, true)
            | (Mode::ContinuePast, true)
            | (Mode::HaltBefore, false)
            | (Mode::HaltWith, false) => (true, false),
            (Mode::ContinuePast, false) | (Mode::HaltWith, true) => (true, true),
            (Mode::ContinueThrough, false) | (Mode::HaltBefore, true) => (false, true),
        };
        if !joins {
            self.reopen(line);
            return Boundary::EndBefore;
        }
        self.pending += 1;
        if ends || self.pending >= self.max_lines {
            self.pending = 0;
            Boundary::EndWith
        } else {
            Boundary::Pending
        }
    }

    /// Nothing pending: the line opens an event or is one by itself.
    fn open(&mut self, line: &[u8]) -> Boundary {
        if self.max_lines > 1 && self.start.is_match(Input::new(line)) {
            self.pending = 1;
            Boundary::Pending
        } else {
            Boundary::EndWith
        }
    }

    /// The pending event ended before `line`, which the caller now holds as the new pending
    /// event: note whether that event is open or already complete.
    fn reopen(&mut self, line: &[u8]) {
        self.pending = 1;
        self.complete = self.max_lines == 1 || !self.start.is_match(Input::new(line));
    }

    /// Lines in the pending event.
    pub fn pending_lines(&self) -> usize {
        self.pending
    }

    /// True when the pending event can take no more lines (see [`Aggregator::push`]): the caller
    /// may emit it and call [`Aggregator::flush`] at once instead of waiting for the next line or
    /// the timeout.
    pub fn pending_complete(&self) -> bool {
        self.complete
    }

    /// Ends the pending event (timeout, end of file, shutdown): the caller flushes what it holds.
    pub fn flush(&mut self) {
        self.pending = 0;
        self.complete = false;
    }

    /// How long a pending event may wait for its next line before the caller flushes it.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// Most lines in one event.
    pub fn max_lines(&self) -> usize {
        self.max_lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the file source does: hold the pending lines, cut where the aggregator says, and
    /// flush whatever is left at the end.
    fn group<'a>(agg: &mut Aggregator, lines: &[&'a str]) -> Vec<Vec<&'a str>> {
        let mut out = Vec::new();
        let mut pending: Vec<&'a str> = Vec::new();
        for &line in lines {
            match agg.push(line.as_bytes()) {
                Boundary::Pending => pending.push(line),
                Boundary::EndBefore => {
                    assert!(!pending.is_empty(), "EndBefore with nothing pending");
                    out.push(std::mem::take(&mut pending));
                    pending.push(line);
                }
                Boundary::EndWith => {
                    pending.push(line);
                    out.push(std::mem::take(&mut pending));
                }
            }
            assert_eq!(agg.pending_lines(), pending.len());
            assert!(!agg.pending_complete() || !pending.is_empty());
        }
        agg.flush();
        if !pending.is_empty() {
            out.push(pending);
        }
        assert_eq!(agg.pending_lines(), 0);
        out
    }

    fn agg(start: &str, condition: &str, mode: Mode, max_lines: Option<usize>) -> Aggregator {
        MultilineConfig {
            preset: None,
            start_pattern: Some(start.into()),
            condition_pattern: Some(condition.into()),
            mode: Some(mode),
            timeout: None,
            max_lines,
        }
        .compile()
        .unwrap()
    }

    fn preset(p: Preset) -> Aggregator {
        MultilineConfig {
            preset: Some(p),
            start_pattern: None,
            condition_pattern: None,
            mode: None,
            timeout: None,
            max_lines: None,
        }
        .compile()
        .unwrap()
    }

    /// Runs a table of `(input, expected groups)` through one configuration.
    fn table(mut a: Aggregator, cases: &[(&[&str], &[&[&str]])]) {
        for (input, expected) in cases {
            let got = group(&mut a, input);
            let want: Vec<Vec<&str>> = expected.iter().map(|g| g.to_vec()).collect();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn continue_through() {
        table(
            agg(r"^[^\s]", r"^\s", Mode::ContinueThrough, None),
            &[
                (&[], &[]),
                (&["a"], &[&["a"]]),
                (&["a", " b", " c", "d"], &[&["a", " b", " c"], &["d"]]),
                (&["a", "b", "c"], &[&["a"], &["b"], &["c"]]),
                (&[" x", "a", " b"], &[&[" x"], &["a", " b"]]),
                (&["a", " b", " c", " d"], &[&["a", " b", " c", " d"]]),
                (
                    &[
                        "usual", "first", " second", " last", "other", "fin", " part",
                    ],
                    &[
                        &["usual"],
                        &["first", " second", " last"],
                        &["other"],
                        &["fin", " part"],
                    ],
                ),
            ],
        );
        // The line that ends an event is judged again: a non-start is an event of its own.
        table(
            agg(r"^S", r"^\s", Mode::ContinueThrough, None),
            &[
                (
                    &["x", "S", " a", "x", "y", "S", " b"],
                    &[&["x"], &["S", " a"], &["x"], &["y"], &["S", " b"]],
                ),
                (
                    &["S", " a", "x", " b", "S"],
                    &[&["S", " a"], &["x"], &[" b"], &["S"]],
                ),
                (&["S", "S", "S"], &[&["S"], &["S"], &["S"]]),
            ],
        );
    }

    #[test]
    fn continue_past() {
        table(
            agg(r"\\$", r"\\$", Mode::ContinuePast, None),
            &[
                (&["one"], &[&["one"]]),
                (
                    &["a \\", "b \\", "c", "d"],
                    &[&["a \\", "b \\", "c"], &["d"]],
                ),
                (&["a \\", "b"], &[&["a \\", "b"]]),
                (
                    &["x", "a \\", "b", "a \\"],
                    &[&["x"], &["a \\", "b"], &["a \\"]],
                ),
                (&["a \\", "b \\"], &[&["a \\", "b \\"]]),
            ],
        );
        // Start and condition differ: the start line need not match the condition.
        table(
            agg(r"^S", r"^\+", Mode::ContinuePast, None),
            &[
                (&["S", "+", "+", "x", "y"], &[&["S", "+", "+", "x"], &["y"]]),
                (&["S", "x", "S", "S"], &[&["S", "x"], &["S", "S"]]),
                (&["+", "S", "+"], &[&["+"], &["S", "+"]]),
            ],
        );
    }

    #[test]
    fn halt_before() {
        table(
            agg(r"^\[", r"^\[", Mode::HaltBefore, None),
            &[
                (
                    &["[1] a", " more", " more", "[2] b", "[3] c", " x"],
                    &[&["[1] a", " more", " more"], &["[2] b"], &["[3] c", " x"]],
                ),
                (&["junk", "[1] a", "b"], &[&["junk"], &["[1] a", "b"]]),
                (&["[1]"], &[&["[1]"]]),
            ],
        );
        // Vector judges the halting line again as a start: here it is not one.
        table(
            agg(r"^S", r"^H", Mode::HaltBefore, None),
            &[
                (
                    &["S", "a", "H", "b", "S", "H"],
                    &[&["S", "a"], &["H"], &["b"], &["S"], &["H"]],
                ),
                (&["S", "S", "H"], &[&["S", "S"], &["H"]]),
            ],
        );
    }

    #[test]
    fn halt_with() {
        table(
            agg(r"[^;]$", r";$", Mode::HaltWith, None),
            &[
                (
                    &["SELECT *", "FROM t", "WHERE x;", "SELECT 1;", "BEGIN", "x;"],
                    &[
                        &["SELECT *", "FROM t", "WHERE x;"],
                        &["SELECT 1;"],
                        &["BEGIN", "x;"],
                    ],
                ),
                (&["a", "b", "c"], &[&["a", "b", "c"]]),
            ],
        );
        table(
            agg(r"^S", r"^E", Mode::HaltWith, None),
            &[
                (
                    &["x", "S", "a", "S", "E", "E"],
                    &[&["x"], &["S", "a", "S", "E"], &["E"]],
                ),
                (&["S", "E", "S", "E"], &[&["S", "E"], &["S", "E"]]),
            ],
        );
    }

    #[test]
    fn max_lines_cuts_events() {
        table(
            agg(r"^[^\s]", r"^\s", Mode::ContinueThrough, Some(3)),
            &[
                (
                    &["a", " 1", " 2", " 3", " 4", " 5", " 6", " 7", "b"],
                    &[
                        &["a", " 1", " 2"],
                        &[" 3"],
                        &[" 4"],
                        &[" 5"],
                        &[" 6"],
                        &[" 7"],
                        &["b"],
                    ],
                ),
                (
                    &["a", " 1", "b", " 1", " 2"],
                    &[&["a", " 1"], &["b", " 1", " 2"]],
                ),
            ],
        );
        table(
            agg(r"^S", r"^H", Mode::HaltBefore, Some(2)),
            &[(
                &["S", "a", "b", "S", "H"],
                &[&["S", "a"], &["b"], &["S"], &["H"]],
            )],
        );
        // max_lines = 1: every line is an event, and every boundary is still well formed.
        table(
            agg(r"^S", r"^\s", Mode::ContinueThrough, Some(1)),
            &[(&["S", " a", "S", "x"], &[&["S"], &[" a"], &["S"], &["x"]])],
        );
        table(
            agg(r"^S", r"^E", Mode::HaltBefore, Some(1)),
            &[(&["S", "E", "S", "S"], &[&["S"], &["E"], &["S"], &["S"]])],
        );
        assert_eq!(preset(Preset::Java).max_lines(), 500);
    }

    #[test]
    fn boundaries_and_flush() {
        let mut a = agg(r"^S", r"^\s", Mode::ContinueThrough, None);
        assert_eq!(a.push(b"x"), Boundary::EndWith);
        assert_eq!(a.pending_lines(), 0);
        assert_eq!(a.push(b"S"), Boundary::Pending);
        assert_eq!(a.push(b" 1"), Boundary::Pending);
        assert_eq!(a.pending_lines(), 2);
        // Timeout: the caller emits the two lines and says so.
        a.flush();
        assert_eq!(a.pending_lines(), 0);
        assert_eq!(
            a.push(b" 2"),
            Boundary::EndWith,
            "a continuation after a flush stands alone"
        );
        assert_eq!(a.push(b"S"), Boundary::Pending);
        assert_eq!(a.push(b"x"), Boundary::EndBefore);
        assert_eq!((a.pending_lines(), a.pending_complete()), (1, true));
        // The caller may emit it at once...
        a.flush();
        assert_eq!(a.push(b"S"), Boundary::Pending);
        assert_eq!(a.push(b"y"), Boundary::EndBefore);
        // ...or wait: the next line ends it.
        assert_eq!(a.push(b"S"), Boundary::EndBefore);
        assert_eq!((a.pending_lines(), a.pending_complete()), (1, false));
        assert_eq!(a.timeout(), Duration::from_secs(1));
    }

    #[test]
    fn invalid_utf8_lines() {
        let mut a = agg(r"^E", r"^\s", Mode::ContinueThrough, None);
        assert_eq!(a.push(b"E\xff\xfe"), Boundary::Pending);
        assert_eq!(a.push(b" \xc3("), Boundary::Pending);
        assert_eq!(a.push(b"\xff"), Boundary::EndBefore);
        assert!(a.pending_complete());
        let mut a = agg(r"(?-u:\xFF)", r"(?-u:^\xFE)", Mode::HaltWith, None);
        assert_eq!(a.push(b"a\xffb"), Boundary::Pending);
        assert_eq!(a.push(b"\xc0"), Boundary::Pending);
        assert_eq!(a.push(b"\xfe!"), Boundary::EndWith);
    }

    fn cfg(json: &str) -> Result<Aggregator, String> {
        serde_json::from_str::<MultilineConfig>(json)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn config_parsing_and_errors() {
        let a = cfg(r#"{"preset":"python","timeout":"250ms","max_lines":7}"#).unwrap();
        assert_eq!(
            (a.timeout(), a.max_lines()),
            (Duration::from_millis(250), 7)
        );
        let a = cfg(r#"{"start_pattern":"^S","condition_pattern":"^ ","mode":"continue_past"}"#)
            .unwrap();
        assert_eq!(a.mode, Mode::ContinuePast);
        for mode in [
            "continue_through",
            "continue_past",
            "halt_before",
            "halt_with",
        ] {
            let json =
                format!(r#"{{"start_pattern":"a","condition_pattern":"b","mode":"{mode}"}}"#);
            cfg(&json).unwrap();
        }
        for p in ["java", "python", "go"] {
            cfg(&format!(r#"{{"preset":"{p}"}}"#)).unwrap();
        }

        let err = |json: &str| cfg(json).unwrap_err();
        let e = err(r#"{"start_pattern":"^S","condition_pattern":"(","mode":"halt_with"}"#);
        assert!(
            e.starts_with("`condition_pattern`: invalid regex `(`: unclosed group"),
            "{e}"
        );
        let e = err(r#"{"start_pattern":"[z-a]","condition_pattern":"x","mode":"halt_with"}"#);
        assert!(
            e.starts_with("`start_pattern`: invalid regex `[z-a]`: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(
            err(r#"{"start_pattern":"^S","condition_pattern":"x"}"#),
            "`mode` is required with `condition_pattern`"
        );
        assert_eq!(
            err(r#"{"start_pattern":"^S","mode":"halt_with"}"#),
            "`condition_pattern` is required with `mode`"
        );
        assert_eq!(
            err(r#"{"condition_pattern":"x","mode":"halt_with"}"#),
            "`start_pattern` is required with `condition_pattern` and `mode`"
        );
        assert_eq!(
            err(r#"{"start_pattern":"x"}"#),
            "`condition_pattern` and `mode` are required with `start_pattern`"
        );
        assert_eq!(
            err(r#"{"preset":"java","start_pattern":"^S"}"#),
            "give either `preset` or `start_pattern`/`condition_pattern`/`mode`, not both"
        );
        assert_eq!(
            err(r#"{"preset":"go","mode":"halt_with"}"#),
            "give either `preset` or `start_pattern`/`condition_pattern`/`mode`, not both"
        );
        assert_eq!(
            err(r#"{"timeout":"1s"}"#),
            "give either `preset` or `start_pattern`/`condition_pattern`/`mode`"
        );
        let e = err(r#"{"preset":"java","timeout":"5x"}"#);
        assert!(e.starts_with("`timeout`: invalid duration `5x`"), "{e}");
        assert_eq!(
            err(r#"{"preset":"java","timeout":"0s"}"#),
            "`timeout`: must be more than zero"
        );
        assert_eq!(
            err(r#"{"preset":"java","max_lines":0}"#),
            "`max_lines`: must be at least 1"
        );
        // Serde-level mistakes name the key or the value too.
        assert!(err(r#"{"preset":"java","max_line":3}"#).contains("unknown field `max_line`"));
        assert!(err(r#"{"preset":"ruby"}"#).contains("unknown variant `ruby`"));
        assert!(
            err(r#"{"start_pattern":"a","condition_pattern":"b","mode":"halt"}"#)
                .contains("unknown variant `halt`")
        );
    }

    #[test]
    fn java_preset() {
        let lines = [
            "2024-05-01 12:00:00.001 INFO  [main] c.e.App - starting",
            "2024-05-01 12:00:00.120 ERROR [worker-1] c.e.Handler - request failed",
            "java.lang.IllegalStateException: could not handle request 42",
            "\tat com.example.Handler.handle(Handler.java:88)",
            "\tat com.example.Server.lambda$serve$0(Server.java:51)",
            "\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)",
            "\tSuppressed: java.io.UncheckedIOException: close failed",
            "\t\tat com.example.Conn.close(Conn.java:12)",
            "\t\t... 3 more",
            "Caused by: java.sql.SQLException: connection reset",
            "\tat org.postgresql.core.v3.QueryExecutorImpl.execute(QueryExecutorImpl.java:371)",
            "\tat com.example.Repo.find(Repo.java:30)",
            "\t... 5 more",
            "Caused by: java.net.SocketException: Connection reset",
            "\tat java.base/sun.nio.ch.NioSocketImpl.implRead(NioSocketImpl.java:323)",
            "\t... 9 more",
            "2024-05-01 12:00:00.121 INFO  [worker-2] c.e.Handler - request 43 ok",
            "2024-05-01 12:00:00.122 INFO  [worker-2] c.e.Handler - request 44 ok",
        ];
        let groups = group(&mut preset(Preset::Java), &lines);
        let mut want: Vec<Vec<&str>> = vec![vec![lines[0]], vec![lines[1]], lines[2..16].to_vec()];
        want.push(vec![lines[16]]);
        want.push(vec![lines[17]]);
        assert_eq!(groups, want);
    }

    #[test]
    fn python_preset() {
        let lines = [
            "INFO:app:starting worker",
            "ERROR:app:job 7 failed",
            "Traceback (most recent call last):",
            "  File \"/srv/app/jobs.py\", line 41, in run",
            "    value = table[key]",
            "            ~~~~~^^^^^",
            "KeyError: 'user_id'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"/srv/app/main.py\", line 12, in <module>",
            "    run(job)",
            "  File \"/srv/app/jobs.py\", line 44, in run",
            "    raise ValueError(f\"bad job {job.id}\") from None",
            "ValueError: bad job 7",
            "INFO:     10.0.0.1:5000 - \"GET /health HTTP/1.1\" 200 OK",
            "Traceback (most recent call last):",
            "  File \"/srv/app/db.py\", line 3, in connect",
            "    sock.connect(addr)",
            "ConnectionRefusedError: [Errno 111] Connection refused",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            "  File \"/srv/app/main.py\", line 20, in <module>",
            "    connect()",
            "app.errors.DatabaseUnavailableError: primary down",
            "WARNING:app:retrying in 5s",
        ];
        let groups = group(&mut preset(Preset::Python), &lines);
        let want: Vec<Vec<&str>> = vec![
            vec![lines[0]],
            vec![lines[1]],
            lines[2..16].to_vec(),
            vec![lines[16]],
            lines[17..28].to_vec(),
            vec![lines[28]],
        ];
        assert_eq!(groups, want);
        // A traceback at the very end of a file keeps its last line once flushed.
        let tail = &lines[17..21];
        assert_eq!(
            group(&mut preset(Preset::Python), tail),
            vec![tail.to_vec()]
        );
        // Interrupts and exception groups.
        let lines = [
            "Traceback (most recent call last):",
            "  File \"x.py\", line 1, in <module>",
            "KeyboardInterrupt",
            "  + Exception Group Traceback (most recent call last):",
            "  |   File \"x.py\", line 3, in <module>",
            "  | ExceptionGroup: two (2 sub-exceptions)",
            "  +-+---------------- 1 ----------------",
            "    | ValueError: a",
            "    +------------------------------------",
            "done",
        ];
        let groups = group(&mut preset(Preset::Python), &lines);
        assert_eq!(groups, vec![lines[..9].to_vec(), vec![lines[9]]]);
    }

    #[test]
    fn go_preset() {
        let lines = [
            "2024/05/01 12:00:00 listening on :8080",
            "2024/05/01 12:00:03 handling /orders",
            "panic: runtime error: index out of range [5] with length 3 [recovered]",
            "\tpanic: runtime error: index out of range [5] with length 3",
            "",
            "goroutine 34 [running]:",
            "main.(*Server).handle.func1()",
            "\t/app/server.go:41 +0x8c",
            "panic({0x6e1a40?, 0xc00001c0f0?})",
            "\t/usr/local/go/src/runtime/panic.go:770 +0x132",
            "main.pick(...)",
            "\t/app/orders.go:17",
            "main.(*Server).handle(0xc0000a6000, {0x7b3e08, 0xc0000f2000}, 0xc0000c8120)",
            "\t/app/server.go:52 +0x1d5",
            "net/http.HandlerFunc.ServeHTTP(0xc0000b4010?, {0x7b3e08?, 0xc0000f2000?}, 0x0?)",
            "\t/usr/local/go/src/net/http/server.go:2166 +0x29",
            "created by net/http.(*Server).Serve in goroutine 1",
            "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
            "",
            "goroutine 1 [IO wait]:",
            "internal/poll.runtime_pollWait(0x7f1c2c1a5e80, 0x72)",
            "\t/usr/local/go/src/runtime/netpoll.go:345 +0x85",
            "main.main()",
            "\t/app/main.go:30 +0x1a5",
            "",
            "goroutine 7 [chan receive, 2 minutes]:",
            "main.worker(0xc000020060)",
            "\t/app/worker.go:12 +0x45",
            "created by main.main in goroutine 1",
            "\t/app/main.go:22 +0x9e",
            "exit status 2",
            "2024/05/01 12:00:04 supervisor: restarting service",
            "fatal error: all goroutines are asleep - deadlock!",
            "",
            "goroutine 1 [chan receive]:",
            "main.main()",
            "\t/app/main.go:9 +0x2d",
        ];
        let groups = group(&mut preset(Preset::Go), &lines);
        let want: Vec<Vec<&str>> = vec![
            vec![lines[0]],
            vec![lines[1]],
            lines[2..31].to_vec(),
            vec![lines[31]],
            lines[32..].to_vec(),
        ];
        assert_eq!(groups, want);
        let lines = [
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f1b2]",
            "",
            "goroutine 1 gp=0xc000002380 m=0 mp=0x5a8ea0 [running]:",
            "main.main()",
            "\t/app/main.go:8 +0x12",
            "level=info msg=\"next\"",
        ];
        let groups = group(&mut preset(Preset::Go), &lines);
        assert_eq!(groups, vec![lines[..6].to_vec(), vec![lines[6]]]);
    }

    /// A literal transcription of Vector's line aggregation (a buffer of lines, and a stash
    /// for the line that ended an event so it is handled again), plus `max_lines`.
    fn reference<'a>(a: &Aggregator, lines: &[&'a str]) -> Vec<Vec<&'a str>> {
        let mut out = Vec::new();
        let mut buffer: Option<Vec<&'a str>> = None;
        for &line in lines {
            let mut stash = Some(line);
            while let Some(line) = stash.take() {
                match buffer.as_mut() {
                    Some(buf) => {
                        let m = a.condition.is_match(line.as_bytes());
                        let (cont, include) = match (a.mode, m) {
                            (Mode::ContinueThrough, true) => (true, true),
                            (Mode::ContinueThrough, false) => (false, false),
                            (Mode::ContinuePast, true) => (true, true),
                            (Mode::ContinuePast, false) => (false, true),
                            (Mode::HaltBefore, true) => (false, false),
                            (Mode::HaltBefore, false) => (true, true),
                            (Mode::HaltWith, true) => (false, true),
                            (Mode::HaltWith, false) => (true, true),
                        };
                        if include {
                            buf.push(line);
                        } else {
                            stash = Some(line);
                        }
                        if !cont || buf.len() >= a.max_lines {
                            out.push(buffer.take().unwrap());
                        }
                    }
                    None => {
                        if a.start.is_match(line.as_bytes()) {
                            buffer = Some(vec![line]);
                            if a.max_lines == 1 {
                                out.push(buffer.take().unwrap());
                            }
                        } else {
                            out.push(vec![line]);
                        }
                    }
                }
            }
        }
        out.extend(buffer);
        out
    }

    /// xorshift64*: enough randomness for a property test without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// For random lines and random configurations: the groups put back together are the input
    /// (no line lost, duplicated or reordered), no group is empty or longer than `max_lines`,
    /// and the groups are exactly those of the reference transcription of Vector's algorithm.
    #[test]
    fn property_groups_partition_the_input() {
        const LINES: &[&str] = &[
            "", "a", "b", "S", "E", " a", " b", "\tat x", "a;", "b \\", "[1] x", "S a", "xS", "  ",
        ];
        const PATTERNS: &[&str] = &[
            "^a", "^b", "^S", "^E", r"^\s", r"^[^\s]", ";$", r"\\$", r"^\[", "^$", "", "a", "x^",
            "S|E",
        ];
        const MODES: [Mode; 4] = [
            Mode::ContinueThrough,
            Mode::ContinuePast,
            Mode::HaltBefore,
            Mode::HaltWith,
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..4000 {
            let max_lines = [1, 2, 3, 5, 500][rng.below(5)];
            let (start, condition, mode) =
                (rng.pick(PATTERNS), rng.pick(PATTERNS), MODES[rng.below(4)]);
            let mut a = agg(start, condition, mode, Some(max_lines));
            let n = rng.below(40);
            let input: Vec<&str> = (0..n).map(|_| rng.pick(LINES)).collect();
            // Sometimes the caller flushes in the middle (a timeout).
            let cut = rng.below(n + 1);
            let mut groups = group(&mut a, &input[..cut]);
            groups.extend(group(&mut a, &input[cut..]));
            let context = || {
                format!("case {case}: start {start:?} condition {condition:?} {mode:?} max {max_lines} cut {cut} input {input:?}")
            };
            assert_eq!(groups.concat(), input, "{}", context());
            assert!(
                groups.iter().all(|g| !g.is_empty() && g.len() <= max_lines),
                "{}: {groups:?}",
                context()
            );
            let mut want = reference(&a, &input[..cut]);
            want.extend(reference(&a, &input[cut..]));
            assert_eq!(groups, want, "{}", context());
        }
    }
}
