//! The condition parser: a recursive-descent, precedence-climbing parser from [`Token`]s to the
//! [`Expr`] syntax tree.
//!
//! It owns the grammar and operator precedence (loosest first):
//!
//! | level | operators | associativity |
//! |---|---|---|
//! | ternary | `c ? a : b` | right |
//! | 1 | `\|\|` | left (chains flattened) |
//! | 2 | `&&` | left (chains flattened) |
//! | 3 | `< <= > >= == != in` | left |
//! | 4 | `+ -` | left |
//! | 5 | `* / %` | left |
//! | unary | `!` `-` | prefix |
//! | member | `a.b`, `a[i]`, `a.f(x)`, `f(x)` | postfix |
//!
//! Negation of a number literal is folded into the literal (so `-9223372036854775808` is
//! representable). Nesting is bounded ([`MAX_NESTING`], [`MAX_DEPTH`]) so hostile input cannot
//! overflow the stack of the parser, the compiler or the evaluator.

use super::lexer::{tokenize, Tok, Token};
use super::ConditionError;

/// How deeply parentheses, calls, lists and indexes may nest.
pub const MAX_NESTING: usize = 64;
/// How deep the syntax tree may be.
pub const MAX_DEPTH: u32 = 200;

/// A node of the syntax tree; `col` is where it starts (operators: the operator's column).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub col: usize,
    /// Height of the subtree (a leaf is 1).
    pub depth: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    /// Wider than `i64` so a folded negation can reach `i64::MIN`; range-checked when compiled.
    Int(i128),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Ident(String),
    Select {
        operand: Box<Expr>,
        field: String,
    },
    Index {
        operand: Box<Expr>,
        index: Box<Expr>,
    },
    /// `name(args)` or, with a target, `target.name(args)`; `col` is the name's column.
    Call {
        target: Option<Box<Expr>>,
        name: String,
        args: Vec<Expr>,
    },
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `a && b && c` (or `||`) as one node with every term.
    Logic {
        op: LogicOp,
        terms: Vec<Expr>,
    },
    Ternary {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
}

/// Parses a whole condition.
pub fn parse(src: &str) -> Result<Expr, ConditionError> {
    let tokens = tokenize(src)?;
    if tokens.len() == 1 {
        return Err(err("empty condition", 1));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        nesting: 0,
    };
    let e = p.expr()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(err(
            format!(
                "unexpected {} after the end of the expression",
                t.tok.describe()
            ),
            t.col,
        ));
    }
    Ok(e)
}

fn err(message: impl Into<String>, column: usize) -> ConditionError {
    ConditionError {
        message: message.into(),
        column,
    }
}

// Error builders stay out of line so the recursive parsing functions keep small frames.

#[cold]
#[inline(never)]
fn too_deep(limit: usize, col: usize) -> ConditionError {
    err(
        format!("expression is nested too deeply (more than {limit} levels)"),
        col,
    )
}

#[cold]
#[inline(never)]
fn unexpected(what: &str, found: &Tok, col: usize) -> ConditionError {
    err(format!("{what} {}", found.describe()), col)
}

#[cold]
#[inline(never)]
fn unclosed(close: &Tok, open_col: usize, col: usize) -> ConditionError {
    let open = if *close == Tok::RParen { "(" } else { "[" };
    err(
        format!(
            "expected '{}' to close '{open}' opened at column {open_col}",
            close.symbol()
        ),
        col,
    )
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
}

fn binary_op(t: &Tok) -> Option<(BinaryOp, u8)> {
    Some(match t {
        Tok::Lt => (BinaryOp::Lt, 3),
        Tok::Le => (BinaryOp::Le, 3),
        Tok::Gt => (BinaryOp::Gt, 3),
        Tok::Ge => (BinaryOp::Ge, 3),
        Tok::EqEq => (BinaryOp::Eq, 3),
        Tok::Ne => (BinaryOp::Ne, 3),
        Tok::In => (BinaryOp::In, 3),
        Tok::Plus => (BinaryOp::Add, 4),
        Tok::Minus => (BinaryOp::Sub, 4),
        Tok::Star => (BinaryOp::Mul, 5),
        Tok::Slash => (BinaryOp::Div, 5),
        Tok::Percent => (BinaryOp::Rem, 5),
        _ => return None,
    })
}

/// Precedence of the infix operator `t` (logical operators included).
fn precedence(t: &Tok) -> Option<u8> {
    match t {
        Tok::OrOr => Some(1),
        Tok::AndAnd => Some(2),
        _ => binary_op(t).map(|(_, p)| p),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn node(
        &self,
        kind: ExprKind,
        col: usize,
        children_depth: u32,
    ) -> Result<Expr, ConditionError> {
        let depth = children_depth + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(MAX_DEPTH as usize, col));
        }
        Ok(Expr { kind, col, depth })
    }

    /// `expr := or ['?' or ':' expr]`
    fn expr(&mut self) -> Result<Expr, ConditionError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(too_deep(MAX_NESTING, self.peek().col));
        }
        let cond = self.binary(1)?;
        let out = if self.peek().tok == Tok::Question {
            self.ternary(cond)?
        } else {
            cond
        };
        self.nesting -= 1;
        Ok(out)
    }

    /// `cond ? then : otherwise`, at the '?'.
    #[inline(never)]
    fn ternary(&mut self, cond: Expr) -> Result<Expr, ConditionError> {
        let q = self.bump();
        let then = self.binary(1)?;
        let t = self.peek();
        if t.tok != Tok::Colon {
            return Err(unexpected(
                &format!("expected ':' after the '?' at column {}, found", q.col),
                &t.tok,
                t.col,
            ));
        }
        self.bump();
        let otherwise = self.expr()?;
        let d = cond.depth.max(then.depth).max(otherwise.depth);
        let col = cond.col;
        let kind = ExprKind::Ternary {
            cond: Box::new(cond),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        };
        self.node(kind, col, d)
    }

    /// Precedence climbing over the infix operators of level `min` and tighter.
    fn binary(&mut self, min: u8) -> Result<Expr, ConditionError> {
        let mut lhs = self.unary()?;
        loop {
            let Some(prec) = precedence(&self.peek().tok) else {
                return Ok(lhs);
            };
            if prec < min {
                return Ok(lhs);
            }
            let op_tok = self.bump();
            let rhs = self.binary(prec + 1)?;
            lhs = self.combine(lhs, op_tok, rhs)?;
        }
    }

    /// Builds `lhs op rhs`; `&&` / `||` chains become one flat node.
    #[inline(never)]
    fn combine(&self, lhs: Expr, op_tok: Token, rhs: Expr) -> Result<Expr, ConditionError> {
        let op = match op_tok.tok {
            Tok::OrOr => LogicOp::Or,
            Tok::AndAnd => LogicOp::And,
            ref t => {
                let (op, _) = binary_op(t).expect("precedence() said it is infix");
                let d = lhs.depth.max(rhs.depth);
                let kind = ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                };
                return self.node(kind, op_tok.col, d);
            }
        };
        match lhs.kind {
            ExprKind::Logic { op: lop, mut terms } if lop == op => {
                // Flattened: the node is as deep as its deepest term + 1.
                let d = (lhs.depth - 1).max(rhs.depth);
                terms.push(rhs);
                self.node(ExprKind::Logic { op, terms }, lhs.col, d)
            }
            kind => {
                let lhs = Expr { kind, ..lhs };
                let d = lhs.depth.max(rhs.depth);
                let col = lhs.col;
                self.node(
                    ExprKind::Logic {
                        op,
                        terms: vec![lhs, rhs],
                    },
                    col,
                    d,
                )
            }
        }
    }

    /// `unary := ('!' | '-')* member`
    fn unary(&mut self) -> Result<Expr, ConditionError> {
        let mut ops = Vec::new();
        loop {
            match self.peek().tok {
                Tok::Bang => ops.push((UnaryOp::Not, self.bump().col)),
                Tok::Minus => ops.push((UnaryOp::Neg, self.bump().col)),
                _ => break,
            }
        }
        let mut e = match self.negative_literal(&ops) {
            Some(e) => {
                ops.pop();
                e
            }
            None => self.member()?,
        };
        for (op, col) in ops.into_iter().rev() {
            let d = e.depth;
            e = self.node(
                ExprKind::Unary {
                    op,
                    operand: Box::new(e),
                },
                col,
                d,
            )?;
        }
        Ok(e)
    }

    /// `-` directly before a number literal (with no member access after it) is part of the
    /// literal, so `-9223372036854775808` is an int.
    fn negative_literal(&mut self, ops: &[(UnaryOp, usize)]) -> Option<Expr> {
        let &(UnaryOp::Neg, col) = ops.last()? else {
            return None;
        };
        let next = self.tokens.get(self.pos + 1).map(|t| &t.tok);
        if matches!(next, Some(Tok::Dot | Tok::LBracket)) {
            return None;
        }
        let kind = match self.peek().tok {
            Tok::Int(i) => ExprKind::Int(-(i as i128)),
            Tok::Double(f) => ExprKind::Double(-f),
            _ => return None,
        };
        self.bump();
        Some(Expr {
            kind,
            col,
            depth: 1,
        })
    }

    /// `member := primary ('.' IDENT ['(' args ')'] | '[' expr ']')*`
    fn member(&mut self) -> Result<Expr, ConditionError> {
        let mut e = self.primary()?;
        loop {
            e = match self.peek().tok {
                Tok::Dot => self.select(e)?,
                Tok::LBracket => self.index(e)?,
                _ => return Ok(e),
            };
        }
    }

    /// `e.name` or `e.name(args)`, at the '.'.
    #[inline(never)]
    fn select(&mut self, e: Expr) -> Result<Expr, ConditionError> {
        self.bump();
        let t = self.bump();
        let Tok::Ident(name) = t.tok else {
            return Err(unexpected(
                "expected a field or method name after '.', found",
                &t.tok,
                t.col,
            ));
        };
        if self.peek().tok == Tok::LParen {
            let open = self.bump();
            let args = self.args(Tok::RParen, open.col)?;
            let d = args.iter().map(|a| a.depth).fold(e.depth, u32::max);
            let target = Some(Box::new(e));
            return self.node(ExprKind::Call { target, name, args }, t.col, d);
        }
        let (d, col) = (e.depth, e.col);
        let operand = Box::new(e);
        self.node(
            ExprKind::Select {
                operand,
                field: name,
            },
            col,
            d,
        )
    }

    /// `e[index]`, at the '['.
    #[inline(never)]
    fn index(&mut self, e: Expr) -> Result<Expr, ConditionError> {
        let open = self.bump();
        let index = self.expr()?;
        self.close(Tok::RBracket, open.col)?;
        let d = e.depth.max(index.depth);
        let kind = ExprKind::Index {
            operand: Box::new(e),
            index: Box::new(index),
        };
        self.node(kind, open.col, d)
    }

    /// Expects `close` (the match of the bracket opened at `open_col`).
    fn close(&mut self, close: Tok, open_col: usize) -> Result<(), ConditionError> {
        let t = self.peek();
        if t.tok == close {
            self.bump();
            return Ok(());
        }
        Err(unclosed(&close, open_col, t.col))
    }

    /// Comma-separated expressions up to `close` (a trailing comma is allowed).
    fn args(&mut self, close: Tok, open_col: usize) -> Result<Vec<Expr>, ConditionError> {
        let mut out = Vec::new();
        loop {
            if self.peek().tok == close {
                self.bump();
                return Ok(out);
            }
            out.push(self.expr()?);
            if self.peek().tok == Tok::Comma {
                self.bump();
                continue;
            }
            self.close(close, open_col)?;
            return Ok(out);
        }
    }

    fn primary(&mut self) -> Result<Expr, ConditionError> {
        let t = self.bump();
        let col = t.col;
        let kind = match t.tok {
            Tok::Null => ExprKind::Null,
            Tok::True => ExprKind::Bool(true),
            Tok::False => ExprKind::Bool(false),
            Tok::Int(i) => ExprKind::Int(i as i128),
            Tok::Uint(u) => ExprKind::Uint(u),
            Tok::Double(f) => ExprKind::Double(f),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Bytes(b) => ExprKind::Bytes(b),
            Tok::Dot if matches!(self.peek().tok, Tok::Ident(_)) => {
                // `.name`: a root-scoped identifier, same as `name`.
                return self.primary();
            }
            Tok::Ident(name) => {
                if self.peek().tok == Tok::LParen {
                    return self.call(name, col);
                }
                ExprKind::Ident(name)
            }
            Tok::LParen => {
                let e = self.expr()?;
                self.close(Tok::RParen, col)?;
                return Ok(e);
            }
            Tok::LBracket => return self.list(col),
            Tok::LBrace => return Err(err("map literals are not supported", col)),
            ref other => return Err(unexpected("expected an expression, found", other, col)),
        };
        self.node(kind, col, 0)
    }

    /// `name(args)`, at the '('.
    #[inline(never)]
    fn call(&mut self, name: String, col: usize) -> Result<Expr, ConditionError> {
        let open = self.bump();
        let args = self.args(Tok::RParen, open.col)?;
        let d = args.iter().map(|a| a.depth).max().unwrap_or(0);
        let kind = ExprKind::Call {
            target: None,
            name,
            args,
        };
        self.node(kind, col, d)
    }

    /// `[items]`, after the '[' at `col`.
    #[inline(never)]
    fn list(&mut self, col: usize) -> Result<Expr, ConditionError> {
        let items = self.args(Tok::RBracket, col)?;
        let d = items.iter().map(|a| a.depth).max().unwrap_or(0);
        self.node(ExprKind::List(items), col, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the tree fully parenthesized, for precedence tests.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Null => "null".into(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Uint(u) => format!("{u}u"),
            ExprKind::Double(f) => format!("{f:?}"),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
            ExprKind::Ident(s) => s.clone(),
            ExprKind::Select { operand, field } => format!("{}.{field}", show(operand)),
            ExprKind::Index { operand, index } => format!("{}[{}]", show(operand), show(index)),
            ExprKind::Call { target, name, args } => {
                let args: Vec<String> = args.iter().map(show).collect();
                match target {
                    Some(t) => format!("{}.{name}({})", show(t), args.join(", ")),
                    None => format!("{name}({})", args.join(", ")),
                }
            }
            ExprKind::List(items) => {
                let items: Vec<String> = items.iter().map(show).collect();
                format!("[{}]", items.join(", "))
            }
            ExprKind::Unary { op, operand } => {
                let o = if *op == UnaryOp::Not { "!" } else { "-" };
                format!("{o}{}", show(operand))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let o = match op {
                    BinaryOp::Mul => "*",
                    BinaryOp::Div => "/",
                    BinaryOp::Rem => "%",
                    BinaryOp::Add => "+",
                    BinaryOp::Sub => "-",
                    BinaryOp::Lt => "<",
                    BinaryOp::Le => "<=",
                    BinaryOp::Gt => ">",
                    BinaryOp::Ge => ">=",
                    BinaryOp::Eq => "==",
                    BinaryOp::Ne => "!=",
                    BinaryOp::In => "in",
                };
                format!("({} {o} {})", show(lhs), show(rhs))
            }
            ExprKind::Logic { op, terms } => {
                let o = if *op == LogicOp::And { " && " } else { " || " };
                let terms: Vec<String> = terms.iter().map(show).collect();
                format!("({})", terms.join(o))
            }
            ExprKind::Ternary {
                cond,
                then,
                otherwise,
            } => format!("({} ? {} : {})", show(cond), show(then), show(otherwise)),
        }
    }

    fn p(src: &str) -> String {
        show(&parse(src).unwrap_or_else(|e| panic!("{src}: {e}")))
    }

    fn perr(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    #[test]
    fn precedence() {
        assert_eq!(p("a || b && c"), "(a || (b && c))");
        assert_eq!(p("a && b || c && d"), "((a && b) || (c && d))");
        assert_eq!(p("a && b && c"), "(a && b && c)");
        assert_eq!(p("a || b || c || d"), "(a || b || c || d)");
        assert_eq!(p("a == 1 && b != 2"), "((a == 1) && (b != 2))");
        assert_eq!(p("1 + 2 * 3 == 7"), "((1 + (2 * 3)) == 7)");
        assert_eq!(p("a - b - c"), "((a - b) - c)");
        assert_eq!(p("a / b % c * d"), "(((a / b) % c) * d)");
        assert_eq!(p("a < b == c"), "((a < b) == c)");
        assert_eq!(p("x in [1, 2] && y"), "((x in [1, 2]) && y)");
        assert_eq!(p("a + b in l"), "((a + b) in l)");
        assert_eq!(p("!a && b"), "(!a && b)");
        assert_eq!(p("!a.b.c()"), "!a.b.c()");
        assert_eq!(p("-a.size() * 2"), "(-a.size() * 2)");
        assert_eq!(p("!!a"), "!!a");
        assert_eq!(p("(a || b) && c"), "((a || b) && c)");
        assert_eq!(p("c ? a : b"), "(c ? a : b)");
        assert_eq!(p("a || b ? x + 1 : y"), "((a || b) ? (x + 1) : y)");
        assert_eq!(p("a ? b : c ? d : e"), "(a ? b : (c ? d : e))");
        assert_eq!(p("(a ? b : c) ? d : e"), "((a ? b : c) ? d : e)");
    }

    #[test]
    fn members_calls_and_literals() {
        assert_eq!(p("http.status"), "http.status");
        assert_eq!(
            p(r#"labels["app.kubernetes.io/name"]"#),
            "labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(p("items[0].name"), "items[0].name");
        assert_eq!(p("has(user.id)"), "has(user.id)");
        assert_eq!(p("message.contains('x')"), "message.contains(\"x\")");
        assert_eq!(p("f()"), "f()");
        assert_eq!(p("f(a, b,)"), "f(a, b)");
        assert_eq!(
            p("[1, 'a', [], null, true, 1.5,]"),
            "[1, \"a\", [], null, true, 1.5]"
        );
        assert_eq!(p(".a.b"), "a.b");
        assert_eq!(p("-5"), "-5");
        assert_eq!(p("- 2.5"), "-2.5");
        assert_eq!(p("--5"), "--5");
        assert_eq!(p("-(-5)"), "--5");
        assert_eq!(p("-5.size()"), "-5.size()");
        assert_eq!(p("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(p("-(a)"), "-a");
        assert_eq!(p("1u + 0x10U"), "(1u + 16u)");
        assert_eq!(p("-1u"), "-1u");
        assert_eq!(p("b'ab' + b\"c\""), "(b\"ab\" + b\"c\")");
    }

    #[test]
    fn columns_of_nodes() {
        let e = parse("a  == 'x'").unwrap();
        assert_eq!(e.col, 4);
        let ExprKind::Binary { lhs, rhs, .. } = e.kind else {
            panic!()
        };
        assert_eq!((lhs.col, rhs.col), (1, 7));
        let e = parse("  foo.bar(1)").unwrap();
        assert_eq!(e.col, 7);
    }

    #[test]
    fn syntax_errors_with_columns() {
        assert_eq!(perr(""), "empty condition (at column 1)");
        assert_eq!(perr("   "), "empty condition (at column 1)");
        assert_eq!(
            perr("a && (b || c == 1"),
            "expected ')' to close '(' opened at column 6 (at column 18)"
        );
        // `a (` is a call of `a`.
        assert_eq!(
            perr("a (b || c == 1"),
            "expected ')' to close '(' opened at column 3 (at column 15)"
        );
        assert_eq!(
            perr("x in [1, 2"),
            "expected ']' to close '[' opened at column 6 (at column 11)"
        );
        assert_eq!(
            perr("f(a b)"),
            "expected ')' to close '(' opened at column 2 (at column 5)"
        );
        assert_eq!(
            perr("a == 1)"),
            "unexpected ')' after the end of the expression (at column 7)"
        );
        assert_eq!(
            perr("a == 1 b"),
            "unexpected identifier 'b' after the end of the expression (at column 8)"
        );
        assert_eq!(
            perr("a =="),
            "expected an expression, found end of input (at column 5)"
        );
        assert_eq!(
            perr("&& a"),
            "expected an expression, found '&&' (at column 1)"
        );
        assert_eq!(
            perr("a.(b)"),
            "expected a field or method name after '.', found '(' (at column 3)"
        );
        // `.1` is a number.
        assert_eq!(
            perr("a.1"),
            "unexpected number after the end of the expression (at column 2)"
        );
        assert_eq!(
            perr("a ? b"),
            "expected ':' after the '?' at column 3, found end of input (at column 6)"
        );
        assert_eq!(
            perr("{'a': 1}"),
            "map literals are not supported (at column 1)"
        );
        assert_eq!(
            perr("items[0"),
            "expected ']' to close '[' opened at column 6 (at column 8)"
        );
        assert_eq!(
            perr("()"),
            "expected an expression, found ')' (at column 2)"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(perr(&deep).contains("nested too deeply"));
        let long = vec!["a"; 10_000].join(" + ");
        assert!(perr(&long).contains("nested too deeply"));
        let bangs = format!("{}a", "!".repeat(10_000));
        assert!(perr(&bangs).contains("nested too deeply"));
        // Long `||` chains are flat, not deep.
        let ors = vec!["a == 1"; 10_000].join(" || ");
        assert_eq!(parse(&ors).unwrap().depth, 3);
        let ok = format!(
            "{}a{}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        );
        assert!(parse(&ok).is_ok());
    }
}
