//! The matching engine shared by the `regex` and `grok` parsers: which of several
//! patterns matches a line first, and where its capture groups lie.
//!
//! * One combined `meta::Regex` holds every pattern, each compiled as `^(?s-u:.)*?(?:P)`
//!   unless it starts with `^`: all patterns then start at offset 0, so leftmost-first
//!   priority between them is their order and "the first pattern that matches anywhere
//!   wins". A search of it without captures tells which pattern matched.
//! * Capture positions the slow, general way: `search_captures` on the combined regex
//!   (bounded backtracker or PikeVM over the whole line and the whole NFA).
//! * The fast way, a *plan*: a pattern whose top level is a sequence (`A (?P<x>B) C ...`)
//!   is cut into items: literals (compared directly), capture-free runs and capture groups
//!   without inner groups (one anchored lazy-DFA search each: the group's span is where
//!   the search started and ended), and the rest (alternations or repetitions holding
//!   groups: an anchored capture search of that item only). Items run left to right,
//!   each taking its own preferred (leftmost-first) match. When every item matches, that
//!   is exactly the match a backtracker would report: it tries each item's preferred
//!   match first and keeps it as soon as the rest of the sequence matches after it. When
//!   an item fails (the real match needs an item to give back), the slow way answers.
//!
//! Patterns are parsed with byte-oriented syntax: Unicode off (ASCII `\w`, `\d`, `\s`,
//! `\b`; `.` is any byte but `\n`), and invalid UTF-8 allowed, so any line can match.

use regex_automata::meta::{self, Regex};
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, Hir, HirKind, Look, Repetition};

/// Upper bound on each compiled NFA (heap bytes), so a hostile or mistaken pattern
/// (`(a{1000}){1000}`) fails to compile instead of eating memory.
pub(crate) const NFA_SIZE_LIMIT: usize = 16 << 20;

/// The most items a plan may have; longer sequences use the slow way.
const MAX_PLAN_ITEMS: usize = 256;

/// Why a set of patterns did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CompileError {
    /// Pattern `index` is not a valid regex; `cause` is regex-syntax's message.
    Pattern { index: usize, cause: String },
    /// The patterns together exceed the size limit (or another whole-set failure).
    Build(String),
}

/// Several patterns, first match wins, with capture spans. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct PatternSet {
    combined: Regex,
    combined_cache: meta::Cache,
    combined_captures: Captures,
    patterns: Vec<PatternEngine>,
    /// The result of the last successful [`PatternSet::find`]: per group index of the
    /// matching pattern, its span.
    spans: Vec<Option<(usize, usize)>>,
    /// How many times `find` had to take the slow way (tests check the plans are used).
    #[cfg(test)]
    pub(crate) slow_finds: usize,
}

/// What one pattern needs beyond the combined regex.
#[derive(Debug, Clone)]
struct PatternEngine {
    /// Number of capture groups, group 0 (the whole match) included.
    group_len: usize,
    /// The pattern alone, unanchored, to find where its match starts; `None` when the
    /// pattern starts with `^`.
    alone: Option<(Regex, meta::Cache)>,
    plan: Option<Vec<Item>>,
}

#[derive(Debug, Clone)]
enum Item {
    /// Bytes that must come next.
    Literal(Box<[u8]>),
    /// A capture-free regex; when `group` is set, its match is that group's span.
    Search {
        regex: Regex,
        cache: meta::Cache,
        group: Option<usize>,
    },
    /// A regex holding capture groups (with the same indices as in the whole pattern).
    Captures {
        regex: Regex,
        cache: meta::Cache,
        captures: Captures,
        groups: Vec<usize>,
    },
    /// Group `0` starts / ends here (a group whose body is itself a sequence).
    Open(usize),
    Close(usize),
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

fn meta_config() -> meta::Config {
    meta::Config::new()
        .utf8_empty(false)
        .nfa_size_limit(Some(NFA_SIZE_LIMIT))
}

impl PatternSet {
    pub(crate) fn new<P: AsRef<str>>(patterns: &[P]) -> Result<PatternSet, CompileError> {
        let mut hirs = Vec::with_capacity(patterns.len());
        for (index, pattern) in patterns.iter().enumerate() {
            let hir = syntax::parse_with(pattern.as_ref(), &syntax_config()).map_err(|e| {
                CompileError::Pattern {
                    index,
                    cause: error_cause(&e),
                }
            })?;
            hirs.push(hir);
        }
        let anchored: Vec<Hir> = hirs.iter().cloned().map(anchored_at_line_start).collect();
        let combined = build(&anchored)?;
        let mut engines = Vec::with_capacity(hirs.len());
        for (index, hir) in hirs.iter().enumerate() {
            let group_len = combined
                .group_info()
                .group_len(PatternID::new_unchecked(index));
            let starts_at_line_start = hir.properties().look_set_prefix().contains(Look::Start);
            let alone = if starts_at_line_start {
                None
            } else {
                let regex = build(std::slice::from_ref(hir))?;
                let cache = regex.create_cache();
                Some((regex, cache))
            };
            let plan = if group_len > 1 { make_plan(hir) } else { None };
            engines.push(PatternEngine {
                group_len,
                alone,
                plan,
            });
        }
        let most_groups = engines.iter().map(|e| e.group_len).max().unwrap_or(0);
        Ok(PatternSet {
            combined_cache: combined.create_cache(),
            combined_captures: combined.create_captures(),
            combined,
            patterns: engines,
            spans: Vec::with_capacity(most_groups),
            #[cfg(test)]
            slow_finds: 0,
        })
    }

    /// The group names and indices of the patterns (as in the pattern texts).
    pub(crate) fn group_info(&self) -> &regex_automata::util::captures::GroupInfo {
        self.combined.group_info()
    }

    /// Which pattern matches `line` first; its group spans are then in [`Self::group`].
    pub(crate) fn find(&mut self, line: &[u8]) -> Option<usize> {
        // The first pattern wins whenever it matches, and most lines match it at offset 0:
        // try its plan there before anything else.
        let mut tried_first_at_zero = false;
        if let Some(first) = self.patterns.first_mut() {
            if let Some(plan) = first.plan.as_mut() {
                tried_first_at_zero = true;
                reset(&mut self.spans, first.group_len);
                if run_plan(plan, line, 0, &mut self.spans) {
                    return Some(0);
                }
            }
        }
        let found = self
            .combined
            .search_with(&mut self.combined_cache, &Input::new(line))?;
        let pid = found.pattern().as_usize();
        let engine = self.patterns.get_mut(pid)?;
        reset(&mut self.spans, engine.group_len);
        if engine.group_len <= 1 {
            // No groups: which pattern matched is all there is to know.
            return Some(pid);
        }
        if let Some(plan) = engine.plan.as_mut() {
            let start = match engine.alone.as_mut() {
                None => Some(0),
                Some((regex, cache)) => regex
                    .search_with(cache, &Input::new(line))
                    .map(|m| m.start()),
            };
            if let Some(start) = start {
                if !(pid == 0 && start == 0 && tried_first_at_zero) {
                    reset(&mut self.spans, engine.group_len);
                    if run_plan(plan, line, start, &mut self.spans) {
                        return Some(pid);
                    }
                }
            }
        }
        #[cfg(test)]
        {
            self.slow_finds += 1;
        }
        self.find_slow(line)
    }

    /// [`Self::find`] without plans: the combined regex's capture search.
    pub(crate) fn find_slow(&mut self, line: &[u8]) -> Option<usize> {
        self.combined.search_captures_with(
            &mut self.combined_cache,
            &Input::new(line),
            &mut self.combined_captures,
        );
        let pid = self.combined_captures.pattern()?.as_usize();
        let group_len = self.patterns.get(pid).map_or(0, |e| e.group_len);
        self.spans.clear();
        for index in 0..group_len {
            let span = self.combined_captures.get_group(index);
            self.spans.push(span.map(|s| (s.start, s.end)));
        }
        Some(pid)
    }

    /// The number of items in the plan of pattern `pid`, if it has one.
    #[cfg(test)]
    pub(crate) fn plan_len(&self, pid: usize) -> Option<usize> {
        self.patterns.get(pid)?.plan.as_ref().map(Vec::len)
    }

    /// The span of group `index` of the pattern the last `find` reported, if it took part
    /// in the match. Group 0 (the whole match) is not tracked.
    pub(crate) fn group(&self, index: usize) -> Option<(usize, usize)> {
        self.spans.get(index).copied().flatten()
    }
}

fn reset(spans: &mut Vec<Option<(usize, usize)>>, len: usize) {
    spans.clear();
    spans.resize(len, None);
}

/// Runs `plan` from `start`; on success the groups it saw are in `spans`.
fn run_plan(
    plan: &mut [Item],
    line: &[u8],
    start: usize,
    spans: &mut [Option<(usize, usize)>],
) -> bool {
    let mut at = start;
    for item in plan.iter_mut() {
        if at > line.len() {
            return false;
        }
        match item {
            Item::Literal(bytes) => {
                if !line.get(at..).is_some_and(|rest| rest.starts_with(bytes)) {
                    return false;
                }
                at += bytes.len();
            }
            Item::Search {
                regex,
                cache,
                group,
            } => {
                let input = Input::new(line).range(at..).anchored(Anchored::Yes);
                let Some(end) = regex.search_half_with(cache, &input) else {
                    return false;
                };
                let end = end.offset();
                if let Some(slot) = group.and_then(|g| spans.get_mut(g)) {
                    *slot = Some((at, end));
                }
                at = end;
            }
            Item::Captures {
                regex,
                cache,
                captures,
                groups,
            } => {
                let input = Input::new(line).range(at..).anchored(Anchored::Yes);
                regex.search_captures_with(cache, &input, captures);
                let Some(whole) = captures.get_match() else {
                    return false;
                };
                for &g in groups.iter() {
                    if let Some(slot) = spans.get_mut(g) {
                        *slot = captures.get_group(g).map(|s| (s.start, s.end));
                    }
                }
                at = whole.end();
            }
            Item::Open(g) => {
                if let Some(slot) = spans.get_mut(*g) {
                    *slot = Some((at, at));
                }
            }
            Item::Close(g) => {
                if let Some(Some((_, end))) = spans.get_mut(*g) {
                    *end = at;
                }
            }
        }
    }
    true
}

/// The plan of a pattern, when its shape allows one (see the module docs).
fn make_plan(hir: &Hir) -> Option<Vec<Item>> {
    let mut items = Vec::new();
    plan_items(hir, &mut items)?;
    (items.len() <= MAX_PLAN_ITEMS).then_some(items)
}

fn has_groups(hir: &Hir) -> bool {
    hir.properties().explicit_captures_len() > 0
}

fn plan_items(hir: &Hir, items: &mut Vec<Item>) -> Option<()> {
    match hir.kind() {
        HirKind::Concat(subs) => {
            let mut run: Vec<Hir> = Vec::new();
            for sub in subs {
                if has_groups(sub) {
                    flush(&mut run, items)?;
                    plan_items(sub, items)?;
                } else {
                    run.push(sub.clone());
                }
            }
            flush(&mut run, items)
        }
        HirKind::Capture(capture) => {
            let index = capture.index as usize;
            if has_groups(&capture.sub) {
                items.push(Item::Open(index));
                plan_items(&capture.sub, items)?;
                items.push(Item::Close(index));
            } else {
                let regex = build(std::slice::from_ref(&*capture.sub)).ok()?;
                items.push(Item::Search {
                    cache: regex.create_cache(),
                    regex,
                    group: Some(index),
                });
            }
            Some(())
        }
        _ if has_groups(hir) => {
            let regex = build(std::slice::from_ref(hir)).ok()?;
            let mut groups = Vec::new();
            group_indices(hir, &mut groups);
            items.push(Item::Captures {
                cache: regex.create_cache(),
                captures: regex.create_captures(),
                regex,
                groups,
            });
            Some(())
        }
        _ => flush(&mut vec![hir.clone()], items),
    }
}

/// Turns a run of capture-free pieces into one item.
fn flush(run: &mut Vec<Hir>, items: &mut Vec<Item>) -> Option<()> {
    if run.is_empty() {
        return Some(());
    }
    let mut literal = Vec::new();
    let all_literal = run.iter().all(|h| match h.kind() {
        HirKind::Literal(l) => {
            literal.extend_from_slice(&l.0);
            true
        }
        _ => false,
    });
    if all_literal {
        items.push(Item::Literal(literal.into()));
    } else {
        let regex = build(&[Hir::concat(run.clone())]).ok()?;
        items.push(Item::Search {
            cache: regex.create_cache(),
            regex,
            group: None,
        });
    }
    run.clear();
    Some(())
}

fn group_indices(hir: &Hir, out: &mut Vec<usize>) {
    match hir.kind() {
        HirKind::Capture(c) => {
            out.push(c.index as usize);
            group_indices(&c.sub, out);
        }
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().for_each(|s| group_indices(s, out));
        }
        HirKind::Repetition(r) => group_indices(&r.sub, out),
        _ => {}
    }
}

fn build(hirs: &[Hir]) -> Result<Regex, CompileError> {
    meta::Builder::new()
        .configure(meta_config())
        .build_many_from_hir(hirs)
        .map_err(|e| match e.pattern() {
            Some(pid) => CompileError::Pattern {
                index: pid.as_usize(),
                cause: error_cause(&e),
            },
            None => CompileError::Build(error_cause(&e)),
        })
}

/// `hir` when it already starts with `^`, else `^(?s-u:.)*?hir`.
fn anchored_at_line_start(hir: Hir) -> Hir {
    if hir.properties().look_set_prefix().contains(Look::Start) {
        return hir;
    }
    let any_byte = Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
        0, 0xFF,
    )])));
    let skip = Hir::repetition(Repetition {
        min: 0,
        max: None,
        greedy: false,
        sub: Box::new(any_byte),
    });
    Hir::concat(vec![Hir::look(Look::Start), skip, hir])
}

/// The innermost cause of an error, without the ASCII-art pointer that regex-syntax
/// draws under the pattern (`unclosed group`, `heap usage ... exceeded limit of ...`).
fn error_cause(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    match message.rfind("error: ") {
        Some(i) => message[i + "error: ".len()..].trim().to_string(),
        None => message.trim().to_string(),
    }
}
