//! Names -> entity-table properties, literal types checked: [`Expr`] -> [`TypedFilter`].
//!
//! Every name is resolved through the entity type the filter is for (never spelled out here):
//! declared primitive and enum properties, complex members (`vendorInformation/provider`) at any
//! depth, collections inside lambdas, lambda variables, and -- when the entity type is open -- any
//! other identifier as a dynamic property.
//!
//! Dynamic properties hold arbitrary JSON. They are compared only with literals, as JSON
//! primitives: a string literal matches a JSON string, a number a JSON number, `true`/`false` a
//! JSON boolean; a value of another JSON type does not match (`eq` is false, `ne` true,
//! relational false). `eq null` is true when the property is absent or JSON `null`. Used as a
//! string function argument a dynamic property is its JSON string value, or null when it is not a
//! string; used as a predicate it is its JSON boolean, or null.
//!
//! Enum values are compared by their underlying value (also with `gt`/`lt`); a string literal
//! next to an enum operand names a member. `in` becomes an [`TKind::In`] whose semantics are a
//! chain of null-safe `eq` joined by `or`.
//!
//! The family's Edm surface (issue 14):
//! - Numbers: Int32, Int64 and Double properties and literals compare numerically with each
//!   other in any mix (OData-URL §5.1.1.1 numeric promotion); an Int32 property compared with a
//!   literal outside its range is simply never equal. There is no arithmetic
//!   (`add`/`sub`/`mul`/`div`/`mod` are not part of CONTRACT §4).
//! - Values stored as JSON (`store::schema::Storage::Json`: collections, nested or open complex
//!   types) are reached by [`TKind::Json`]: a property or a complex lambda element, then declared
//!   member names at any depth (`fileStates/any(f: f/fileHash/hashValue eq 'x')`). A member path
//!   ending at a primitive or enum compares like a column; ending at a complex value it is only
//!   compared with `null`; ending at a collection it is only walked by `any`/`all`, which nest
//!   (`complianceInformation/any(c: c/certificationControls/any(d: d/name eq 'x'))`). A
//!   collection's members are never reached without a lambda (`fileStates/name` is a 400 that
//!   says so), and a collection is never compared, not even with `null`.
//! - Enum collections (`logonTypes`) give a lambda variable typed as the enum, so
//!   `x eq 'interactive'` names a member.
//! - Undeclared members of an open complex type (kept verbatim in storage) are refused in
//!   `$filter` with a 400 naming the member and the type: their Edm type is unknown, and
//!   guessing it from JSON would make `eq 5` and `eq '5'` disagree between stores. (Dynamic
//!   properties of the open *entity* keep their JSON-typed comparison, above.)
//! - `$count` of a collection and the `any`/`all` over the entity's dynamic properties are not
//!   supported (400).

use super::QueryError;
use super::ast::{CmpOp, Expr, ExprKind, LambdaKind, Literal, Segment, Span};

/// The most lambdas (`any`/`all`) one may nest inside another, counting the outermost: the
/// work of a filter grows as the product of the nested collections' sizes (three nested
/// `tags/any` over 1,500 tags are 3.4 billion evaluations per row), so the cost of a filter is
/// bounded where it is typed. Two covers every nested collection the family's types have
/// (a collection of complex values holding a collection).
pub const MAX_LAMBDA_NESTING: usize = 2;
use super::names;
use super::parser::{char_position, shorten, snippet};
use crate::model::edm::{ComplexType, EdmType, EnumType, Member, Primitive};
use crate::model::entity::{EntityType, Property};
use crate::store::schema::{Storage, storage_of};

/// The static type of a typed node.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Bool,
    String,
    Int,
    Real,
    DateTime,
    /// `Edm.Date`, as days since 1970-01-01 (only from `date(...)` and date literals).
    Date,
    Enum(&'static EnumType),
    /// The `null` literal (compatible with every comparable type).
    Null,
    /// An undeclared property of the open type (any JSON value).
    Dynamic,
    Complex(&'static ComplexType),
    /// A collection; the element type (primitive, enum or complex). Only usable in lambdas.
    Collection(&'static EdmType),
}

impl PartialEq for Ty {
    /// Table types are statics: identity is pointer identity.
    fn eq(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Enum(a), Ty::Enum(b)) => std::ptr::eq(*a, *b),
            (Ty::Complex(a), Ty::Complex(b)) => std::ptr::eq(*a, *b),
            (Ty::Collection(a), Ty::Collection(b)) => a.csdl_name() == b.csdl_name(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Ty {
    fn name(self) -> String {
        match self {
            Ty::Bool => "Edm.Boolean".into(),
            Ty::String => "Edm.String".into(),
            Ty::Int => "Edm.Int64".into(),
            Ty::Real => "Edm.Double".into(),
            Ty::DateTime => "Edm.DateTimeOffset".into(),
            Ty::Date => "Edm.Date".into(),
            Ty::Enum(e) => e.qualified_name(),
            Ty::Null => "null".into(),
            Ty::Dynamic => "a dynamic property".into(),
            Ty::Complex(c) => c.qualified_name(),
            Ty::Collection(e) => format!("Collection({})", e.csdl_name()),
        }
    }

    /// The type of a value of a declared (non-collection or collection) Edm type.
    fn of(ty: &'static EdmType) -> Ty {
        match ty {
            EdmType::Primitive(p) => Ty::from_primitive(*p),
            EdmType::Enum(e) => Ty::Enum(e),
            EdmType::Complex(c) => Ty::Complex(c),
            EdmType::Collection(e) => Ty::Collection(e),
        }
    }

    fn from_primitive(p: Primitive) -> Ty {
        match p {
            Primitive::String => Ty::String,
            Primitive::Boolean => Ty::Bool,
            Primitive::DateTimeOffset => Ty::DateTime,
            Primitive::Int32 | Primitive::Int64 => Ty::Int,
            Primitive::Double => Ty::Real,
        }
    }
}

/// The functions of CONTRACT §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    StartsWith,
    EndsWith,
    Contains,
    ToLower,
    ToUpper,
    Trim,
    Length,
    IndexOf,
    Substring,
    Concat,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Date,
}

impl Func {
    fn by_name(name: &str) -> Option<Func> {
        Some(match names::keyword(name).as_str() {
            "startswith" => Func::StartsWith,
            "endswith" => Func::EndsWith,
            "contains" => Func::Contains,
            "tolower" => Func::ToLower,
            "toupper" => Func::ToUpper,
            "trim" => Func::Trim,
            "length" => Func::Length,
            "indexof" => Func::IndexOf,
            "substring" => Func::Substring,
            "concat" => Func::Concat,
            "year" => Func::Year,
            "month" => Func::Month,
            "day" => Func::Day,
            "hour" => Func::Hour,
            "minute" => Func::Minute,
            "second" => Func::Second,
            "date" => Func::Date,
            _ => return None,
        })
    }

    const NAMES: &'static str = "startswith, endswith, contains, tolower, toupper, trim, length, indexof, \
substring, concat, year, month, day, hour, minute, second, date";
}

/// How a dynamic property is compared with a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum DynLiteral {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
    Bool(bool),
}

/// Where a JSON-stored value starts: a property stored as one JSON column, or the element of
/// the lambda at this nesting level (0 = outermost).
#[derive(Debug, Clone, Copy)]
pub enum JsonBase {
    Column(&'static Property),
    Var(usize),
}

/// A value inside JSON storage (`store::schema`'s JSON storage form): the base, then declared
/// complex-member names (`fileHash`, `hashValue`). Its type is the node's [`Ty`]; a complex
/// value is only compared with `null`, a collection only walked by a lambda.
#[derive(Debug, Clone)]
pub struct JsonRef {
    pub base: JsonBase,
    pub path: Vec<&'static str>,
}

/// A typed node: what it computes, its type, and whether it can evaluate to SQL NULL.
#[derive(Debug, Clone)]
pub struct Typed {
    pub kind: TKind,
    pub ty: Ty,
    pub nullable: bool,
}

#[derive(Debug, Clone)]
pub enum TKind {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    /// UTC 100 ns ticks.
    DateTime(i64),
    /// Days since 1970-01-01.
    Date(i64),
    /// An enum member, by underlying value.
    EnumValue(i64),
    /// A declared primitive or enum property.
    Column(&'static Property),
    /// A member of a declared complex property.
    Member(&'static Property, &'static Member),
    /// A complex property as a whole: only compared with `null`.
    Presence(&'static Property),
    /// The primitive or enum element of the lambda at this nesting level (0 = outermost).
    LambdaVar(usize),
    /// A value inside a JSON column or inside a complex lambda element.
    Json(JsonRef),
    /// A dynamic property's JSON string value (null unless it is a string).
    DynamicText(String),
    /// A dynamic property's JSON boolean value (null unless it is a boolean).
    DynamicBool(String),
    Func(Func, Vec<Typed>),
    /// Null-safe `eq`/`ne`; `gt ge lt le` are false when an operand is null.
    Compare(CmpOp, Box<Typed>, Box<Typed>),
    DynCompare(String, CmpOp, DynLiteral),
    /// `lhs in (literals)`: a chain of null-safe `eq` joined by `or`.
    In(Box<Typed>, Vec<Typed>),
    And(Vec<Typed>),
    Or(Vec<Typed>),
    Not(Box<Typed>),
    /// `collection/any(...)` / `all(...)`; `var` is the nesting level of the lambda variable;
    /// `body` is None for `any()`; `elem` is the element type.
    Lambda {
        collection: JsonRef,
        elem: &'static EdmType,
        kind: LambdaKind,
        var: usize,
        body: Option<Box<Typed>>,
    },
}

/// A type-checked `$filter`: a boolean-valued (or `null`) tree.
#[derive(Debug, Clone)]
pub struct TypedFilter {
    /// The entity set it was typed against (its table is what the SQL reads).
    pub entity: &'static EntityType,
    pub root: Typed,
}

/// Type-checks a parsed `$filter` against `entity`; `src` is the filter text (for messages).
pub fn check_filter(
    entity: &'static EntityType,
    expr: &Expr,
    src: &str,
) -> Result<TypedFilter, QueryError> {
    check_filter_with(entity, expr, src, false)
}

/// [`check_filter`]; with `strict` (`--strict-properties`) an undeclared name is a 400 naming
/// the closest declared ones, not a dynamic property of the open type.
pub fn check_filter_with(
    entity: &'static EntityType,
    expr: &Expr,
    src: &str,
    strict: bool,
) -> Result<TypedFilter, QueryError> {
    let mut checker = Checker {
        entity,
        src,
        lambdas: Vec::new(),
        strict,
    };
    let t = checker.expr(expr)?;
    let root = checker.predicate(t, expr)?;
    Ok(TypedFilter { entity, root })
}

/// Parses and type-checks a `$filter` against `entity` with the default limits.
pub fn parse_and_check(entity: &'static EntityType, src: &str) -> Result<TypedFilter, QueryError> {
    parse_and_check_with(entity, src, false)
}

/// [`parse_and_check`], `strict` as in [`check_filter_with`].
pub fn parse_and_check_with(
    entity: &'static EntityType,
    src: &str,
    strict: bool,
) -> Result<TypedFilter, QueryError> {
    let expr = super::parser::parse_filter(src)?;
    check_filter_with(entity, &expr, src, strict)
}

struct Checker<'a> {
    entity: &'static EntityType,
    src: &'a str,
    /// `--strict-properties`: no dynamic properties.
    strict: bool,
    /// Lambda variables in scope, outermost first: (name, element type).
    lambdas: Vec<(String, &'static EdmType)>,
}

fn typed(kind: TKind, ty: Ty, nullable: bool) -> Typed {
    Typed { kind, ty, nullable }
}

/// `a, b, c`: the declared members of a complex type, for messages.
fn member_list(c: &ComplexType) -> String {
    c.members
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every enum type reachable from the entity type (through complex members and collections).
fn enum_types(entity: &'static EntityType) -> Vec<&'static EnumType> {
    fn walk(ty: &EdmType, out: &mut Vec<&'static EnumType>, depth: usize) {
        match ty {
            EdmType::Enum(e) if !out.iter().any(|x| std::ptr::eq(*x, *e)) => out.push(e),
            EdmType::Collection(t) => walk(t, out, depth),
            // The catalog refuses recursive complex types; the depth bound is a second guard.
            EdmType::Complex(c) if depth < 16 => {
                for m in c.members {
                    walk(&m.ty, out, depth + 1);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for p in entity.declared() {
        walk(&p.ty, &mut out, 0);
    }
    out
}

impl Checker<'_> {
    fn error(&self, at: Span, detail: impl std::fmt::Display) -> QueryError {
        QueryError::new(format!(
            "Type error at position {} in '$filter': {detail}.",
            char_position(self.src, at.start)
        ))
    }

    fn quote(&self, span: Span) -> String {
        format!("'{}'", snippet(self.src, span))
    }

    fn expr(&mut self, e: &Expr) -> Result<Typed, QueryError> {
        match &e.kind {
            ExprKind::Literal(lit) => self.literal(lit, e.span),
            ExprKind::Path(segments) => self.path(segments),
            ExprKind::Compare {
                op,
                op_span,
                lhs,
                rhs,
            } => {
                let l = self.expr(lhs)?;
                let r = self.expr(rhs)?;
                self.compare(*op, *op_span, (l, lhs), (r, rhs))
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let t = self.expr(item)?;
                    out.push(self.predicate(t, item)?);
                }
                let nullable = out.iter().any(|t| t.nullable);
                let kind = if matches!(e.kind, ExprKind::And(_)) {
                    TKind::And(out)
                } else {
                    TKind::Or(out)
                };
                Ok(typed(kind, Ty::Bool, nullable))
            }
            ExprKind::Not(inner) => {
                let t = self.expr(inner)?;
                let t = self.predicate(t, inner)?;
                let nullable = t.nullable;
                Ok(typed(TKind::Not(Box::new(t)), Ty::Bool, nullable))
            }
            ExprKind::In { lhs, list } => self.in_list(lhs, list),
            ExprKind::Call { name, args } => self.call(name, args, e.span),
            ExprKind::Lambda {
                collection,
                kind,
                kind_span,
                var,
                body,
            } => self.lambda(collection, *kind, *kind_span, var.as_ref(), body.as_deref()),
        }
    }

    fn literal(&self, lit: &Literal, span: Span) -> Result<Typed, QueryError> {
        Ok(match lit {
            Literal::Null => typed(TKind::Null, Ty::Null, true),
            Literal::Bool(b) => typed(TKind::Bool(*b), Ty::Bool, false),
            Literal::Int(i) => typed(TKind::Int(*i), Ty::Int, false),
            Literal::Real(r) => typed(TKind::Real(*r), Ty::Real, false),
            Literal::String(s) => typed(TKind::Text(s.clone()), Ty::String, false),
            Literal::DateTime(t) => typed(TKind::DateTime(*t), Ty::DateTime, false),
            Literal::Date(d) => typed(TKind::Date(*d), Ty::Date, false),
            Literal::Enum { type_name, member } => {
                let Some(ty) = enum_types(self.entity)
                    .into_iter()
                    .find(|e| names::is_keyword(type_name, &e.qualified_name()))
                else {
                    return Err(self.error(span, format!("unknown type '{}'", shorten(type_name))));
                };
                let value = self.enum_member(ty, member, span)?;
                typed(TKind::EnumValue(value), Ty::Enum(ty), false)
            }
        })
    }

    fn enum_member(&self, ty: &EnumType, member: &str, span: Span) -> Result<i64, QueryError> {
        names::enum_member(ty, member)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                self.error(
                    span,
                    format!(
                        "'{}' is not a member of {} (members: {})",
                        shorten(member),
                        ty.qualified_name(),
                        ty.member_list()
                    ),
                )
            })
    }

    fn path(&self, segments: &[Segment]) -> Result<Typed, QueryError> {
        let Some((first, rest)) = segments.split_first() else {
            return Err(QueryError::new("Type error in '$filter': empty path."));
        };
        let no_members = |what: String| -> Result<(), QueryError> {
            match rest.first() {
                Some(seg) => Err(self.error(
                    seg.span,
                    format!("{what} has no member '{}'", shorten(&seg.name)),
                )),
                None => Ok(()),
            }
        };
        if let Some(level) = self
            .lambdas
            .iter()
            .rposition(|(name, _)| *name == first.name)
        {
            let Some((_, elem)) = self.lambdas.get(level) else {
                return Err(QueryError::new("Type error in '$filter': lambda scope."));
            };
            let elem: &'static EdmType = elem;
            return match elem {
                EdmType::Primitive(_) | EdmType::Enum(_) => {
                    no_members(format!(
                        "the lambda variable '{}' ({})",
                        shorten(&first.name),
                        elem.csdl_name()
                    ))?;
                    Ok(typed(TKind::LambdaVar(level), Ty::of(elem), true))
                }
                _ => self.json_path(JsonBase::Var(level), shorten(&first.name), elem, rest),
            };
        }
        if let Some(prop) = names::property(self.entity, &first.name) {
            if !prop.filterable {
                return Err(self.error(
                    first.span,
                    format!("the property '{}' cannot be used in $filter", prop.name),
                ));
            }
            return match (storage_of(prop), prop.ty) {
                (Storage::Column, EdmType::Primitive(p)) => {
                    no_members(format!("'{}' ({})", prop.name, p.edm_name()))?;
                    Ok(typed(
                        TKind::Column(prop),
                        Ty::from_primitive(p),
                        prop.nullable,
                    ))
                }
                (Storage::Column, EdmType::Enum(e)) => {
                    no_members(format!("'{}' ({})", prop.name, e.qualified_name()))?;
                    Ok(typed(TKind::Column(prop), Ty::Enum(e), prop.nullable))
                }
                (Storage::Flattened(c), _) => match rest {
                    [] => Ok(typed(TKind::Presence(prop), Ty::Complex(c), prop.nullable)),
                    [seg, more @ ..] => {
                        let Some(member) = names::member(c, &seg.name) else {
                            return Err(self.error(
                                seg.span,
                                format!(
                                    "'{}' has no member '{}' (members: {})",
                                    prop.name,
                                    shorten(&seg.name),
                                    member_list(c)
                                ),
                            ));
                        };
                        if let Some(extra) = more.first() {
                            return Err(self.error(
                                extra.span,
                                format!(
                                    "'{}/{}' ({}) has no member '{}'",
                                    prop.name,
                                    member.name,
                                    member.ty.csdl_name(),
                                    shorten(&extra.name)
                                ),
                            ));
                        }
                        Ok(typed(TKind::Member(prop, member), Ty::of(&member.ty), true))
                    }
                },
                _ => self.json_path(
                    JsonBase::Column(prop),
                    prop.name.to_string(),
                    &prop.ty,
                    rest,
                ),
            };
        }
        if !self.entity.open || self.strict {
            return Err(self.error(
                first.span,
                names::unknown_property(self.entity, &first.name, self.strict),
            ));
        }
        if let Some(seg) = rest.first() {
            return Err(self.error(
                seg.span,
                format!(
                    "'{}' is a dynamic property; paths into dynamic properties are not supported",
                    shorten(&first.name)
                ),
            ));
        }
        Ok(typed(
            TKind::DynamicText(first.name.clone()),
            Ty::Dynamic,
            true,
        ))
    }

    /// Walks declared complex members from a JSON-stored value (`shown` names it in messages).
    /// A collection's members are reached only through a lambda; an open complex type's
    /// undeclared members are refused (their type is unknown, and graphsec keeps them verbatim
    /// without typing them).
    fn json_path(
        &self,
        base: JsonBase,
        mut shown: String,
        mut ty: &'static EdmType,
        rest: &[Segment],
    ) -> Result<Typed, QueryError> {
        let mut path = Vec::with_capacity(rest.len());
        for seg in rest {
            match ty {
                EdmType::Complex(c) => match names::member(c, &seg.name) {
                    Some(m) => {
                        path.push(m.name);
                        shown = format!("{shown}/{}", m.name);
                        ty = &m.ty;
                    }
                    None if c.open => {
                        return Err(self.error(
                            seg.span,
                            format!(
                                "'{shown}' ({}) declares no member '{}'; undeclared members of an open complex type cannot be used in $filter (declared members: {})",
                                c.qualified_name(),
                                shorten(&seg.name),
                                member_list(c)
                            ),
                        ));
                    }
                    None => {
                        return Err(self.error(
                            seg.span,
                            format!(
                                "'{shown}' has no member '{}' (members: {})",
                                shorten(&seg.name),
                                member_list(c)
                            ),
                        ));
                    }
                },
                EdmType::Collection(_) => {
                    return Err(self.error(
                        seg.span,
                        format!(
                            "'{shown}' is a collection ({}); reach its members inside a lambda, e.g. {shown}/any(x: x/{} ...)",
                            ty.csdl_name(),
                            shorten(&seg.name)
                        ),
                    ));
                }
                _ => {
                    return Err(self.error(
                        seg.span,
                        format!(
                            "'{shown}' ({}) has no member '{}'",
                            ty.csdl_name(),
                            shorten(&seg.name)
                        ),
                    ));
                }
            }
        }
        Ok(typed(TKind::Json(JsonRef { base, path }), Ty::of(ty), true))
    }

    /// A node used where a boolean is required (`and`, `or`, `not`, lambda bodies, the root).
    fn predicate(&self, t: Typed, e: &Expr) -> Result<Typed, QueryError> {
        match (t.ty, t.kind) {
            (Ty::Bool | Ty::Null, kind) => Ok(Typed { kind, ..t }),
            (Ty::Dynamic, TKind::DynamicText(name)) => {
                Ok(typed(TKind::DynamicBool(name), Ty::Bool, true))
            }
            (ty, _) => Err(self.error(
                e.span,
                format!(
                    "{} is {}, not a boolean expression",
                    self.quote(e.span),
                    ty.name()
                ),
            )),
        }
    }

    fn compare(
        &self,
        op: CmpOp,
        op_span: Span,
        (l, le): (Typed, &Expr),
        (r, re): (Typed, &Expr),
    ) -> Result<Typed, QueryError> {
        // A declared operand is named by its declared type (Edm.Int32, not the Edm.Int64 that
        // all integers compare as).
        let type_name = |t: &Typed| match &t.kind {
            TKind::Column(p) => p.ty.csdl_name(),
            TKind::Member(_, m) => m.ty.csdl_name(),
            _ => t.ty.name(),
        };
        let mismatch = |l: &Typed, r: &Typed| {
            self.error(
                op_span,
                format!(
                    "cannot compare {} ({}) with {} ({}) using '{}'",
                    self.quote(le.span),
                    type_name(l),
                    self.quote(re.span),
                    type_name(r),
                    op.keyword()
                ),
            )
        };
        // Dynamic properties: JSON-typed comparison with a literal.
        if let TKind::DynamicText(name) = &l.kind {
            return self
                .dyn_compare(name, op, &r)
                .ok_or_else(|| mismatch(&l, &r));
        }
        if let TKind::DynamicText(name) = &r.kind {
            return self
                .dyn_compare(name, flip(op), &l)
                .ok_or_else(|| mismatch(&l, &r));
        }
        for (t, e) in [(&l, le), (&r, re)] {
            if let Ty::Collection(_) = t.ty {
                return Err(self.error(
                    e.span,
                    format!(
                        "{} is a collection and cannot be compared; use {}/any(x: ...) or {}/all(x: ...)",
                        self.quote(e.span),
                        snippet(self.src, e.span),
                        snippet(self.src, e.span)
                    ),
                ));
            }
        }
        let (l, r) = self.unify(l, le, r, re)?;
        let ok = match (l.ty, r.ty) {
            (Ty::Null, _) | (_, Ty::Null) => {
                !op.is_relational()
                    || !matches!((l.ty, r.ty), (Ty::Complex(_), _) | (_, Ty::Complex(_)))
            }
            (Ty::Complex(_), _) | (_, Ty::Complex(_)) => false,
            (Ty::Int | Ty::Real, Ty::Int | Ty::Real) => true,
            (Ty::Enum(a), Ty::Enum(b)) => std::ptr::eq(a, b),
            (a, b) => a == b && matches!(a, Ty::String | Ty::Bool | Ty::DateTime | Ty::Date),
        };
        if !ok {
            return Err(mismatch(&l, &r));
        }
        Ok(typed(
            TKind::Compare(op, Box::new(l), Box::new(r)),
            Ty::Bool,
            false,
        ))
    }

    /// Resolves a string literal next to an enum operand to the member's value.
    fn unify(
        &self,
        l: Typed,
        le: &Expr,
        r: Typed,
        re: &Expr,
    ) -> Result<(Typed, Typed), QueryError> {
        let l = self.enum_literal(l, r.ty, le)?;
        let r = self.enum_literal(r, l.ty, re)?;
        Ok((l, r))
    }

    fn enum_literal(&self, t: Typed, other: Ty, e: &Expr) -> Result<Typed, QueryError> {
        match (&t.kind, other) {
            (TKind::Text(member), Ty::Enum(ty)) => {
                let v = self.enum_member(ty, member, e.span)?;
                Ok(typed(TKind::EnumValue(v), Ty::Enum(ty), false))
            }
            _ => Ok(t),
        }
    }

    /// `dyn op literal`; None when the other side is not a usable literal.
    fn dyn_compare(&self, name: &str, op: CmpOp, other: &Typed) -> Option<Typed> {
        let lit = match &other.kind {
            TKind::Null => DynLiteral::Null,
            TKind::Text(s) => DynLiteral::Text(s.clone()),
            TKind::Int(i) => DynLiteral::Int(*i),
            TKind::Real(r) => DynLiteral::Real(*r),
            TKind::Bool(b) => DynLiteral::Bool(*b),
            _ => return None,
        };
        Some(typed(
            TKind::DynCompare(name.to_string(), op, lit),
            Ty::Bool,
            false,
        ))
    }

    fn in_list(&mut self, lhs: &Expr, list: &[Expr]) -> Result<Typed, QueryError> {
        let l = self.expr(lhs)?;
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            if !matches!(item.kind, ExprKind::Literal(_)) {
                return Err(self.error(
                    item.span,
                    format!(
                        "the 'in' list may contain only literals, not {}",
                        self.quote(item.span)
                    ),
                ));
            }
            let t = self.expr(item)?;
            // Type-check each item exactly like `lhs eq item`.
            let checked = self.compare(CmpOp::Eq, item.span, (l.clone(), lhs), (t, item))?;
            items.push(checked);
        }
        if let TKind::DynamicText(_) = l.kind {
            return Ok(typed(TKind::Or(items), Ty::Bool, false));
        }
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            if let TKind::Compare(_, _, r) = item.kind {
                values.push(*r);
            }
        }
        // `l` may have been an enum-typed operand; string literals were resolved by compare().
        Ok(typed(TKind::In(Box::new(l), values), Ty::Bool, false))
    }

    fn call(&mut self, name: &Segment, args: &[Expr], span: Span) -> Result<Typed, QueryError> {
        let Some(func) = Func::by_name(&name.name) else {
            return Err(self.error(
                name.span,
                format!(
                    "unknown function '{}'; supported functions: {}",
                    shorten(&name.name),
                    Func::NAMES
                ),
            ));
        };
        let (min, max) = match func {
            Func::StartsWith | Func::EndsWith | Func::Contains | Func::IndexOf | Func::Concat => {
                (2, 2)
            }
            Func::Substring => (2, 3),
            _ => (1, 1),
        };
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                min.to_string()
            } else {
                format!("{min} or {max}")
            };
            return Err(self.error(
                span,
                format!(
                    "'{}' takes {expected} argument{} but got {}",
                    name.name,
                    if max == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        let mut typed_args = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let t = self.expr(arg)?;
            let want: &[Ty] = match (func, i) {
                (Func::Substring, 1 | 2) => &[Ty::Int],
                (Func::Year | Func::Month | Func::Day, _) => &[Ty::DateTime, Ty::Date],
                (Func::Hour | Func::Minute | Func::Second | Func::Date, _) => &[Ty::DateTime],
                _ => &[Ty::String],
            };
            let t = match (t.ty, t.kind) {
                (Ty::Null, kind) => Typed { kind, ..t },
                (Ty::Dynamic, kind) if want.contains(&Ty::String) => Typed {
                    kind,
                    ty: Ty::String,
                    ..t
                },
                (ty, kind) if want.contains(&ty) => Typed { kind, ..t },
                (ty, _) => {
                    let wanted = want
                        .iter()
                        .map(|w| w.name())
                        .collect::<Vec<_>>()
                        .join(" or ");
                    return Err(self.error(
                        arg.span,
                        format!(
                            "argument {} of '{}' must be {wanted}, but {} is {}",
                            i + 1,
                            name.name,
                            self.quote(arg.span),
                            ty.name()
                        ),
                    ));
                }
            };
            typed_args.push(t);
        }
        let ty = match func {
            Func::StartsWith | Func::EndsWith | Func::Contains => Ty::Bool,
            Func::ToLower | Func::ToUpper | Func::Trim | Func::Substring | Func::Concat => {
                Ty::String
            }
            Func::Date => Ty::Date,
            _ => Ty::Int,
        };
        let nullable = typed_args.iter().any(|a| a.nullable);
        Ok(typed(TKind::Func(func, typed_args), ty, nullable))
    }

    fn lambda(
        &mut self,
        collection: &[Segment],
        kind: LambdaKind,
        kind_span: Span,
        var: Option<&Segment>,
        body: Option<&Expr>,
    ) -> Result<Typed, QueryError> {
        let path = self.path(collection)?;
        let first_span = collection.first().map_or(kind_span, |s| s.span);
        let whole = Span {
            start: first_span.start,
            end: collection.last().map_or(kind_span.end, |s| s.span.end),
        };
        let (TKind::Json(coll), Ty::Collection(elem)) = (&path.kind, path.ty) else {
            return Err(self.error(
                whole,
                format!(
                    "{} is {}, not a collection; '{}' applies only to collections",
                    self.quote(whole),
                    path.ty.name(),
                    if kind == LambdaKind::Any {
                        "any"
                    } else {
                        "all"
                    }
                ),
            ));
        };
        let coll = coll.clone();
        let level = self.lambdas.len();
        if level >= MAX_LAMBDA_NESTING {
            return Err(self.error(
                whole,
                format!(
                    "{} nests a lambda ({}) inside {level} others; at most {MAX_LAMBDA_NESTING} may nest, because each level multiplies the work per row by its collection's size",
                    self.quote(whole),
                    if kind == LambdaKind::Any { "any" } else { "all" }
                ),
            ));
        }
        let body = match (var, body) {
            (Some(var), Some(body)) => {
                self.lambdas.push((var.name.clone(), elem));
                let checked = self.expr(body).and_then(|t| self.predicate(t, body));
                self.lambdas.pop();
                Some(Box::new(checked?))
            }
            _ => None,
        };
        // A collection inside JSON may be null whatever its declaration says.
        let nullable = true;
        Ok(typed(
            TKind::Lambda {
                collection: coll,
                elem,
                kind,
                var: level,
                body,
            },
            Ty::Bool,
            nullable,
        ))
    }
}

/// The operator with its operands swapped (`1 lt x` is `x gt 1`).
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Typed {
        match parse_and_check(
            crate::model::catalog()
                .set("cloudAppSecurityProfiles")
                .unwrap(),
            src,
        ) {
            Ok(t) => t.root,
            Err(e) => panic!("{src:?} failed: {}", e.message),
        }
    }

    fn err(src: &str) -> String {
        match parse_and_check(
            crate::model::catalog()
                .set("cloudAppSecurityProfiles")
                .unwrap(),
            src,
        ) {
            Ok(t) => panic!("{src:?} type-checked: {t:?}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn accepts_the_contract_grammar() {
        for src in [
            "name eq 'a'",
            "name ne null and null ne name",
            "isSigned eq true",
            "isSigned",
            "not isSigned",
            "createdDateTime gt 2020-01-01T00:00:00Z",
            "date(createdDateTime) eq 2020-01-01",
            "year(createdDateTime) eq 2020 and month(lastModifiedDateTime) le 6 and day(createdDateTime) ge 1",
            "hour(createdDateTime) eq 1 or minute(createdDateTime) eq 2 or second(createdDateTime) eq 3",
            "year(date(createdDateTime)) eq 2020",
            "permissionsRequired eq 'administrator'",
            "permissionsRequired gt 'user'",
            "'user' lt permissionsRequired",
            "permissionsRequired eq microsoft.graph.applicationPermissionsRequired'administrator'",
            "permissionsRequired in ('user', 'guest', null)",
            "vendorInformation/provider eq 'x'",
            "vendorInformation eq null",
            "vendorInformation ne null",
            "tags/any(t: t eq 'x')",
            "tags/all(t: startswith(t, 'a'))",
            "tags/any()",
            "tags/any(t: tags/any(u: u eq t))",
            "tags/any(name: name eq 'shadowed by the variable')",
            "tags/any(t: t eq name)",
            "startswith(name, 'a') and endswith(name, 'b') and contains(name, 'c')",
            "tolower(name) eq 'a' and toupper(name) eq 'A' and trim(name) eq 'a'",
            "length(name) gt 3 and indexof(name, 'x') eq -1",
            "substring(name, 1) eq 'a' and substring(name, 1, 2) eq 'ab'",
            "concat(concat(name, ' '), policyName) eq 'a b'",
            "startswith(null, 'a')",
            "customField eq 'x'",
            "customNumber gt 5 and customReal lt 1.5 and customFlag eq true",
            "customFlag",
            "customField eq null",
            "startswith(customField, 'a')",
            "customField in ('a', 1, true, null)",
            "null eq null",
            "true",
            "null",
            "length(name) eq 1.5",
            "Name eq 'dynamic, because names are case-sensitive'",
        ] {
            ok(src);
        }
    }

    /// Issue 24: three nested lambdas (n^3 evaluations per row) are refused before any SQL runs;
    /// two are fine.
    #[test]
    fn lambda_nesting_is_bounded() {
        ok("tags/any(a: tags/any(b: a eq b))");
        let m = err("tags/any(a: tags/any(b: tags/any(c: a eq 'x' and b eq 'x' and c eq 'y')))");
        assert!(m.contains("at most 2 may nest"), "{m}");
    }

    #[test]
    fn resolves_enum_literals_and_in() {
        let t = ok("permissionsRequired in ('user', null)");
        let TKind::In(_, items) = t.kind else {
            panic!("{t:?}")
        };
        assert!(matches!(items[0].kind, TKind::EnumValue(3)));
        assert!(matches!(items[1].kind, TKind::Null));
        let t = ok("'administrator' eq permissionsRequired");
        let TKind::Compare(_, l, _) = t.kind else {
            panic!()
        };
        assert!(matches!(l.kind, TKind::EnumValue(4)));
        let t = ok("5 lt customNumber");
        assert!(
            matches!(&t.kind, TKind::DynCompare(n, CmpOp::Gt, DynLiteral::Int(5)) if n == "customNumber"),
            "{t:?}"
        );
    }

    #[test]
    fn type_errors_name_token_and_position() {
        assert_eq!(
            err("isSigned eq 'x'"),
            "Type error at position 9 in '$filter': cannot compare 'isSigned' (Edm.Boolean) with ''x'' (Edm.String) using 'eq'."
        );
        assert_eq!(
            err("startswith(isSigned,'a')"),
            "Type error at position 11 in '$filter': argument 1 of 'startswith' must be Edm.String, but 'isSigned' is Edm.Boolean."
        );
        assert!(
            err("tags eq 'x'")
                .contains("'tags' is a collection and cannot be compared; use tags/any(x: ...)")
        );
        assert!(err("'x' eq tags").contains("position 7"));
        ok("StartsWith(NAME,'a') and ToLower(vendorInformation/Provider) eq 'x'");
        ok("PermissionsRequired eq 'ADMINISTRATOR' and permissionsrequired in ('Guest')");
        ok("permissionsRequired eq Microsoft.Graph.ApplicationPermissionsRequired'User'");
        assert!(err("StartWith(name,'a')").contains("unknown function 'StartWith'"));
        assert!(err("now()").contains("unknown function 'now'"));
        assert!(err("permissionsRequired eq 'admin'").contains(
            "'admin' is not a member of microsoft.graph.applicationPermissionsRequired (members: unknown, anonymous"
        ));
        assert!(
            err("permissionsRequired eq microsoft.graph.foo'user'")
                .contains("unknown type 'microsoft.graph.foo'")
        );
        assert!(
            err("name eq microsoft.graph.applicationPermissionsRequired'user'")
                .contains("cannot compare 'name'")
        );
        assert!(err("permissionsRequired eq 4").contains("cannot compare"));
        assert!(err("name/any(t: t eq 'a')").contains("'name' is Edm.String, not a collection"));
        assert!(err("custom/any(t: t eq 'a')").contains("'custom' is a dynamic property"));
        assert!(err("vendorInformation eq 'x'").contains("cannot compare 'vendorInformation'"));
        assert!(err("vendorInformation gt null").contains("cannot compare"));
        assert!(
            err("vendorInformation/nope eq 'x'")
                .contains("'vendorInformation' has no member 'nope' (members: provider")
        );
        assert!(err("vendorInformation/provider/x eq 'x'").contains("has no member 'x'"));
        assert!(err("name/x eq 'a'").contains("'name' (Edm.String) has no member 'x'"));
        assert!(
            err("tags/any(t: t/x eq 'a')")
                .contains("the lambda variable 't' (Edm.String) has no member 'x'")
        );
        assert!(err("custom/x eq 1").contains("paths into dynamic properties are not supported"));
        assert!(err("name").contains("'name' is Edm.String, not a boolean expression"));
        assert!(err("name and isSigned").contains("position 0"));
        assert!(err("not name").contains("not a boolean"));
        assert!(err("tags/any(t: t)").contains("'t' is Edm.String, not a boolean"));
        assert!(err("substring(name)").contains("'substring' takes 2 or 3 arguments but got 1"));
        assert!(err("length(name, name) eq 1").contains("'length' takes 1 argument but got 2"));
        assert!(
            err("substring(name, 'a') eq 'b'")
                .contains("argument 2 of 'substring' must be Edm.Int64")
        );
        assert!(
            err("hour(date(createdDateTime)) eq 1")
                .contains("argument 1 of 'hour' must be Edm.DateTimeOffset")
        );
        assert!(err("createdDateTime eq 2020-01-01").contains("cannot compare"));
        assert!(err("date(createdDateTime) eq 2020-01-01T00:00:00Z").contains("cannot compare"));
        assert!(
            err("custom eq name")
                .contains("cannot compare 'custom' (a dynamic property) with 'name'")
        );
        assert!(err("custom eq 2020-01-01T00:00:00Z").contains("cannot compare"));
        assert!(
            err("name in (policyName)").contains("may contain only literals, not 'policyName'")
        );
        assert!(
            err("name in ('a', 1)")
                .contains("cannot compare 'name' (Edm.String) with '1' (Edm.Int64)")
        );
        assert!(err("tags in ('a')").contains("is a collection"));
        assert!(err("length(name) eq 'a'").contains("cannot compare"));
    }

    #[test]
    fn accepts_the_family_surface() {
        for (set, src) in [
            ("alerts", "fileStates/any(f: f/fileHash/hashValue eq 'x')"),
            (
                "alerts",
                "fileStates/any(f: f/fileHash/hashType eq 'sha256' and f/fileHash ne null)",
            ),
            (
                "alerts",
                "userStates/any(u: u/isVpn and u/logonType eq 'interactive')",
            ),
            (
                "alerts",
                "networkConnections/all(n: n/protocol ge 'unknown')",
            ),
            (
                "alerts",
                "confidence gt 5 and confidence lt 99.5 and severity eq 'high'",
            ),
            ("alerts", "comments/any(c: contains(c, 'x')) and tags/any()"),
            (
                "alerts",
                "historyStates/any(h: year(h/updatedDateTime) eq 2024)",
            ),
            ("alerts", "fileStates/any(f: f eq null)"),
            (
                "hostSecurityProfiles",
                "logonUsers/any(u: u/logonTypes/any(x: x eq 'interactive'))",
            ),
            (
                "hostSecurityProfiles",
                "logonUsers/any(u: u/logonTypes/any(x: x in ('batch', 'service')))",
            ),
            (
                "secureScoreControlProfiles",
                "complianceInformation/any(c: c/certificationControls/any(d: d/name eq c/certificationName))",
            ),
            (
                "secureScores",
                "currentScore ge activeUserCount and averageComparativeScores/any(a: a/averageScore gt 1)",
            ),
            (
                "securityActions",
                "states/any(s: s/status eq 'NotStarted') and status in ('Running', 'Failed')",
            ),
            (
                "securityActions",
                "errorInfo/code eq 0 and parameters/any(p: p/name eq 'x')",
            ),
            (
                "tiIndicators",
                "severity ge 3 and networkDestinationAsn gt 9007199254740993",
            ),
        ] {
            let entity = crate::model::catalog().set(set).unwrap();
            if let Err(e) = parse_and_check(entity, src) {
                panic!("{set}: {src:?} failed: {}", e.message);
            }
        }
    }
}
