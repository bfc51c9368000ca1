//! The untyped `$filter` syntax tree produced by [`super::parser`].
//!
//! Every node carries the byte span of the source text it came from, so the type checker can
//! quote the offending token and say where it is. Names are kept as written; resolving them
//! against the entity table is the type checker's job.

/// A half-open byte range `[start, end)` into the `$filter` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    /// A number with a fraction or exponent.
    Real(f64),
    /// `'text'`, with `''` already unescaped.
    String(String),
    /// Unquoted DateTimeOffset, as UTC 100 ns ticks.
    DateTime(i64),
    /// Unquoted date `yyyy-mm-dd`, as days since 1970-01-01.
    Date(i64),
    /// `Namespace.EnumType'member'`.
    Enum {
        type_name: String,
        member: String,
    },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn keyword(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
        }
    }

    pub fn is_relational(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// `any` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaKind {
    Any,
    All,
}

/// A path segment: an identifier and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: String,
    pub span: Span,
}

/// A node of the syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// `a` or `a/b/c`: one or more identifiers separated by `/`.
    Path(Vec<Segment>),
    Compare {
        op: CmpOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `and` chains are flattened (the operator is associative), which keeps the tree shallow.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    In {
        lhs: Box<Expr>,
        list: Vec<Expr>,
    },
    Call {
        name: Segment,
        args: Vec<Expr>,
    },
    /// `path/any(v: body)`, `path/all(v: body)`, or `path/any()` (no variable, no body).
    Lambda {
        collection: Vec<Segment>,
        kind: LambdaKind,
        kind_span: Span,
        var: Option<Segment>,
        body: Option<Box<Expr>>,
    },
}
