//! `$filter` text -> [`Expr`] syntax tree: a hand-written lexer and Pratt parser.
//!
//! Pure and total: every input gives a tree or a [`QueryError`] naming the position (0-based
//! character index) and the token; nothing here can panic. Recursion is bounded by
//! [`Limits::max_depth`], the tree size by [`Limits::max_nodes`], and the input by
//! [`Limits::max_length`], so a hostile filter is refused before it costs anything.
//!
//! Keywords, literals and function names are case-sensitive lowercase, as OData specifies.
//! Operator precedence follows OData (tightest first): `not`; `gt ge lt le in`; `eq ne`; `and`;
//! `or`. Comparison operators are left-associative; `and`/`or` chains are flattened.

use super::QueryError;
use super::ast::{CmpOp, Expr, ExprKind, LambdaKind, Literal, Segment, Span};
use super::names;
use crate::model::edm;

/// Size limits for one `$filter`; exceeding any of them is a 400, never a slow query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of filter text.
    pub max_length: usize,
    /// Nesting of parentheses, function calls, lambdas, `not` and comparison chains.
    pub max_depth: usize,
    /// Nodes in the syntax tree.
    pub max_nodes: usize,
    /// Items in one `in (...)` list.
    pub max_in_items: usize,
}

pub const MAX_FILTER_LENGTH: usize = 8 * 1024;
pub const MAX_FILTER_DEPTH: usize = 32;
pub const MAX_FILTER_NODES: usize = 500;
pub const MAX_IN_ITEMS: usize = 200;
/// OData caps simple identifiers at 128 characters.
pub const MAX_IDENTIFIER_CHARS: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_length: MAX_FILTER_LENGTH,
            max_depth: MAX_FILTER_DEPTH,
            max_nodes: MAX_FILTER_NODES,
            max_in_items: MAX_IN_ITEMS,
        }
    }
}

/// The 0-based character index of a byte offset, for messages (clients count characters).
pub(crate) fn char_position(src: &str, byte: usize) -> usize {
    src.get(..byte.min(src.len()))
        .map(|s| s.chars().count())
        .unwrap_or(byte)
}

/// Source text of a span, shortened for messages.
pub(crate) fn snippet(src: &str, span: Span) -> String {
    let text = src.get(span.start..span.end).unwrap_or("");
    shorten(text)
}

pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        text.to_string()
    }
}

fn syntax_error(src: &str, byte: usize, detail: impl std::fmt::Display) -> QueryError {
    QueryError::new(format!(
        "Syntax error at position {} in '$filter': {detail}.",
        char_position(src, byte)
    ))
}

/// Parses a `$filter` with the default [`Limits`].
pub fn parse_filter(src: &str) -> Result<Expr, QueryError> {
    parse_filter_with(src, &Limits::default())
}

/// Parses a `$filter` with explicit limits.
pub fn parse_filter_with(src: &str, limits: &Limits) -> Result<Expr, QueryError> {
    if src.len() > limits.max_length {
        return Err(QueryError::new(format!(
            "The '$filter' is too long: {} bytes, the limit is {}.",
            src.len(),
            limits.max_length
        )));
    }
    let tokens = Lexer { src, pos: 0 }.run()?;
    let mut parser = Parser {
        src,
        tokens,
        next: 0,
        nodes: 0,
        limits,
    };
    if parser.peek().tok == Tok::Eof {
        return Err(syntax_error(src, 0, "the expression is empty"));
    }
    let expr = parser.expr(0, 0)?;
    let t = parser.peek();
    if t.tok != Tok::Eof {
        return Err(syntax_error(
            src,
            t.span.start,
            format!(
                "expected an operator or the end of the expression but found {}",
                parser.describe(t)
            ),
        ));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A dotted name not followed by a quote (a cast or a misplaced qualified name).
    Qualified(String),
    Lit(Literal),
    LParen,
    RParen,
    Comma,
    Slash,
    Colon,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    tok: Tok,
    span: Span,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Lexer<'_> {
    fn peek_char(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_char_at(&self, byte: usize) -> Option<char> {
        self.src.get(byte..).and_then(|s| s.chars().next())
    }

    fn run(mut self) -> Result<Vec<Token>, QueryError> {
        let mut out = Vec::new();
        loop {
            while let Some(c) = self.peek_char() {
                if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
                    self.pos += c.len_utf8();
                } else {
                    break;
                }
            }
            let start = self.pos;
            let Some(c) = self.peek_char() else {
                out.push(Token {
                    tok: Tok::Eof,
                    span: Span { start, end: start },
                });
                return Ok(out);
            };
            let tok = match c {
                '(' => self.single(Tok::LParen),
                ')' => self.single(Tok::RParen),
                ',' => self.single(Tok::Comma),
                '/' => self.single(Tok::Slash),
                ':' => self.single(Tok::Colon),
                '\'' => Tok::Lit(Literal::String(self.string()?)),
                '-' if self
                    .peek_char_at(start + 1)
                    .is_some_and(|d| d.is_ascii_digit()) =>
                {
                    self.pos += 1;
                    self.number(start)?
                }
                d if d.is_ascii_digit() => self.number_or_date(start)?,
                c if is_ident_start(c) => self.identifier(start)?,
                '$' if self.src[start..]
                    .get(..6)
                    .is_some_and(|w| w.eq_ignore_ascii_case("$count")) =>
                {
                    return Err(syntax_error(
                        self.src,
                        start,
                        "'$count' of a collection is not supported in $filter; use any()/all()"
                            .to_string(),
                    ));
                }
                other => {
                    return Err(syntax_error(
                        self.src,
                        start,
                        format!("unexpected character '{other}'"),
                    ));
                }
            };
            out.push(Token {
                tok,
                span: Span {
                    start,
                    end: self.pos,
                },
            });
        }
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.pos += 1;
        tok
    }

    /// A quoted string starting at the current `'`; `''` is an escaped quote.
    fn string(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek_char() {
                None => {
                    return Err(syntax_error(self.src, start, "unterminated string literal"));
                }
                Some('\'') => {
                    self.pos += 1;
                    if self.peek_char() == Some('\'') {
                        text.push('\'');
                        self.pos += 1;
                    } else {
                        return Ok(text);
                    }
                }
                Some(c) => {
                    text.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) {
        while let Some(c) = self.peek_char() {
            if f(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn number_or_date(&mut self, start: usize) -> Result<Tok, QueryError> {
        self.take_while(|c| c.is_ascii_digit());
        let dateish = self.pos - start == 4
            && self.peek_char() == Some('-')
            && self
                .peek_char_at(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit());
        if !dateish {
            self.pos = start;
            return self.number(start);
        }
        self.take_while(|c| {
            c.is_ascii_digit() || matches!(c, '-' | ':' | '.' | '+' | 'T' | 't' | 'Z' | 'z')
        });
        let text = self.src.get(start..self.pos).unwrap_or("");
        if text.contains(['T', 't']) {
            // `…T10:00:00 01:00`: the offset's '+' arrived as a space, because a query string
            // decodes '+' as a space (HTML forms, ASP.NET): say so, the cause is not visible.
            let rest = self.src.get(self.pos..).unwrap_or("").as_bytes();
            let plus_became_space = rest.len() >= 6
                && rest[0] == b' '
                && rest[1..3].iter().all(u8::is_ascii_digit)
                && rest[3] == b':'
                && rest[4..6].iter().all(u8::is_ascii_digit);
            return edm::parse_datetime(text)
                .map(|t| Tok::Lit(Literal::DateTime(t)))
                .map_err(|e| {
                    let hint = if plus_became_space {
                        format!(
                            ". The offset's '+' arrived as a space: in a URL's query a '+' means a space, so encode it as %2B ({text}%2B{})",
                            String::from_utf8_lossy(&rest[1..6])
                        )
                    } else {
                        String::new()
                    };
                    syntax_error(
                        self.src,
                        start,
                        format!(
                            "'{}' is not a valid DateTimeOffset: {}{hint}",
                            shorten(text),
                            e.0
                        ),
                    )
                });
        }
        parse_date(text)
            .map(|d| Tok::Lit(Literal::Date(d)))
            .ok_or_else(|| {
                syntax_error(
                    self.src,
                    start,
                    format!("'{}' is not a valid date (yyyy-mm-dd)", shorten(text)),
                )
            })
    }

    /// An integer or a decimal/exponent number; `self.pos` is at the first digit (after any '-').
    fn number(&mut self, start: usize) -> Result<Tok, QueryError> {
        self.take_while(|c| c.is_ascii_digit());
        let mut real = false;
        if self.peek_char() == Some('.')
            && self
                .peek_char_at(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit())
        {
            real = true;
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek_char(), Some('+' | '-')) {
                self.pos += 1;
            }
            if self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                real = true;
                self.take_while(|c| c.is_ascii_digit());
            } else {
                self.pos = save;
            }
        }
        // A number glued to letters (`12abc`) is a typo, not two tokens.
        if self.peek_char().is_some_and(is_ident_char) {
            self.take_while(is_ident_char);
            let text = self.src.get(start..self.pos).unwrap_or("");
            return Err(syntax_error(
                self.src,
                start,
                format!("'{}' is not a valid number", shorten(text)),
            ));
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        if real {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Tok::Lit(Literal::Real(v))),
                _ => Err(syntax_error(
                    self.src,
                    start,
                    format!("the number '{}' is out of range", shorten(text)),
                )),
            }
        } else {
            text.parse::<i64>()
                .map(|v| Tok::Lit(Literal::Int(v)))
                .map_err(|_| {
                    syntax_error(
                        self.src,
                        start,
                        format!("the number '{}' is out of range", shorten(text)),
                    )
                })
        }
    }

    fn identifier(&mut self, start: usize) -> Result<Tok, QueryError> {
        self.take_while(is_ident_char);
        // Qualified names: `microsoft.graph.applicationPermissionsRequired'administrator'`.
        let mut dotted = false;
        while self.peek_char() == Some('.')
            && self.peek_char_at(self.pos + 1).is_some_and(is_ident_start)
        {
            dotted = true;
            self.pos += 1;
            self.take_while(is_ident_char);
        }
        let name = self.src.get(start..self.pos).unwrap_or("").to_string();
        if name
            .split('.')
            .any(|part| part.chars().count() > MAX_IDENTIFIER_CHARS)
        {
            return Err(syntax_error(
                self.src,
                start,
                format!(
                    "the identifier '{}' is longer than {MAX_IDENTIFIER_CHARS} characters",
                    shorten(&name)
                ),
            ));
        }
        if self.peek_char() == Some('\'') {
            let member = self.string()?;
            return Ok(Tok::Lit(Literal::Enum {
                type_name: name,
                member,
            }));
        }
        Ok(if dotted {
            Tok::Qualified(name)
        } else {
            Tok::Ident(name)
        })
    }
}

/// `yyyy-mm-dd` -> days since 1970-01-01, or None when it is not a real calendar date.
fn parse_date(text: &str) -> Option<i64> {
    let date = time::Date::parse(
        text,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    // 2440588 is the Julian day number of 1970-01-01.
    Some(i64::from(date.to_julian_day()) - 2_440_588)
}

struct Parser<'a, 'l> {
    src: &'a str,
    tokens: Vec<Token>,
    next: usize,
    nodes: usize,
    limits: &'l Limits,
}

const EOF_TOKEN: Token = Token {
    tok: Tok::Eof,
    span: Span { start: 0, end: 0 },
};

/// Binding powers (left, right) of the infix operators.
fn infix_power(word: &str) -> Option<(u8, u8)> {
    Some(match word {
        "or" => (1, 2),
        "and" => (3, 4),
        "eq" | "ne" => (5, 6),
        "gt" | "ge" | "lt" | "le" | "in" => (7, 8),
        _ => return None,
    })
}

const NOT_POWER: u8 = 9;

fn cmp_op(word: &str) -> Option<CmpOp> {
    Some(match word {
        "eq" => CmpOp::Eq,
        "ne" => CmpOp::Ne,
        "gt" => CmpOp::Gt,
        "ge" => CmpOp::Ge,
        "lt" => CmpOp::Lt,
        "le" => CmpOp::Le,
        _ => return None,
    })
}

impl Parser<'_, '_> {
    fn peek(&self) -> Token {
        self.tokens.get(self.next).cloned().unwrap_or(EOF_TOKEN)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if self.next < self.tokens.len() {
            self.next += 1;
        }
        t
    }

    fn describe(&self, t: Token) -> String {
        match t.tok {
            Tok::Eof => "the end of the expression".to_string(),
            _ => format!("'{}'", snippet(self.src, t.span)),
        }
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, QueryError> {
        let t = self.peek();
        if t.tok == want {
            Ok(self.bump())
        } else {
            Err(syntax_error(
                self.src,
                t.span.start,
                format!("expected {what} but found {}", self.describe(t)),
            ))
        }
    }

    fn node(&mut self, kind: ExprKind, span: Span) -> Result<Expr, QueryError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(QueryError::new(format!(
                "The '$filter' is too complex: more than {} terms (near position {}).",
                self.limits.max_nodes,
                char_position(self.src, span.start)
            )));
        }
        Ok(Expr { kind, span })
    }

    fn check_depth(&self, depth: usize, at: usize) -> Result<(), QueryError> {
        if depth > self.limits.max_depth {
            return Err(QueryError::new(format!(
                "The '$filter' is nested too deeply at position {} (the limit is {} levels).",
                char_position(self.src, at),
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    /// Pratt loop: a prefix expression, then infix operators binding at least `min_bp`.
    fn expr(&mut self, min_bp: u8, depth: usize) -> Result<Expr, QueryError> {
        self.check_depth(depth, self.peek().span.start)?;
        let mut lhs = self.prefix(depth)?;
        // Left-deep comparison chains (`a eq b eq c`) deepen the tree without recursion here.
        let mut chain = 0usize;
        loop {
            let t = self.peek();
            let Tok::Ident(word) = &t.tok else { break };
            // Operators are keywords: any case (OData 4.01).
            let word = names::keyword(word);
            let Some((lbp, rbp)) = infix_power(&word) else {
                break;
            };
            if lbp < min_bp {
                break;
            }
            self.bump();
            let start = lhs.span.start;
            match word.as_str() {
                "and" | "or" => {
                    let rhs = self.expr(rbp, depth + 1)?;
                    let span = Span {
                        start,
                        end: rhs.span.end,
                    };
                    let is_and = word == "and";
                    lhs = match lhs.kind {
                        ExprKind::And(mut items) if is_and => {
                            items.push(rhs);
                            self.node(ExprKind::And(items), span)?
                        }
                        ExprKind::Or(mut items) if !is_and => {
                            items.push(rhs);
                            self.node(ExprKind::Or(items), span)?
                        }
                        kind => {
                            let first = Expr {
                                kind,
                                span: lhs.span,
                            };
                            let items = vec![first, rhs];
                            self.node(
                                if is_and {
                                    ExprKind::And(items)
                                } else {
                                    ExprKind::Or(items)
                                },
                                span,
                            )?
                        }
                    };
                }
                "in" => {
                    chain += 1;
                    self.check_depth(depth + chain, t.span.start)?;
                    let (list, end) = self.in_list(depth)?;
                    lhs = self.node(
                        ExprKind::In {
                            lhs: Box::new(lhs),
                            list,
                        },
                        Span { start, end },
                    )?;
                }
                _ => {
                    chain += 1;
                    self.check_depth(depth + chain, t.span.start)?;
                    let op = cmp_op(&word).unwrap_or(CmpOp::Eq);
                    let rhs = self.expr(rbp, depth + 1)?;
                    let span = Span {
                        start,
                        end: rhs.span.end,
                    };
                    lhs = self.node(
                        ExprKind::Compare {
                            op,
                            op_span: t.span,
                            lhs: Box::new(lhs),
                            rhs: Box::new(rhs),
                        },
                        span,
                    )?;
                }
            }
        }
        Ok(lhs)
    }

    fn in_list(&mut self, depth: usize) -> Result<(Vec<Expr>, usize), QueryError> {
        self.expect(Tok::LParen, "'(' to start the 'in' list")?;
        let mut list = Vec::new();
        if self.peek().tok == Tok::RParen {
            let t = self.peek();
            return Err(syntax_error(
                self.src,
                t.span.start,
                "the 'in' list is empty",
            ));
        }
        loop {
            let item = self.expr(0, depth + 1)?;
            list.push(item);
            if list.len() > self.limits.max_in_items {
                return Err(QueryError::new(format!(
                    "The 'in' list at position {} in '$filter' has more than {} items.",
                    char_position(self.src, self.peek().span.start),
                    self.limits.max_in_items
                )));
            }
            let t = self.bump();
            match t.tok {
                Tok::Comma => continue,
                Tok::RParen => return Ok((list, t.span.end)),
                _ => {
                    return Err(syntax_error(
                        self.src,
                        t.span.start,
                        format!(
                            "expected ',' or ')' in the 'in' list but found {}",
                            self.describe(t)
                        ),
                    ));
                }
            }
        }
    }

    fn prefix(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let t = self.bump();
        match t.tok {
            Tok::LParen => {
                let inner = self.expr(0, depth + 1)?;
                let close = self.expect(Tok::RParen, "')'")?;
                Ok(Expr {
                    kind: inner.kind,
                    span: Span {
                        start: t.span.start,
                        end: close.span.end,
                    },
                })
            }
            Tok::Lit(lit) => self.node(ExprKind::Literal(lit), t.span),
            Tok::Ident(word) => self.word(word, t.span, depth),
            Tok::Qualified(name) => Err(syntax_error(
                self.src,
                t.span.start,
                format!(
                    "'{}' is not supported here (a qualified name must be followed by a quoted enum member)",
                    shorten(&name)
                ),
            )),
            _ => Err(syntax_error(
                self.src,
                t.span.start,
                format!("expected an expression but found {}", self.describe(t)),
            )),
        }
    }

    fn starts_expression(t: &Tok) -> bool {
        matches!(
            t,
            Tok::Ident(_) | Tok::Lit(_) | Tok::LParen | Tok::Qualified(_)
        )
    }

    fn word(&mut self, word: String, span: Span, depth: usize) -> Result<Expr, QueryError> {
        let next = self.peek();
        match names::keyword(&word).as_str() {
            "not" if Self::starts_expression(&next.tok) => {
                let operand = self.expr(NOT_POWER, depth + 1)?;
                let whole = Span {
                    start: span.start,
                    end: operand.span.end,
                };
                return self.node(ExprKind::Not(Box::new(operand)), whole);
            }
            kw @ ("true" | "false" | "null")
                if next.tok != Tok::Slash && next.tok != Tok::LParen =>
            {
                let lit = match kw {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    _ => Literal::Null,
                };
                return self.node(ExprKind::Literal(lit), span);
            }
            _ => {}
        }
        if next.tok == Tok::LParen {
            return self.call(Segment { name: word, span }, depth);
        }
        let mut segments = vec![Segment { name: word, span }];
        while self.peek().tok == Tok::Slash {
            let slash = self.bump();
            let seg = self.bump();
            let Tok::Ident(name) = seg.tok.clone() else {
                return Err(syntax_error(
                    self.src,
                    seg.span.start,
                    format!(
                        "expected a property name after '/' but found {}",
                        self.describe(seg)
                    ),
                ));
            };
            let any = names::is_keyword(&name, "any");
            if (any || names::is_keyword(&name, "all")) && self.peek().tok == Tok::LParen {
                let kind = if any {
                    LambdaKind::Any
                } else {
                    LambdaKind::All
                };
                return self.lambda(segments, kind, seg.span, depth);
            }
            let _ = slash;
            segments.push(Segment {
                name,
                span: seg.span,
            });
        }
        let whole = Span {
            start: span.start,
            end: segments.last().map_or(span.end, |s| s.span.end),
        };
        self.node(ExprKind::Path(segments), whole)
    }

    fn call(&mut self, name: Segment, depth: usize) -> Result<Expr, QueryError> {
        self.check_depth(depth + 1, name.span.start)?;
        self.expect(Tok::LParen, "'('")?;
        let mut args = Vec::new();
        let end = if self.peek().tok == Tok::RParen {
            self.bump().span.end
        } else {
            loop {
                args.push(self.expr(0, depth + 1)?);
                let t = self.bump();
                match t.tok {
                    Tok::Comma => continue,
                    Tok::RParen => break t.span.end,
                    _ => {
                        return Err(syntax_error(
                            self.src,
                            t.span.start,
                            format!(
                                "expected ',' or ')' in the arguments of '{}' but found {}",
                                shorten(&name.name),
                                self.describe(t)
                            ),
                        ));
                    }
                }
            }
        };
        let span = Span {
            start: name.span.start,
            end,
        };
        self.node(ExprKind::Call { name, args }, span)
    }

    fn lambda(
        &mut self,
        collection: Vec<Segment>,
        kind: LambdaKind,
        kind_span: Span,
        depth: usize,
    ) -> Result<Expr, QueryError> {
        self.check_depth(depth + 1, kind_span.start)?;
        let start = collection.first().map_or(kind_span.start, |s| s.span.start);
        self.expect(Tok::LParen, "'('")?;
        if self.peek().tok == Tok::RParen && kind == LambdaKind::Any {
            let end = self.bump().span.end;
            let span = Span { start, end };
            return self.node(
                ExprKind::Lambda {
                    collection,
                    kind,
                    kind_span,
                    var: None,
                    body: None,
                },
                span,
            );
        }
        let v = self.bump();
        let Tok::Ident(var_name) = v.tok.clone() else {
            return Err(syntax_error(
                self.src,
                v.span.start,
                format!(
                    "expected a lambda variable name but found {}",
                    self.describe(v)
                ),
            ));
        };
        self.expect(Tok::Colon, "':' after the lambda variable")?;
        let body = self.expr(0, depth + 1)?;
        let end = self
            .expect(Tok::RParen, "')' to close the lambda")?
            .span
            .end;
        let var = Some(Segment {
            name: var_name,
            span: v.span,
        });
        self.node(
            ExprKind::Lambda {
                collection,
                kind,
                kind_span,
                var,
                body: Some(Box::new(body)),
            },
            Span { start, end },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Expr {
        match parse_filter(src) {
            Ok(e) => e,
            Err(e) => panic!("{src:?} failed: {}", e.message),
        }
    }

    fn err(src: &str) -> String {
        match parse_filter(src) {
            Ok(e) => panic!("{src:?} parsed: {e:?}"),
            Err(e) => e.message,
        }
    }

    /// A compact rendering of the tree, to assert on structure and precedence.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Literal(l) => match l {
                Literal::Null => "null".into(),
                Literal::Bool(b) => b.to_string(),
                Literal::Int(i) => i.to_string(),
                Literal::Real(r) => format!("{r:?}"),
                Literal::String(s) => format!("'{s}'"),
                Literal::DateTime(t) => format!("dt{t}"),
                Literal::Date(d) => format!("d{d}"),
                Literal::Enum { type_name, member } => format!("{type_name}'{member}'"),
            },
            ExprKind::Path(segs) => segs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join("/"),
            ExprKind::Compare { op, lhs, rhs, .. } => {
                format!("({} {} {})", show(lhs), op.keyword(), show(rhs))
            }
            ExprKind::And(v) => {
                format!("(and {})", v.iter().map(show).collect::<Vec<_>>().join(" "))
            }
            ExprKind::Or(v) => format!("(or {})", v.iter().map(show).collect::<Vec<_>>().join(" ")),
            ExprKind::Not(x) => format!("(not {})", show(x)),
            ExprKind::In { lhs, list } => {
                format!(
                    "({} in {})",
                    show(lhs),
                    list.iter().map(show).collect::<Vec<_>>().join(",")
                )
            }
            ExprKind::Call { name, args } => {
                format!(
                    "{}({})",
                    name.name,
                    args.iter().map(show).collect::<Vec<_>>().join(",")
                )
            }
            ExprKind::Lambda {
                collection,
                kind,
                var,
                body,
                ..
            } => format!(
                "{}/{}({}{})",
                collection
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join("/"),
                if *kind == LambdaKind::Any {
                    "any"
                } else {
                    "all"
                },
                var.as_ref()
                    .map(|v| format!("{}:", v.name))
                    .unwrap_or_default(),
                body.as_ref().map(|b| show(b)).unwrap_or_default()
            ),
        }
    }

    fn s(src: &str) -> String {
        show(&ok(src))
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(
            s("a eq 1 or b eq 2 and c eq 3"),
            "(or (a eq 1) (and (b eq 2) (c eq 3)))"
        );
        assert_eq!(
            s("a eq 1 and b eq 2 and c eq 3"),
            "(and (a eq 1) (b eq 2) (c eq 3))"
        );
        assert_eq!(s("(a or b) and c"), "(and (or a b) c)");
        assert_eq!(s("not a eq true"), "((not a) eq true)");
        assert_eq!(s("not (a eq true)"), "(not (a eq true))");
        assert_eq!(s("not(a)"), "(not a)");
        assert_eq!(s("a gt 1 eq true"), "((a gt 1) eq true)");
        assert_eq!(s("a eq b eq c"), "((a eq b) eq c)");
        assert_eq!(s("a in ('x', 'y') or b"), "(or (a in 'x','y') b)");
        assert_eq!(s("((((a))))"), "a");
    }

    #[test]
    fn literals() {
        assert_eq!(s("x eq 'it''s'"), "(x eq 'it's')");
        assert_eq!(s("x eq ''"), "(x eq '')");
        assert_eq!(s("x eq 'ünï ☃'"), "(x eq 'ünï ☃')");
        assert_eq!(s("x eq -12"), "(x eq -12)");
        assert_eq!(s("x eq 1.5"), "(x eq 1.5)");
        assert_eq!(s("x eq 2e3"), "(x eq 2000.0)");
        assert_eq!(
            s("x eq null and y eq true and z eq false"),
            "(and (x eq null) (y eq true) (z eq false))"
        );
        assert_eq!(s("x gt 1970-01-01T00:00:01Z"), "(x gt dt10000000)");
        assert_eq!(s("x gt 1970-01-01T03:00:00.5+03:00"), "(x gt dt5000000)");
        assert_eq!(s("date(x) eq 1970-01-02"), "(date(x) eq d1)");
        assert_eq!(s("date(x) eq 1969-12-31"), "(date(x) eq d-1)");
        assert_eq!(
            s("p eq microsoft.graph.applicationPermissionsRequired'administrator'"),
            "(p eq microsoft.graph.applicationPermissionsRequired'administrator')"
        );
        assert_eq!(s("x eq 9223372036854775807"), "(x eq 9223372036854775807)");
        assert_eq!(
            s("x eq -9223372036854775808"),
            "(x eq -9223372036854775808)"
        );
    }

    #[test]
    fn paths_calls_lambdas() {
        assert_eq!(
            s("vendorInformation/provider eq 'x'"),
            "(vendorInformation/provider eq 'x')"
        );
        assert_eq!(s("startswith(name,'a')"), "startswith(name,'a')");
        assert_eq!(
            s("substring(name, 1, 2) eq 'b'"),
            "(substring(name,1,2) eq 'b')"
        );
        assert_eq!(s("tags/any(t: t eq 'x')"), "tags/any(t:(t eq 'x'))");
        assert_eq!(
            s("tags/all(t:startswith(t,'a'))"),
            "tags/all(t:startswith(t,'a'))"
        );
        assert_eq!(s("tags/any()"), "tags/any()");
        assert_eq!(s("not tags/any()"), "(not tags/any())");
        assert_eq!(s("any eq 1"), "(any eq 1)");
        assert_eq!(s("eq eq 1"), "(eq eq 1)");
        assert_eq!(s(" \tname\r\neq 'a' "), "(name eq 'a')");
        assert_eq!(s("now()"), "now()");
    }

    #[test]
    fn spans_are_byte_offsets() {
        let e = ok("name eq 'é' and x");
        let ExprKind::And(items) = e.kind else {
            panic!()
        };
        assert_eq!(items[0].span, Span { start: 0, end: 12 });
        assert_eq!(items[1].span, Span { start: 17, end: 18 });
    }

    #[test]
    fn syntax_errors_name_position_and_token() {
        assert_eq!(
            err("(name eq 'a' and"),
            "Syntax error at position 16 in '$filter': expected an expression but found the end of the expression."
        );
        assert_eq!(
            err("(name eq 'a' b"),
            "Syntax error at position 13 in '$filter': expected ')' but found 'b'."
        );
        assert_eq!(
            err("name eq 'a' b"),
            "Syntax error at position 12 in '$filter': expected an operator or the end of the expression but found 'b'."
        );
        assert_eq!(
            err(""),
            "Syntax error at position 0 in '$filter': the expression is empty."
        );
        assert_eq!(
            err("   "),
            "Syntax error at position 0 in '$filter': the expression is empty."
        );
        assert_eq!(
            err("name eq 'abc"),
            "Syntax error at position 8 in '$filter': unterminated string literal."
        );
        assert_eq!(
            err("tags/$count gt 1"),
            "Syntax error at position 5 in '$filter': '$count' of a collection is not supported in $filter; use any()/all()."
        );
        assert_eq!(
            err("é eq 'a' $x"),
            "Syntax error at position 9 in '$filter': unexpected character '$'."
        );
        // Keywords are case-insensitive (OData 4.01); a non-keyword still names itself.
        assert_eq!(
            show(&ok("name EQ 'a' AND NOT b Or c In (TRUE, Null)")),
            show(&ok("name eq 'a' and not b or c in (true, null)"))
        );
        assert!(err("name EQQ 'a'").contains("found 'EQQ'"));
        assert!(err("x eq 12abc").contains("'12abc' is not a valid number"));
        assert!(err("x eq 99999999999999999999").contains("out of range"));
        assert!(err("x eq 1e999").contains("out of range"));
        assert!(err("x gt 2020-13-01T00:00:00Z").contains("not a valid DateTimeOffset"));
        assert!(err("x gt 2020-01-01T00:00:00").contains("not a valid DateTimeOffset"));
        assert!(err("x gt 2020-01-01T00:00:00.5").contains("time zone is required"));
        // A '+' sent unencoded in a query string arrives as a space.
        let m = err("x gt 2020-01-01T00:00:00 01:00");
        assert!(
            m.contains("%2B") && m.contains("2020-01-01T00:00:00%2B01:00"),
            "{m}"
        );
        assert!(err("x gt 2020-02-30").contains("not a valid date"));
        assert!(err("x eq a.b").contains("'a.b' is not supported here"));
        assert!(err("x in 'a'").contains("expected '(' to start the 'in' list but found ''a''"));
        assert!(err("x in ()").contains("the 'in' list is empty"));
        assert!(
            err("x in ('a' 'b')").contains("expected ',' or ')' in the 'in' list but found ''b''")
        );
        assert!(
            err("startswith(a 'b')").contains("in the arguments of 'startswith' but found ''b''")
        );
        assert!(err("startswith(a,").contains("expected an expression but found the end"));
        assert!(
            err("tags/any(t t eq 'a')")
                .contains("expected ':' after the lambda variable but found 't'")
        );
        assert!(
            err("tags/any('t': t)").contains("expected a lambda variable name but found ''t''")
        );
        assert!(err("tags/all()").contains("expected a lambda variable name but found ')'"));
        assert!(err("tags/any(t: t eq 'a'").contains("expected ')' to close the lambda"));
        assert!(err("a/) eq 1").contains("expected a property name after '/' but found ')'"));
        assert!(err("a/'x' eq 1").contains("expected a property name after '/'"));
        assert!(err(") eq 1").contains("expected an expression but found ')'"));
        assert!(err("- eq 1").contains("unexpected character '-'"));
        assert!(err("a eq -").contains("unexpected character '-'"));
    }

    #[test]
    fn limits() {
        let long = format!("name eq '{}'", "a".repeat(MAX_FILTER_LENGTH));
        assert!(err(&long).contains("too long"));
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(err(&deep).contains("nested too deeply"));
        let nots = format!("{}a", "not ".repeat(40));
        assert!(err(&nots).contains("nested too deeply"));
        let chain = format!("a{}", " eq a".repeat(40));
        assert!(err(&chain).contains("nested too deeply"));
        let calls = format!("{}a{}", "tolower(".repeat(40), ")".repeat(40));
        assert!(err(&calls).contains("nested too deeply"));
        let wide = (0..300)
            .map(|i| format!("a eq {i}"))
            .collect::<Vec<_>>()
            .join(" or ");
        assert!(err(&wide).contains("too complex"));
        let list = (0..201)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(err(&format!("a in ({list})")).contains("more than 200 items"));
        let list = (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        ok(&format!("a in ({list})"));
        let ident = "a".repeat(129);
        assert!(err(&format!("{ident} eq 1")).contains("longer than 128"));
        let small = Limits {
            max_length: 5,
            ..Limits::default()
        };
        assert!(parse_filter_with("a eq 'b'", &small).is_err());
    }
}
