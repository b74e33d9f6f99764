//! The condition lexer: turns CEL source text into [`Token`]s, each tagged with the 1-based
//! column (counted in chars) where it starts.
//!
//! It owns literal syntax: quoted strings (`"..."`, `'...'`, triple-quoted, raw `r"..."`) and
//! their escapes, bytes (`b"..."`, `br"..."`), integers (decimal and `0x` hex, kept unsigned so
//! the parser can accept `-9223372036854775808`), unsigned integers (`1u`, `0xFFU`), doubles
//! (`1.5`, `1e3`, `.5`), keywords (`true false null in`), identifiers, punctuation, and `//`
//! line comments.

use super::ConditionError;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// An integer literal without its sign (may exceed `i64::MAX` by one when negated).
    Int(u64),
    /// An unsigned integer literal (`1u`).
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
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
            Tok::Int(_) | Tok::Uint(_) | Tok::Double(_) => "number".to_string(),
            Tok::Str(_) => "string".to_string(),
            Tok::Bytes(_) => "bytes".to_string(),
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
        let is_quote = |c: Option<char>| matches!(c, Some('"') | Some('\''));
        let is_r = |c: Option<char>| matches!(c, Some('r') | Some('R'));
        // Raw strings: r"..." / R'...'.
        if is_r(Some(c)) && is_quote(self.peek(1)) {
            self.pos += 1;
            let s = self.string(Mode::RawStr)?;
            return tok(Tok::Str(bytes_to_string(s)));
        }
        // Bytes: b"..." / B'...', raw bytes br"..." / bR'...'.
        if c == 'b' || c == 'B' {
            if is_quote(self.peek(1)) {
                self.pos += 1;
                return tok(Tok::Bytes(self.string(Mode::Bytes)?));
            }
            if is_r(self.peek(1)) && is_quote(self.peek(2)) {
                self.pos += 2;
                return tok(Tok::Bytes(self.string(Mode::RawBytes)?));
            }
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
            let s = self.string(Mode::Str)?;
            return tok(Tok::Str(bytes_to_string(s)));
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
            let unsigned = self.uint_suffix();
            self.reject_suffix()?;
            let n = u64::from_str_radix(&digits, 16)
                .map_err(|_| err("integer literal out of range", col))?;
            return Ok(if unsigned { Tok::Uint(n) } else { Tok::Int(n) });
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
        let text: String = self.chars[start..self.pos].iter().collect();
        let unsigned = !is_double && self.uint_suffix();
        self.reject_suffix()?;
        if unsigned {
            return text
                .parse::<u64>()
                .map(Tok::Uint)
                .map_err(|_| err("unsigned integer literal out of range", col));
        }
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

    /// Consumes a `u` / `U` suffix (an unsigned integer literal).
    fn uint_suffix(&mut self) -> bool {
        if matches!(self.peek(0), Some('u') | Some('U')) {
            self.pos += 1;
            return true;
        }
        false
    }

    /// A number directly followed by an identifier char (`12ab`, `1.5u`) is an error.
    fn reject_suffix(&self) -> Result<(), ConditionError> {
        match self.peek(0) {
            Some(c) if is_ident_char(c) => Err(err(
                format!("unexpected character {c:?} after number"),
                self.pos + 1,
            )),
            _ => Ok(()),
        }
    }

    /// Lexes a quoted string or bytes literal starting at the opening quote; returns its
    /// content as bytes (UTF-8 for strings).
    fn string(&mut self, mode: Mode) -> Result<Vec<u8>, ConditionError> {
        let open_col = self.pos + 1;
        let q = self.chars[self.pos];
        let triple = self.peek(1) == Some(q) && self.peek(2) == Some(q);
        self.pos += if triple { 3 } else { 1 };
        let raw = matches!(mode, Mode::RawStr | Mode::RawBytes);
        let mut out = Vec::new();
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
                self.escape(mode == Mode::Bytes, &mut out)?;
                continue;
            }
            push_char(&mut out, c);
            self.pos += 1;
        }
    }

    /// Decodes one escape sequence at the backslash into `out`. In bytes literals `\x` and
    /// octal escapes are octets and `\u` / `\U` are not allowed; in strings they are code
    /// points (a `\u` surrogate pair makes one code point).
    fn escape(&mut self, bytes: bool, out: &mut Vec<u8>) -> Result<(), ConditionError> {
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
            push_char(out, ch);
            return Ok(());
        }
        let (digits, radix) = match c {
            'x' | 'X' => (2, 16),
            'u' | 'U' if bytes => {
                return Err(err(
                    format!("'\\{c}' escapes are not allowed in bytes literals"),
                    col,
                ))
            }
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='3' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => return Err(err(format!("invalid escape sequence '\\{c}'"), col)),
        };
        let mut code = self.digits(digits, radix, c, col)?;
        if bytes {
            // \xHH and \ooo (at most 0o377) are single octets.
            out.push(code as u8);
            return Ok(());
        }
        if c == 'u' && (0xD800..0xDC00).contains(&code) {
            // A high surrogate must be followed by `\u` and a low one.
            if self.peek(0) == Some('\\') && self.peek(1) == Some('u') {
                let low_col = self.pos + 1;
                self.pos += 2;
                let low = self.digits(4, 16, 'u', low_col)?;
                if (0xDC00..0xE000).contains(&low) {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                } else {
                    return Err(err(format!("invalid code point {code:#x} in escape"), col));
                }
            }
        }
        let ch = char::from_u32(code)
            .ok_or_else(|| err(format!("invalid code point {code:#x} in escape"), col))?;
        push_char(out, ch);
        Ok(())
    }

    /// Reads `n` digits of `radix` (the body of the escape `\esc` at `col`).
    fn digits(
        &mut self,
        n: usize,
        radix: u32,
        esc: char,
        col: usize,
    ) -> Result<u32, ConditionError> {
        let mut code: u32 = 0;
        for _ in 0..n {
            let d = self.peek(0).and_then(|d| d.to_digit(radix));
            let Some(d) = d else {
                return Err(err(format!("invalid escape sequence '\\{esc}'"), col));
            };
            code = code * radix + d;
            self.pos += 1;
        }
        Ok(code)
    }
}

/// What a quoted literal becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Str,
    RawStr,
    Bytes,
    RawBytes,
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

/// String literal content is built from whole chars, so it is always UTF-8.
fn bytes_to_string(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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
            lex_err(r#"b"\u00ff""#),
            ("'\\u' escapes are not allowed in bytes literals".into(), 3)
        );
        assert_eq!(
            lex_err(r#""\ud83d\u0041""#),
            ("invalid code point 0xd83d in escape".into(), 2)
        );
    }

    #[test]
    fn unsigned_integers() {
        assert_eq!(toks("1u")[0], Tok::Uint(1));
        assert_eq!(toks("42U")[0], Tok::Uint(42));
        assert_eq!(toks("0xFFu")[0], Tok::Uint(255));
        assert_eq!(toks("18446744073709551615u")[0], Tok::Uint(u64::MAX));
        assert_eq!(
            lex_err("18446744073709551616u"),
            ("unsigned integer literal out of range".into(), 1)
        );
        assert_eq!(
            lex_err("1.5u"),
            ("unexpected character 'u' after number".into(), 4)
        );
        assert_eq!(
            lex_err("1uu"),
            ("unexpected character 'u' after number".into(), 3)
        );
        assert_eq!(toks("1u.a")[..2], [Tok::Uint(1), Tok::Dot]);
    }

    #[test]
    fn bytes_literals() {
        assert_eq!(toks(r#"b"abc""#)[0], Tok::Bytes(b"abc".to_vec()));
        assert_eq!(toks("B'ÿ'")[0], Tok::Bytes(vec![195, 191]));
        assert_eq!(toks(r#"b"\303\277""#)[0], Tok::Bytes(vec![195, 191]));
        assert_eq!(
            toks(r#"b"\377\xFF\n""#)[0],
            Tok::Bytes(vec![255, 255, b'\n'])
        );
        assert_eq!(toks(r#"br"\x41""#)[0], Tok::Bytes(b"\\x41".to_vec()));
        assert_eq!(toks("b'''a\nb'''")[0], Tok::Bytes(b"a\nb".to_vec()));
        // In strings the same escapes are code points.
        assert_eq!(toks(r#""\377\xFF""#)[0], Tok::Str("ÿÿ".into()));
        // A surrogate pair is one code point.
        assert_eq!(toks(r#""\ud83d\ude00""#)[0], Tok::Str("😀".into()));
        // `b` alone, or `b` before a non-quote, is an identifier.
        assert_eq!(toks("b")[0], Tok::Ident("b".into()));
        assert_eq!(toks("br")[0], Tok::Ident("br".into()));
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
