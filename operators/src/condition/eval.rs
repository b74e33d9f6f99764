//! The condition compiler and evaluator: turns the [`Expr`] tree into a tree of [`Node`]s
//! (field paths parsed, regexes compiled, literal lists and `contains` finders built, function
//! names and arities checked) and evaluates it against one event.
//!
//! Evaluation produces [`Val`]s, a small enum that borrows from the batch and the compiled
//! condition (strings are `Cow`s, lists and maps are handles onto the tape, the overlay or a
//! literal), so the common paths (compare a field with a literal, `in` a literal list,
//! `contains`/`startsWith`/`matches` with a literal) never allocate. An error is the unit
//! [`Fault`]: the evaluator only needs to know that one happened.
//!
//! It also owns the RFC 3339 timestamp and duration literal parsers and their formatting.

use super::parser::{BinaryOp, Expr, ExprKind, LogicOp, UnaryOp};
use super::ConditionError;
use memchr::memmem;
use regex_automata::meta::Regex;
use sluice_engine::fields::{FieldTable, Kind};
use sluice_engine::value::{parse_f64, parse_i64, unescape_json_str};
use sluice_engine::{Batch, Event, FieldPath, Value, ValueRef};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

/// A literal value, owned by the compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(Box<[u8]>),
    Bytes(Box<[u8]>),
    List(Box<[Const]>),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i128),
    /// Nanoseconds.
    Duration(i128),
}

/// The right side of `x in [literal, ...]`.
#[derive(Debug, Clone)]
pub(crate) struct ConstSet {
    items: Box<[Const]>,
    /// When every item is a string and there are many: a hash set of them.
    strs: Option<HashSet<Box<[u8]>>>,
}

/// Lists of more string literals than this are looked up through a hash set.
const HASH_SET_MIN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Const),
    Field(FieldPath),
    Has(FieldPath),
    /// A list literal with non-literal items.
    List(Box<[Node]>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Ternary(Box<[Node; 3]>),
    Cmp(CmpOp, Box<[Node; 2]>),
    Arith(ArithOp, Box<[Node; 2]>),
    InConst(Box<Node>, Box<ConstSet>),
    In(Box<[Node; 2]>),
    Size(Box<Node>),
    Contains(Box<[Node; 2]>),
    ContainsLit(Box<Node>, Box<memmem::Finder<'static>>),
    StartsWith(Box<[Node; 2]>),
    EndsWith(Box<[Node; 2]>),
    Matches(Box<Node>, Box<Regex>),
    /// `matches` with a pattern computed per event (compiled per evaluation).
    MatchesDyn(Box<[Node; 2]>),
    ToInt(Box<Node>),
    ToUint(Box<Node>),
    ToBool(Box<Node>),
    ToBytes(Box<Node>),
    ToDouble(Box<Node>),
    ToString(Box<Node>),
    Lower(Box<Node>),
    Upper(Box<Node>),
    Timestamp(Box<Node>),
    Duration(Box<Node>),
    /// `t.getHours()` and friends: a calendar field of a timestamp (at a fixed UTC offset, in
    /// seconds) or a component of a duration.
    TimePart(TimePart, i32, Box<Node>),
}

/// The accessor methods of timestamps (and, for the last four, durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimePart {
    FullYear,
    /// 0-11.
    Month,
    /// 0-based.
    DayOfMonth,
    /// 1-based day of month.
    Date,
    /// 0 for Sunday.
    DayOfWeek,
    /// 0-based.
    DayOfYear,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
}

impl TimePart {
    fn from_name(name: &str) -> Option<TimePart> {
        Some(match name {
            "getFullYear" => TimePart::FullYear,
            "getMonth" => TimePart::Month,
            "getDayOfMonth" => TimePart::DayOfMonth,
            "getDate" => TimePart::Date,
            "getDayOfWeek" => TimePart::DayOfWeek,
            "getDayOfYear" => TimePart::DayOfYear,
            "getHours" => TimePart::Hours,
            "getMinutes" => TimePart::Minutes,
            "getSeconds" => TimePart::Seconds,
            "getMilliseconds" => TimePart::Milliseconds,
            _ => return None,
        })
    }
}

/// An evaluation error (type mismatch, bad argument, overflow). Carries nothing: any error
/// makes the condition false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault;

type R<T> = Result<T, Fault>;

/// A position in the batch's parsed tape (an array or object node).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tape<'a> {
    table: &'a FieldTable,
    buf: &'a [u8],
    index: u32,
}

impl<'a> Tape<'a> {
    /// Indexes of the node's children.
    fn children(self) -> impl Iterator<Item = u32> + 'a {
        let entries = &self.table.entries;
        let end = entries[self.index as usize].end;
        let mut i = self.index + 1;
        std::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let cur = i;
            i = entries[cur as usize].end.max(cur + 1);
            Some(cur)
        })
    }

    fn child(self, i: u32) -> Val<'a> {
        from_ref(ValueRef::from_entry(self.table, self.buf, i))
    }
}

/// A list value.
#[derive(Debug, Clone)]
pub(crate) enum List<'a> {
    Consts(&'a [Const]),
    Tape(Tape<'a>),
    Values(&'a [Value]),
    Vals(Vec<Val<'a>>),
}

/// A map value (a JSON object).
#[derive(Debug, Clone)]
pub(crate) enum Map<'a> {
    Tape(Tape<'a>),
    Members(&'a [(String, Value)]),
    Vals(Vec<(Cow<'a, [u8]>, Val<'a>)>),
}

/// A value during evaluation, borrowing from the batch and the compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(Cow<'a, [u8]>),
    Bytes(Cow<'a, [u8]>),
    Timestamp(i128),
    Duration(i128),
    List(List<'a>),
    Map(Map<'a>),
}

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

fn err(message: impl Into<String>, column: usize) -> ConditionError {
    ConditionError {
        message: message.into(),
        column,
    }
}

/// The column where the source text of `e` starts (its leftmost token).
pub(crate) fn start_col(e: &Expr) -> usize {
    match &e.kind {
        ExprKind::Binary { lhs, .. } => start_col(lhs),
        ExprKind::Logic { terms, .. } => terms.first().map_or(e.col, start_col),
        ExprKind::Ternary { cond, .. } => start_col(cond),
        ExprKind::Index { operand, .. } | ExprKind::Select { operand, .. } => start_col(operand),
        ExprKind::Call {
            target: Some(t), ..
        } => start_col(t),
        _ => e.col,
    }
}

/// Compiles a condition's root: it must be able to produce a bool.
pub(crate) fn compile_root(e: &Expr) -> Result<Node, ConditionError> {
    compile_bool(e)
}

/// Compiles `e` where a bool is required, rejecting what can never be one.
#[inline(never)]
fn compile_bool(e: &Expr) -> Result<Node, ConditionError> {
    let n = compile(e)?;
    match static_type(&n) {
        Some(t) if t != "bool" => Err(err(
            format!("expected a bool expression, found {t}"),
            start_col(e),
        )),
        _ => Ok(n),
    }
}

/// The type `n` always evaluates to (when it succeeds), if known at compile time.
fn static_type(n: &Node) -> Option<&'static str> {
    Some(match n {
        Node::Const(c) => const_type(c),
        Node::List(_) => "list",
        Node::Has(_)
        | Node::Not(_)
        | Node::And(_)
        | Node::Or(_)
        | Node::Cmp(..)
        | Node::InConst(..)
        | Node::In(_)
        | Node::Contains(_)
        | Node::ContainsLit(..)
        | Node::StartsWith(_)
        | Node::EndsWith(_)
        | Node::Matches(..)
        | Node::MatchesDyn(_)
        | Node::ToBool(_) => "bool",
        Node::Size(_) | Node::ToInt(_) | Node::TimePart(..) => "int",
        Node::ToUint(_) => "uint",
        Node::ToDouble(_) => "double",
        Node::ToString(_) | Node::Lower(_) | Node::Upper(_) => "string",
        Node::ToBytes(_) => "bytes",
        Node::Timestamp(_) => "timestamp",
        Node::Duration(_) => "duration",
        Node::Neg(x) => match static_type(x)? {
            t @ ("int" | "double" | "duration") => t,
            _ => return None,
        },
        Node::Ternary(b) => match (static_type(&b[1])?, static_type(&b[2])?) {
            (x, y) if x == y => x,
            _ => return None,
        },
        Node::Arith(_, b) => match (static_type(&b[0])?, static_type(&b[1])?) {
            ("int", "int") => "int",
            ("uint", "uint") => "uint",
            ("int", "uint") | ("uint", "int") => return None,
            ("int" | "uint" | "double", "int" | "uint" | "double") => "double",
            ("string", "string") => "string",
            ("bytes", "bytes") => "bytes",
            ("list", "list") => "list",
            ("timestamp", "duration") | ("duration", "timestamp") => "timestamp",
            ("timestamp", "timestamp") | ("duration", "duration") => "duration",
            _ => return None,
        },
        Node::Field(_) => return None,
    })
}

fn const_type(c: &Const) -> &'static str {
    match c {
        Const::Null => "null",
        Const::Bool(_) => "bool",
        Const::Int(_) => "int",
        Const::Uint(_) => "uint",
        Const::Double(_) => "double",
        Const::Str(_) => "string",
        Const::Bytes(_) => "bytes",
        Const::List(_) => "list",
        Const::Timestamp(_) => "timestamp",
        Const::Duration(_) => "duration",
    }
}

// The compiler recurses once per tree level; each arm lives in its own function so that a
// level costs little stack even in debug builds.
fn compile(e: &Expr) -> Result<Node, ConditionError> {
    match &e.kind {
        ExprKind::Ident(_) | ExprKind::Select { .. } | ExprKind::Index { .. } => {
            Ok(Node::Field(field_path(e)?))
        }
        ExprKind::List(items) => compile_list(items),
        ExprKind::Unary { op, operand } => compile_unary(*op, operand),
        ExprKind::Logic { op, terms } => compile_logic(*op, terms),
        ExprKind::Ternary {
            cond,
            then,
            otherwise,
        } => compile_ternary(cond, then, otherwise),
        ExprKind::Binary { op, lhs, rhs } => compile_binary(*op, lhs, rhs),
        ExprKind::Call { target, name, args } => compile_call(e, target.as_deref(), name, args),
        _ => compile_literal(e),
    }
}

#[inline(never)]
fn compile_literal(e: &Expr) -> Result<Node, ConditionError> {
    Ok(Node::Const(match &e.kind {
        ExprKind::Bool(b) => Const::Bool(*b),
        ExprKind::Int(i) => {
            Const::Int(i64::try_from(*i).map_err(|_| err("integer literal out of range", e.col))?)
        }
        ExprKind::Uint(u) => Const::Uint(*u),
        ExprKind::Double(f) => Const::Double(*f),
        ExprKind::Str(s) => Const::Str(s.as_bytes().into()),
        ExprKind::Bytes(b) => Const::Bytes(b.as_slice().into()),
        _ => Const::Null,
    }))
}

#[inline(never)]
fn compile_list(items: &[Expr]) -> Result<Node, ConditionError> {
    let nodes = items.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
    if !nodes.iter().all(|n| matches!(n, Node::Const(_))) {
        return Ok(Node::List(nodes.into()));
    }
    let consts = nodes
        .into_iter()
        .filter_map(|n| match n {
            Node::Const(c) => Some(c),
            _ => None,
        })
        .collect();
    Ok(Node::Const(Const::List(consts)))
}

#[inline(never)]
fn compile_unary(op: UnaryOp, operand: &Expr) -> Result<Node, ConditionError> {
    Ok(match op {
        UnaryOp::Not => Node::Not(Box::new(compile_bool(operand)?)),
        UnaryOp::Neg => {
            let n = compile(operand)?;
            if let Some(
                t @ ("uint" | "string" | "bytes" | "bool" | "null" | "list" | "timestamp"),
            ) = static_type(&n)
            {
                return Err(err(format!("a {t} cannot be negated"), start_col(operand)));
            }
            Node::Neg(Box::new(n))
        }
    })
}

#[inline(never)]
fn compile_logic(op: LogicOp, terms: &[Expr]) -> Result<Node, ConditionError> {
    let terms = terms
        .iter()
        .map(compile_bool)
        .collect::<Result<Vec<_>, _>>()?
        .into();
    Ok(match op {
        LogicOp::And => Node::And(terms),
        LogicOp::Or => Node::Or(terms),
    })
}

#[inline(never)]
fn compile_ternary(cond: &Expr, then: &Expr, otherwise: &Expr) -> Result<Node, ConditionError> {
    Ok(Node::Ternary(Box::new([
        compile_bool(cond)?,
        compile(then)?,
        compile(otherwise)?,
    ])))
}

#[inline(never)]
fn compile_binary(op: BinaryOp, lhs: &Expr, rhs: &Expr) -> Result<Node, ConditionError> {
    let l = compile(lhs)?;
    let r = compile(rhs)?;
    let pair = Box::new([l, r]);
    Ok(match op {
        BinaryOp::In => {
            let [l, r] = *pair;
            match r {
                Node::Const(Const::List(items)) => {
                    Node::InConst(Box::new(l), Box::new(const_set(items)))
                }
                Node::Const(c) => {
                    return Err(err(
                        format!(
                            "the right side of 'in' must be a list or a field, found {}",
                            const_type(&c)
                        ),
                        start_col(rhs),
                    ))
                }
                r => Node::In(Box::new([l, r])),
            }
        }
        BinaryOp::Eq => Node::Cmp(CmpOp::Eq, pair),
        BinaryOp::Ne => Node::Cmp(CmpOp::Ne, pair),
        BinaryOp::Lt => Node::Cmp(CmpOp::Lt, pair),
        BinaryOp::Le => Node::Cmp(CmpOp::Le, pair),
        BinaryOp::Gt => Node::Cmp(CmpOp::Gt, pair),
        BinaryOp::Ge => Node::Cmp(CmpOp::Ge, pair),
        BinaryOp::Add => Node::Arith(ArithOp::Add, pair),
        BinaryOp::Sub => Node::Arith(ArithOp::Sub, pair),
        BinaryOp::Mul => Node::Arith(ArithOp::Mul, pair),
        BinaryOp::Div => Node::Arith(ArithOp::Div, pair),
        BinaryOp::Rem => Node::Arith(ArithOp::Rem, pair),
    })
}

fn const_set(items: Box<[Const]>) -> ConstSet {
    let all_strs = items.iter().all(|c| matches!(c, Const::Str(_)));
    let strs = (all_strs && items.len() >= HASH_SET_MIN).then(|| {
        items
            .iter()
            .filter_map(|c| match c {
                Const::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    });
    ConstSet { items, strs }
}

/// The field path an identifier / selection / literal-index chain names.
fn field_path(e: &Expr) -> Result<FieldPath, ConditionError> {
    let mut segments: Vec<Box<str>> = Vec::new();
    let mut cur = e;
    loop {
        match &cur.kind {
            ExprKind::Ident(name) => {
                segments.push(name.as_str().into());
                break;
            }
            ExprKind::Select { operand, field } => {
                segments.push(field.as_str().into());
                cur = operand;
            }
            ExprKind::Index { operand, index } => {
                let seg: Box<str> = match &index.kind {
                    ExprKind::Str(s) => s.as_str().into(),
                    ExprKind::Int(i) if *i >= 0 => i.to_string().into(),
                    ExprKind::Uint(u) => u.to_string().into(),
                    _ => {
                        return Err(err(
                            "an index must be a string or non-negative integer literal",
                            start_col(index),
                        ))
                    }
                };
                segments.push(seg);
                cur = operand;
            }
            _ => {
                return Err(err(
                    "fields can only be selected or indexed on a field path",
                    start_col(cur),
                ))
            }
        }
    }
    segments.reverse();
    Ok(FieldPath::from_segments(segments))
}

/// Name, whether it is a method (called as `x.name(...)`), and the fewest and most arguments
/// (without the receiver).
const FUNCTIONS: &[(&str, bool, usize, usize)] = &[
    ("has", false, 1, 1),
    ("size", false, 1, 1),
    ("int", false, 1, 1),
    ("uint", false, 1, 1),
    ("double", false, 1, 1),
    ("string", false, 1, 1),
    ("bool", false, 1, 1),
    ("bytes", false, 1, 1),
    ("timestamp", false, 1, 1),
    ("duration", false, 1, 1),
    ("matches", false, 2, 2),
    ("size", true, 0, 0),
    ("contains", true, 1, 1),
    ("startsWith", true, 1, 1),
    ("endsWith", true, 1, 1),
    ("matches", true, 1, 1),
    ("lowerAscii", true, 0, 0),
    ("upperAscii", true, 0, 0),
    ("getFullYear", true, 0, 1),
    ("getMonth", true, 0, 1),
    ("getDayOfMonth", true, 0, 1),
    ("getDate", true, 0, 1),
    ("getDayOfWeek", true, 0, 1),
    ("getDayOfYear", true, 0, 1),
    ("getHours", true, 0, 1),
    ("getMinutes", true, 0, 1),
    ("getSeconds", true, 0, 1),
    ("getMilliseconds", true, 0, 1),
];

#[inline(never)]
fn compile_call(
    e: &Expr,
    target: Option<&Expr>,
    name: &str,
    args: &[Expr],
) -> Result<Node, ConditionError> {
    let method = target.is_some();
    let Some(&(_, _, min, max)) = FUNCTIONS
        .iter()
        .find(|(n, m, _, _)| *n == name && *m == method)
    else {
        let other = FUNCTIONS
            .iter()
            .any(|(n, m, _, _)| *n == name && *m != method);
        let msg = match (method, other) {
            (false, true) => format!("unknown function '{name}' (it is a method: x.{name}(...))"),
            (true, true) => format!("unknown method '{name}' (it is a function: {name}(...))"),
            (false, false) if name == "now" => {
                "unknown function 'now' (conditions are deterministic: compare with a \
                 timestamp literal)"
                    .to_string()
            }
            (false, false) => format!("unknown function '{name}'"),
            (true, false) => format!("unknown method '{name}'"),
        };
        return Err(err(msg, e.col));
    };
    if args.len() < min || args.len() > max {
        let s = if min == 1 && max == 1 { "" } else { "s" };
        let want = if min == max {
            min.to_string()
        } else {
            format!("{min} or {max}")
        };
        return Err(err(
            format!("'{name}' expects {want} argument{s}, got {}", args.len()),
            e.col,
        ));
    }
    // Receiver first: `x.f(a)` and `f(x, a)` become the same argument list.
    let all: Vec<&Expr> = target.into_iter().chain(args.iter()).collect();
    let one = |i: usize| -> Result<Box<Node>, ConditionError> { Ok(Box::new(compile(all[i])?)) };
    let two = || -> Result<Box<[Node; 2]>, ConditionError> {
        Ok(Box::new([compile(all[0])?, compile(all[1])?]))
    };
    if let Some(part) = TimePart::from_name(name) {
        let offset = match all.get(1) {
            None => 0,
            Some(tz) => match &tz.kind {
                ExprKind::Str(s) => parse_time_zone(s).map_err(|why| err(why, tz.col))?,
                _ => {
                    return Err(err(
                        "the time zone must be a string literal, like '+02:00' or 'UTC'",
                        start_col(tz),
                    ))
                }
            },
        };
        return Ok(Node::TimePart(part, offset, one(0)?));
    }
    Ok(match name {
        "has" => match &all[0].kind {
            ExprKind::Ident(_) | ExprKind::Select { .. } | ExprKind::Index { .. } => {
                Node::Has(field_path(all[0])?)
            }
            _ => {
                return Err(err(
                    "has() expects a field path, like has(user.id)",
                    start_col(all[0]),
                ))
            }
        },
        "size" => Node::Size(one(0)?),
        "int" => Node::ToInt(one(0)?),
        "uint" => Node::ToUint(one(0)?),
        "double" => Node::ToDouble(one(0)?),
        "string" => Node::ToString(one(0)?),
        "bool" => Node::ToBool(one(0)?),
        "bytes" => Node::ToBytes(one(0)?),
        "lowerAscii" => Node::Lower(one(0)?),
        "upperAscii" => Node::Upper(one(0)?),
        "timestamp" => match &all[0].kind {
            ExprKind::Str(s) => Node::Const(Const::Timestamp(
                parse_rfc3339(s.as_bytes())
                    .map_err(|why| err(format!("invalid timestamp {s:?}: {why}"), all[0].col))?,
            )),
            _ => Node::Timestamp(one(0)?),
        },
        "duration" => match &all[0].kind {
            ExprKind::Str(s) => Node::Const(Const::Duration(
                parse_duration(s.as_bytes())
                    .map_err(|why| err(format!("invalid duration {s:?}: {why}"), all[0].col))?,
            )),
            _ => Node::Duration(one(0)?),
        },
        "contains" => match &all[1].kind {
            ExprKind::Str(s) => Node::ContainsLit(
                one(0)?,
                Box::new(memmem::Finder::new(s.as_bytes()).into_owned()),
            ),
            _ => Node::Contains(two()?),
        },
        "startsWith" => Node::StartsWith(two()?),
        "endsWith" => Node::EndsWith(two()?),
        "matches" => {
            let pat = all[1];
            match &pat.kind {
                // A literal pattern is compiled once, here; a bad one is a compile error.
                ExprKind::Str(p) => {
                    let re = Regex::new(p)
                        .map_err(|e| err(format!("invalid regex: {}", regex_error(&e)), pat.col))?;
                    Node::Matches(one(0)?, Box::new(re))
                }
                _ => {
                    let n = two()?;
                    if let Some(t) = static_type(&n[1]).filter(|t| *t != "string") {
                        return Err(err(
                            format!("the pattern of matches() must be a string, found {t}"),
                            start_col(pat),
                        ));
                    }
                    Node::MatchesDyn(n)
                }
            }
        }
        _ => unreachable!("every entry of FUNCTIONS is handled"),
    })
}

/// A time zone argument: `UTC` / `Z` or a fixed offset `+hh:mm` / `-hh:mm`, as seconds east
/// of UTC. Zone names (`Europe/Paris`) would need a time zone database and are refused.
fn parse_time_zone(s: &str) -> Result<i32, String> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" || s == "z" {
        return Ok(0);
    }
    let b = s.as_bytes();
    let fixed = b.len() == 6
        && matches!(b[0], b'+' | b'-')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b':'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit();
    if !fixed {
        return Err(format!(
            "unsupported time zone {s:?}: use 'UTC' or a fixed offset like '+02:00' (zone names \
             are not supported)"
        ));
    }
    let h = ((b[1] - b'0') * 10 + (b[2] - b'0')) as i32;
    let m = ((b[4] - b'0') * 10 + (b[5] - b'0')) as i32;
    if h > 23 || m > 59 {
        return Err(format!("time zone offset {s:?} out of range"));
    }
    let off = h * 3600 + m * 60;
    Ok(if b[0] == b'-' { -off } else { off })
}

/// The useful part of a regex build error (the innermost cause, without the ASCII-art
/// pointer the syntax errors carry).
fn regex_error(e: &regex_automata::meta::BuildError) -> String {
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    match msg.rfind("error: ") {
        Some(i) => msg[i + "error: ".len()..].trim().to_string(),
        None => msg.trim().to_string(),
    }
}

/// Every field path `n` reads, in first-use order, without duplicates.
pub(crate) fn collect_fields(n: &Node, out: &mut Vec<FieldPath>) {
    let mut push = |p: &FieldPath| {
        if !out.contains(p) {
            out.push(p.clone());
        }
    };
    match n {
        Node::Const(_) => {}
        Node::Field(p) | Node::Has(p) => push(p),
        Node::List(items) | Node::And(items) | Node::Or(items) => {
            for i in items.iter() {
                collect_fields(i, out);
            }
        }
        Node::Ternary(b) => b.iter().for_each(|i| collect_fields(i, out)),
        Node::Cmp(_, b)
        | Node::Arith(_, b)
        | Node::In(b)
        | Node::Contains(b)
        | Node::StartsWith(b)
        | Node::EndsWith(b)
        | Node::MatchesDyn(b) => b.iter().for_each(|i| collect_fields(i, out)),
        Node::Not(x)
        | Node::Neg(x)
        | Node::InConst(x, _)
        | Node::Size(x)
        | Node::ContainsLit(x, _)
        | Node::Matches(x, _)
        | Node::ToInt(x)
        | Node::ToUint(x)
        | Node::ToDouble(x)
        | Node::ToString(x)
        | Node::ToBool(x)
        | Node::ToBytes(x)
        | Node::Lower(x)
        | Node::Upper(x)
        | Node::Timestamp(x)
        | Node::Duration(x)
        | Node::TimePart(_, _, x) => collect_fields(x, out),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// True when `n` evaluates to `true` for `ev`.
#[inline]
pub(crate) fn matches(n: &Node, batch: &Batch, ev: &Event) -> bool {
    matches!(eval_bool(n, batch, ev), Ok(true))
}

#[inline]
fn eval_bool(n: &Node, batch: &Batch, ev: &Event) -> R<bool> {
    match eval(n, batch, ev)? {
        Val::Bool(b) => Ok(b),
        _ => Err(Fault),
    }
}

fn const_val(c: &Const) -> Val<'_> {
    match c {
        Const::Null => Val::Null,
        Const::Bool(b) => Val::Bool(*b),
        Const::Int(i) => Val::Int(*i),
        Const::Uint(u) => Val::Uint(*u),
        Const::Double(f) => Val::Double(*f),
        Const::Str(s) => Val::Str(Cow::Borrowed(s)),
        Const::Bytes(b) => Val::Bytes(Cow::Borrowed(b)),
        Const::List(items) => Val::List(List::Consts(items)),
        Const::Timestamp(t) => Val::Timestamp(*t),
        Const::Duration(d) => Val::Duration(*d),
    }
}

fn str_of<'a>(n: &'a Node, batch: &'a Batch, ev: &Event) -> R<Cow<'a, [u8]>> {
    match eval(n, batch, ev)? {
        Val::Str(s) => Ok(s),
        _ => Err(Fault),
    }
}

/// Evaluates `n` for `ev`.
///
/// Every arm is a plain call so that one level of recursion costs little stack, even in debug
/// builds (the tree may be [`super::parser::MAX_DEPTH`] deep).
pub(crate) fn eval<'a>(n: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    match n {
        Node::Const(c) => Ok(const_val(c)),
        Node::Field(p) => Ok(field(p, batch, ev)),
        Node::Has(p) => Ok(Val::Bool(batch.get(ev, p).is_some())),
        Node::List(items) => eval_list(items, batch, ev),
        Node::Not(x) => eval_not(x, batch, ev),
        Node::Neg(x) => eval_neg(x, batch, ev),
        Node::And(terms) => eval_and(terms, batch, ev),
        Node::Or(terms) => eval_or(terms, batch, ev),
        Node::Ternary(b) => eval_ternary(b, batch, ev),
        Node::Cmp(op, b) => eval_cmp(*op, b, batch, ev),
        Node::Arith(op, b) => eval_arith(*op, b, batch, ev),
        Node::InConst(x, set) => eval_in_const(x, set, batch, ev),
        Node::In(b) => eval_in(b, batch, ev),
        Node::Size(x) => eval_size(x, batch, ev),
        Node::Contains(b) => eval_contains(b, batch, ev),
        Node::ContainsLit(x, finder) => eval_contains_lit(x, finder, batch, ev),
        Node::StartsWith(b) => eval_starts_with(b, batch, ev),
        Node::EndsWith(b) => eval_ends_with(b, batch, ev),
        Node::Matches(x, re) => eval_matches(x, re, batch, ev),
        Node::MatchesDyn(b) => eval_matches_dyn(b, batch, ev),
        Node::Lower(x) => eval_lower(x, batch, ev),
        Node::Upper(x) => eval_upper(x, batch, ev),
        Node::ToInt(x) => eval_to_int(x, batch, ev),
        Node::ToUint(x) => eval_to_uint(x, batch, ev),
        Node::ToDouble(x) => eval_to_double(x, batch, ev),
        Node::ToString(x) => eval_to_string(x, batch, ev),
        Node::ToBool(x) => eval_to_bool(x, batch, ev),
        Node::ToBytes(x) => eval_to_bytes(x, batch, ev),
        Node::Timestamp(x) => eval_timestamp(x, batch, ev),
        Node::Duration(x) => eval_duration(x, batch, ev),
        Node::TimePart(part, offset, x) => eval_time_part(*part, *offset, x, batch, ev),
    }
}

#[inline]
fn field<'a>(p: &FieldPath, batch: &'a Batch, ev: &Event) -> Val<'a> {
    match batch.get(ev, p) {
        Some(v) => from_ref(v),
        None => Val::Null,
    }
}

fn eval_list<'a>(items: &'a [Node], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let items = items
        .iter()
        .map(|i| eval(i, batch, ev))
        .collect::<R<Vec<_>>>()?;
    Ok(Val::List(List::Vals(items)))
}

fn eval_not<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Bool(!eval_bool(x, batch, ev)?))
}

fn eval_neg<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    match eval(x, batch, ev)? {
        Val::Int(i) => Ok(Val::Int(i.checked_neg().ok_or(Fault)?)),
        // `Val::Duration` is within ±10,000 years, so negating it cannot overflow.
        Val::Double(f) => Ok(Val::Double(-f)),
        Val::Duration(d) => Ok(Val::Duration(-d)),
        _ => Err(Fault),
    }
}

/// CEL semantics: a false term decides `&&` even when another term failed; the error only
/// surfaces when no term is false.
fn eval_and<'a>(terms: &'a [Node], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let mut fault = false;
    for t in terms {
        match eval_bool(t, batch, ev) {
            Ok(true) => {}
            Ok(false) => return Ok(Val::Bool(false)),
            Err(_) => fault = true,
        }
    }
    if fault {
        Err(Fault)
    } else {
        Ok(Val::Bool(true))
    }
}

/// The mirror of [`eval_and`]: a true term decides `||`.
fn eval_or<'a>(terms: &'a [Node], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let mut fault = false;
    for t in terms {
        match eval_bool(t, batch, ev) {
            Ok(false) => {}
            Ok(true) => return Ok(Val::Bool(true)),
            Err(_) => fault = true,
        }
    }
    if fault {
        Err(Fault)
    } else {
        Ok(Val::Bool(false))
    }
}

fn eval_ternary<'a>(b: &'a [Node; 3], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    if eval_bool(&b[0], batch, ev)? {
        eval(&b[1], batch, ev)
    } else {
        eval(&b[2], batch, ev)
    }
}

fn eval_cmp<'a>(op: CmpOp, b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let l = eval(&b[0], batch, ev)?;
    let r = eval(&b[1], batch, ev)?;
    Ok(Val::Bool(match op {
        CmpOp::Eq => val_eq(&l, &r),
        CmpOp::Ne => !val_eq(&l, &r),
        CmpOp::Lt => val_cmp(&l, &r)? == Some(Ordering::Less),
        CmpOp::Le => matches!(val_cmp(&l, &r)?, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => val_cmp(&l, &r)? == Some(Ordering::Greater),
        CmpOp::Ge => matches!(val_cmp(&l, &r)?, Some(Ordering::Greater | Ordering::Equal)),
    }))
}

fn eval_arith<'a>(op: ArithOp, b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let l = eval(&b[0], batch, ev)?;
    let r = eval(&b[1], batch, ev)?;
    arith(op, l, r)
}

fn eval_in_const<'a>(x: &'a Node, set: &'a ConstSet, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let v = eval(x, batch, ev)?;
    Ok(Val::Bool(match (&v, &set.strs) {
        (Val::Str(s), Some(strs)) => strs.contains(&**s),
        (Val::Str(s), None) => set
            .items
            .iter()
            .any(|c| matches!(c, Const::Str(c) if **c == **s)),
        _ => set.items.iter().any(|c| val_eq(&v, &const_val(c))),
    }))
}

fn eval_in<'a>(b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let v = eval(&b[0], batch, ev)?;
    match eval(&b[1], batch, ev)? {
        Val::List(l) => Ok(Val::Bool(list_any(&l, |item| val_eq(&v, &item)))),
        Val::Map(m) => Ok(Val::Bool(match &v {
            Val::Str(k) => map_get(&m, k).is_some(),
            _ => false,
        })),
        _ => Err(Fault),
    }
}

fn eval_size<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Int(match eval(x, batch, ev)? {
        Val::Str(s) => char_count(&s) as i64,
        Val::Bytes(b) => b.len() as i64,
        Val::List(l) => list_len(&l) as i64,
        Val::Map(m) => map_len(&m) as i64,
        _ => return Err(Fault),
    }))
}

fn eval_contains<'a>(b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let s = str_of(&b[0], batch, ev)?;
    let sub = str_of(&b[1], batch, ev)?;
    Ok(Val::Bool(memmem::find(&s, &sub).is_some()))
}

fn eval_contains_lit<'a>(
    x: &'a Node,
    finder: &memmem::Finder<'static>,
    batch: &'a Batch,
    ev: &Event,
) -> R<Val<'a>> {
    Ok(Val::Bool(finder.find(&str_of(x, batch, ev)?).is_some()))
}

fn eval_starts_with<'a>(b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let s = str_of(&b[0], batch, ev)?;
    Ok(Val::Bool(s.starts_with(&str_of(&b[1], batch, ev)?)))
}

fn eval_ends_with<'a>(b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let s = str_of(&b[0], batch, ev)?;
    Ok(Val::Bool(s.ends_with(&str_of(&b[1], batch, ev)?)))
}

fn eval_matches<'a>(x: &'a Node, re: &Regex, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Bool(re.is_match(&*str_of(x, batch, ev)?)))
}

/// Most NFA states a pattern computed per event may compile to (bounds the cost of a hostile
/// pattern taken from an event).
const DYN_REGEX_NFA_LIMIT: usize = 1 << 20;

fn eval_matches_dyn<'a>(b: &'a [Node; 2], batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let s = str_of(&b[0], batch, ev)?;
    let pat = str_of(&b[1], batch, ev)?;
    let pat = std::str::from_utf8(&pat).map_err(|_| Fault)?;
    let re = Regex::builder()
        .configure(Regex::config().nfa_size_limit(Some(DYN_REGEX_NFA_LIMIT)))
        .build(pat)
        .map_err(|_| Fault)?;
    Ok(Val::Bool(re.is_match(&*s)))
}

fn eval_lower<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let s = str_of(x, batch, ev)?;
    Ok(Val::Str(if s.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        s
    }))
}

fn eval_upper<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    let s = str_of(x, batch, ev)?;
    Ok(Val::Str(if s.iter().any(u8::is_ascii_lowercase) {
        Cow::Owned(s.to_ascii_uppercase())
    } else {
        s
    }))
}

fn eval_to_int<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Int(match eval(x, batch, ev)? {
        Val::Int(i) => i,
        Val::Uint(u) => i64::try_from(u).map_err(|_| Fault)?,
        Val::Double(f) => f64_to_i64(f)?,
        Val::Str(s) => std::str::from_utf8(&s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Fault)?,
        Val::Timestamp(t) => t.div_euclid(NANOS) as i64,
        _ => return Err(Fault),
    }))
}

fn eval_to_uint<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Uint(match eval(x, batch, ev)? {
        Val::Uint(u) => u,
        Val::Int(i) => u64::try_from(i).map_err(|_| Fault)?,
        Val::Double(f) => f64_to_u64(f)?,
        Val::Str(s) => std::str::from_utf8(&s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Fault)?,
        _ => return Err(Fault),
    }))
}

fn eval_to_double<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Double(match eval(x, batch, ev)? {
        Val::Int(i) => i as f64,
        Val::Uint(u) => u as f64,
        Val::Double(f) => f,
        Val::Str(s) => std::str::from_utf8(&s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Fault)?,
        _ => return Err(Fault),
    }))
}

fn eval_to_string<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Str(match eval(x, batch, ev)? {
        Val::Str(s) => s,
        Val::Int(i) => Cow::Owned(i.to_string().into_bytes()),
        Val::Uint(u) => Cow::Owned(u.to_string().into_bytes()),
        Val::Double(f) => Cow::Owned(f.to_string().into_bytes()),
        Val::Bytes(b) => {
            std::str::from_utf8(&b).map_err(|_| Fault)?;
            b
        }
        Val::Bool(b) => Cow::Borrowed(if b { b"true" } else { b"false" }),
        Val::Timestamp(t) => Cow::Owned(format_timestamp(t).ok_or(Fault)?.into_bytes()),
        Val::Duration(d) => Cow::Owned(format_duration(d).into_bytes()),
        _ => return Err(Fault),
    }))
}

/// `bool(x)`: bools, and the strings CEL accepts (`true`, `True`, `TRUE`, `t`, `1` and the
/// same for false).
fn eval_to_bool<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Bool(match eval(x, batch, ev)? {
        Val::Bool(b) => b,
        Val::Str(s) => match &*s {
            b"true" | b"True" | b"TRUE" | b"t" | b"1" => true,
            b"false" | b"False" | b"FALSE" | b"f" | b"0" => false,
            _ => return Err(Fault),
        },
        _ => return Err(Fault),
    }))
}

/// `bytes(x)`: the UTF-8 of a string, or bytes unchanged.
fn eval_to_bytes<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Bytes(match eval(x, batch, ev)? {
        Val::Str(s) | Val::Bytes(s) => s,
        _ => return Err(Fault),
    }))
}

fn eval_time_part<'a>(
    part: TimePart,
    offset: i32,
    x: &'a Node,
    batch: &'a Batch,
    ev: &Event,
) -> R<Val<'a>> {
    match eval(x, batch, ev)? {
        Val::Timestamp(t) => Ok(Val::Int(timestamp_part(part, t, offset))),
        Val::Duration(d) if offset == 0 => duration_part(part, d).map(Val::Int),
        _ => Err(Fault),
    }
}

/// A calendar field of `t` (nanoseconds since the epoch) seen at `offset` seconds east of UTC.
pub(crate) fn timestamp_part(part: TimePart, t: i128, offset: i32) -> i64 {
    let secs = t.div_euclid(NANOS) as i64 + offset as i64;
    let nanos = t.rem_euclid(NANOS) as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match part {
        TimePart::FullYear => y,
        TimePart::Month => m as i64 - 1,
        TimePart::DayOfMonth => d as i64 - 1,
        TimePart::Date => d as i64,
        // 1970-01-01 was a Thursday (4).
        TimePart::DayOfWeek => (days + 4).rem_euclid(7),
        TimePart::DayOfYear => days - days_from_civil(y, 1, 1),
        TimePart::Hours => sod / 3600,
        TimePart::Minutes => sod / 60 % 60,
        TimePart::Seconds => sod % 60,
        TimePart::Milliseconds => nanos / 1_000_000,
    }
}

/// A component of a duration: whole hours, minutes or seconds (truncated toward zero), or the
/// milliseconds within the second. Calendar fields are an error.
fn duration_part(part: TimePart, d: i128) -> R<i64> {
    let v = match part {
        TimePart::Hours => d / (3600 * NANOS),
        TimePart::Minutes => d / (60 * NANOS),
        TimePart::Seconds => d / NANOS,
        TimePart::Milliseconds => d / 1_000_000 % 1000,
        _ => return Err(Fault),
    };
    i64::try_from(v).map_err(|_| Fault)
}

fn eval_timestamp<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Timestamp(match eval(x, batch, ev)? {
        Val::Str(s) => parse_rfc3339(&s).map_err(|_| Fault)?,
        Val::Timestamp(t) => t,
        Val::Int(secs) => check_timestamp(secs as i128 * NANOS).ok_or(Fault)?,
        _ => return Err(Fault),
    }))
}

fn eval_duration<'a>(x: &'a Node, batch: &'a Batch, ev: &Event) -> R<Val<'a>> {
    Ok(Val::Duration(match eval(x, batch, ev)? {
        Val::Str(s) => parse_duration(&s).map_err(|_| Fault)?,
        Val::Duration(d) => d,
        _ => return Err(Fault),
    }))
}

/// A field value as an evaluation value (no copy unless the string holds JSON escapes).
fn from_ref(v: ValueRef<'_>) -> Val<'_> {
    match v {
        ValueRef::Null => Val::Null,
        ValueRef::Bool(b) => Val::Bool(b),
        ValueRef::Number(raw) => number(raw),
        ValueRef::Str { .. } => Val::Str(v.as_str().unwrap_or_default()),
        ValueRef::Node { table, buf, index } => {
            let t = Tape { table, buf, index };
            if table.entries[index as usize].kind == Kind::Array {
                Val::List(List::Tape(t))
            } else {
                Val::Map(Map::Tape(t))
            }
        }
        ValueRef::Owned(v) => from_value(v),
    }
}

/// A JSON number: an int when it is integral and fits `i64`, a uint when it is a larger
/// integer that fits `u64`, else a double.
fn number(raw: &[u8]) -> Val<'static> {
    match parse_i64(raw) {
        Some(i) => Val::Int(i),
        None => match std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(u) => Val::Uint(u),
            None => parse_f64(raw).map_or(Val::Null, Val::Double),
        },
    }
}

fn from_value(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Int(i) => Val::Int(*i),
        Value::Float(f) => Val::Double(*f),
        Value::Str(s) => Val::Str(Cow::Borrowed(s.as_bytes())),
        Value::Array(items) => Val::List(List::Values(items)),
        Value::Object(members) => Val::Map(Map::Members(members)),
        Value::RawJson(raw) => match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(j) => owned_val(Value::from_toml_like(&j)),
            Err(_) => Val::Null,
        },
    }
}

/// An owned value as an evaluation value (for JSON fragments held verbatim in the overlay).
fn owned_val(v: Value) -> Val<'static> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(b),
        Value::Int(i) => Val::Int(i),
        Value::Float(f) => Val::Double(f),
        Value::Str(s) => Val::Str(Cow::Owned(s.into_bytes())),
        Value::Array(items) => Val::List(List::Vals(items.into_iter().map(owned_val).collect())),
        Value::Object(members) => Val::Map(Map::Vals(
            members
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_bytes()), owned_val(v)))
                .collect(),
        )),
        Value::RawJson(raw) => from_value(&Value::RawJson(raw)).into_owned(),
    }
}

impl Val<'_> {
    /// Detaches the value from what it borrows.
    fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Uint(u) => Val::Uint(u),
            Val::Double(f) => Val::Double(f),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Bytes(b) => Val::Bytes(Cow::Owned(b.into_owned())),
            Val::Timestamp(t) => Val::Timestamp(t),
            Val::Duration(d) => Val::Duration(d),
            Val::List(l) => {
                let mut items = Vec::new();
                list_any(&l, |v| {
                    items.push(v.into_owned());
                    false
                });
                Val::List(List::Vals(items))
            }
            Val::Map(m) => {
                let mut members = Vec::new();
                map_any(&m, |k, v| {
                    members.push((Cow::Owned(k.into_owned()), v.into_owned()));
                    false
                });
                Val::Map(Map::Vals(members))
            }
        }
    }
}

fn char_count(s: &[u8]) -> usize {
    // Counts the bytes that start a UTF-8 sequence.
    s.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

fn list_len(l: &List<'_>) -> usize {
    match l {
        List::Consts(c) => c.len(),
        List::Tape(t) => t.children().count(),
        List::Values(v) => v.len(),
        List::Vals(v) => v.len(),
    }
}

/// Calls `f` on the items in order until it returns true; returns whether it did.
fn list_any<'a>(l: &List<'a>, mut f: impl FnMut(Val<'a>) -> bool) -> bool {
    match l {
        List::Consts(c) => c.iter().any(|c| f(const_val(c))),
        List::Tape(t) => t.children().any(|i| f(t.child(i))),
        List::Values(v) => v.iter().any(|v| f(from_value(v))),
        List::Vals(v) => v.iter().any(|v| f(v.clone())),
    }
}

/// The `i`th item of a list (for list equality).
fn list_items<'a>(l: &List<'a>) -> Vec<Val<'a>> {
    let mut out = Vec::with_capacity(list_len(l));
    list_any(l, |v| {
        out.push(v);
        false
    });
    out
}

fn map_len(m: &Map<'_>) -> usize {
    match m {
        Map::Tape(t) => t.children().count(),
        Map::Members(v) => v.len(),
        Map::Vals(v) => v.len(),
    }
}

fn map_get<'a>(m: &Map<'a>, key: &[u8]) -> Option<Val<'a>> {
    match m {
        Map::Tape(t) => {
            let key = std::str::from_utf8(key).ok()?;
            let end = t.table.entries[t.index as usize].end;
            let idx = t.table.find(t.buf, t.index + 1, end, &[key])?;
            Some(t.child(idx))
        }
        Map::Members(v) => v
            .iter()
            .rev()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, v)| from_value(v)),
        Map::Vals(v) => v
            .iter()
            .rev()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| v.clone()),
    }
}

/// Calls `f` on the members in order until it returns true; returns whether it did.
fn map_any<'a>(m: &Map<'a>, mut f: impl FnMut(Cow<'a, [u8]>, Val<'a>) -> bool) -> bool {
    match m {
        Map::Tape(t) => t.children().any(|i| {
            let e = &t.table.entries[i as usize];
            let key = if e.key_escaped() {
                let mut out = Vec::new();
                unescape_json_str(e.key(t.buf), &mut out);
                Cow::Owned(out)
            } else {
                Cow::Borrowed(e.key(t.buf))
            };
            f(key, t.child(i))
        }),
        Map::Members(v) => v
            .iter()
            .any(|(k, v)| f(Cow::Borrowed(k.as_bytes()), from_value(v))),
        Map::Vals(v) => v.iter().any(|(k, v)| f(k.clone(), v.clone())),
    }
}

/// CEL equality: values of different types are unequal, except numbers (ints, uints and
/// doubles), which compare numerically and exactly.
pub(crate) fn val_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Double(x), Val::Double(y)) => x == y,
        (Val::Uint(x), Val::Uint(y)) => x == y,
        (Val::Int(i), Val::Double(f)) | (Val::Double(f), Val::Int(i)) => {
            int_double_cmp(*i, *f) == Some(Ordering::Equal)
        }
        (Val::Int(i), Val::Uint(u)) | (Val::Uint(u), Val::Int(i)) => {
            int_uint_cmp(*i, *u) == Ordering::Equal
        }
        (Val::Uint(u), Val::Double(f)) | (Val::Double(f), Val::Uint(u)) => {
            uint_double_cmp(*u, *f) == Some(Ordering::Equal)
        }
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Bytes(x), Val::Bytes(y)) => x == y,
        (Val::Timestamp(x), Val::Timestamp(y)) => x == y,
        (Val::Duration(x), Val::Duration(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            list_len(x) == list_len(y)
                && list_items(x)
                    .iter()
                    .zip(list_items(y).iter())
                    .all(|(a, b)| val_eq(a, b))
        }
        (Val::Map(x), Val::Map(y)) => {
            map_len(x) == map_len(y)
                && !map_any(x, |k, v| !map_get(y, &k).is_some_and(|w| val_eq(&v, &w)))
        }
        _ => false,
    }
}

/// CEL ordering: numbers (ints, uints and doubles mixed, compared exactly), strings (byte
/// order, which is code point order for UTF-8), bytes, bools, timestamps, durations. `Ok(None)` when a NaN is involved (every
/// comparison is false); other combinations are an error.
pub(crate) fn val_cmp(a: &Val<'_>, b: &Val<'_>) -> R<Option<Ordering>> {
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Int(i), Val::Double(f)) => int_double_cmp(*i, *f),
        (Val::Double(f), Val::Int(i)) => int_double_cmp(*i, *f).map(Ordering::reverse),
        (Val::Uint(x), Val::Uint(y)) => Some(x.cmp(y)),
        (Val::Int(i), Val::Uint(u)) => Some(int_uint_cmp(*i, *u)),
        (Val::Uint(u), Val::Int(i)) => Some(int_uint_cmp(*i, *u).reverse()),
        (Val::Uint(u), Val::Double(f)) => uint_double_cmp(*u, *f),
        (Val::Double(f), Val::Uint(u)) => uint_double_cmp(*u, *f).map(Ordering::reverse),
        (Val::Str(x), Val::Str(y)) | (Val::Bytes(x), Val::Bytes(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Timestamp(x), Val::Timestamp(y)) | (Val::Duration(x), Val::Duration(y)) => {
            Some(x.cmp(y))
        }
        _ => return Err(Fault),
    })
}

/// Compares an int with a double exactly (no rounding of large ints).
fn int_double_cmp(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0.partial_cmp(&(f - t)),
        o => Some(o),
    }
}

fn int_uint_cmp(i: i64, u: u64) -> Ordering {
    match u64::try_from(i) {
        Ok(i) => i.cmp(&u),
        Err(_) => Ordering::Less,
    }
}

/// Compares a uint with a double exactly.
fn uint_double_cmp(u: u64, f: f64) -> Option<Ordering> {
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_64 {
        return Some(Ordering::Less);
    }
    if f < 0.0 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match u.cmp(&(t as u64)) {
        Ordering::Equal => 0.0.partial_cmp(&(f - t)),
        o => Some(o),
    }
}

fn f64_to_u64(f: f64) -> R<u64> {
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    // Truncation toward zero: (-1, 0) becomes 0.
    if !(f > -1.0 && f < TWO_64) {
        return Err(Fault);
    }
    Ok(f.trunc() as u64)
}

fn f64_to_i64(f: f64) -> R<i64> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO_63..TWO_63).contains(&f) {
        return Err(Fault);
    }
    Ok(f.trunc() as i64)
}

fn arith<'a>(op: ArithOp, a: Val<'a>, b: Val<'a>) -> R<Val<'a>> {
    use ArithOp::*;
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Val::Int(
            match op {
                Add => x.checked_add(y),
                Sub => x.checked_sub(y),
                Mul => x.checked_mul(y),
                Div => x.checked_div(y),
                Rem => x.checked_rem(y),
            }
            .ok_or(Fault)?,
        ),
        (Val::Uint(x), Val::Uint(y)) => Val::Uint(
            match op {
                Add => x.checked_add(y),
                Sub => x.checked_sub(y),
                Mul => x.checked_mul(y),
                Div => x.checked_div(y),
                Rem => x.checked_rem(y),
            }
            .ok_or(Fault)?,
        ),
        // As in CEL, ints and uints do not mix (convert with `int()` / `uint()`).
        (Val::Int(_), Val::Uint(_)) | (Val::Uint(_), Val::Int(_)) => return Err(Fault),
        (
            x @ (Val::Int(_) | Val::Uint(_) | Val::Double(_)),
            y @ (Val::Int(_) | Val::Uint(_) | Val::Double(_)),
        ) => {
            let x = as_f64(&x);
            let y = as_f64(&y);
            Val::Double(match op {
                Add => x + y,
                Sub => x - y,
                Mul => x * y,
                Div => x / y,
                Rem => return Err(Fault),
            })
        }
        (Val::Str(x), Val::Str(y)) if op == Add => {
            let mut s = x.into_owned();
            s.extend_from_slice(&y);
            Val::Str(Cow::Owned(s))
        }
        (Val::Bytes(x), Val::Bytes(y)) if op == Add => {
            let mut b = x.into_owned();
            b.extend_from_slice(&y);
            Val::Bytes(Cow::Owned(b))
        }
        (Val::List(x), Val::List(y)) if op == Add => {
            let mut items = list_items(&x);
            items.extend(list_items(&y));
            Val::List(List::Vals(items))
        }
        (Val::Timestamp(t), Val::Duration(d)) if op == Add || op == Sub => {
            let t = if op == Add { t + d } else { t - d };
            Val::Timestamp(check_timestamp(t).ok_or(Fault)?)
        }
        (Val::Duration(d), Val::Timestamp(t)) if op == Add => {
            Val::Timestamp(check_timestamp(t + d).ok_or(Fault)?)
        }
        (Val::Timestamp(x), Val::Timestamp(y)) if op == Sub => {
            Val::Duration(check_duration(x - y).ok_or(Fault)?)
        }
        (Val::Duration(x), Val::Duration(y)) if op == Add || op == Sub => {
            let d = if op == Add { x + y } else { x - y };
            Val::Duration(check_duration(d).ok_or(Fault)?)
        }
        _ => return Err(Fault),
    })
}

fn as_f64(v: &Val<'_>) -> f64 {
    match v {
        Val::Int(i) => *i as f64,
        Val::Uint(u) => *u as f64,
        Val::Double(f) => *f,
        _ => f64::NAN,
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps and durations
// ---------------------------------------------------------------------------------------------

const NANOS: i128 = 1_000_000_000;
/// 0001-01-01T00:00:00Z.
const MIN_TS_SECS: i128 = -62_135_596_800;
/// 9999-12-31T23:59:59Z.
const MAX_TS_SECS: i128 = 253_402_300_799;
/// Durations span at most ±10,000 years (as in protobuf's `Duration`).
const MAX_DURATION_SECS: i128 = 315_576_000_000;

fn check_timestamp(t: i128) -> Option<i128> {
    (MIN_TS_SECS * NANOS..(MAX_TS_SECS + 1) * NANOS)
        .contains(&t)
        .then_some(t)
}

fn check_duration(d: i128) -> Option<i128> {
    (d.abs() <= MAX_DURATION_SECS * NANOS).then_some(d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-20T12:00:00Z`, `2026-11-20t12:00:00.5+01:00`, a
/// space also separates date and time) into nanoseconds since the Unix epoch.
pub(crate) fn parse_rfc3339(s: &[u8]) -> Result<i128, &'static str> {
    const SHAPE: &str = "expected RFC 3339, like 2026-11-20T12:00:00Z";
    let digits = |at: usize, n: usize| -> Result<u32, &'static str> {
        let part = s.get(at..at + n).ok_or(SHAPE)?;
        part.iter().try_fold(0u32, |acc, &b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + (b - b'0') as u32)
            } else {
                Err(SHAPE)
            }
        })
    };
    let byte = |at: usize, want: &[u8]| -> Result<(), &'static str> {
        match s.get(at) {
            Some(b) if want.contains(b) => Ok(()),
            _ => Err(SHAPE),
        }
    };
    let year = digits(0, 4)?;
    byte(4, b"-")?;
    let month = digits(5, 2)?;
    byte(7, b"-")?;
    let day = digits(8, 2)?;
    byte(10, b"Tt ")?;
    let hour = digits(11, 2)?;
    byte(13, b":")?;
    let minute = digits(14, 2)?;
    byte(16, b":")?;
    let second = digits(17, 2)?;
    let mut i = 19;
    let mut nanos: i128 = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(b) = s.get(i).filter(|b| b.is_ascii_digit()) {
            if i - start < 9 {
                nanos = nanos * 10 + (b - b'0') as i128;
            }
            i += 1;
        }
        if i == start {
            return Err("expected digits after '.'");
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset: i64 = match s.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(i + 1, 2)?;
            byte(i + 3, b":")?;
            let om = digits(i + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err("time zone offset out of range");
            }
            i += 6;
            let off = (oh * 3600 + om * 60) as i64;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return Err("expected a time zone ('Z' or an offset like +02:00)"),
    };
    if i != s.len() {
        return Err("unexpected characters after the time zone");
    }
    let y = year as i64;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(y, month) {
        return Err("date out of range");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time out of range");
    }
    let days = days_from_civil(y, month, day);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset;
    check_timestamp(secs as i128 * NANOS + nanos).ok_or("timestamp out of range (years 1 to 9999)")
}

/// Formats a timestamp as RFC 3339 in UTC (`2026-11-20T12:00:00.5Z`).
pub(crate) fn format_timestamp(t: i128) -> Option<String> {
    let t = check_timestamp(t)?;
    let secs = t.div_euclid(NANOS) as i64;
    let nanos = t.rem_euclid(NANOS) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    push_fraction(&mut out, nanos);
    out.push('Z');
    Some(out)
}

fn push_fraction(out: &mut String, nanos: u32) {
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// Parses a duration like `5s`, `1.5h`, `1h30m`, `250ms`, `-2m`, `7d` (units `ns us µs ms s
/// m h d`) into nanoseconds.
pub(crate) fn parse_duration(s: &[u8]) -> Result<i128, &'static str> {
    let (neg, mut rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == b"0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err("expected a number and a unit, like 5s");
    }
    const UNITS: &[(&str, i128)] = &[
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", NANOS),
        ("m", 60 * NANOS),
        ("h", 3600 * NANOS),
        ("d", 86_400 * NANOS),
    ];
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: i128 = 0;
        for &b in &rest[..int_len] {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add((b - b'0') as i128))
                .ok_or("duration out of range")?;
        }
        rest = &rest[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0i128, 1i128, 0usize);
        if rest.first() == Some(&b'.') {
            frac_len = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            for &b in rest[1..=frac_len].iter().take(18) {
                frac = frac * 10 + (b - b'0') as i128;
                scale *= 10;
            }
            rest = &rest[1 + frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err("expected a number");
        }
        let (unit, ns) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u.as_bytes()))
            .ok_or("missing or unknown unit (use ns, us, ms, s, m, h or d)")?;
        rest = &rest[unit.len()..];
        let part = whole
            .checked_mul(*ns)
            .and_then(|w| w.checked_add(frac * ns / scale))
            .ok_or("duration out of range")?;
        total = total.checked_add(part).ok_or("duration out of range")?;
        if total > MAX_DURATION_SECS * NANOS {
            return Err("duration out of range");
        }
    }
    Ok(if neg { -total } else { total })
}

/// Formats a duration as CEL does: seconds with a fraction, `1.5s`.
pub(crate) fn format_duration(d: i128) -> String {
    let mut out = String::new();
    if d < 0 {
        out.push('-');
    }
    let a = d.unsigned_abs();
    out.push_str(&(a / NANOS as u128).to_string());
    push_fraction(&mut out, (a % NANOS as u128) as u32);
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i128 {
        parse_rfc3339(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ts("2026-11-20T12:00:00Z"), 1_795_176_000 * NANOS);
        assert_eq!(ts("2026-11-20T13:30:00+01:30"), 1_795_176_000 * NANOS);
        assert_eq!(ts("2026-11-20t11:00:00-01:00"), 1_795_176_000 * NANOS);
        assert_eq!(ts("2026-11-20 12:00:00z"), 1_795_176_000 * NANOS);
        assert_eq!(ts("1970-01-01T00:00:00.5Z"), NANOS / 2);
        assert_eq!(ts("1970-01-01T00:00:00.123456789123Z"), 123_456_789);
        assert_eq!(ts("1969-12-31T23:59:59Z"), -NANOS);
        assert_eq!(ts("2024-02-29T00:00:00Z"), 1_709_164_800 * NANOS);
        assert_eq!(ts("0001-01-01T00:00:00Z"), MIN_TS_SECS * NANOS);
        assert_eq!(
            ts("9999-12-31T23:59:59.999999999Z"),
            (MAX_TS_SECS + 1) * NANOS - 1
        );
        for bad in [
            "",
            "2026-11-20",
            "2026-11-20T12:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T12:00:00.Z",
            "2026-11-20T12:00:00Zx",
            "2026-11-20T12:00:00+1:00",
            "2026-11-20X12:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-11-20T12:00:00+24:00",
            "２026-11-20T12:00:00Z",
        ] {
            assert!(parse_rfc3339(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamp_formatting_round_trips() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-20T12:00:00.5Z",
            "1969-07-20T20:17:40.000000001Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2000-02-29T23:59:59Z",
        ] {
            assert_eq!(format_timestamp(ts(s)).unwrap(), s);
        }
        assert_eq!(format_timestamp((MAX_TS_SECS + 1) * NANOS), None);
        // Every day for a few centuries converts both ways.
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(d("5s"), 5 * NANOS);
        assert_eq!(d("0"), 0);
        assert_eq!(d("1.5h"), 5400 * NANOS);
        assert_eq!(d("1h30m"), 5400 * NANOS);
        assert_eq!(d("250ms"), NANOS / 4);
        assert_eq!(d("-2m"), -120 * NANOS);
        assert_eq!(d("+1us"), 1000);
        assert_eq!(d("3µs2ns"), 3002);
        assert_eq!(d("7d"), 7 * 86_400 * NANOS);
        assert_eq!(d(".5s"), NANOS / 2);
        assert_eq!(d("1.000000000000000000001s"), NANOS);
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "1..5s",
            "-",
            "99999999999999999999999999999999999999999h",
            "400000000h",
        ] {
            assert!(parse_duration(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(format_duration(5 * NANOS), "5s");
        assert_eq!(format_duration(-NANOS / 2), "-0.5s");
        assert_eq!(format_duration(1_500_000_001), "1.500000001s");
    }

    #[test]
    fn int_double_comparison_is_exact() {
        assert_eq!(int_double_cmp(1, 1.0), Some(Ordering::Equal));
        assert_eq!(int_double_cmp(1, 1.5), Some(Ordering::Less));
        assert_eq!(int_double_cmp(2, 1.5), Some(Ordering::Greater));
        assert_eq!(int_double_cmp(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(int_double_cmp(-2, -1.5), Some(Ordering::Less));
        assert_eq!(
            int_double_cmp(i64::MAX, i64::MAX as f64),
            Some(Ordering::Less)
        );
        assert_eq!(
            int_double_cmp(i64::MIN, i64::MIN as f64),
            Some(Ordering::Equal)
        );
        assert_eq!(int_double_cmp(0, f64::NAN), None);
        assert_eq!(int_double_cmp(0, f64::INFINITY), Some(Ordering::Less));
        assert_eq!(
            int_double_cmp(0, f64::NEG_INFINITY),
            Some(Ordering::Greater)
        );
        // 2^53 + 1 is not representable as a double; the int is still compared exactly.
        assert_eq!(
            int_double_cmp((1 << 53) + 1, (1u64 << 53) as f64),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn char_counting() {
        assert_eq!(char_count(b""), 0);
        assert_eq!(char_count("héllo😀".as_bytes()), 6);
    }
}
