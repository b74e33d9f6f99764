//! The condition lexer: turns CEL source text into [`Token`]s, each tagged with the 1-based
//! column (counted in chars) where it starts.
//!
//! It owns literal syntax: quoted strings (`"..."`, `'...'`, triple-quoted, raw `r"..."`) and
//! their escapes, integers (decimal and `0x` hex, kept unsigned so the parser can accept
//! `-9223372036854775808`), doubles (`1.5`, `1e3`, `.5`), keywords (`true false null in`),
//! identifiers, punctuation, and `//` line comments.

use super::ConditionError;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// An integer literal without its sign (may exceed `i64::MAX` by one when negated).
    Int(u64),
    Double(f64),
    Str(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Question,
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    AndAnd,
    OrOr,
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier '{s}'"),
            Tok::Int(_) | Tok::Double(_) => "number".to_string(),
            Tok::Str(_) => "string".to_string(),
            Tok::True => "'true'".to_string(),
            Tok::False => "'false'".to_string(),
            Tok::Null => "'null'".to_string(),
            Tok::Eof => "end of input".to_string(),
            other => format!("'{}'", other.symbol()),
        }
    }

    /// The source text of a punctuation or keyword token.
    pub fn symbol(&self) -> &'static str {
        match self {
            Tok::In => "in",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Dot => ".",
            Tok::Comma => ",",
            Tok::Question => "?",
            Tok::Colon => ":",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Bang => "!",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            _ => "",
        }
    }
}

/// A token and the column (1-based, in chars) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub col: usize,
}

/// Splits `src` into tokens; the last one is always [`Tok::Eof`] (at the column after the
/// last char).
pub fn tokenize(src: &str) -> Result<Vec<Token>, ConditionError> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

struct Lexer {
    chars: Vec<char>,
    /// Index into `chars`; the column is `pos + 1`.
    pos: usize,
}

fn err(message: impl Into<String>, column: usize) -> ConditionError {
    ConditionError {
        message: message.into(),
        column,
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn skip_space_and_comments(&mut self) {
        while let Some(c) = self.peek(0) {
            if c.is_whitespace() {
                self.pos += 1;
            } else if c == '/' && self.peek(1) == Some('/') {
                while let Some(c) = self.peek(0) {
                    if c == '\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ConditionError> {
        self.skip_space_and_comments();
        let col = self.pos + 1;
        let Some(c) = self.peek(0) else {
            return Ok(Token { tok: Tok::Eof, col });
        };
        let tok = |tok| Ok(Token { tok, col });
        // Raw strings: r"..." / R'...'.
        if (c == 'r' || c == 'R') && matches!(self.peek(1), Some('"') | Some('\'')) {
            self.pos += 1;
            let s = self.string(true)?;
            return tok(Tok::Str(s));
        }
        if (c == 'b' || c == 'B') && matches!(self.peek(1), Some('"') | Some('\'')) {
            return Err(err("bytes literals are not supported", col));
        }
        if is_ident_start(c) {
            let start = self.pos;
            while self.peek(0).is_some_and(is_ident_char) {
                self.pos += 1;
            }
            let word: String = self.chars[start..self.pos].iter().collect();
            return tok(match word.as_str() {
                "true" => Tok::True,
                "false" => Tok::False,
                "null" => Tok::Null,
                "in" => Tok::In,
                _ => Tok::Ident(word),
            });
        }
        if c.is_ascii_digit() || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) {
            return self.number().map(|t| Token { tok: t, col });
        }
        if c == '"' || c == '\'' {
            let s = self.string(false)?;
            return tok(Tok::Str(s));
        }
        let two = self.peek(1);
        let (t, len) = match (c, two) {
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('=', Some('=')) => (Tok::EqEq, 2),
            ('!', Some('=')) => (Tok::Ne, 2),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('.', _) => (Tok::Dot, 1),
            (',', _) => (Tok::Comma, 1),
            ('?', _) => (Tok::Question, 1),
            (':', _) => (Tok::Colon, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('%', _) => (Tok::Percent, 1),
            ('!', _) => (Tok::Bang, 1),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('=', _) => return Err(err("unexpected '='; did you mean '=='?", col)),
            ('&', _) => return Err(err("unexpected '&'; did you mean '&&'?", col)),
            ('|', _) => return Err(err("unexpected '|'; did you mean '||'?", col)),
            _ => return Err(err(format!("unexpected character {c:?}"), col)),
        };
        self.pos += len;
        tok(t)
    }

    fn number(&mut self) -> Result<Tok, ConditionError> {
        let col = self.pos + 1;
        let start = self.pos;
        if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x') | Some('X')) {
            self.pos += 2;
            let digits_start = self.pos;
            while self.peek(0).is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let digits: String = self.chars[digits_start..self.pos].iter().collect();
            if digits.is_empty() {
                return Err(err("expected hex digits after '0x'", col));
            }
            self.reject_suffix()?;
            return u64::from_str_radix(&digits, 16)
                .map(Tok::Int)
                .map_err(|_| err("integer literal out of range", col));
        }
        let mut is_double = false;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            is_double = true;
            self.pos += 1;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(0), Some('e') | Some('E')) {
            let mut p = 1;
            if matches!(self.peek(1), Some('+') | Some('-')) {
                p = 2;
            }
            if self.peek(p).is_some_and(|c| c.is_ascii_digit()) {
                is_double = true;
                self.pos += p;
                while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            } else {
                return Err(err("expected digits in the exponent", self.pos + 1));
            }
        }
        self.reject_suffix()?;
        let text: String = self.chars[start..self.pos].iter().collect();
        if is_double {
            text.parse::<f64>()
                .map(Tok::Double)
                .map_err(|_| err("invalid number", col))
        } else {
            text.parse::<u64>()
                .map(Tok::Int)
                .map_err(|_| err("integer literal out of range", col))
        }
    }

    /// A number directly followed by an identifier char (`12ab`, `1u`) is an error.
    fn reject_suffix(&self) -> Result<(), ConditionError> {
        match self.peek(0) {
            Some(c) if is_ident_char(c) => Err(err(
                format!("unexpected character {c:?} after number"),
                self.pos + 1,
            )),
            _ => Ok(()),
        }
    }

    /// Lexes a quoted string starting at the opening quote.
    fn string(&mut self, raw: bool) -> Result<String, ConditionError> {
        let open_col = self.pos + 1;
        let q = self.chars[self.pos];
        let triple = self.peek(1) == Some(q) && self.peek(2) == Some(q);
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(err("unterminated string literal", open_col));
            };
            if c == q {
                if !triple {
                    self.pos += 1;
                    return Ok(out);
                }
                if self.peek(1) == Some(q) && self.peek(2) == Some(q) {
                    self.pos += 3;
                    return Ok(out);
                }
            }
            if !triple && (c == '\n' || c == '\r') {
                return Err(err("unterminated string literal", open_col));
            }
            if c == '\\' && !raw {
                out.push(self.escape()?);
                continue;
            }
            out.push(c);
            self.pos += 1;
        }
    }

    /// Decodes one escape sequence at the backslash.
    fn escape(&mut self) -> Result<char, ConditionError> {
        let col = self.pos + 1;
        let Some(c) = self.peek(1) else {
            return Err(err("unterminated string literal", col));
        };
        self.pos += 2;
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            '`' => Some('`'),
            '?' => Some('?'),
            _ => None,
        };
        if let Some(ch) = simple {
            return Ok(ch);
        }
        let (digits, radix) = match c {
            'x' | 'X' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='3' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => return Err(err(format!("invalid escape sequence '\\{c}'"), col)),
        };
        let mut code: u32 = 0;
        for _ in 0..digits {
            let d = self.peek(0).and_then(|d| d.to_digit(radix));
            let Some(d) = d else {
                return Err(err(format!("invalid escape sequence '\\{c}'"), col));
            };
            code = code * radix + d;
            self.pos += 1;
        }
        char::from_u32(code)
            .ok_or_else(|| err(format!("invalid code point {code:#x} in escape"), col))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn lex_err(src: &str) -> (String, usize) {
        let e = tokenize(src).unwrap_err();
        (e.message, e.column)
    }

    #[test]
    fn punctuation_keywords_and_columns() {
        let t = tokenize("a.b >= 1 && !x in [ ] || c != d").unwrap();
        let cols: Vec<usize> = t.iter().map(|t| t.col).collect();
        assert_eq!(
            cols,
            vec![1, 2, 3, 5, 8, 10, 13, 14, 16, 19, 21, 23, 26, 28, 31, 32]
        );
        assert_eq!(t[5].tok, Tok::AndAnd);
        assert_eq!(t[8].tok, Tok::In);
        assert_eq!(t.last().unwrap().tok, Tok::Eof);
        assert_eq!(
            toks("< <= > >= == != ? : % / * + - ( ) { } ,"),
            vec![
                Tok::Lt,
                Tok::Le,
                Tok::Gt,
                Tok::Ge,
                Tok::EqEq,
                Tok::Ne,
                Tok::Question,
                Tok::Colon,
                Tok::Percent,
                Tok::Slash,
                Tok::Star,
                Tok::Plus,
                Tok::Minus,
                Tok::LParen,
                Tok::RParen,
                Tok::LBrace,
                Tok::RBrace,
                Tok::Comma,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("true false null _meta x1"),
            vec![
                Tok::True,
                Tok::False,
                Tok::Null,
                Tok::Ident("_meta".into()),
                Tok::Ident("x1".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        let t = tokenize("\"é😀\" == x").unwrap();
        assert_eq!(t[1].col, 6);
        assert_eq!(t[2].col, 9);
        assert_eq!(t[3].col, 10);
    }

    #[test]
    fn numbers() {
        assert_eq!(toks("42")[0], Tok::Int(42));
        assert_eq!(toks("0x1F")[0], Tok::Int(31));
        assert_eq!(toks("1.5")[0], Tok::Double(1.5));
        assert_eq!(toks("1e3")[0], Tok::Double(1000.0));
        assert_eq!(toks("2.5E-1")[0], Tok::Double(0.25));
        assert_eq!(toks(".5")[0], Tok::Double(0.5));
        assert_eq!(toks("9223372036854775808")[0], Tok::Int(1 << 63));
        // `1.size()`-style member access on an int is a dot, not a fraction.
        assert_eq!(
            toks("1.a")[..3],
            [Tok::Int(1), Tok::Dot, Tok::Ident("a".into())]
        );
        assert_eq!(
            lex_err("99999999999999999999"),
            ("integer literal out of range".into(), 1)
        );
        assert_eq!(
            lex_err("x == 0x"),
            ("expected hex digits after '0x'".into(), 6)
        );
        assert_eq!(
            lex_err("1e+"),
            ("expected digits in the exponent".into(), 2)
        );
        assert_eq!(
            lex_err("12ab"),
            ("unexpected character 'a' after number".into(), 3)
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(toks(r#""a\nb\t\\\"\'""#)[0], Tok::Str("a\nb\t\\\"'".into()));
        assert_eq!(toks(r#"'it\'s "q"'"#)[0], Tok::Str("it's \"q\"".into()));
        assert_eq!(
            toks(r#""\u00e9\U0001F600\x41\101\a\b\f\v\?\`""#)[0],
            Tok::Str("é😀AA\u{7}\u{8}\u{c}\u{b}?`".into())
        );
        assert_eq!(toks(r#"r"a\d+\n""#)[0], Tok::Str("a\\d+\\n".into()));
        assert_eq!(toks(r"R'\w'")[0], Tok::Str("\\w".into()));
        assert_eq!(
            toks("\"\"\"multi\n\"line\" \"\"\"")[0],
            Tok::Str("multi\n\"line\" ".into())
        );
        assert_eq!(toks("''")[0], Tok::Str(String::new()));
        // `r` alone is an identifier.
        assert_eq!(toks("r")[0], Tok::Ident("r".into()));
    }

    #[test]
    fn string_errors() {
        assert_eq!(
            lex_err(r#"x == "abc"#),
            ("unterminated string literal".into(), 6)
        );
        assert_eq!(
            lex_err("x == 'a\nb'"),
            ("unterminated string literal".into(), 6)
        );
        assert_eq!(
            lex_err(r#""a\qb""#),
            ("invalid escape sequence '\\q'".into(), 3)
        );
        assert_eq!(
            lex_err(r#""\u12""#),
            ("invalid escape sequence '\\u'".into(), 2)
        );
        assert_eq!(
            lex_err(r#""\uD800""#),
            ("invalid code point 0xd800 in escape".into(), 2)
        );
        assert_eq!(
            lex_err(r#""abc\"#),
            ("unterminated string literal".into(), 5)
        );
        assert_eq!(
            lex_err(r#"b"x""#),
            ("bytes literals are not supported".into(), 1)
        );
    }

    #[test]
    fn comments_and_bad_characters() {
        assert_eq!(toks("a // comment\n|| b"), toks("a || b"));
        assert_eq!(
            lex_err("a = 1"),
            ("unexpected '='; did you mean '=='?".into(), 3)
        );
        assert_eq!(
            lex_err("a & b"),
            ("unexpected '&'; did you mean '&&'?".into(), 3)
        );
        assert_eq!(
            lex_err("a | b"),
            ("unexpected '|'; did you mean '||'?".into(), 3)
        );
        assert_eq!(lex_err("a # b"), ("unexpected character '#'".into(), 3));
    }
}
