//! Typed `$filter`/`$orderby` -> SQL for SQLite and PostgreSQL, with bind parameters.
//!
//! Literals are never spliced into SQL text: every value becomes a bind parameter. Placeholders
//! are numbered -- `?N` on SQLite, `$N::type` on PostgreSQL -- starting at the caller's
//! `first_param`, so a fragment may reference one parameter several times (e.g. `endswith`) and
//! the caller can put its own parameters (tenant, limit) before ours. On SQLite, bind
//! [`SqlParam::Bool`] as the integer 0/1.
//!
//! Column references are qualified with the entity set's table name (`"cloud_app_security_profiles"."id"`)
//! because lambda subqueries bring `json_each`'s own `id`/`type`/`value` columns into scope:
//! query the table without an alias.
//!
//! Semantics (CONTRACT §4), the same on both dialects:
//! - `eq`/`ne` are null-safe; `gt ge lt le` with a null operand are FALSE (so `not (x gt 'a')`
//!   is TRUE for a null `x`); functions of null are null; `and or not` are three-valued; `in` is
//!   a chain of `eq` joined by `or`.
//! - `any`/`all` over a null collection are NULL; over an empty one FALSE/TRUE; otherwise `any`
//!   is the three-valued OR of the body over the elements and `all` the three-valued AND.
//! - Strings compare by code point (SQLite BINARY; PostgreSQL `COLLATE "C"`).
//! - `tolower`/`toupper` map ASCII letters only (SQLite's `lower`/`upper` without ICU do exactly
//!   that; PostgreSQL does the same under `COLLATE "C"`); `trim` removes spaces (U+0020) only.
//!   `length`, `indexof` (0-based, -1 when absent) and `substring` (0-based; a negative start or
//!   length counts as 0) count code points. Strings must not contain U+0000 (PostgreSQL cannot
//!   store it and SQLite's `length` stops there).
//! - `contains`/`startswith`/`endswith` use `instr`/`strpos`/`substr`, never `LIKE`, so `%` and
//!   `_` are ordinary characters.
//! - Date parts are computed from the 100 ns tick columns in UTC.
//! - Values inside JSON storage (`store::schema`'s JSON storage form: collections, nested or open
//!   complex values) are read where they lie: SQLite `json_extract(doc, '$."a"."b"')` (already
//!   TEXT, INTEGER -- also enums, ticks and booleans 0/1 -- or REAL), PostgreSQL
//!   `(doc #>> '{a,b}')` cast to the column form (`bigint`, `double precision`, `boolean`); a
//!   JSON `null` and a missing member are both SQL NULL. Lambdas range over `json_each(...) AS
//!   _lN` / `jsonb_array_elements[_text](...) AS _lN(value)`, nest by correlation (`_l1` reads
//!   from `_l0.value`), and a collection inside JSON that is `null` counts as a null collection
//!   (PostgreSQL's guard keeps `jsonb_array_elements` from seeing a JSON scalar).
//! - Int32, Int64 and Double compare numerically in any mix (both databases promote).
//!
//! The filter fragment is meant to be used as a top-level `AND` conjunct of a `WHERE`: in that
//! position NULL and FALSE are equivalent, which lets us emit plain, index-friendly comparisons
//! (`"name" = ?1`) and spend `COALESCE`/`IS` only where a `not`, a comparison of booleans or a
//! lambda body can tell NULL from FALSE.

use crate::model::edm::EdmType;
use crate::model::edm::Primitive;
use crate::model::entity::{EntityType, Property};
use crate::odata::ast::{CmpOp, LambdaKind};
use crate::odata::query::{OrderKey, SortTarget};
use crate::odata::typecheck::{DynLiteral, Func, JsonBase, JsonRef, TKind, Ty, Typed, TypedFilter};
use crate::store::schema::{self, DYNAMIC_COLUMN, Dialect};

/// A bind parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// SQLite: bind as INTEGER 0/1; PostgreSQL: BOOLEAN.
    Bool(bool),
}

/// A SQL fragment and the parameters it references, numbered from the `first_param` it was
/// compiled with.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFragment {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// Compiles a typed `$filter` to a boolean SQL expression (use it as a `WHERE` conjunct on the
/// table of the entity set the filter was typed against).
pub fn compile_filter(filter: &TypedFilter, dialect: Dialect, first_param: usize) -> SqlFragment {
    let mut c = Compiler {
        table: filter.entity.table,
        dialect,
        first_param,
        params: Vec::new(),
    };
    let sql = c.expr(&filter.root, true);
    SqlFragment {
        sql,
        params: c.params,
    }
}

struct Compiler {
    table: &'static str,
    dialect: Dialect,
    first_param: usize,
    params: Vec<SqlParam>,
}

/// Largest start/length handed to `substr` (PostgreSQL takes `integer`).
const SUBSTR_CLAMP: i64 = 1_000_000_000;
const TICKS_PER_SECOND: &str = "10000000";
const TICKS_PER_DAY: &str = "864000000000";

/// A column qualified with its table.
fn qcol(table: &str, name: &str) -> String {
    let mut out = String::with_capacity(table.len() + name.len() + 5);
    push_qcol(&mut out, table, name);
    out
}

/// Appends [`qcol`]`(table, name)` to `out`.
fn push_qcol(out: &mut String, table: &str, name: &str) {
    schema::push_quoted(out, table);
    out.push('.');
    schema::push_quoted(out, name);
}

fn cmp_sql(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    }
}

/// `floor(a / b)` for integers on both dialects (their `/` and `%` truncate toward zero).
fn floor_div(a: &str, b: &str) -> String {
    format!("(({a}) - (((({a}) % {b}) + {b}) % {b})) / {b}")
}

impl Compiler {
    fn pg(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    fn bind(&mut self, p: SqlParam) -> String {
        let n = self.first_param + self.params.len();
        let cast = match &p {
            SqlParam::Null => "",
            SqlParam::Int(_) => "::bigint",
            SqlParam::Real(_) => "::double precision",
            SqlParam::Text(_) => "::text",
            SqlParam::Bool(_) => "::boolean",
        };
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}{cast}"),
        }
    }

    /// Applies code-point collation to a string operand on PostgreSQL.
    fn ordinal(&self, sql: String, ty: Ty) -> String {
        if self.pg() && matches!(ty, Ty::String) {
            format!("({sql}) COLLATE \"C\"")
        } else {
            sql
        }
    }

    /// `positive`: the result is only tested for TRUE (NULL and FALSE may be conflated).
    fn expr(&mut self, t: &Typed, positive: bool) -> String {
        match &t.kind {
            TKind::Null => "NULL".to_string(),
            TKind::Bool(b) => self.bind(SqlParam::Bool(*b)),
            TKind::Int(i) | TKind::DateTime(i) | TKind::Date(i) | TKind::EnumValue(i) => {
                self.bind(SqlParam::Int(*i))
            }
            TKind::Real(r) => self.bind(SqlParam::Real(*r)),
            TKind::Text(s) => self.bind(SqlParam::Text(s.clone())),
            TKind::Column(p) | TKind::Presence(p) => qcol(self.table, schema::column(p)),
            TKind::Member(p, m) => qcol(self.table, &schema::member_column(p, m.name)),
            TKind::LambdaVar(level) => {
                let v = format!("_l{level}.value");
                // PostgreSQL reads primitive elements as text (`jsonb_array_elements_text`).
                match (self.dialect, pg_cast(t.ty)) {
                    (Dialect::Postgres, Some(cast)) => format!("({v})::{cast}"),
                    _ => v,
                }
            }
            TKind::Json(r) => self.json_value(r, t.ty),
            TKind::DynamicText(name) => {
                let d = self.dynamic(name);
                format!("(CASE WHEN {} THEN {} END)", d.text_guard, d.text)
            }
            TKind::DynamicBool(name) => {
                let d = self.dynamic(name);
                format!("(CASE WHEN {} THEN {} END)", d.bool_guard, d.boolean)
            }
            TKind::Func(Func::StartsWith, args) if positive => self.prefix_range(args),
            TKind::Func(f, args) => self.func(*f, args),
            TKind::Compare(op, l, r) => self.compare(*op, l, r, positive),
            TKind::DynCompare(name, op, lit) => self.dyn_compare(name, *op, lit),
            TKind::In(l, items) => self.in_list(l, items, positive),
            TKind::And(items) | TKind::Or(items) => {
                let joiner = if matches!(t.kind, TKind::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Vec<String> = items.iter().map(|i| self.expr(i, positive)).collect();
                format!("({})", parts.join(joiner))
            }
            TKind::Not(inner) => format!("(NOT {})", self.expr(inner, false)),
            TKind::Lambda {
                collection,
                elem,
                kind,
                var,
                body,
            } => {
                let coll = self.json_collection(collection);
                let complex = matches!(elem, EdmType::Complex(_));
                self.lambda(&coll, complex, *kind, *var, body.as_deref(), positive)
            }
        }
    }
}

/// The PostgreSQL type a text value of this filter type is cast to (None: stays text).
fn pg_cast(ty: Ty) -> Option<&'static str> {
    match ty {
        Ty::Int | Ty::DateTime | Ty::Date | Ty::Enum(_) => Some("bigint"),
        Ty::Real => Some("double precision"),
        Ty::Bool => Some("boolean"),
        _ => None,
    }
}

/// A SQLite JSON path literal for declared member names (`'$."fileHash"."hashValue"'`). The
/// names come from the catalog, never from the request; quotes are escaped all the same.
fn sqlite_json_path(path: &[&str]) -> String {
    let mut out = String::from("'$");
    for m in path {
        out.push_str(&format!(".\"{}\"", m.replace('\'', "''").replace('"', "")));
    }
    out.push('\'');
    out
}

/// A PostgreSQL text-array path literal for `#>`/`#>>` (`'{fileHash,hashValue}'`).
fn pg_json_path(path: &[&str]) -> String {
    let items: Vec<String> = path
        .iter()
        .map(|m| format!("\"{}\"", m.replace('\'', "''").replace(['"', '\\'], "")))
        .collect();
    format!("'{{{}}}'", items.join(","))
}

/// The least string greater than every string that starts with `prefix`, in code-point order
/// (which is UTF-8 byte order, the order of SQLite's BINARY and PostgreSQL's "C" collation): the
/// prefix with its last code point incremented (skipping surrogates; a trailing U+10FFFF is
/// dropped first). `None` when no such bound exists.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// SQL pieces to read one dynamic property (a key of the `dynamic` JSON object).
struct DynamicAccess {
    /// NULL when absent, else the JSON type name of the dialect.
    json_type: String,
    text_guard: String,
    text: String,
    number_guard: String,
    number: String,
    bool_guard: String,
    boolean: String,
}

impl Compiler {
    fn dynamic(&mut self, name: &str) -> DynamicAccess {
        let d = qcol(self.table, DYNAMIC_COLUMN);
        match self.dialect {
            Dialect::Sqlite => {
                // The JSON path is a parameter too; the key is quoted so any identifier works.
                let p = self.bind(SqlParam::Text(format!("$.\"{name}\"")));
                let ty = format!("json_type({d}, {p})");
                let value = format!("json_extract({d}, {p})");
                DynamicAccess {
                    text_guard: format!("{ty} = 'text'"),
                    text: value.clone(),
                    number_guard: format!("{ty} IN ('integer', 'real')"),
                    number: value,
                    bool_guard: format!("{ty} IN ('true', 'false')"),
                    boolean: format!("({ty} = 'true')"),
                    json_type: ty,
                }
            }
            Dialect::Postgres => {
                let k = self.bind(SqlParam::Text(name.to_string()));
                let ty = format!("jsonb_typeof({d} -> {k})");
                DynamicAccess {
                    text_guard: format!("{ty} = 'string'"),
                    text: format!("({d} ->> {k})"),
                    number_guard: format!("{ty} = 'number'"),
                    number: format!("({d} -> {k})::numeric"),
                    bool_guard: format!("{ty} = 'boolean'"),
                    boolean: format!("({d} -> {k})::boolean"),
                    json_type: ty,
                }
            }
        }
    }

    fn dyn_compare(&mut self, name: &str, op: CmpOp, lit: &DynLiteral) -> String {
        // Decided before `dynamic()` binds the JSON path: a parameter the SQL never references
        // makes SQLite refuse the statement when it is the last one (`/$count`, `$count=true`).
        if *lit == DynLiteral::Null && op.is_relational() {
            return "FALSE".to_string();
        }
        let d = self.dynamic(name);
        let (guard, view, param) = match lit {
            DynLiteral::Null => {
                let is_null = format!("COALESCE({}, 'null') = 'null'", d.json_type);
                return match op {
                    CmpOp::Eq => format!("({is_null})"),
                    CmpOp::Ne => format!("(NOT ({is_null}))"),
                    _ => "FALSE".to_string(),
                };
            }
            DynLiteral::Text(s) => {
                let view = self.ordinal(d.text, Ty::String);
                (d.text_guard, view, self.bind(SqlParam::Text(s.clone())))
            }
            DynLiteral::Int(i) => (d.number_guard, d.number, self.bind(SqlParam::Int(*i))),
            DynLiteral::Real(r) => (d.number_guard, d.number, self.bind(SqlParam::Real(*r))),
            DynLiteral::Bool(b) => (d.bool_guard, d.boolean, self.bind(SqlParam::Bool(*b))),
        };
        // A value of another JSON type (or an absent one) never equals and never orders.
        let (negate, op) = if op == CmpOp::Ne {
            (true, CmpOp::Eq)
        } else {
            (false, op)
        };
        let test = format!(
            "(CASE WHEN {guard} THEN {view} {} {param} ELSE FALSE END)",
            cmp_sql(op)
        );
        if negate {
            format!("(NOT {test})")
        } else {
            test
        }
    }

    fn compare(&mut self, op: CmpOp, l: &Typed, r: &Typed, positive: bool) -> String {
        let l_null = matches!(l.kind, TKind::Null);
        let r_null = matches!(r.kind, TKind::Null);
        if op.is_relational() && (l_null || r_null) {
            return "FALSE".to_string();
        }
        match (l_null, r_null) {
            (true, true) => {
                return if op == CmpOp::Eq {
                    "TRUE".into()
                } else {
                    "FALSE".into()
                };
            }
            (true, false) | (false, true) => {
                let other = if l_null { r } else { l };
                let sql = self.expr(other, false);
                let test = if op == CmpOp::Eq {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                };
                return format!("({sql} {test})");
            }
            (false, false) => {}
        }
        let string = matches!(l.ty, Ty::String) || matches!(r.ty, Ty::String);
        let ls = self.expr(l, false);
        let rs = self.expr(r, false);
        let (ls, rs) = if op.is_relational() && string {
            (self.ordinal(ls, Ty::String), rs)
        } else {
            (ls, rs)
        };
        let both = l.nullable && r.nullable;
        let either = l.nullable || r.nullable;
        let plain = format!("({ls} {} {rs})", cmp_sql(op));
        match op {
            CmpOp::Eq if both => match self.dialect {
                Dialect::Sqlite => format!("({ls} IS {rs})"),
                Dialect::Postgres => format!("({ls} IS NOT DISTINCT FROM {rs})"),
            },
            CmpOp::Ne if both => match self.dialect {
                Dialect::Sqlite => format!("({ls} IS NOT {rs})"),
                Dialect::Postgres => format!("({ls} IS DISTINCT FROM {rs})"),
            },
            // One side is never null: plain SQL is NULL exactly when null-safe `eq` is FALSE.
            CmpOp::Ne if either => format!("COALESCE({plain}, TRUE)"),
            _ if either && !positive => format!("COALESCE({plain}, FALSE)"),
            _ => plain,
        }
    }

    fn in_list(&mut self, l: &Typed, items: &[Typed], positive: bool) -> String {
        let has_null = items.iter().any(|i| matches!(i.kind, TKind::Null));
        if matches!(l.kind, TKind::Null) {
            return if has_null {
                "TRUE".into()
            } else {
                "FALSE".into()
            };
        }
        let ls = self.expr(l, false);
        let mut parts = Vec::new();
        let values: Vec<String> = items
            .iter()
            .filter(|i| !matches!(i.kind, TKind::Null))
            .map(|i| self.expr(i, false))
            .collect();
        if !values.is_empty() {
            let test = format!("{ls} IN ({})", values.join(", "));
            parts.push(if positive || !l.nullable {
                test
            } else {
                format!("COALESCE({test}, FALSE)")
            });
        }
        if has_null {
            parts.push(format!("{ls} IS NULL"));
        }
        format!("({})", parts.join(" OR "))
    }

    /// The SQL of a JSON reference's base: the JSON column, or the current lambda element.
    fn json_base(&self, base: JsonBase) -> String {
        match base {
            JsonBase::Column(p) => qcol(self.table, schema::column(p)),
            JsonBase::Var(level) => format!("_l{level}.value"),
        }
    }

    /// A primitive, enum or complex value inside JSON storage, as an SQL scalar of the
    /// column form (`ty` says which): SQLite's `json_extract` already yields TEXT, INTEGER
    /// (also for enums, ticks and booleans as 0/1) or REAL; PostgreSQL's `#>>` yields text, cast
    /// to the column form. A JSON `null` or a missing member is SQL NULL on both; a complex value
    /// is its JSON text (only ever tested for NULL).
    fn json_value(&self, r: &JsonRef, ty: Ty) -> String {
        let base = self.json_base(r.base);
        match self.dialect {
            Dialect::Sqlite => format!("json_extract({base}, {})", sqlite_json_path(&r.path)),
            Dialect::Postgres => {
                let text = format!("({base} #>> {})", pg_json_path(&r.path));
                match pg_cast(ty) {
                    Some(cast) => format!("{text}::{cast}"),
                    None => text,
                }
            }
        }
    }

    /// A collection inside JSON storage, as a JSON array or SQL NULL (never a JSON `null`, which
    /// PostgreSQL's `jsonb_array_elements` would refuse). A whole JSON column is stored as SQL
    /// NULL when the property is null, so it needs no guard.
    fn json_collection(&self, r: &JsonRef) -> String {
        let base = self.json_base(r.base);
        if r.path.is_empty() && matches!(r.base, JsonBase::Column(_)) {
            return base;
        }
        match self.dialect {
            Dialect::Sqlite => format!("json_extract({base}, {})", sqlite_json_path(&r.path)),
            Dialect::Postgres => {
                let v = format!("({base} #> {})", pg_json_path(&r.path));
                format!("(CASE WHEN jsonb_typeof({v}) = 'array' THEN {v} END)")
            }
        }
    }

    fn lambda(
        &mut self,
        coll: &str,
        complex: bool,
        kind: LambdaKind,
        var: usize,
        body: Option<&Typed>,
        positive: bool,
    ) -> String {
        let Some(body) = body else {
            // `any()`: non-empty; NULL for a null collection.
            let len = match self.dialect {
                Dialect::Sqlite => "json_array_length",
                Dialect::Postgres => "jsonb_array_length",
            };
            return format!("({len}({coll}) > 0)");
        };
        let alias = format!("_l{var}");
        let from = match self.dialect {
            Dialect::Sqlite => format!("json_each({coll}) AS {alias}"),
            // Complex elements stay JSON (members are read with `#>>`); primitive and enum
            // elements are read as text and cast where used.
            Dialect::Postgres if complex => {
                format!("jsonb_array_elements({coll}) AS {alias}(value)")
            }
            Dialect::Postgres => format!("jsonb_array_elements_text({coll}) AS {alias}(value)"),
        };
        let exists = |cond: &str| format!("EXISTS (SELECT 1 FROM {from} WHERE {cond})");
        match (kind, positive) {
            // Only TRUE matters: some element satisfies the body (a null collection has none).
            (LambdaKind::Any, true) => {
                let b = self.expr(body, true);
                format!("({})", exists(&b))
            }
            (LambdaKind::All, true) => {
                let b = self.expr(body, false);
                format!(
                    "({coll} IS NOT NULL AND NOT {})",
                    exists(&format!("({b}) IS NOT TRUE"))
                )
            }
            // Three-valued: null over a null collection; otherwise decided by an element whose
            // body has the deciding value (TRUE for any, FALSE for all), else null if some body is
            // null, else the other value.
            (kind, false) => {
                let b = self.expr(body, false);
                let (deciding, other) = match kind {
                    LambdaKind::Any => ("TRUE", "FALSE"),
                    LambdaKind::All => ("FALSE", "TRUE"),
                };
                let unknown = if body.nullable {
                    format!(" WHEN {} THEN NULL", exists(&format!("({b}) IS NULL")))
                } else {
                    String::new()
                };
                format!(
                    "(CASE WHEN {coll} IS NULL THEN NULL WHEN {} THEN {deciding}{unknown} ELSE {other} END)",
                    exists(&format!("({b}) IS {deciding}"))
                )
            }
        }
    }

    /// `startswith(column, 'p')` where only TRUE matters: the same test plus the implied range
    /// `column >= 'p' AND column < next('p')`, which lets an index on the column serve it
    /// (`substr` alone cannot). The range adds no rows and removes none, so the result is exact.
    fn prefix_range(&mut self, args: &[Typed]) -> String {
        let test = self.func(Func::StartsWith, args);
        let (
            Some(column),
            Some(Typed {
                kind: TKind::Text(prefix),
                ..
            }),
        ) = (args.first(), args.get(1))
        else {
            return test;
        };
        if !matches!(column.kind, TKind::Column(_) | TKind::Member(..)) || prefix.is_empty() {
            return test;
        }
        let c = self.expr(column, false);
        let c = self.ordinal(c, Ty::String);
        let lo = self.bind(SqlParam::Text(prefix.clone()));
        let mut sql = format!("({c} >= {lo}");
        if let Some(hi) = prefix_upper_bound(prefix) {
            let hi = self.bind(SqlParam::Text(hi));
            sql.push_str(&format!(" AND {c} < {hi}"));
        }
        sql.push_str(&format!(" AND {test})"));
        sql
    }

    fn func(&mut self, f: Func, args: &[Typed]) -> String {
        let a: Vec<String> = args.iter().map(|x| self.expr(x, false)).collect();
        let arg = |i: usize| a.get(i).cloned().unwrap_or_else(|| "NULL".to_string());
        let pg = self.pg();
        match f {
            Func::StartsWith => format!("(substr({0}, 1, length({1})) = {1})", arg(0), arg(1)),
            Func::EndsWith => format!(
                "(length({0}) >= length({1}) AND substr({0}, length({0}) - length({1}) + 1) = {1})",
                arg(0),
                arg(1)
            ),
            Func::Contains => {
                format!(
                    "({}({}, {}) > 0)",
                    if pg { "strpos" } else { "instr" },
                    arg(0),
                    arg(1)
                )
            }
            Func::IndexOf => {
                format!(
                    "({}({}, {}) - 1)",
                    if pg { "strpos" } else { "instr" },
                    arg(0),
                    arg(1)
                )
            }
            Func::ToLower | Func::ToUpper => {
                let name = if f == Func::ToLower { "lower" } else { "upper" };
                if pg {
                    format!("{name}(({}) COLLATE \"C\")", arg(0))
                } else {
                    format!("{name}({})", arg(0))
                }
            }
            Func::Trim => format!("trim({})", arg(0)),
            Func::Length => format!("length({})", arg(0)),
            Func::Concat => format!("({} || {})", arg(0), arg(1)),
            Func::Substring => {
                let clamp = |x: String| {
                    format!(
                        "(CASE WHEN {x} < 0 THEN 0 WHEN {x} > {SUBSTR_CLAMP} THEN {SUBSTR_CLAMP} ELSE {x} END)"
                    )
                };
                let start = format!("{} + 1", clamp(arg(1)));
                let int = |x: String| if pg { format!("({x})::integer") } else { x };
                match args.len() {
                    3 => format!("substr({}, {}, {})", arg(0), int(start), int(clamp(arg(2)))),
                    _ => format!("substr({}, {})", arg(0), int(start)),
                }
            }
            Func::Date => format!("({})", floor_div(&arg(0), TICKS_PER_DAY)),
            Func::Year | Func::Month | Func::Day | Func::Hour | Func::Minute | Func::Second => {
                let secs = match args.first().map(|x| x.ty) {
                    Some(Ty::Date) => format!("(({}) * 86400)", arg(0)),
                    _ => format!("({})", floor_div(&arg(0), TICKS_PER_SECOND)),
                };
                let of_day = format!("(((({secs}) % 86400) + 86400) % 86400)");
                match f {
                    Func::Hour => format!("({of_day} / 3600)"),
                    Func::Minute => format!("(({of_day} % 3600) / 60)"),
                    Func::Second => format!("({of_day} % 60)"),
                    _ => {
                        // Calendar fields need the calendar: SQLite's strftime, PostgreSQL's
                        // EXTRACT, both on UTC.
                        let (fmt, field) = match f {
                            Func::Year => ("%Y", "YEAR"),
                            Func::Month => ("%m", "MONTH"),
                            _ => ("%d", "DAY"),
                        };
                        if pg {
                            format!(
                                "CAST(EXTRACT({field} FROM to_timestamp({secs}) AT TIME ZONE 'UTC') AS BIGINT)"
                            )
                        } else {
                            format!("CAST(strftime('{fmt}', {secs}, 'unixepoch') AS INTEGER)")
                        }
                    }
                }
            }
        }
    }
}

/// How a keyset value must be typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// [`SqlParam::Text`]
    Text,
    /// [`SqlParam::Int`] (ticks, enum values, Int32/Int64)
    Int,
    /// [`SqlParam::Real`] (Double)
    Real,
    /// [`SqlParam::Bool`]
    Bool,
}

/// One column of the total order: the client's keys, then `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// The unquoted column name in the row.
    pub column: String,
    pub ty: KeyType,
    pub nullable: bool,
    pub descending: bool,
    /// Where a record holds the column's value: a declared property (index into the entity's
    /// `properties`), and the member's index for a flattened complex member.
    pub source: (usize, Option<usize>),
}

/// The index of a property of `entity` (by identity; by name for a foreign one).
fn property_index(entity: &EntityType, p: &Property) -> usize {
    entity
        .properties
        .iter()
        .position(|q| std::ptr::eq(q, p))
        .or_else(|| entity.index_of(p.name))
        .unwrap_or(usize::MAX)
}

/// The columns of the total order for these `$orderby` keys: the keys, then `id` ascending
/// (omitted when `id` is already a key, which makes the order total by itself).
pub fn key_columns(entity: &EntityType, keys: &[OrderKey]) -> Vec<KeyColumn> {
    let key_prop = entity.properties.get(entity.key_index());
    let mut out = Vec::with_capacity(keys.len() + 1);
    let mut total = false;
    for k in keys {
        let (column, prim, nullable, source) = match k.target {
            SortTarget::Property(p) => {
                let prim = match p.ty {
                    EdmType::Primitive(pr) => Some(pr),
                    _ => None,
                };
                let source = (property_index(entity, p), None);
                (schema::column(p).to_string(), prim, p.nullable, source)
            }
            SortTarget::Member(p, m) => {
                let prim = match m.ty {
                    EdmType::Primitive(pr) => Some(pr),
                    _ => None,
                };
                let member = match p.ty {
                    EdmType::Complex(c) => c.members.iter().position(|x| std::ptr::eq(x, m)),
                    _ => None,
                };
                let source = (
                    property_index(entity, p),
                    Some(member.unwrap_or(usize::MAX)),
                );
                (schema::member_column(p, m.name), prim, true, source)
            }
        };
        let ty = match prim {
            Some(Primitive::String) => KeyType::Text,
            Some(Primitive::Boolean) => KeyType::Bool,
            Some(Primitive::Double) => KeyType::Real,
            // DateTimeOffset ticks, and enums (prim None) by underlying value.
            _ => KeyType::Int,
        };
        out.push(KeyColumn {
            column,
            ty,
            nullable,
            descending: k.descending,
            source,
        });
        if let (SortTarget::Property(p), Some(key)) = (k.target, key_prop)
            && p.name == key.name
        {
            total = true;
            break;
        }
    }
    if !total && let Some(key) = key_prop {
        out.push(KeyColumn {
            column: schema::column(key).to_string(),
            ty: KeyType::Text,
            nullable: key.nullable,
            descending: false,
            source: (entity.key_index(), None),
        });
    }
    out
}

/// `ORDER BY` terms (without the keywords) for the total order of [`key_columns`]: strings by
/// code point, nulls first ascending and last descending, on both dialects.
pub fn compile_order_by(entity: &EntityType, keys: &[OrderKey], dialect: Dialect) -> String {
    let mut out = String::new();
    push_order_by(&mut out, entity, keys, dialect);
    out
}

/// Appends [`compile_order_by`]`(entity, keys, dialect)` to `out`.
fn push_order_by(out: &mut String, entity: &EntityType, keys: &[OrderKey], dialect: Dialect) {
    for (i, k) in key_columns(entity, keys).iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_qcol(out, entity.table, &k.column);
        if dialect == Dialect::Postgres && k.ty == KeyType::Text {
            out.push_str(" COLLATE \"C\"");
        }
        // Nulls first ascending, last descending (CONTRACT §4). A column that cannot be null
        // (the key) gets no NULLS clause: PostgreSQL then matches the ORDER BY to the primary
        // key's index order (ASC NULLS LAST) and walks it, where `ASC NULLS FIRST` made it sort
        // the tenant's every row for each page (0.3 s a page at 700,000 rows).
        out.push_str(match (k.descending, k.nullable) {
            (true, true) => " DESC NULLS LAST",
            (false, true) => " ASC NULLS FIRST",
            (true, false) => " DESC",
            (false, false) => " ASC",
        });
    }
}

/// The SQL of one list page and of the count of its whole filtered set, for any dialect.
#[derive(Debug, Clone)]
pub struct ListSql {
    pub page: String,
    pub page_params: Vec<SqlParam>,
    /// Empty (and `count_params` too) unless the spec asks for the count.
    pub count: String,
    pub count_params: Vec<SqlParam>,
}

/// `"table" WHERE tenant = <1> [AND (filter)]` and its parameters, appended to `sql`. The
/// compiled filter is a top-level conjunct, as [`compile_filter`] requires (NULL and FALSE both
/// mean "not selected").
fn push_tenant_where(
    sql: &mut String,
    entity: &EntityType,
    dialect: Dialect,
    tenant: &str,
    filter: Option<&TypedFilter>,
) -> Vec<SqlParam> {
    schema::push_quoted(sql, entity.table);
    sql.push_str(" WHERE ");
    schema::push_quoted(sql, schema::TENANT_COLUMN);
    sql.push_str(" = ");
    schema::push_placeholder(sql, dialect, 1);
    let mut params = vec![SqlParam::Text(tenant.to_string())];
    if let Some(f) = filter {
        let frag = compile_filter(f, dialect, 2);
        sql.push_str(" AND (");
        sql.push_str(&frag.sql);
        sql.push(')');
        params.extend(frag.params);
    }
    params
}

/// `SELECT COUNT(*)` of a tenant's rows that match the filter.
pub fn count_sql(
    entity: &EntityType,
    dialect: Dialect,
    tenant: &str,
    filter: Option<&TypedFilter>,
) -> (String, Vec<SqlParam>) {
    let mut sql = String::from("SELECT COUNT(*) FROM ");
    let params = push_tenant_where(&mut sql, entity, dialect, tenant, filter);
    (sql, params)
}

/// One page of a list: `select_list` columns of the rows after the keyset position, in the
/// total order, `spec.limit + 1` rows (the extra row tells whether more remain); and, when
/// `spec.count` asks for it, the count of the whole filtered set.
pub fn list_sql(
    entity: &EntityType,
    dialect: Dialect,
    select_list: &str,
    tenant: &str,
    spec: &crate::store::ListSpec,
) -> Result<ListSql, KeysetError> {
    // Assembled into one buffer: this runs for every list request.
    let mut page = String::with_capacity(select_list.len() + 256);
    page.push_str("SELECT ");
    page.push_str(select_list);
    page.push_str(" FROM ");
    let from = page.len();
    let mut params = push_tenant_where(&mut page, entity, dialect, tenant, spec.filter.as_ref());
    let (count, count_params) = if spec.count {
        (
            format!("SELECT COUNT(*) FROM {}", &page[from..]),
            params.clone(),
        )
    } else {
        (String::new(), Vec::new())
    };
    if let Some(after) = &spec.after {
        let frag = compile_keyset(entity, &spec.order_by, after, dialect, params.len() + 1)?;
        page.push_str(" AND (");
        page.push_str(&frag.sql);
        page.push(')');
        params.extend(frag.params);
    }
    let n = params.len();
    page.push_str(" ORDER BY ");
    push_order_by(&mut page, entity, &spec.order_by, dialect);
    page.push_str(" LIMIT ");
    schema::push_placeholder(&mut page, dialect, n + 1);
    page.push_str(" OFFSET ");
    schema::push_placeholder(&mut page, dialect, n + 2);
    params.push(SqlParam::Int(
        i64::try_from(spec.limit.saturating_add(1)).unwrap_or(i64::MAX),
    ));
    params.push(SqlParam::Int(i64::try_from(spec.skip).unwrap_or(i64::MAX)));
    Ok(ListSql {
        page,
        page_params: params,
        count,
        count_params,
    })
}

/// Why keyset values do not fit the order (a forged or stale `$skiptoken`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysetError(pub String);

/// Checks that keyset values fit the order of these keys (one value of the column's type per
/// [`key_columns`] entry, null only where the column is nullable); returns the columns.
/// Dialect-free, so the paging layer can refuse a bad `$skiptoken` before any store sees it.
pub fn check_keyset(
    entity: &EntityType,
    keys: &[OrderKey],
    last: &[SqlParam],
) -> Result<Vec<KeyColumn>, KeysetError> {
    let cols = key_columns(entity, keys);
    if cols.len() != last.len() {
        return Err(KeysetError(format!(
            "expected {} key values, got {}",
            cols.len(),
            last.len()
        )));
    }
    for (k, v) in cols.iter().zip(last) {
        let fits = matches!(
            (k.ty, v),
            (KeyType::Text, SqlParam::Text(_))
                | (KeyType::Int, SqlParam::Int(_))
                | (KeyType::Real, SqlParam::Real(_) | SqlParam::Int(_))
                | (KeyType::Bool, SqlParam::Bool(_))
        ) || (k.nullable && *v == SqlParam::Null);
        if !fits {
            return Err(KeysetError(format!(
                "the value for '{}' has the wrong type",
                k.column
            )));
        }
    }
    Ok(cols)
}

/// The condition "row comes after the row whose key values are `last`" in the total order of
/// [`key_columns`], expanded term by term so that NULLs are placed exactly as
/// [`compile_order_by`] places them (no row-value comparison, which NULLs would break).
/// `last` holds one value per key column, `SqlParam::Null` for a null value.
pub fn compile_keyset(
    entity: &EntityType,
    keys: &[OrderKey],
    last: &[SqlParam],
    dialect: Dialect,
    first_param: usize,
) -> Result<SqlFragment, KeysetError> {
    let cols = check_keyset(entity, keys, last)?;
    let col = |name: &str| qcol(entity.table, name);
    let mut c = Compiler {
        table: entity.table,
        dialect,
        first_param,
        params: Vec::new(),
    };
    let mut bound: Vec<Option<String>> = Vec::with_capacity(cols.len());
    for v in last {
        bound.push(if *v == SqlParam::Null {
            None
        } else {
            Some(c.bind(v.clone()))
        });
    }
    let mut terms = Vec::new();
    for (i, (k, v)) in cols.iter().zip(&bound).enumerate() {
        let name = col(&k.column);
        let ordered = if dialect == Dialect::Postgres && k.ty == KeyType::Text {
            format!("{name} COLLATE \"C\"")
        } else {
            name.clone()
        };
        let after = match (k.descending, v) {
            (false, None) => Some(format!("{name} IS NOT NULL")),
            (false, Some(p)) => Some(format!("{ordered} > {p}")),
            // Nulls sort last descending: nothing comes after a null.
            (true, None) => None,
            (true, Some(p)) if k.nullable => Some(format!("({ordered} < {p} OR {name} IS NULL)")),
            (true, Some(p)) => Some(format!("{ordered} < {p}")),
        };
        let Some(after) = after else { continue };
        let mut conj: Vec<String> = cols
            .iter()
            .zip(&bound)
            .take(i)
            .map(|(pk, pv)| match pv {
                None => format!("{} IS NULL", col(&pk.column)),
                Some(p) => format!("{} = {p}", col(&pk.column)),
            })
            .collect();
        conj.push(after);
        terms.push(format!("({})", conj.join(" AND ")));
    }
    let sql = if terms.is_empty() {
        "FALSE".to_string()
    } else {
        format!("({})", terms.join(" OR "))
    };
    Ok(SqlFragment {
        sql,
        params: c.params,
    })
}

#[cfg(test)]
mod tests {
    //! Executes the generated SQL: always on an in-memory SQLite database built from
    //! `schema::create_ddl`, and on the PostgreSQL at 127.0.0.1:5432 through `psql` when it is
    //! reachable (each run in its own schema), checking that both select the same rows.

    use super::*;
    use crate::model::edm::parse_datetime;
    use crate::store::schema::quote;

    const TABLE: &str = "cloud_app_security_profiles";

    fn profiles() -> &'static EntityType {
        crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap()
    }

    fn col(name: &str) -> String {
        qcol(TABLE, name)
    }
    use crate::odata::query::parse_list_query;
    use crate::odata::typecheck::parse_and_check;
    use rusqlite::types::Value;
    use std::process::Command;

    #[derive(Clone, Debug)]
    enum V {
        T(&'static str),
        I(i64),
        B(bool),
        J(&'static str),
    }

    type Row = (&'static str, Vec<(&'static str, V)>);

    fn ticks(s: &str) -> i64 {
        parse_datetime(s).unwrap()
    }

    fn filter_rows() -> Vec<Row> {
        use V::*;
        vec![
            (
                "r1",
                vec![
                    ("name", T("alpha")),
                    ("policyName", T("alpha")),
                    ("isSigned", B(true)),
                    ("permissionsRequired", I(4)),
                    ("tags", J(r#"["a","b"]"#)),
                    ("createdDateTime", I(ticks("2020-01-02T03:04:05.5Z"))),
                    ("vendorInformation", I(1)),
                    ("vendorInformation_provider", T("Microsoft")),
                    ("vendorInformation_vendor", T("MS")),
                    ("dynamic", J(r#"{"custom":"x","num":5,"flag":true}"#)),
                ],
            ),
            (
                "r2",
                vec![
                    ("name", T("Alpha")),
                    ("isSigned", B(false)),
                    ("permissionsRequired", I(3)),
                    ("tags", J("[]")),
                    ("createdDateTime", I(ticks("2019-12-31T23:59:59.9999999Z"))),
                    ("dynamic", J(r#"{"custom":5,"num":5.5,"flag":false}"#)),
                ],
            ),
            ("r3", vec![("dynamic", J(r#"{"custom":null}"#))]),
            (
                "r4",
                vec![
                    ("name", T("ünïcode ☃")),
                    ("isSigned", B(true)),
                    ("permissionsRequired", I(0)),
                    ("tags", J(r#"["x","ünï"]"#)),
                    ("createdDateTime", I(ticks("1969-12-31T23:59:59Z"))),
                    ("dynamic", J("{}")),
                ],
            ),
            (
                "r5",
                vec![
                    ("name", T("it's 100% _done_")),
                    ("isSigned", B(false)),
                    ("permissionsRequired", I(127)),
                    ("tags", J(r#"["it's"]"#)),
                    ("dynamic", J(r#"{"custom":"X"}"#)),
                ],
            ),
            (
                "r6",
                vec![
                    ("name", T("beta")),
                    ("policyName", T("beta")),
                    ("tags", J(r#"["a"]"#)),
                    ("vendorInformation", I(1)),
                    ("vendorInformation_vendor", T("V")),
                    ("dynamic", J(r#"{"custom":"xy"}"#)),
                ],
            ),
            (
                "r7",
                vec![
                    ("name", T("  Padded  ")),
                    ("tags", J(r#"["A","a"]"#)),
                    ("dynamic", J(r#"{"num":10}"#)),
                ],
            ),
        ]
    }

    /// The filter cases: (filter, selected ids).
    const CASES: &[(&str, &str)] = &[
        ("name eq 'alpha'", "r1"),
        ("name eq null", "r3"),
        ("null eq name", "r3"),
        ("name ne 'alpha'", "r2 r3 r4 r5 r6 r7"),
        ("name ne null", "r1 r2 r4 r5 r6 r7"),
        ("name gt 'a'", "r1 r4 r5 r6"),
        // Relational with a null operand is FALSE, so its negation is TRUE for r3.
        ("not (name gt 'a')", "r2 r3 r7"),
        ("name lt 'a'", "r2 r7"),
        ("name gt null", ""),
        ("not (name gt null)", "r1 r2 r3 r4 r5 r6 r7"),
        ("name eq policyName", "r1 r3 r6"),
        ("name ne policyName", "r2 r4 r5 r7"),
        ("name eq 'ALPHA'", ""),
        ("isSigned", "r1 r4"),
        ("not isSigned", "r2 r5"),
        ("isSigned eq false", "r2 r5"),
        ("isSigned ne true", "r2 r3 r5 r6 r7"),
        ("isSigned eq null", "r3 r6 r7"),
        ("isSigned gt false", "r1 r4"),
        ("permissionsRequired eq 'administrator'", "r1"),
        ("permissionsRequired gt 'user'", "r1 r5"),
        (
            "permissionsRequired in ('user', 'unknown', null)",
            "r2 r3 r4 r6 r7",
        ),
        (
            "permissionsRequired le microsoft.graph.applicationPermissionsRequired'guest'",
            "r4",
        ),
        ("not (permissionsRequired in ('user'))", "r1 r3 r4 r5 r6 r7"),
        ("startswith(name, 'al')", "r1"),
        ("startswith(name, '')", "r1 r2 r4 r5 r6 r7"),
        ("not startswith(name, 'al')", "r2 r4 r5 r6 r7"),
        ("startswith(name, 'al') eq null", "r3"),
        ("startswith(name, 'al') ne true", "r2 r3 r4 r5 r6 r7"),
        ("contains(name, '%')", "r5"),
        ("contains(name, '_d')", "r5"),
        ("startswith(name, '_')", ""),
        ("contains(name, 'a_')", ""),
        ("endswith(name, 'e_')", "r5"),
        ("endswith(name, '☃')", "r4"),
        ("endswith(name, 'a')", "r1 r2 r6"),
        ("endswith(name, 'zzzzzzzzzzzzzzzzzzzzalpha')", ""),
        ("endswith(name, '')", "r1 r2 r4 r5 r6 r7"),
        ("tolower(name) eq 'alpha'", "r1 r2"),
        ("toupper(name) eq 'ÜNÏCODE ☃'", ""),
        ("toupper(name) eq 'üNïCODE ☃'", "r4"),
        ("tolower('ÀB') eq 'Àb'", "r1 r2 r3 r4 r5 r6 r7"),
        ("length(name) eq 9", "r4"),
        ("length(name) gt 9223372036854775807", ""),
        ("trim(name) eq 'Padded'", "r7"),
        ("indexof(name, 'ph') eq 2", "r1 r2"),
        ("indexof(name, 'zz') eq -1", "r1 r2 r4 r5 r6 r7"),
        ("indexof(name, 'c') eq 3", "r4"),
        ("substring(name, 1) eq 'lpha'", "r1 r2"),
        ("substring(name, 1, 2) eq 'nï'", "r4"),
        ("substring(name, -5, 2) eq 'al'", "r1"),
        ("substring(name, 100) eq ''", "r1 r2 r4 r5 r6 r7"),
        ("substring(name, 0, -1) eq ''", "r1 r2 r4 r5 r6 r7"),
        (
            "substring(name, 9223372036854775807) eq ''",
            "r1 r2 r4 r5 r6 r7",
        ),
        ("substring(name, indexof(policyName, 'l')) eq 'lpha'", "r1"),
        (
            "substring(name, indexof(policyName, 'l')) eq null",
            "r2 r3 r4 r5 r7",
        ),
        ("concat(name, policyName) eq 'alphaalpha'", "r1"),
        ("concat(name, null) eq null", "r1 r2 r3 r4 r5 r6 r7"),
        ("year(createdDateTime) eq 2020", "r1"),
        ("year(createdDateTime) eq 2019", "r2"),
        ("year(createdDateTime) eq 1969", "r4"),
        (
            "month(createdDateTime) eq 12 and day(createdDateTime) eq 31",
            "r2 r4",
        ),
        (
            "hour(createdDateTime) eq 23 and minute(createdDateTime) eq 59 and second(createdDateTime) eq 59",
            "r2 r4",
        ),
        (
            "hour(createdDateTime) eq 3 and minute(createdDateTime) eq 4 and second(createdDateTime) eq 5",
            "r1",
        ),
        ("date(createdDateTime) eq 2019-12-31", "r2"),
        ("date(createdDateTime) eq 1969-12-31", "r4"),
        ("date(createdDateTime) lt 1970-01-01", "r4"),
        (
            "year(date(createdDateTime)) eq 2020 and day(date(createdDateTime)) eq 2",
            "r1",
        ),
        ("createdDateTime gt 2020-01-02T03:04:05Z", "r1"),
        ("createdDateTime ge 2020-01-02T06:04:05.5+03:00", "r1"),
        ("createdDateTime lt 1970-01-01T00:00:00Z", "r4"),
        ("createdDateTime eq null", "r3 r5 r6 r7"),
        ("tags/any(t: t eq 'a')", "r1 r6 r7"),
        ("tags/any()", "r1 r4 r5 r6 r7"),
        ("not tags/any()", "r2"),
        ("tags/all(t: t eq 'a')", "r2 r6"),
        ("not tags/all(t: t eq 'a')", "r1 r4 r5 r7"),
        ("not tags/any(t: t eq 'a')", "r2 r4 r5"),
        ("tags/any(t: startswith(name, t))", "r1 r4 r5"),
        ("tags/any(t: contains(t, 'ï'))", "r4"),
        ("tags/any(t: t gt 'a')", "r1 r4 r5"),
        ("tags/any(t: t eq 'it''s')", "r5"),
        (
            "tags/any(t: tags/any(u: u ne t and tolower(u) eq tolower(t)))",
            "r7",
        ),
        // Three-valued lambdas: a null body makes `any` null unless some element is true.
        ("not tags/any(t: startswith(t, policyName))", "r1 r2 r6"),
        ("not tags/all(t: startswith(t, policyName))", "r1 r6"),
        (
            "tags/any(t: startswith(t, policyName)) eq null",
            "r3 r4 r5 r7",
        ),
        ("vendorInformation/provider eq 'Microsoft'", "r1"),
        ("vendorInformation/provider eq null", "r2 r3 r4 r5 r6 r7"),
        ("vendorInformation eq null", "r2 r3 r4 r5 r7"),
        (
            "vendorInformation ne null and vendorInformation/provider eq null",
            "r6",
        ),
        ("custom eq 'x'", "r1"),
        ("custom eq 5", "r2"),
        ("custom eq null", "r3 r4 r7"),
        ("custom ne null", "r1 r2 r5 r6"),
        ("custom ne 'x'", "r2 r3 r4 r5 r6 r7"),
        ("custom gt 'x'", "r6"),
        ("not (custom gt 'a')", "r2 r3 r4 r5 r7"),
        ("num gt 5", "r2 r7"),
        ("num eq 5", "r1"),
        ("num lt 5.6", "r1 r2"),
        ("flag eq true", "r1"),
        ("flag", "r1"),
        ("not flag", "r2"),
        ("startswith(custom, 'x')", "r1 r6"),
        ("custom in ('X', 5)", "r2 r5"),
        ("custom eq 'X' or custom eq null", "r3 r4 r5 r7"),
        ("null eq null", "r1 r2 r3 r4 r5 r6 r7"),
        ("true", "r1 r2 r3 r4 r5 r6 r7"),
        ("false", ""),
        ("null", ""),
        ("not null", ""),
        ("'a' eq 'a'", "r1 r2 r3 r4 r5 r6 r7"),
        ("id eq 'r1' or id in ('r2', 'r9')", "r1 r2"),
        ("(name eq policyName) eq true", "r1 r3 r6"),
        ("(name gt 'a') eq false", "r2 r3 r7"),
        ("name eq 'it''s 100% _done_'", "r5"),
        ("name eq ''' OR 1=1 --'", ""),
        ("name in ('alpha', 'beta')", "r1 r6"),
        ("name in ('alpha', null)", "r1 r3"),
        ("not (name in ('alpha'))", "r2 r3 r4 r5 r6 r7"),
        ("not (name in ('alpha', null))", "r2 r4 r5 r6 r7"),
        ("isSigned eq true or not (name ne null)", "r1 r3 r4"),
        ("not (isSigned or name eq 'beta')", "r2 r5"),
    ];

    const TENANT: &str = "t1";

    fn sqlite_db(rows: &[Row]) -> rusqlite::Connection {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for stmt in schema::create_ddl(profiles(), Dialect::Sqlite) {
            db.execute(&stmt, []).unwrap();
        }
        for (id, cols) in rows {
            let mut names = vec!["tenant", "id", "version"];
            let mut values = vec![
                Value::Text(TENANT.into()),
                Value::Text((*id).into()),
                Value::Integer(1),
            ];
            for (c, v) in cols {
                names.push(c);
                values.push(match v {
                    V::T(s) | V::J(s) => Value::Text((*s).into()),
                    V::I(i) => Value::Integer(*i),
                    V::B(b) => Value::Integer(i64::from(*b)),
                });
            }
            if !names.contains(&"dynamic") {
                names.push("dynamic");
                values.push(Value::Text("{}".into()));
            }
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(TABLE),
                names
                    .iter()
                    .map(|n| quote(n))
                    .collect::<Vec<_>>()
                    .join(", "),
                (1..=names.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            db.execute(&sql, rusqlite::params_from_iter(values))
                .unwrap();
        }
        db
    }

    fn to_value(p: &SqlParam) -> Value {
        match p {
            SqlParam::Null => Value::Null,
            SqlParam::Int(i) => Value::Integer(*i),
            SqlParam::Real(r) => Value::Real(*r),
            SqlParam::Text(s) => Value::Text(s.clone()),
            SqlParam::Bool(b) => Value::Integer(i64::from(*b)),
        }
    }

    /// Runs `SELECT <cols> ... WHERE tenant = ?1 AND <where> ORDER BY <order>` on SQLite.
    fn sqlite_select(
        db: &rusqlite::Connection,
        cols: &[String],
        frag: &SqlFragment,
        order: &str,
        limit: Option<usize>,
    ) -> Vec<Vec<Value>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ?1 AND {} ORDER BY {order}{}",
            cols.iter().map(|c| col(c)).collect::<Vec<_>>().join(", "),
            quote(TABLE),
            quote(schema::TENANT_COLUMN),
            frag.sql,
            limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default()
        );
        let mut params = vec![Value::Text(TENANT.into())];
        params.extend(frag.params.iter().map(to_value));
        let mut stmt = db.prepare(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                (0..cols.len()).map(|i| r.get::<_, Value>(i)).collect()
            })
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows.map(|r| r.unwrap()).collect()
    }

    fn id_list(rows: &[Vec<Value>]) -> String {
        rows.iter()
            .map(|r| match r.first() {
                Some(Value::Text(s)) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn compile(src: &str, dialect: Dialect) -> SqlFragment {
        let typed =
            parse_and_check(profiles(), src).unwrap_or_else(|e| panic!("{src}: {}", e.message));
        compile_filter(&typed, dialect, 2)
    }

    #[test]
    fn filters_select_the_right_rows_on_sqlite() {
        let db = sqlite_db(&filter_rows());
        let mut failures = Vec::new();
        for (src, want) in CASES {
            let frag = compile(src, Dialect::Sqlite);
            let got = id_list(&sqlite_select(&db, &["id".into()], &frag, &col("id"), None));
            if got != *want {
                failures.push(format!(
                    "{src}\n   want [{want}]\n   got  [{got}]\n   sql  {}",
                    frag.sql
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Names around the code points where "the next string after a prefix" is subtle.
    fn prefix_rows() -> Vec<Row> {
        [
            ("p01", "a"),
            ("p02", "ab"),
            ("p03", "a\u{7f}"),
            ("p04", "a\u{80}"),
            ("p05", "aé"),
            ("p06", "b"),
            ("p07", "a\u{10FFFF}x"),
            ("p08", "\u{10FFFF}"),
            ("p09", "a\u{D7FF}z"),
            ("p10", "a\u{E000}"),
            ("p11", "A"),
            ("p12", "\u{10FFFF}\u{10FFFF}q"),
        ]
        .into_iter()
        .map(|(id, name)| (id, vec![("name", V::T(name))]))
        .chain(std::iter::once(("p13", vec![])))
        .collect()
    }

    const PREFIXES: &[&str] = &[
        "a",
        "ab",
        "a\u{7f}",
        "aé",
        "a\u{D7FF}",
        "\u{10FFFF}",
        "a\u{10FFFF}",
        "\u{10FFFF}\u{10FFFF}",
        "zz",
    ];

    fn prefix_expected(prefix: &str, negate: bool) -> String {
        prefix_rows()
            .iter()
            .filter(|(_, cols)| match cols.first() {
                Some((_, V::T(name))) => name.starts_with(prefix) != negate,
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn prefix_upper_bounds_follow_code_point_order() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn startswith_uses_a_range_the_index_can_serve_and_selects_exactly_the_same_rows() {
        let db = sqlite_db(&prefix_rows());
        let pg = Pg::connect("prefix");
        if let Some(pg) = &pg {
            pg.load(&prefix_rows());
        } else {
            eprintln!("PostgreSQL not reachable through psql: the PostgreSQL half is skipped");
        }
        let mut failures = Vec::new();
        for prefix in PREFIXES {
            let lit = prefix.replace('\'', "''");
            for (src, negate) in [
                (format!("startswith(name, '{lit}')"), false),
                (format!("not startswith(name, '{lit}')"), true),
                (
                    format!("startswith(name, '{lit}') and name ne 'zzz'"),
                    false,
                ),
            ] {
                let want = prefix_expected(prefix, negate);
                let frag = compile(&src, Dialect::Sqlite);
                if !negate {
                    assert!(frag.sql.contains(">="), "{src}: no range in {}", frag.sql);
                }
                let got = id_list(&sqlite_select(&db, &["id".into()], &frag, &col("id"), None));
                if got != want {
                    failures.push(format!(
                        "sqlite {src:?}: want [{want}] got [{got}] sql {}",
                        frag.sql
                    ));
                }
                if let Some(pg) = &pg {
                    let frag = compile(&src, Dialect::Postgres);
                    match pg_ids(pg, &frag) {
                        Ok(got) if got == want => {}
                        Ok(got) => {
                            failures.push(format!("postgres {src:?}: want [{want}] got [{got}]"))
                        }
                        Err(e) => failures.push(format!("postgres {src:?}: {e}")),
                    }
                }
            }
        }
        if let Some(pg) = pg {
            pg.drop();
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    // ---- PostgreSQL through psql -------------------------------------------------------------

    struct Pg {
        schema: String,
    }

    fn pg_literal(p: &SqlParam) -> String {
        match p {
            SqlParam::Null => "NULL".into(),
            SqlParam::Int(i) => i.to_string(),
            SqlParam::Real(r) => format!("{r:?}"),
            SqlParam::Text(s) => format!("'{}'", s.replace('\'', "''")),
            SqlParam::Bool(b) => b.to_string(),
        }
    }

    impl Pg {
        /// None when no PostgreSQL is reachable (the test then checks SQLite only).
        fn connect(tag: &str) -> Option<Pg> {
            let pg = Pg {
                schema: format!("graphsec_odata_{tag}_{}", std::process::id()),
            };
            pg.run(&format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0};",
                pg.schema
            ))
            .ok()?;
            Some(pg)
        }

        fn run(&self, script: &str) -> Result<String, String> {
            let out = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-X",
                    "-q",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                ])
                .args(["-F", "\u{1f}", "-P", "null=<NULL>"])
                .args([
                    "-c",
                    &format!("SET search_path TO {}; {script}", self.schema),
                ])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }

        fn load(&self, rows: &[Row]) {
            let mut script = schema::create_ddl(profiles(), Dialect::Postgres).join(";\n") + ";\n";
            for (id, cols) in rows {
                let mut names = vec!["tenant".to_string(), "id".into(), "version".into()];
                let mut values = vec![format!("'{TENANT}'"), format!("'{id}'"), "1".into()];
                for (c, v) in cols {
                    names.push((*c).into());
                    values.push(match v {
                        V::T(s) => pg_literal(&SqlParam::Text((*s).into())),
                        V::J(s) => format!("{}::jsonb", pg_literal(&SqlParam::Text((*s).into()))),
                        V::I(i) => i.to_string(),
                        V::B(b) => b.to_string(),
                    });
                }
                if !names.iter().any(|n| n == "dynamic") {
                    names.push("dynamic".into());
                    values.push("'{}'::jsonb".into());
                }
                script.push_str(&format!(
                    "INSERT INTO {} ({}) VALUES ({});\n",
                    quote(TABLE),
                    names
                        .iter()
                        .map(|n| quote(n))
                        .collect::<Vec<_>>()
                        .join(", "),
                    values.join(", ")
                ));
            }
            self.run(&script).unwrap();
        }

        /// PREPAREs the query (so the `$N::type` placeholders are typed by PostgreSQL itself)
        /// and EXECUTEs it with the parameters as literals. Values come back as text.
        fn select(
            &self,
            cols: &[String],
            frag: &SqlFragment,
            order: &str,
            limit: Option<usize>,
        ) -> Result<Vec<Vec<Option<String>>>, String> {
            let sql = format!(
                "SELECT {} FROM {} WHERE {} = $1::text AND {} ORDER BY {order}{}",
                cols.iter().map(|c| col(c)).collect::<Vec<_>>().join(", "),
                quote(TABLE),
                quote(schema::TENANT_COLUMN),
                frag.sql,
                limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default()
            );
            let mut args = vec![pg_literal(&SqlParam::Text(TENANT.into()))];
            args.extend(frag.params.iter().map(pg_literal));
            let out = self
                .run(&format!(
                    "PREPARE q AS {sql};\nEXECUTE q({});",
                    args.join(", ")
                ))
                .map_err(|e| format!("{e}\n{sql}"))?;
            Ok(out
                .lines()
                .map(|l| {
                    l.split('\u{1f}')
                        .map(|v| {
                            if v == "<NULL>" {
                                None
                            } else {
                                Some(v.to_string())
                            }
                        })
                        .collect()
                })
                .collect())
        }

        fn drop(&self) {
            let _ = self.run(&format!("DROP SCHEMA IF EXISTS {} CASCADE;", self.schema));
        }
    }

    /// The ids a filter selects on PostgreSQL, in id order, space-separated.
    fn pg_ids(pg: &Pg, frag: &SqlFragment) -> Result<String, String> {
        let rows = pg.select(&["id".into()], frag, &col("id"), None)?;
        Ok(rows
            .iter()
            .map(|r| r.first().cloned().flatten().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" "))
    }

    #[test]
    fn filters_select_the_same_rows_on_postgres() {
        let Some(pg) = Pg::connect("filter") else {
            eprintln!("PostgreSQL not reachable through psql: skipped");
            return;
        };
        pg.load(&filter_rows());
        let mut failures = Vec::new();
        for (src, want) in CASES {
            let frag = compile(src, Dialect::Postgres);
            match pg_ids(&pg, &frag) {
                Ok(got) if got == *want => {}
                Ok(got) => failures.push(format!(
                    "{src}\n   want [{want}]\n   got  [{got}]\n   sql  {}",
                    frag.sql
                )),
                Err(e) => failures.push(format!("{src}: {e}")),
            }
        }
        pg.drop();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    // ---- ORDER BY and keyset paging -----------------------------------------------------------

    /// Deterministic rows with many ties and nulls in every sortable kind of column.
    fn order_rows() -> Vec<Row> {
        use V::*;
        const IDS: [&str; 30] = [
            "o00", "o01", "o02", "o03", "o04", "o05", "o06", "o07", "o08", "o09", "o10", "o11",
            "o12", "o13", "o14", "o15", "o16", "o17", "o18", "o19", "o20", "o21", "o22", "o23",
            "o24", "o25", "o26", "o27", "o28", "o29",
        ];
        let names = [
            None,
            Some("b"),
            Some("B"),
            Some("a"),
            Some("ä"),
            Some("a b"),
            Some(""),
        ];
        let signed = [None, Some(true), Some(false)];
        let perms = [None, Some(0), Some(3), Some(127)];
        let created = [None, Some(-5), Some(0), Some(7)];
        let providers = [None, Some("x"), Some("Y")];
        IDS.iter()
            .enumerate()
            .map(|(i, id)| {
                let mut cols = Vec::new();
                if let Some(n) = names[(i * 7 + 3) % names.len()] {
                    cols.push(("name", T(n)));
                }
                if let Some(b) = signed[(i * 5 + 1) % signed.len()] {
                    cols.push(("isSigned", B(b)));
                }
                if let Some(p) = perms[(i * 3) % perms.len()] {
                    cols.push(("permissionsRequired", I(p)));
                }
                if let Some(c) = created[(i * 11 + 2) % created.len()] {
                    cols.push(("createdDateTime", I(c)));
                }
                if let Some(p) = providers[(i / 2) % providers.len()] {
                    cols.push(("vendorInformation", I(1)));
                    cols.push(("vendorInformation_provider", T(p)));
                }
                (*id, cols)
            })
            .collect()
    }

    const ORDERS: &[&str] = &[
        "",
        "name",
        "name desc",
        "isSigned desc, name asc",
        "permissionsRequired asc, createdDateTime desc",
        "vendorInformation/provider desc, isSigned",
        "id desc",
        "name, id desc, isSigned",
    ];

    fn order_keys(orderby: &str) -> Vec<OrderKey> {
        if orderby.is_empty() {
            return Vec::new();
        }
        parse_list_query(profiles(), &[("$orderby".into(), orderby.into())])
            .unwrap()
            .order_by
    }

    /// The expected order, computed in Rust from the rows: nulls first ascending, last
    /// descending; strings by code point; then id.
    fn expected_order(rows: &[Row], keys: &[KeyColumn]) -> Vec<String> {
        let value = |row: &Row, column: &str| -> Option<V> {
            if column == "id" {
                return Some(V::T(row.0));
            }
            row.1
                .iter()
                .find(|(c, _)| *c == column)
                .map(|(_, v)| v.clone())
        };
        let cmp = |a: &Option<V>, b: &Option<V>| -> std::cmp::Ordering {
            match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(V::T(x)), Some(V::T(y))) => x.cmp(y),
                (Some(V::I(x)), Some(V::I(y))) => x.cmp(y),
                (Some(V::B(x)), Some(V::B(y))) => x.cmp(y),
                _ => panic!("mixed types"),
            }
        };
        let mut sorted: Vec<&Row> = rows.iter().collect();
        sorted.sort_by(|a, b| {
            for k in keys {
                let o = cmp(&value(a, &k.column), &value(b, &k.column));
                let o = if k.descending { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        sorted.iter().map(|r| r.0.to_string()).collect()
    }

    fn param_of(ty: KeyType, text: Option<&str>) -> SqlParam {
        match (ty, text) {
            (_, None) => SqlParam::Null,
            (KeyType::Text, Some(s)) => SqlParam::Text(s.into()),
            (KeyType::Int, Some(s)) => SqlParam::Int(s.parse().unwrap()),
            (KeyType::Real, Some(s)) => SqlParam::Real(s.parse().unwrap()),
            (KeyType::Bool, Some(s)) => SqlParam::Bool(s == "t" || s == "1"),
        }
    }

    fn sqlite_text(v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::Integer(i) => Some(i.to_string()),
            Value::Text(s) => Some(s.clone()),
            other => panic!("{other:?}"),
        }
    }

    /// Pages through the table with the keyset predicate, `page` rows at a time.
    fn page_through(
        keys: &[OrderKey],
        dialect: Dialect,
        page: usize,
        mut fetch: impl FnMut(&[String], &SqlFragment, &str, usize) -> Vec<Vec<Option<String>>>,
    ) -> Vec<String> {
        let cols = key_columns(profiles(), keys);
        let mut select: Vec<String> = vec!["id".into()];
        select.extend(cols.iter().map(|k| k.column.clone()));
        let order = compile_order_by(profiles(), keys, dialect);
        let mut seen = Vec::new();
        let mut frag = SqlFragment {
            sql: "TRUE".into(),
            params: Vec::new(),
        };
        for _ in 0..100 {
            let rows = fetch(&select, &frag, &order, page);
            for r in &rows {
                seen.push(r.first().cloned().flatten().unwrap_or_default());
            }
            let Some(last) = rows.last() else { break };
            let values: Vec<SqlParam> = cols
                .iter()
                .enumerate()
                .map(|(i, k)| param_of(k.ty, last.get(i + 1).cloned().flatten().as_deref()))
                .collect();
            frag = compile_keyset(profiles(), keys, &values, dialect, 2).unwrap();
        }
        seen
    }

    #[test]
    fn order_by_and_keyset_paging_on_sqlite() {
        let rows = order_rows();
        let db = sqlite_db(&rows);
        for orderby in ORDERS {
            let keys = order_keys(orderby);
            let want = expected_order(&rows, &key_columns(profiles(), &keys));
            let order = compile_order_by(profiles(), &keys, Dialect::Sqlite);
            let all = SqlFragment {
                sql: "TRUE".into(),
                params: Vec::new(),
            };
            let got: Vec<String> = sqlite_select(&db, &["id".into()], &all, &order, None)
                .iter()
                .filter_map(|r| sqlite_text(&r[0]))
                .collect();
            assert_eq!(got, want, "ORDER BY for {orderby:?}: {order}");
            for page in [1, 4, 7] {
                let paged =
                    page_through(&keys, Dialect::Sqlite, page, |cols, frag, order, limit| {
                        sqlite_select(&db, cols, frag, order, Some(limit))
                            .iter()
                            .map(|r| r.iter().map(sqlite_text).collect())
                            .collect()
                    });
                assert_eq!(paged, want, "keyset paging by {page} for {orderby:?}");
            }
        }
    }

    #[test]
    fn order_by_and_keyset_paging_on_postgres() {
        let Some(pg) = Pg::connect("order") else {
            eprintln!("PostgreSQL not reachable through psql: skipped");
            return;
        };
        let rows = order_rows();
        pg.load(&rows);
        for orderby in ORDERS {
            let keys = order_keys(orderby);
            let want = expected_order(&rows, &key_columns(profiles(), &keys));
            let paged = page_through(&keys, Dialect::Postgres, 7, |cols, frag, order, limit| {
                pg.select(cols, frag, order, Some(limit)).unwrap()
            });
            assert_eq!(paged, want, "keyset paging on PostgreSQL for {orderby:?}");
        }
        pg.drop();
    }

    #[test]
    fn keyset_rejects_values_that_do_not_fit() {
        let keys = order_keys("name, isSigned desc");
        let ok = [
            SqlParam::Null,
            SqlParam::Bool(true),
            SqlParam::Text("id".into()),
        ];
        assert!(compile_keyset(profiles(), &keys, &ok, Dialect::Sqlite, 1).is_ok());
        let bad_len = [SqlParam::Null];
        assert!(compile_keyset(profiles(), &keys, &bad_len, Dialect::Sqlite, 1).is_err());
        let bad_type = [
            SqlParam::Int(1),
            SqlParam::Bool(true),
            SqlParam::Text("id".into()),
        ];
        assert!(compile_keyset(profiles(), &keys, &bad_type, Dialect::Sqlite, 1).is_err());
        let null_id = [SqlParam::Null, SqlParam::Bool(true), SqlParam::Null];
        assert!(compile_keyset(profiles(), &keys, &null_id, Dialect::Sqlite, 1).is_err());
    }

    #[test]
    fn postgres_sql_snapshots() {
        let frag = compile(
            "name gt 'a' and not (isSigned eq true) or tags/any(t: t eq 'x')",
            Dialect::Postgres,
        );
        assert_eq!(
            frag.sql,
            "((((\"cloud_app_security_profiles\".\"name\") COLLATE \"C\" > $2::text) AND (NOT COALESCE((\"cloud_app_security_profiles\".\"isSigned\" = $3::boolean), FALSE))) OR (EXISTS (SELECT 1 FROM jsonb_array_elements_text(\"cloud_app_security_profiles\".\"tags\") AS _l0(value) WHERE (_l0.value = $4::text))))"
        );
        assert_eq!(
            frag.params,
            vec![
                SqlParam::Text("a".into()),
                SqlParam::Bool(true),
                SqlParam::Text("x".into())
            ]
        );
        let frag = compile("name eq policyName and custom eq 5", Dialect::Postgres);
        assert_eq!(
            frag.sql,
            "((\"cloud_app_security_profiles\".\"name\" IS NOT DISTINCT FROM \"cloud_app_security_profiles\".\"policyName\") AND (CASE WHEN jsonb_typeof(\"cloud_app_security_profiles\".\"dynamic\" -> $2::text) = 'number' THEN (\"cloud_app_security_profiles\".\"dynamic\" -> $2::text)::numeric = $3::bigint ELSE FALSE END))"
        );
        let keys = order_keys("name desc, permissionsRequired");
        assert_eq!(
            compile_order_by(profiles(), &keys, Dialect::Postgres),
            "\"cloud_app_security_profiles\".\"name\" COLLATE \"C\" DESC NULLS LAST, \"cloud_app_security_profiles\".\"permissionsRequired\" ASC NULLS FIRST, \"cloud_app_security_profiles\".\"id\" COLLATE \"C\" ASC"
        );
        let ks = compile_keyset(
            profiles(),
            &keys,
            &[
                SqlParam::Text("n".into()),
                SqlParam::Null,
                SqlParam::Text("i".into()),
            ],
            Dialect::Postgres,
            5,
        )
        .unwrap();
        assert_eq!(
            ks.sql,
            "(((\"cloud_app_security_profiles\".\"name\" COLLATE \"C\" < $5::text OR \"cloud_app_security_profiles\".\"name\" IS NULL)) OR (\"cloud_app_security_profiles\".\"name\" = $5::text AND \"cloud_app_security_profiles\".\"permissionsRequired\" IS NOT NULL) OR (\"cloud_app_security_profiles\".\"name\" = $5::text AND \"cloud_app_security_profiles\".\"permissionsRequired\" IS NULL AND \"cloud_app_security_profiles\".\"id\" COLLATE \"C\" > $6::text))"
        );
    }

    #[test]
    fn sqlite_uses_numbered_placeholders_from_first_param() {
        let typed = parse_and_check(profiles(), "endswith(name, 'x') and custom eq 'y'").unwrap();
        let frag = compile_filter(&typed, Dialect::Sqlite, 3);
        assert!(
            frag.sql.contains("?3") && frag.sql.contains("?4") && frag.sql.contains("?5"),
            "{}",
            frag.sql
        );
        assert!(!frag.sql.contains("?6") && !frag.sql.contains("?2"));
        assert_eq!(frag.params.len(), 3);
        assert!(!frag.sql.contains("LIKE"));
    }

    // ---- The family's Edm surface: JSON-stored values, numbers, enums ------------------------

    fn set(name: &str) -> &'static EntityType {
        crate::model::catalog().set(name).unwrap()
    }

    /// A row of `entity`: column -> value in the storage form (a JSON column's value is its
    /// JSON document; a scalar column's value is a JSON string, number or bool).
    type FamilyRow = (&'static str, serde_json::Value);

    fn is_json_column(entity: &EntityType, column: &str) -> bool {
        entity
            .property(column)
            .is_some_and(|p| schema::storage_of(p) == schema::Storage::Json)
    }

    fn family_sqlite(entity: &'static EntityType, rows: &[FamilyRow]) -> rusqlite::Connection {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for stmt in schema::create_ddl(entity, Dialect::Sqlite) {
            db.execute(&stmt, []).unwrap();
        }
        for (id, cols) in rows {
            let mut names = vec![
                "tenant".to_string(),
                "id".into(),
                "version".into(),
                "dynamic".into(),
            ];
            let mut values = vec![
                Value::Text(TENANT.into()),
                Value::Text((*id).into()),
                Value::Integer(1),
                Value::Text("{}".into()),
            ];
            for (c, v) in cols.as_object().unwrap() {
                names.push(c.clone());
                values.push(match v {
                    _ if is_json_column(entity, c) && !v.is_null() => Value::Text(v.to_string()),
                    serde_json::Value::String(s) => Value::Text(s.clone()),
                    serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
                    serde_json::Value::Number(n) if n.is_i64() => {
                        Value::Integer(n.as_i64().unwrap())
                    }
                    serde_json::Value::Number(n) => Value::Real(n.as_f64().unwrap()),
                    _ => Value::Null,
                });
            }
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(entity.table),
                names
                    .iter()
                    .map(|n| quote(n))
                    .collect::<Vec<_>>()
                    .join(", "),
                (1..=names.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            db.execute(&sql, rusqlite::params_from_iter(values))
                .unwrap();
        }
        db
    }

    fn family_pg_load(pg: &Pg, entity: &'static EntityType, rows: &[FamilyRow]) {
        let mut script = schema::create_ddl(entity, Dialect::Postgres).join(";\n") + ";\n";
        for (id, cols) in rows {
            let mut names = vec![
                "tenant".to_string(),
                "id".into(),
                "version".into(),
                "dynamic".into(),
            ];
            let mut values = vec![
                format!("'{TENANT}'"),
                format!("'{id}'"),
                "1".into(),
                "'{}'::jsonb".into(),
            ];
            for (c, v) in cols.as_object().unwrap() {
                names.push(c.clone());
                values.push(match v {
                    _ if is_json_column(entity, c) && !v.is_null() => {
                        format!("{}::jsonb", pg_literal(&SqlParam::Text(v.to_string())))
                    }
                    serde_json::Value::String(s) => pg_literal(&SqlParam::Text(s.clone())),
                    serde_json::Value::Null => "NULL".into(),
                    other => other.to_string(),
                });
            }
            script.push_str(&format!(
                "INSERT INTO {} ({}) VALUES ({});\n",
                quote(entity.table),
                names
                    .iter()
                    .map(|n| quote(n))
                    .collect::<Vec<_>>()
                    .join(", "),
                values.join(", ")
            ));
        }
        pg.run(&script).unwrap();
    }

    /// Runs every case on SQLite and (when reachable) PostgreSQL; returns the failures.
    fn family_cases(
        tag: &str,
        entity: &'static EntityType,
        rows: &[FamilyRow],
        cases: &[(&str, &str)],
    ) -> Vec<String> {
        let db = family_sqlite(entity, rows);
        let pg = Pg::connect(tag);
        if let Some(pg) = &pg {
            family_pg_load(pg, entity, rows);
        }
        let id = qcol(entity.table, "id");
        let mut failures = Vec::new();
        for (src, want) in cases {
            let typed = match parse_and_check(entity, src) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{src:?}: {}", e.message));
                    continue;
                }
            };
            let frag = compile_filter(&typed, Dialect::Sqlite, 2);
            let sql = format!(
                "SELECT {id} FROM {} WHERE {} = ?1 AND {} ORDER BY {id}",
                quote(entity.table),
                quote(schema::TENANT_COLUMN),
                frag.sql
            );
            let mut params = vec![Value::Text(TENANT.into())];
            params.extend(frag.params.iter().map(to_value));
            let got = db
                .prepare(&sql)
                .and_then(|mut st| {
                    st.query_map(rusqlite::params_from_iter(params), |r| {
                        r.get::<_, String>(0)
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map(|v| v.join(" "));
            match got {
                Ok(got) if got == *want => {}
                Ok(got) => failures.push(format!(
                    "sqlite {src:?}: want [{want}] got [{got}] sql {}",
                    frag.sql
                )),
                Err(e) => failures.push(format!("sqlite {src:?}: {e} sql {}", frag.sql)),
            }
            if let Some(pg) = &pg {
                let frag = compile_filter(&typed, Dialect::Postgres, 2);
                let sql = format!(
                    "SELECT {id} FROM {} WHERE {} = $1::text AND {} ORDER BY {id}",
                    quote(entity.table),
                    quote(schema::TENANT_COLUMN),
                    frag.sql
                );
                let mut args = vec![pg_literal(&SqlParam::Text(TENANT.into()))];
                args.extend(frag.params.iter().map(pg_literal));
                let got = pg
                    .run(&format!(
                        "PREPARE q AS {sql};\nEXECUTE q({});",
                        args.join(", ")
                    ))
                    .map(|out| out.lines().collect::<Vec<_>>().join(" "));
                match got {
                    Ok(got) if got == *want => {}
                    Ok(got) => failures.push(format!(
                        "postgres {src:?}: want [{want}] got [{got}] sql {sql}"
                    )),
                    Err(e) => failures.push(format!("postgres {src:?}: {e} sql {sql}")),
                }
            }
        }
        if let Some(pg) = pg {
            pg.drop();
        }
        failures
    }

    #[test]
    fn alerts_nested_paths_lambdas_numbers_and_enums_on_both_dialects() {
        use serde_json::json;
        let rows: Vec<FamilyRow> = vec![
            (
                "a1",
                json!({"azureTenantId": "t", "severity": 4, "status": 1, "confidence": 90,
                "fileStates": [{"name": "evil.exe", "path": null, "riskScore": null,
                                "fileHash": {"hashType": 2, "hashValue": "abc"}},
                               {"name": "ok.dll", "path": "c:", "riskScore": null, "fileHash": null}],
                "networkConnections": [{"protocol": -1, "destinationPort": "443"}],
                "tags": ["x"]}),
            ),
            (
                "a2",
                json!({"azureTenantId": "t", "severity": 1, "status": 3, "confidence": 5,
                "fileStates": [],
                "networkConnections": [{"protocol": 6}, {"protocol": null}],
                "userStates": [{"userPrincipalName": "bob@x", "isVpn": true, "logonType": 1}]}),
            ),
            (
                "a3",
                json!({"azureTenantId": "t", "severity": 0, "status": 0,
                "fileStates": [{"name": "evil.exe", "fileHash": {"hashType": null, "hashValue": null}}],
                "userStates": [{"userPrincipalName": "amy@x", "isVpn": false}, {"userPrincipalName": null}]}),
            ),
        ];
        let cases: &[(&str, &str)] = &[
            ("fileStates/any(f: f/fileHash/hashValue eq 'abc')", "a1"),
            ("fileStates/any(f: f/fileHash/hashType eq 'sha256')", "a1"),
            ("fileStates/any(f: f/fileHash eq null)", "a1"),
            (
                "fileStates/any(f: f/fileHash ne null and f/fileHash/hashValue eq null)",
                "a3",
            ),
            ("fileStates/any(f: f/name eq 'evil.exe')", "a1 a3"),
            ("fileStates/all(f: f/name eq 'evil.exe')", "a2 a3"),
            ("not fileStates/any()", "a2"),
            ("fileStates/any()", "a1 a3"),
            (
                "fileStates/any(f: startswith(f/name, 'ok') and f/path eq 'c:')",
                "a1",
            ),
            ("not fileStates/all(f: f/path eq 'c:')", "a1 a3"),
            ("networkConnections/any(n: n/protocol eq 'unknown')", "a1"),
            ("networkConnections/any(n: n/protocol lt 'ip')", "a1"),
            ("networkConnections/any(n: n/protocol eq 'tcp')", "a2"),
            ("networkConnections/any(n: n/protocol eq null)", "a2"),
            (
                "userStates/any(u: u/userPrincipalName eq 'bob@x' and u/isVpn)",
                "a2",
            ),
            ("userStates/any(u: u/isVpn eq false)", "a3"),
            ("userStates/any(u: u/logonType eq 'interactive')", "a2"),
            ("userStates/any(u: u/userPrincipalName gt 'b')", "a2"),
            ("not userStates/all(u: u/userPrincipalName ne null)", "a3"),
            ("severity eq 'high'", "a1"),
            ("severity gt 'informational'", "a1"),
            ("severity in ('unknown', 'informational')", "a2 a3"),
            ("status eq 'resolved'", "a2"),
            ("confidence gt 10", "a1"),
            ("confidence ge 5.0", "a1 a2"),
            ("confidence lt 90.5 and confidence gt 4", "a1 a2"),
            ("confidence eq null", "a3"),
            ("confidence ne 90", "a2 a3"),
            ("confidence eq 5000000000", ""),
            ("tags/any(t: t eq 'x')", "a1"),
        ];
        let failures = family_cases("family_alerts", set("alerts"), &rows, cases);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn nested_lambdas_enum_collections_and_doubles_on_both_dialects() {
        use serde_json::json;
        let rows: Vec<FamilyRow> = vec![
            (
                "c1",
                json!({"azureTenantId": "t",
                "complianceInformation": [
                    {"certificationName": "ISO", "certificationControls": [{"name": "A.1", "url": null}, {"name": "A.2"}]},
                    {"certificationName": "NIST", "certificationControls": null}]}),
            ),
            (
                "c2",
                json!({"azureTenantId": "t",
                "complianceInformation": [{"certificationName": "SOC", "certificationControls": []}]}),
            ),
            ("c3", json!({"azureTenantId": "t"})),
        ];
        let cases: &[(&str, &str)] = &[
            (
                "complianceInformation/any(c: c/certificationControls/any(d: d/name eq 'A.2'))",
                "c1",
            ),
            (
                "complianceInformation/any(c: c/certificationControls/any())",
                "c1",
            ),
            (
                "complianceInformation/any(c: not c/certificationControls/any())",
                "c2",
            ),
            // A null inner collection makes `any` null, and `not null` is null.
            (
                "complianceInformation/any(c: not c/certificationControls/any(d: d/name eq 'A.1'))",
                "c2",
            ),
            (
                "complianceInformation/all(c: c/certificationControls/all(d: startswith(d/name, 'A')))",
                "c2",
            ),
            (
                "complianceInformation/any(c: c/certificationControls/any(d: d/name eq c/certificationName))",
                "",
            ),
            (
                "not complianceInformation/any(c: c/certificationName eq 'ISO')",
                "c2",
            ),
        ];
        let mut failures = family_cases(
            "family_controls",
            set("secureScoreControlProfiles"),
            &rows,
            cases,
        );

        let rows: Vec<FamilyRow> = vec![
            (
                "h1",
                json!({"azureTenantId": "t", "logonUsers": [
                {"accountName": "a", "logonTypes": [1, 3]}, {"accountName": "b", "logonTypes": []}]}),
            ),
            (
                "h2",
                json!({"azureTenantId": "t", "logonUsers": [{"accountName": "c", "logonTypes": [5]}],
                "isAzureAdJoined": true}),
            ),
            (
                "h3",
                json!({"azureTenantId": "t", "logonUsers": [{"accountName": "d", "logonTypes": null}]}),
            ),
        ];
        let cases: &[(&str, &str)] = &[
            (
                "logonUsers/any(u: u/logonTypes/any(x: x eq 'interactive'))",
                "h1",
            ),
            (
                "logonUsers/any(u: u/logonTypes/any(x: x ge 'network'))",
                "h1 h2",
            ),
            (
                "logonUsers/any(u: u/logonTypes/any(x: x in ('service', 'batch')))",
                "h2",
            ),
            (
                "logonUsers/all(u: u/logonTypes/all(x: x ne 'service'))",
                "h1",
            ),
            ("logonUsers/any(u: not u/logonTypes/any())", "h1"),
            ("not logonUsers/any(u: u/logonTypes/any())", ""),
            ("isAzureAdJoined", "h2"),
            ("isAzureAdJoined ne true", "h1 h3"),
        ];
        failures.extend(family_cases(
            "hosts",
            set("hostSecurityProfiles"),
            &rows,
            cases,
        ));

        let rows: Vec<FamilyRow> = vec![
            (
                "s1",
                json!({"azureTenantId": "t", "currentScore": 75.5, "maxScore": 100.0, "activeUserCount": 3,
                "averageComparativeScores": [{"basis": "AllTenants", "averageScore": 51.25, "extra": 1}],
                "controlScores": [{"controlName": "mfa", "score": 10.0, "controlCategory": "Identity"}]}),
            ),
            (
                "s2",
                json!({"azureTenantId": "t", "currentScore": 3, "activeUserCount": 2147483647,
                "averageComparativeScores": [{"basis": "Size", "averageScore": null}],
                "enabledServices": ["exchange", "sharepoint"]}),
            ),
            ("s3", json!({"azureTenantId": "t", "currentScore": -0.5})),
        ];
        let cases: &[(&str, &str)] = &[
            ("currentScore gt 3", "s1"),
            ("currentScore ge 3", "s1 s2"),
            ("currentScore lt 0", "s3"),
            ("currentScore eq 75.5", "s1"),
            ("currentScore lt maxScore", "s1"),
            ("currentScore gt activeUserCount", "s1"),
            ("activeUserCount eq 2147483647", "s2"),
            (
                "averageComparativeScores/any(a: a/averageScore gt 50)",
                "s1",
            ),
            (
                "averageComparativeScores/any(a: a/averageScore eq null)",
                "s2",
            ),
            ("averageComparativeScores/any(a: a/basis eq 'Size')", "s2"),
            (
                "controlScores/any(c: c/score ge 10 and c/controlCategory eq 'Identity')",
                "s1",
            ),
            ("enabledServices/any(e: e eq 'sharepoint')", "s2"),
            ("maxScore eq null", "s2 s3"),
        ];
        failures.extend(family_cases(
            "family_scores",
            set("secureScores"),
            &rows,
            cases,
        ));
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn family_filters_refuse_clearly() {
        let err = |set_name: &str, src: &str| match parse_and_check(set(set_name), src) {
            Ok(t) => panic!("{src:?} type-checked: {:?}", t.root),
            Err(e) => e.message,
        };
        let e = err("alerts", "fileStates/name eq 'x'");
        assert!(
            e.contains("'fileStates' is a collection") && e.contains("fileStates/any(x: x/name"),
            "{e}"
        );
        let e = err("alerts", "fileStates/any(f: f/fileHash/nope eq 'x')");
        assert!(
            e.contains("'f/fileHash' has no member 'nope' (members: hashType, hashValue)"),
            "{e}"
        );
        let e = err(
            "secureScores",
            "averageComparativeScores/any(a: a/extra eq 1)",
        );
        assert!(
            e.contains("undeclared members of an open complex type"),
            "{e}"
        );
        let e = err("alerts", "fileStates/any(f: f/fileHash eq 'x')");
        assert!(e.contains("cannot compare"), "{e}");
        let e = err("alerts", "severity eq 'urgent'");
        assert!(
            e.contains("not a member of microsoft.graph.alertSeverity"),
            "{e}"
        );
        let e = err("alerts", "confidence eq 'high'");
        assert!(e.contains("cannot compare 'confidence' (Edm.Int32)"), "{e}");
        let e = err(
            "hostSecurityProfiles",
            "logonUsers/any(u: u/logonTypes eq 'batch')",
        );
        assert!(e.contains("is a collection and cannot be compared"), "{e}");
        let e = err(
            "hostSecurityProfiles",
            "logonUsers/any(u: u/logonTypes/any(x: x/y eq 1))",
        );
        assert!(
            e.contains("the lambda variable 'x' (microsoft.graph.logonType) has no member 'y'"),
            "{e}"
        );
    }

    /// Pages through `entity`'s rows in `$orderby` order, `page` rows at a time, with the
    /// keyset predicate; `fetch(select, where, order, limit)` returns rows as text.
    fn family_page_through(
        entity: &'static EntityType,
        keys: &[OrderKey],
        dialect: Dialect,
        page: usize,
        mut fetch: impl FnMut(&str, &SqlFragment, &str, usize) -> Vec<Vec<Option<String>>>,
    ) -> Vec<String> {
        let cols = key_columns(entity, keys);
        let mut select = vec![qcol(entity.table, "id")];
        select.extend(cols.iter().map(|k| qcol(entity.table, &k.column)));
        let select = select.join(", ");
        let order = compile_order_by(entity, keys, dialect);
        let mut seen = Vec::new();
        let mut frag = SqlFragment {
            sql: "TRUE".into(),
            params: Vec::new(),
        };
        for _ in 0..100 {
            let rows = fetch(&select, &frag, &order, page);
            for r in &rows {
                seen.push(r.first().cloned().flatten().unwrap_or_default());
            }
            let Some(last) = rows.last() else { break };
            let values: Vec<SqlParam> = cols
                .iter()
                .enumerate()
                .map(|(i, k)| param_of(k.ty, last.get(i + 1).cloned().flatten().as_deref()))
                .collect();
            frag = compile_keyset(entity, keys, &values, dialect, 2).unwrap();
        }
        seen
    }

    #[test]
    fn numbers_and_enums_sort_numerically_and_keyset_pages_on_both_dialects() {
        use serde_json::json;
        let scores: Vec<FamilyRow> = vec![
            (
                "s1",
                json!({"azureTenantId": "t", "currentScore": 10.5, "activeUserCount": 9}),
            ),
            (
                "s2",
                json!({"azureTenantId": "t", "currentScore": 9, "activeUserCount": 10}),
            ),
            (
                "s3",
                json!({"azureTenantId": "t", "currentScore": -1.25, "activeUserCount": -3}),
            ),
            ("s4", json!({"azureTenantId": "t", "activeUserCount": 10})),
            (
                "s5",
                json!({"azureTenantId": "t", "currentScore": 100, "activeUserCount": 2147483647}),
            ),
            ("s6", json!({"azureTenantId": "t", "currentScore": 9.0})),
        ];
        let alerts: Vec<FamilyRow> = vec![
            (
                "a1",
                json!({"azureTenantId": "t", "severity": 4, "status": 1, "confidence": 100}),
            ),
            (
                "a2",
                json!({"azureTenantId": "t", "severity": 127, "status": 1, "confidence": 20}),
            ),
            (
                "a3",
                json!({"azureTenantId": "t", "severity": 1, "status": 0}),
            ),
            (
                "a4",
                json!({"azureTenantId": "t", "severity": 4, "status": 2, "confidence": 3}),
            ),
        ];
        let cases: &[(&str, &[FamilyRow], &str, &str)] = &[
            ("secureScores", &scores, "currentScore", "s4 s3 s2 s6 s1 s5"),
            (
                "secureScores",
                &scores,
                "currentScore desc",
                "s5 s1 s2 s6 s3 s4",
            ),
            (
                "secureScores",
                &scores,
                "activeUserCount desc,currentScore",
                "s5 s4 s2 s1 s3 s6",
            ),
            ("alerts", &alerts, "severity", "a3 a1 a4 a2"),
            (
                "alerts",
                &alerts,
                "severity desc,confidence desc",
                "a2 a1 a4 a3",
            ),
            ("alerts", &alerts, "confidence", "a3 a4 a2 a1"),
        ];
        let mut failures = Vec::new();
        for (set_name, rows, orderby, want) in cases {
            let entity = set(set_name);
            let keys = parse_list_query(entity, &[("$orderby".into(), (*orderby).into())])
                .unwrap()
                .order_by;
            let db = family_sqlite(entity, rows);
            for page in [1, 2, 10] {
                let got = family_page_through(
                    entity,
                    &keys,
                    Dialect::Sqlite,
                    page,
                    |sel, frag, order, limit| {
                        let sql = format!(
                            "SELECT {sel} FROM {} WHERE {} = ?1 AND {} ORDER BY {order} LIMIT {limit}",
                            quote(entity.table),
                            quote(schema::TENANT_COLUMN),
                            frag.sql
                        );
                        let mut params = vec![Value::Text(TENANT.into())];
                        params.extend(frag.params.iter().map(to_value));
                        let mut st = db.prepare(&sql).unwrap();
                        let n = st.column_count();
                        st.query_map(rusqlite::params_from_iter(params), |r| {
                            Ok((0..n)
                                .map(|i| match r.get::<_, Value>(i).unwrap() {
                                    Value::Null => None,
                                    Value::Integer(i) => Some(i.to_string()),
                                    Value::Real(f) => Some(f.to_string()),
                                    Value::Text(s) => Some(s),
                                    Value::Blob(_) => None,
                                })
                                .collect::<Vec<_>>())
                        })
                        .unwrap()
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap()
                    },
                );
                if got.join(" ") != *want {
                    failures.push(format!(
                        "sqlite {set_name} {orderby} page {page}: want [{want}] got [{}]",
                        got.join(" ")
                    ));
                }
            }
            if let Some(pg) = Pg::connect("family_order") {
                family_pg_load(&pg, entity, rows);
                for page in [1, 2, 10] {
                    let got = family_page_through(
                        entity,
                        &keys,
                        Dialect::Postgres,
                        page,
                        |sel, frag, order, limit| {
                            let sql = format!(
                                "SELECT {sel} FROM {} WHERE {} = $1::text AND {} ORDER BY {order} LIMIT {limit}",
                                quote(entity.table),
                                quote(schema::TENANT_COLUMN),
                                frag.sql
                            );
                            let mut args = vec![pg_literal(&SqlParam::Text(TENANT.into()))];
                            args.extend(frag.params.iter().map(pg_literal));
                            pg.run(&format!(
                                "PREPARE q AS {sql};\nEXECUTE q({});",
                                args.join(", ")
                            ))
                            .unwrap()
                            .lines()
                            .map(|l| {
                                l.split('\u{1f}')
                                    .map(|v| (v != "<NULL>").then(|| v.to_string()))
                                    .collect()
                            })
                            .collect()
                        },
                    );
                    if got.join(" ") != *want {
                        failures.push(format!(
                            "postgres {set_name} {orderby} page {page}: want [{want}] got [{}]",
                            got.join(" ")
                        ));
                    }
                }
                pg.drop();
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn family_sql_snapshots() {
        // Paths into JSON storage, nested lambdas, enum elements and numeric promotion, as
        // each dialect spells them (executed against both databases by the tests above).
        let cases: &[(&str, Dialect, &str, &str, &str)] = &[
            (
                "secureScoreControlProfiles",
                Dialect::Sqlite,
                "complianceInformation/any(c: c/certificationControls/any(d: d/name eq 'x'))",
                "(EXISTS (SELECT 1 FROM json_each(\"secure_score_control_profiles\".\"complianceInformation\") AS _l0 WHERE (EXISTS (SELECT 1 FROM json_each(json_extract(_l0.value, '$.\"certificationControls\"')) AS _l1 WHERE (json_extract(_l1.value, '$.\"name\"') = ?2)))))",
                "[Text(\"x\")]",
            ),
            (
                "hostSecurityProfiles",
                Dialect::Sqlite,
                "logonUsers/any(u: u/logonTypes/any(x: x eq 'interactive'))",
                "(EXISTS (SELECT 1 FROM json_each(\"host_security_profiles\".\"logonUsers\") AS _l0 WHERE (EXISTS (SELECT 1 FROM json_each(json_extract(_l0.value, '$.\"logonTypes\"')) AS _l1 WHERE (_l1.value = ?2)))))",
                "[Int(1)]",
            ),
            (
                "alerts",
                Dialect::Sqlite,
                "fileStates/any(f: f/fileHash/hashValue eq 'abc') and confidence gt 2.5",
                "((EXISTS (SELECT 1 FROM json_each(\"alerts\".\"fileStates\") AS _l0 WHERE (json_extract(_l0.value, '$.\"fileHash\".\"hashValue\"') = ?2))) AND (\"alerts\".\"confidence\" > ?3))",
                "[Text(\"abc\"), Real(2.5)]",
            ),
            (
                "secureScores",
                Dialect::Sqlite,
                "not averageComparativeScores/all(a: a/averageScore ge 50)",
                "(NOT (CASE WHEN \"secure_scores\".\"averageComparativeScores\" IS NULL THEN NULL WHEN EXISTS (SELECT 1 FROM json_each(\"secure_scores\".\"averageComparativeScores\") AS _l0 WHERE (COALESCE((json_extract(_l0.value, '$.\"averageScore\"') >= ?2), FALSE)) IS FALSE) THEN FALSE ELSE TRUE END))",
                "[Int(50)]",
            ),
            (
                "secureScoreControlProfiles",
                Dialect::Postgres,
                "complianceInformation/any(c: c/certificationControls/any(d: d/name eq 'x'))",
                "(EXISTS (SELECT 1 FROM jsonb_array_elements(\"secure_score_control_profiles\".\"complianceInformation\") AS _l0(value) WHERE (EXISTS (SELECT 1 FROM jsonb_array_elements((CASE WHEN jsonb_typeof((_l0.value #> '{\"certificationControls\"}')) = 'array' THEN (_l0.value #> '{\"certificationControls\"}') END)) AS _l1(value) WHERE ((_l1.value #>> '{\"name\"}') = $2::text)))))",
                "[Text(\"x\")]",
            ),
            (
                "hostSecurityProfiles",
                Dialect::Postgres,
                "logonUsers/any(u: u/logonTypes/any(x: x eq 'interactive'))",
                "(EXISTS (SELECT 1 FROM jsonb_array_elements(\"host_security_profiles\".\"logonUsers\") AS _l0(value) WHERE (EXISTS (SELECT 1 FROM jsonb_array_elements_text((CASE WHEN jsonb_typeof((_l0.value #> '{\"logonTypes\"}')) = 'array' THEN (_l0.value #> '{\"logonTypes\"}') END)) AS _l1(value) WHERE ((_l1.value)::bigint = $2::bigint)))))",
                "[Int(1)]",
            ),
            (
                "alerts",
                Dialect::Postgres,
                "fileStates/any(f: f/fileHash/hashValue eq 'abc') and confidence gt 2.5",
                "((EXISTS (SELECT 1 FROM jsonb_array_elements(\"alerts\".\"fileStates\") AS _l0(value) WHERE ((_l0.value #>> '{\"fileHash\",\"hashValue\"}') = $2::text))) AND (\"alerts\".\"confidence\" > $3::double precision))",
                "[Text(\"abc\"), Real(2.5)]",
            ),
            (
                "secureScores",
                Dialect::Postgres,
                "not averageComparativeScores/all(a: a/averageScore ge 50)",
                "(NOT (CASE WHEN \"secure_scores\".\"averageComparativeScores\" IS NULL THEN NULL WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(\"secure_scores\".\"averageComparativeScores\") AS _l0(value) WHERE (COALESCE(((_l0.value #>> '{\"averageScore\"}')::double precision >= $2::bigint), FALSE)) IS FALSE) THEN FALSE ELSE TRUE END))",
                "[Int(50)]",
            ),
        ];
        for (set_name, dialect, src, want_sql, want_params) in cases {
            let typed = parse_and_check(set(set_name), src).unwrap();
            let frag = compile_filter(&typed, *dialect, 2);
            assert_eq!(frag.sql, *want_sql, "{set_name} {dialect:?} {src}");
            assert_eq!(format!("{:?}", frag.params), *want_params, "{src}");
        }
    }
}
