//! The generic, model-driven conformance suite (issue 14): for every entity set of the catalog
//! that the server serves, random valid entities generated from the *types* (never from
//! hand-written bodies) round-trip through create/get/list/patch/delete over HTTP (non-null
//! members, enum members, Int32/Int64/Double ranges, the catalog's required-on-create,
//! one-of-on-create, read-only and required-on-update rules, open complex values' undeclared
//! members, a dynamic property on open types), and random `$filter`s (paths at any depth,
//! `any`/`all` over collections of primitives, enums and complex values, nested lambdas, `in`,
//! string functions, `and`/`or`/`not`), `$orderby`s (paged through `@odata.nextLink`, so the
//! keyset runs on every sortable type), `$count=true` and `$select`s generated from the same
//! types must agree exactly with a reference evaluator written here over the JSON the server
//! returned.
//!
//! The reference evaluator is independent of `src/odata` and `src/store`: it reads only the
//! catalog's types (to know what a path is and how an enum orders) and implements CONTRACT §4
//! over wire JSON: lifted nulls (`eq`/`ne` null-safe, relational with null false),
//! three-valued `and`/`or`/`not`, `any`/`all` null over a null collection, false/true over an
//! empty one; strings by code point, numbers numerically (Int32 vs Int64 vs Double), enums by
//! underlying value, DateTimeOffset by instant; ordering nulls first ascending, last
//! descending, ties by id.
//!
//! A set the server does not serve yet is skipped with one loud line. One seed drives
//! everything: a failure prints `GRAPHSEC_CONFORMANCE_SEED=<n>`, which replays the run. Run on
//! PostgreSQL with `GRAPHSEC_TEST_STORE=postgres cargo test --test it conformance::`.

use std::cmp::Ordering;

use graphsec::model::catalog;
use graphsec::model::edm::{EdmType, EnumType, Primitive, parse_datetime};
use graphsec::model::entity::{EntityType, Managed};
use serde_json::{Map, Value, json};

use crate::query::{OPS, Op, and3, or3};
use crate::support::Server;

/// Entities per set; filters and orders per set.
const ENTITIES: usize = 18;
const FILTERS: usize = 32;
const ORDERS: usize = 6;

fn seed() -> u64 {
    match std::env::var("GRAPHSEC_CONFORMANCE_SEED") {
        Ok(s) => s.parse().expect("GRAPHSEC_CONFORMANCE_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

// ---------------------------------------------------------------------------------------------
// Values from the types.
// ---------------------------------------------------------------------------------------------

const STRINGS: &[&str] = &[
    "alpha",
    "Alpha",
    "beta",
    "it's",
    "ünï ☃",
    "",
    "100% _x_",
    "zz",
];
/// The dynamic property the generator puts on open entity types.
const DYNAMIC: &str = "conformanceExtra";
const INT32: &[i64] = &[-2_147_483_648, -7, 0, 1, 42, 2_147_483_647];
const INT64: &[i64] = &[-5_000_000_000, 0, 3, 9_007_199_254_740_993];
const DOUBLES: &[f64] = &[-1.5, 0.0, 0.1, 2.25, 3.0, 1e10];
const DATETIMES: &[&str] = &[
    "2020-01-02T03:04:05.5Z",
    "2019-12-31T23:59:59.9999999Z",
    "1969-12-31T23:59:59Z",
    "2024-06-01T00:00:00Z",
];

struct Gen {
    rng: fastrand::Rng,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(..100) < percent
    }

    /// Enum members a client may send (the evolvable-enum sentinel is left out).
    fn member(&mut self, e: &EnumType) -> &'static str {
        let usable: Vec<&'static str> = e
            .members
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| Some(*n) != e.sentinel)
            .collect();
        usable[self.rng.usize(..usable.len())]
    }

    fn primitive(&mut self, p: Primitive) -> Value {
        match p {
            Primitive::String => json!(self.pick(STRINGS)),
            Primitive::Boolean => json!(self.rng.bool()),
            Primitive::DateTimeOffset => json!(self.pick(DATETIMES)),
            Primitive::Int32 => json!(self.pick(INT32)),
            Primitive::Int64 => json!(self.pick(INT64)),
            Primitive::Double => json!(self.pick(DOUBLES)),
        }
    }

    /// A valid wire value of `ty`. `full`: a complex value names every declared member (a PATCH
    /// of it then replaces rather than merges) and carries no undeclared members.
    fn value(&mut self, ty: &EdmType, full: bool, depth: usize) -> Value {
        match ty {
            EdmType::Primitive(p) => self.primitive(*p),
            EdmType::Enum(e) => json!(self.member(e)),
            EdmType::Complex(c) => {
                let mut m = Map::new();
                for member in c.members {
                    if !member.nullable || (depth < 3 && self.chance(70)) {
                        m.insert(member.name.into(), self.value(&member.ty, full, depth + 1));
                    } else if full || self.chance(50) {
                        m.insert(member.name.into(), Value::Null);
                    }
                }
                if c.open && !full && self.chance(40) {
                    m.insert("undeclaredExtra".into(), json!({"kept": [1, "a", null]}));
                }
                Value::Object(m)
            }
            EdmType::Collection(elem) => {
                let n = if depth < 3 { self.rng.usize(0..4) } else { 0 };
                Value::Array((0..n).map(|_| self.value(elem, full, depth + 1)).collect())
            }
        }
    }

    /// A valid wire value of the property at `i`: of its type, and within the set's documented
    /// value rules (bounds, lists of strings; the catalog's `values`).
    fn property_value(&mut self, entity: &EntityType, i: usize, full: bool) -> Value {
        let p = &entity.properties[i];
        match entity.rules.values.iter().find(|r| r.property == i) {
            Some(rule) if !rule.one_of.is_empty() => json!(self.pick(rule.one_of)),
            Some(rule) if rule.min.is_some() || rule.max.is_some() => {
                let lo = rule.min.unwrap_or(-1000.0) as i64;
                let hi = rule.max.unwrap_or(1000.0) as i64;
                json!(self.rng.i64(lo..=hi))
            }
            _ => self.value(&p.ty, full, 0),
        }
    }

    /// A create body for `entity` with this id: every required property, the others sometimes
    /// null, sometimes absent.
    fn body(&mut self, entity: &EntityType, id: &str) -> Value {
        let mut m = Map::new();
        let required = |i: usize| entity.rules.required_on_create.contains(&i);
        for (i, p) in entity.properties.iter().enumerate() {
            match p.managed {
                Managed::Key => {
                    m.insert(p.name.into(), json!(id));
                }
                Managed::Created | Managed::Modified => {}
                Managed::Client => {
                    if !p.nullable || required(i) || self.chance(65) {
                        m.insert(p.name.into(), self.property_value(entity, i, false));
                    } else if self.chance(50) {
                        m.insert(p.name.into(), Value::Null);
                    }
                }
            }
        }
        // The open entity type keeps undeclared (dynamic) properties verbatim.
        if entity.open && self.chance(60) {
            let v = if self.rng.bool() {
                json!(self.pick(STRINGS))
            } else {
                json!({"nested": [1, "two", null], "flag": true})
            };
            m.insert(DYNAMIC.into(), v);
        }
        if let Some(first) = entity.rules.one_of_on_create.first() {
            let present = entity.rules.one_of_on_create.iter().any(|i| {
                m.get(entity.properties[*i].name)
                    .is_some_and(|v| !v.is_null())
            });
            if !present {
                let p = &entity.properties[*first];
                m.insert(p.name.into(), self.property_value(entity, *first, false));
            }
        }
        Value::Object(m)
    }
}

// ---------------------------------------------------------------------------------------------
// Semantic equality of wire values (numbers by value, instants by instant, absent = null).
// ---------------------------------------------------------------------------------------------

fn same(ty: &EdmType, want: Option<&Value>, got: Option<&Value>, at: &str) -> Result<(), String> {
    let want = want.filter(|v| !v.is_null());
    let got = got.filter(|v| !v.is_null());
    let (w, g) = match (want, got) {
        (None, None) => return Ok(()),
        (Some(w), Some(g)) => (w, g),
        _ => return Err(format!("{at}: sent {want:?}, got {got:?}")),
    };
    let bad = || Err(format!("{at}: sent {w}, got {g}"));
    match ty {
        EdmType::Primitive(Primitive::Int32 | Primitive::Int64 | Primitive::Double) => {
            if number(w) == number(g) && number(w).is_some() {
                Ok(())
            } else {
                bad()
            }
        }
        EdmType::Primitive(Primitive::DateTimeOffset) => {
            let t = |v: &Value| v.as_str().and_then(|s| parse_datetime(s).ok());
            if t(w).is_some() && t(w) == t(g) {
                Ok(())
            } else {
                bad()
            }
        }
        EdmType::Primitive(_) | EdmType::Enum(_) => {
            if w == g {
                Ok(())
            } else {
                bad()
            }
        }
        EdmType::Complex(c) => {
            let (Some(wo), Some(go)) = (w.as_object(), g.as_object()) else {
                return bad();
            };
            for m in c.members {
                same(
                    &m.ty,
                    wo.get(m.name),
                    go.get(m.name),
                    &format!("{at}/{}", m.name),
                )?;
            }
            let declared = |k: &str| c.members.iter().any(|m| m.name == k) || k.starts_with('@');
            for (k, v) in wo.iter().filter(|(k, _)| !declared(k)) {
                if go.get(k) != Some(v) {
                    return Err(format!("{at}: undeclared member '{k}' sent {v}, got {g}"));
                }
            }
            for k in go.keys().filter(|k| !declared(k)) {
                if !wo.contains_key(k) {
                    return Err(format!("{at}: undeclared member '{k}' appeared: {g}"));
                }
            }
            Ok(())
        }
        EdmType::Collection(elem) => {
            let (Some(wa), Some(ga)) = (w.as_array(), g.as_array()) else {
                return bad();
            };
            if wa.len() != ga.len() {
                return bad();
            }
            for (i, (a, b)) in wa.iter().zip(ga).enumerate() {
                same(elem, Some(a), Some(b), &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
    }
}

/// The entity as returned agrees with what was sent (managed timestamps aside).
fn same_entity(entity: &EntityType, want: &Value, got: &Value) -> Result<(), String> {
    for p in entity.properties {
        if matches!(p.managed, Managed::Created | Managed::Modified) {
            if let Some(v) = got.get(p.name).filter(|v| !v.is_null()) {
                v.as_str()
                    .and_then(|s| parse_datetime(s).ok())
                    .ok_or_else(|| format!("{}: managed timestamp {v}", p.name))?;
            }
            continue;
        }
        same(&p.ty, want.get(p.name), got.get(p.name), p.name)?;
    }
    if entity.open && want.get(DYNAMIC) != got.get(DYNAMIC) {
        return Err(format!(
            "dynamic '{DYNAMIC}': sent {:?}, got {:?}",
            want.get(DYNAMIC),
            got.get(DYNAMIC)
        ));
    }
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // IEEE754Compatible servers write Int64 as strings.
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Filters from the types, and the reference evaluator.
// ---------------------------------------------------------------------------------------------

/// A path: a root (a property of the entity, or a lambda variable) and member names.
#[derive(Debug, Clone)]
struct Path {
    var: Option<String>,
    segments: Vec<&'static str>,
}

impl Path {
    fn render(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(v) = &self.var {
            parts.push(v);
        }
        parts.extend(self.segments.iter().copied());
        parts.join("/")
    }
}

#[derive(Debug, Clone)]
enum F {
    /// `path op literal`; the type of the path's value decides the comparison.
    Cmp(Path, &'static EdmType, Op, Value),
    /// `path in (literals)`: a chain of null-safe `eq` joined by `or`.
    In(Path, &'static EdmType, Vec<Value>),
    /// `startswith`/`endswith`/`contains(path, 'text')`: null when the value is null.
    Text(&'static str, Path, String),
    And(Box<F>, Box<F>),
    Or(Box<F>, Box<F>),
    Not(Box<F>),
    /// `path/any(var: body)`, `path/all(var: body)`, or `path/any()`.
    Lambda {
        path: Path,
        all: bool,
        var: String,
        body: Option<Box<F>>,
    },
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn literal(ty: &EdmType, v: &Value) -> String {
    match (ty, v) {
        (_, Value::Null) => "null".into(),
        (EdmType::Primitive(Primitive::DateTimeOffset), Value::String(s)) => s.clone(),
        (_, Value::String(s)) => quote(s),
        (_, other) => other.to_string(),
    }
}

impl F {
    fn render(&self) -> String {
        match self {
            F::Cmp(p, ty, op, v) => format!("{} {} {}", p.render(), op.keyword(), literal(ty, v)),
            F::In(p, ty, lits) => format!(
                "{} in ({})",
                p.render(),
                lits.iter()
                    .map(|l| literal(ty, l))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            F::Text(func, p, text) => format!("{func}({}, {})", p.render(), quote(text)),
            F::And(a, b) => format!("({} and {})", a.render(), b.render()),
            F::Or(a, b) => format!("({} or {})", a.render(), b.render()),
            F::Not(a) => format!("not ({})", a.render()),
            F::Lambda {
                path,
                all,
                var,
                body,
            } => {
                let kind = if *all { "all" } else { "any" };
                match body {
                    None => format!("{}/{kind}()", path.render()),
                    Some(b) => format!("{}/{kind}({var}: {})", path.render(), b.render()),
                }
            }
        }
    }

    /// Three-valued: `None` is null. `env` binds the lambda variables in scope.
    fn eval(&self, row: &Value, env: &mut Vec<(String, Value)>) -> Option<bool> {
        match self {
            F::Cmp(p, ty, op, lit) => {
                let v = resolve(row, env, p);
                Some(compare(ty, &v, *op, lit))
            }
            F::In(p, ty, lits) => {
                let v = resolve(row, env, p);
                Some(lits.iter().any(|l| compare(ty, &v, Op::Eq, l)))
            }
            F::Text(func, p, text) => {
                let v = resolve(row, env, p);
                let v = v.as_str()?;
                Some(match *func {
                    "startswith" => v.starts_with(text.as_str()),
                    "endswith" => v.ends_with(text.as_str()),
                    _ => v.contains(text.as_str()),
                })
            }
            F::And(a, b) => and3(a.eval(row, env), b.eval(row, env)),
            F::Or(a, b) => or3(a.eval(row, env), b.eval(row, env)),
            F::Not(a) => a.eval(row, env).map(|b| !b),
            F::Lambda {
                path,
                all,
                var,
                body,
            } => {
                let coll = resolve(row, env, path);
                let items = coll.as_array()?.clone();
                let Some(body) = body else {
                    return Some(!items.is_empty());
                };
                let mut acc = Some(*all);
                for item in items {
                    env.push((var.clone(), item));
                    let b = body.eval(row, env);
                    env.pop();
                    acc = if *all { and3(acc, b) } else { or3(acc, b) };
                }
                acc
            }
        }
    }
}

fn resolve(row: &Value, env: &[(String, Value)], p: &Path) -> Value {
    let mut segments = p.segments.iter();
    let mut v = match &p.var {
        Some(var) => env
            .iter()
            .rev()
            .find(|(n, _)| n == var)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null),
        None => match segments.next() {
            Some(first) => row.get(*first).cloned().unwrap_or(Value::Null),
            None => Value::Null,
        },
    };
    for s in segments {
        v = v.get(*s).cloned().unwrap_or(Value::Null);
    }
    v
}

/// The order of two non-null wire values of `ty` (numbers numerically, enums by value,
/// instants by instant, strings by code point).
fn order(ty: &EdmType, a: &Value, b: &Value) -> Ordering {
    match ty {
        EdmType::Primitive(Primitive::Int32 | Primitive::Int64) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => number(a).partial_cmp(&number(b)).unwrap_or(Ordering::Equal),
        },
        EdmType::Primitive(Primitive::Double) => {
            number(a).partial_cmp(&number(b)).unwrap_or(Ordering::Equal)
        }
        EdmType::Primitive(Primitive::DateTimeOffset) => {
            let t = |v: &Value| v.as_str().and_then(|s| parse_datetime(s).ok());
            t(a).cmp(&t(b))
        }
        EdmType::Primitive(Primitive::Boolean) => a.as_bool().cmp(&b.as_bool()),
        EdmType::Enum(e) => {
            let val = |v: &Value| v.as_str().and_then(|s| e.by_name(s)).map(|(_, n)| n);
            val(a).cmp(&val(b))
        }
        _ => a.as_str().cmp(&b.as_str()),
    }
}

fn compare(ty: &EdmType, v: &Value, op: Op, lit: &Value) -> bool {
    match (v.is_null(), lit.is_null()) {
        (true, true) => op == Op::Eq,
        // With one null operand only `ne` holds: relational comparisons are false.
        (true, false) | (false, true) => op == Op::Ne,
        (false, false) => op.holds(order(ty, v, lit)),
    }
}

struct FilterGen<'a> {
    g: &'a mut Gen,
    /// Values seen in the data, by CSDL type name: literals that select something.
    seen: &'a std::collections::HashMap<String, Vec<Value>>,
    vars: usize,
}

impl FilterGen<'_> {
    fn literal_for(&mut self, ty: &EdmType) -> Value {
        if self.g.chance(8) {
            return Value::Null;
        }
        // Numbers of another Edm type: Int32/Int64 and Double compare numerically in any mix.
        match ty {
            EdmType::Primitive(Primitive::Int32 | Primitive::Int64) if self.g.chance(15) => {
                return json!(self.g.pick(DOUBLES));
            }
            EdmType::Primitive(Primitive::Double) if self.g.chance(15) => {
                return json!(self.g.pick(INT64));
            }
            _ => {}
        }
        if let Some(vals) = self.seen.get(&ty.csdl_name())
            && !vals.is_empty()
            && self.g.chance(75)
        {
            return self.g.pick(vals).clone();
        }
        self.g.value(ty, true, 3)
    }

    /// A predicate over the value at `path`, of type `ty`.
    fn leaf_at(&mut self, path: Path, ty: &'static EdmType, depth: usize) -> F {
        match ty {
            EdmType::Primitive(Primitive::Boolean) => {
                let op = if self.g.rng.bool() { Op::Eq } else { Op::Ne };
                let lit = self.literal_for(ty);
                F::Cmp(path, ty, op, lit)
            }
            EdmType::Primitive(Primitive::String) if self.g.chance(20) => {
                let func = *self.g.pick(&["startswith", "endswith", "contains"]);
                let text = match self.literal_for(ty) {
                    Value::String(t) => t.chars().take(self.g.rng.usize(0..4)).collect(),
                    _ => String::new(),
                };
                F::Text(func, path, text)
            }
            EdmType::Primitive(_) | EdmType::Enum(_) if self.g.chance(12) => {
                let lits = (0..self.g.rng.usize(1..4))
                    .map(|_| self.literal_for(ty))
                    .collect();
                F::In(path, ty, lits)
            }
            EdmType::Primitive(_) | EdmType::Enum(_) => {
                let op = *self.g.pick(OPS);
                let lit = self.literal_for(ty);
                F::Cmp(path, ty, op, lit)
            }
            EdmType::Complex(c) => {
                if c.members.is_empty() || self.g.chance(12) {
                    let op = if self.g.rng.bool() { Op::Eq } else { Op::Ne };
                    return F::Cmp(path, ty, op, Value::Null);
                }
                // Deeper shapes first when there are some (nested complex values, collections).
                let deeper: Vec<_> = c
                    .members
                    .iter()
                    .filter(|m| matches!(m.ty, EdmType::Complex(_) | EdmType::Collection(_)))
                    .collect();
                let m = if !deeper.is_empty() && self.g.chance(60) {
                    *self.g.pick(&deeper)
                } else {
                    self.g.pick(c.members)
                };
                let mut p = path;
                p.segments.push(m.name);
                self.leaf_at(p, &m.ty, depth)
            }
            EdmType::Collection(elem) => {
                self.vars += 1;
                let var = format!("v{}", self.vars);
                let all = self.g.chance(35);
                let body = if !all && self.g.chance(15) {
                    None
                } else {
                    let root = Path {
                        var: Some(var.clone()),
                        segments: Vec::new(),
                    };
                    let mut b = self.leaf_at(root.clone(), elem, depth + 1);
                    if depth < 1 && self.g.chance(30) {
                        let other = self.leaf_at(root, elem, depth + 1);
                        b = if self.g.rng.bool() {
                            F::And(Box::new(b), Box::new(other))
                        } else {
                            F::Or(Box::new(b), Box::new(other))
                        };
                    }
                    Some(Box::new(b))
                };
                F::Lambda {
                    path,
                    all,
                    var,
                    body,
                }
            }
        }
    }

    fn leaf(&mut self, entity: &'static EntityType) -> F {
        if entity.open && self.g.chance(6) {
            // A dynamic property compares as JSON: only a JSON string equals a string literal.
            let op = if self.g.rng.bool() { Op::Eq } else { Op::Ne };
            let lit = if self.g.chance(20) {
                Value::Null
            } else {
                json!(self.g.pick(STRINGS))
            };
            return F::Cmp(
                Path {
                    var: None,
                    segments: vec![DYNAMIC],
                },
                &EdmType::Primitive(Primitive::String),
                op,
                lit,
            );
        }
        let props: Vec<_> = entity.properties.iter().filter(|p| p.filterable).collect();
        // Half the leaves walk a structured property (complex values, collections) when the
        // type has one: most properties are strings, and the paths and lambdas are the point.
        let structured: Vec<_> = props
            .iter()
            .copied()
            .filter(|p| matches!(p.ty, EdmType::Complex(_) | EdmType::Collection(_)))
            .collect();
        let p = if !structured.is_empty() && self.g.rng.bool() {
            // Weighted by the square of the nesting depth, so the deepest paths
            // (`fileStates/any(f: f/fileHash/hashValue ...)`) come up in every run.
            let weights: Vec<usize> = structured.iter().map(|p| depth(&p.ty).pow(2)).collect();
            let mut at = self.g.rng.usize(..weights.iter().sum::<usize>());
            let mut chosen = structured[0];
            for (p, w) in structured.iter().zip(&weights) {
                if at < *w {
                    chosen = p;
                    break;
                }
                at -= w;
            }
            chosen
        } else {
            *self.g.pick(&props)
        };
        let path = Path {
            var: None,
            segments: vec![p.name],
        };
        self.leaf_at(path, &p.ty, 0)
    }

    fn filter(&mut self, entity: &'static EntityType, depth: usize) -> F {
        if depth >= 2 || self.g.chance(45) {
            return self.leaf(entity);
        }
        match self.g.rng.u8(0..3) {
            0 => F::And(
                Box::new(self.filter(entity, depth + 1)),
                Box::new(self.filter(entity, depth + 1)),
            ),
            1 => F::Or(
                Box::new(self.filter(entity, depth + 1)),
                Box::new(self.filter(entity, depth + 1)),
            ),
            _ => F::Not(Box::new(self.filter(entity, depth + 1))),
        }
    }
}

/// How deep a type nests: 0 for a primitive or enum, one more per complex value or collection.
fn depth(ty: &EdmType) -> usize {
    match ty {
        EdmType::Primitive(_) | EdmType::Enum(_) => 0,
        EdmType::Complex(c) => 1 + c.members.iter().map(|m| depth(&m.ty)).max().unwrap_or(0),
        EdmType::Collection(elem) => 1 + depth(elem),
    }
}

/// Every non-null primitive or enum value in the rows, by type, so literals hit real data.
fn seen_values(
    entity: &EntityType,
    rows: &[Value],
) -> std::collections::HashMap<String, Vec<Value>> {
    fn walk(ty: &EdmType, v: &Value, out: &mut std::collections::HashMap<String, Vec<Value>>) {
        if v.is_null() {
            return;
        }
        match ty {
            EdmType::Primitive(_) | EdmType::Enum(_) => {
                let e = out.entry(ty.csdl_name()).or_default();
                if !e.contains(v) {
                    e.push(v.clone());
                }
            }
            EdmType::Complex(c) => {
                for m in c.members {
                    walk(&m.ty, v.get(m.name).unwrap_or(&Value::Null), out);
                }
            }
            EdmType::Collection(elem) => {
                for item in v.as_array().into_iter().flatten() {
                    walk(elem, item, out);
                }
            }
        }
    }
    let mut out = std::collections::HashMap::new();
    for r in rows {
        // Not the key: every id is distinct, so ids make poor literals for other strings.
        for p in entity
            .properties
            .iter()
            .filter(|p| p.managed != Managed::Key)
        {
            walk(&p.ty, r.get(p.name).unwrap_or(&Value::Null), &mut out);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Orders.
// ---------------------------------------------------------------------------------------------

/// The `$orderby` paths the engine sorts on: primitive and enum properties, and the members of
/// complex values stored member by member; each with its type.
fn sortable(entity: &'static EntityType) -> Vec<(Vec<&'static str>, &'static EdmType)> {
    let mut out = Vec::new();
    for p in entity.properties.iter().filter(|p| p.sortable) {
        match &p.ty {
            EdmType::Primitive(_) | EdmType::Enum(_) => out.push((vec![p.name], &p.ty)),
            EdmType::Complex(c) if c.is_flat() => {
                for m in c.members {
                    out.push((vec![p.name, m.name], &m.ty));
                }
            }
            _ => {}
        }
    }
    out
}

fn at_path(row: &Value, path: &[&str]) -> Value {
    let mut v = row.clone();
    for s in path {
        v = v.get(*s).cloned().unwrap_or(Value::Null);
    }
    v
}

/// The reference order: each key nulls first ascending, last descending; then id.
fn reference_order(
    rows: &[Value],
    keys: &[(Vec<&'static str>, &'static EdmType, bool)],
    key_name: &str,
) -> Vec<String> {
    let mut sorted: Vec<&Value> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        for (path, ty, desc) in keys {
            let (x, y) = (at_path(a, path), at_path(b, path));
            let o = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => order(ty, &x, &y),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a[key_name].as_str().cmp(&b[key_name].as_str())
    });
    sorted
        .iter()
        .map(|r| r[key_name].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

/// GET every page of the collection with these options; the items in order.
async fn walk_items(s: &Server, path: &str, params: &[(&str, &str)]) -> Result<Vec<Value>, String> {
    walk_counted(s, path, params).await.map(|(items, _)| items)
}

/// [`walk_items`], with the first page's `@odata.count` (asked for with `$count=true`).
async fn walk_counted(
    s: &Server,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(Vec<Value>, Option<u64>), String> {
    let r = s.get_with(path, params).await;
    let status = r.status().as_u16();
    let mut v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("status {status}: {v}"));
    }
    let count = v["@odata.count"].as_u64();
    let mut out = Vec::new();
    for _ in 0..1000 {
        out.extend(
            v["value"]
                .as_array()
                .ok_or(format!("no value: {v}"))?
                .iter()
                .cloned(),
        );
        let Some(next) = v["@odata.nextLink"].as_str() else {
            return Ok((out, count));
        };
        let r = s.client.get(next).send().await.map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("next link {next}: {}", r.status()));
        }
        v = r.json().await.map_err(|e| e.to_string())?;
    }
    Err("too many pages".into())
}

/// [`walk_items`], the ids only.
async fn walk(
    s: &Server,
    path: &str,
    params: &[(&str, &str)],
    key: &str,
) -> Result<Vec<String>, String> {
    Ok(walk_items(s, path, params)
        .await?
        .iter()
        .map(|item| item[key].as_str().unwrap_or_default().to_string())
        .collect())
}

/// What the service sets at create (the catalog's documented defaults and values), checked
/// against the created entity and written into the expected body.
fn server_values(entity: &EntityType, body: &mut Value, got: &Value) -> Result<(), String> {
    use graphsec::model::entity::{CallerValue, OnCreate};
    for rule in entity.rules.values {
        let name = entity.properties[rule.property].name;
        let absent = body.get(name).is_none();
        let want = match (rule.on_create, rule.default) {
            (Some(OnCreate::Value(v)), _) => Some(v.clone()),
            (Some(OnCreate::From(CallerValue::Tenant)), _) => Some(json!(crate::support::TENANT_A)),
            (Some(OnCreate::From(CallerValue::Now)), _) => {
                let created = entity
                    .properties
                    .iter()
                    .find(|p| p.managed == Managed::Created)
                    .map(|p| got[p.name].clone());
                Some(created.unwrap_or(Value::Null))
            }
            // The caller's app or user: whatever the token carries.
            (Some(OnCreate::From(_)), _) => Some(got[name].clone()),
            (None, Some(d)) if absent => Some(d.clone()),
            (None, _) => None,
        };
        if let Some(want) = want {
            if got[name] != want {
                return Err(format!(
                    "{name}: the service should set {want}, got {}",
                    got[name]
                ));
            }
            body[name] = want;
        }
    }
    Ok(())
}

/// Properties a PATCH may change.
fn patchable(entity: &EntityType) -> Vec<usize> {
    entity
        .properties
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            p.managed == Managed::Client
                && !entity.rules.read_only.contains(i)
                // A PATCH merges an open complex value's undeclared members; kept out so the
                // expectation is a plain replacement.
                && !matches!(p.ty, EdmType::Complex(c) if c.open)
        })
        .map(|(i, _)| i)
        .collect()
}

async fn run_set(s: &Server, entity: &'static EntityType, g: &mut Gen) -> Vec<String> {
    let path = format!("/{}/security/{}", entity.version, entity.collection);
    let key = entity.key().name;
    let mut failures = Vec::new();
    let mut expected: Vec<Value> = Vec::new();

    // Create, then get.
    for i in 0..ENTITIES {
        let id = format!("c{i:03}-{}", g.rng.u32(..));
        let body = g.body(entity, &id);
        let r = s.post(&path, &body).await;
        let status = r.status().as_u16();
        let got: Value = r.json().await.unwrap_or(Value::Null);
        if status != 201 {
            failures.push(format!("create {body}: {status} {got}"));
            continue;
        }
        let mut body = body;
        if let Err(e) = server_values(entity, &mut body, &got) {
            failures.push(format!("create {body}: {e}"));
        }
        if let Err(e) = same_entity(entity, &body, &got) {
            failures.push(format!("create {body}: response differs: {e}"));
        }
        let r = s.get(&format!("{path}/{id}")).await;
        let got: Value = r.json().await.unwrap_or(Value::Null);
        if let Err(e) = same_entity(entity, &body, &got) {
            failures.push(format!("get {id}: {e}"));
        }
        expected.push(body);
    }

    // Patch some.
    let targets = patchable(entity);
    for body in expected.iter_mut().step_by(2) {
        if targets.is_empty() {
            break;
        }
        let id = body[key].as_str().unwrap_or_default().to_string();
        let mut patch = Map::new();
        for _ in 0..g.rng.usize(1..4) {
            let i = *g.pick(&targets);
            let p = &entity.properties[i];
            let v = if p.nullable && g.chance(20) {
                Value::Null
            } else {
                g.property_value(entity, i, true)
            };
            patch.insert(p.name.into(), v);
        }
        // Paths every PATCH must give a value (Graph's per-resource rule, from the catalog).
        for required in entity.rules.required_on_update {
            let mut parts = required.split('/');
            let Some(p) = parts.next().and_then(|n| entity.property(n)) else {
                continue;
            };
            let member = parts.next();
            let current = patch.get(p.name).filter(|v| !v.is_null()).cloned();
            let index = entity.index_of(p.name).unwrap_or_default();
            let mut v = current.unwrap_or_else(|| g.property_value(entity, index, true));
            if let (Some(m), EdmType::Complex(c), Some(obj)) = (member, &p.ty, v.as_object_mut())
                && let Some(decl) = c.members.iter().find(|d| d.name == m)
                && obj.get(m).is_none_or(Value::is_null)
            {
                obj.insert(m.into(), g.value(&decl.ty, true, 1));
            }
            patch.insert(p.name.into(), v);
        }
        let r = s
            .patch(&format!("{path}/{id}"), &Value::Object(patch.clone()))
            .await;
        let status = r.status().as_u16();
        if status != 200 && status != 204 {
            let got: Value = r.json().await.unwrap_or(Value::Null);
            failures.push(format!("patch {id} {patch:?}: {status} {got}"));
            continue;
        }
        for (k, v) in patch {
            // A required but not updatable property (tiIndicator targetProduct) is ignored.
            if entity
                .index_of(&k)
                .is_some_and(|i| !entity.rules.read_only.contains(&i))
            {
                body[&k] = v;
            }
        }
        let got: Value = s
            .get(&format!("{path}/{id}"))
            .await
            .json()
            .await
            .unwrap_or(Value::Null);
        if let Err(e) = same_entity(entity, body, &got) {
            failures.push(format!("get after patch {id}: {e}"));
        }
    }

    // List: every entity, as expected; these rows are what the reference evaluates.
    let listed: Value = s
        .get_with(&path, &[("$top", "1000")])
        .await
        .json()
        .await
        .unwrap_or(Value::Null);
    let rows: Vec<Value> = listed["value"].as_array().cloned().unwrap_or_default();
    let mut want_ids: Vec<String> = expected
        .iter()
        .map(|b| b[key].as_str().unwrap_or_default().to_string())
        .collect();
    want_ids.sort();
    let mut got_ids: Vec<String> = rows
        .iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_string())
        .collect();
    got_ids.sort();
    if want_ids != got_ids {
        failures.push(format!("list: want {want_ids:?}, got {got_ids:?}"));
    }
    for r in &rows {
        if let Some(b) = expected.iter().find(|b| b[key] == r[key])
            && let Err(e) = same_entity(entity, b, r)
        {
            failures.push(format!("list item {}: {e}", r[key]));
        }
    }

    // Filters.
    let seen = seen_values(entity, &rows);
    let mut selected_some = 0;
    for _ in 0..FILTERS {
        let f = FilterGen {
            g,
            seen: &seen,
            vars: 0,
        }
        .filter(entity, 0);
        let src = f.render();
        if std::env::var_os("GRAPHSEC_CONFORMANCE_VERBOSE").is_some() {
            eprintln!("$filter={src}");
        }
        let mut want: Vec<String> = rows
            .iter()
            .filter(|r| f.eval(r, &mut Vec::new()) == Some(true))
            .map(|r| r[key].as_str().unwrap_or_default().to_string())
            .collect();
        want.sort();
        if !want.is_empty() {
            selected_some += 1;
        }
        let params = [("$filter", src.as_str()), ("$top", "7"), ("$count", "true")];
        match walk_counted(s, &path, &params).await {
            Ok((items, count)) => {
                let mut got: Vec<String> = items
                    .iter()
                    .map(|i| i[key].as_str().unwrap_or_default().to_string())
                    .collect();
                got.sort();
                if got != want {
                    failures.push(format!("$filter={src}: want {want:?}, got {got:?}"));
                }
                if count != Some(want.len() as u64) {
                    failures.push(format!(
                        "$filter={src}: @odata.count {count:?}, want {}",
                        want.len()
                    ));
                }
            }
            Err(e) => failures.push(format!("$filter={src}: {e}")),
        }
    }
    eprintln!(
        "conformance {}: {} entities, {FILTERS} filters ({selected_some} selecting rows)",
        entity.collection,
        rows.len()
    );
    if selected_some * 5 < FILTERS {
        failures.push(format!(
            "only {selected_some} of {FILTERS} filters selected rows: the generator is vacuous"
        ));
    }

    // Orders, paged.
    let candidates = sortable(entity);
    for _ in 0..ORDERS.min(candidates.len() * 2) {
        let mut keys: Vec<(Vec<&'static str>, &'static EdmType, bool)> = Vec::new();
        for _ in 0..g.rng.usize(1..3) {
            let (p, ty) = g.pick(&candidates).clone();
            if !keys.iter().any(|(q, _, _)| *q == p) {
                keys.push((p, ty, g.rng.bool()));
            }
        }
        let orderby = keys
            .iter()
            .map(|(p, _, desc)| format!("{}{}", p.join("/"), if *desc { " desc" } else { "" }))
            .collect::<Vec<_>>()
            .join(",");
        // Half the orders page through a filtered set.
        let filter = g.rng.bool().then(|| {
            FilterGen {
                g: &mut *g,
                seen: &seen,
                vars: 0,
            }
            .filter(entity, 1)
        });
        let selected: Vec<Value> = rows
            .iter()
            .filter(|r| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.eval(r, &mut Vec::new()) == Some(true))
            })
            .cloned()
            .collect();
        let want = reference_order(&selected, &keys, key);
        let src = filter.as_ref().map(F::render).unwrap_or_default();
        let mut params = vec![("$orderby", orderby.as_str()), ("$top", "4")];
        if filter.is_some() {
            params.push(("$filter", &src));
        }
        match walk(s, &path, &params, key).await {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "$orderby={orderby} $filter={src}: want {want:?}, got {got:?}"
            )),
            Err(e) => failures.push(format!("$orderby={orderby} $filter={src}: {e}")),
        }
    }

    // $select: the key and the selected properties, with the values the full rows have.
    let names: Vec<&'static str> = entity.properties.iter().map(|p| p.name).collect();
    for _ in 0..4 {
        let mut chosen: Vec<&'static str> = Vec::new();
        for _ in 0..g.rng.usize(1..4) {
            let n = *g.pick(&names);
            if !chosen.contains(&n) {
                chosen.push(n);
            }
        }
        let select = chosen.join(",");
        match walk_items(s, &path, &[("$select", &select), ("$top", "5")]).await {
            Ok(items) => {
                if items.len() != rows.len() {
                    failures.push(format!(
                        "$select={select}: {} items of {}",
                        items.len(),
                        rows.len()
                    ));
                }
                for item in &items {
                    let Some(full) = rows.iter().find(|r| r[key] == item[key]) else {
                        failures.push(format!("$select={select}: unknown item {item}"));
                        continue;
                    };
                    for (k, v) in item.as_object().into_iter().flatten() {
                        if k.starts_with('@') || k == key {
                            continue;
                        }
                        let Some(p) = entity.property(k).filter(|_| chosen.contains(&k.as_str()))
                        else {
                            failures.push(format!("$select={select}: unselected '{k}' returned"));
                            continue;
                        };
                        if let Err(e) = same(&p.ty, full.get(k), Some(v), k) {
                            failures.push(format!("$select={select}: {e}"));
                        }
                    }
                }
            }
            Err(e) => failures.push(format!("$select={select}: {e}")),
        }
    }

    // Delete a third; they are gone, the rest remain.
    let mut remaining = want_ids.clone();
    for id in want_ids.iter().step_by(3) {
        let r = s.delete(&format!("{path}/{id}")).await;
        if r.status() != 204 {
            failures.push(format!("delete {id}: {}", r.status()));
            continue;
        }
        let r = s.get(&format!("{path}/{id}")).await;
        if r.status() != 404 {
            failures.push(format!("get after delete {id}: {}", r.status()));
        }
        remaining.retain(|x| x != id);
    }
    match walk(s, &path, &[], key).await {
        Ok(mut got) => {
            got.sort();
            if got != remaining {
                failures.push(format!(
                    "list after deletes: want {remaining:?}, got {got:?}"
                ));
            }
        }
        Err(e) => failures.push(format!("list after deletes: {e}")),
    }
    failures
}

fn conformance(version: &str, collection: &str) {
    let Some(entity) = catalog::version(version).and_then(|c| c.set(collection)) else {
        panic!("{version}/{collection} is not in the catalogs");
    };
    if !entity.served {
        eprintln!(
            "!!!!! conformance: SKIPPED {collection}: the server does not serve this entity set yet"
        );
        return;
    }
    let seed = seed();
    eprintln!("GRAPHSEC_CONFORMANCE_SEED={seed} ({version}/{collection})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = Server::start();
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed),
    };
    let failures = rt.block_on(run_set(&s, entity, &mut g));
    assert!(
        failures.is_empty(),
        "GRAPHSEC_CONFORMANCE_SEED={seed} {version}/{collection}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One test per (version, entity set), so a failure names its set and the sets run in
/// parallel.
macro_rules! sets {
    ($($test:ident => $version:literal / $collection:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                conformance($version, $collection);
            }
        )*

        /// The list above covers every set of every version's catalog (a new set or version
        /// cannot be forgotten).
        #[test]
        fn every_catalog_set_has_a_conformance_test() {
            let listed = [$(($version, $collection)),*];
            for c in catalog::catalogs() {
                for set in c.sets() {
                    assert!(
                        listed.contains(&(c.version, set.collection)),
                        "add {}/{} to the sets! list of tests/it/conformance.rs",
                        c.version,
                        set.collection
                    );
                }
            }
        }
    };
}

sets! {
    alerts => "beta" / "alerts",
    cloud_app_security_profiles => "beta" / "cloudAppSecurityProfiles",
    domain_security_profiles => "beta" / "domainSecurityProfiles",
    file_security_profiles => "beta" / "fileSecurityProfiles",
    host_security_profiles => "beta" / "hostSecurityProfiles",
    ip_security_profiles => "beta" / "ipSecurityProfiles",
    provider_tenant_settings => "beta" / "providerTenantSettings",
    secure_score_control_profiles => "beta" / "secureScoreControlProfiles",
    secure_scores => "beta" / "secureScores",
    security_actions => "beta" / "securityActions",
    ti_indicators => "beta" / "tiIndicators",
    user_security_profiles => "beta" / "userSecurityProfiles",
    v1_alerts => "v1.0" / "alerts",
    v1_secure_score_control_profiles => "v1.0" / "secureScoreControlProfiles",
    v1_secure_scores => "v1.0" / "secureScores",
}

#[test]
fn reference_evaluator_sanity() {
    let alerts = catalog::catalog().set("alerts").expect("alerts");
    let file_states = &alerts.property("fileStates").expect("fileStates").ty;
    let EdmType::Collection(EdmType::Complex(state)) = file_states else {
        panic!("fileStates is a collection of complex");
    };
    let name_ty = &state.members[state.member_index("name").expect("name")].ty;
    let row = json!({"id": "a", "fileStates": [{"name": "x"}, {"name": null}], "confidence": 5});
    let var = |v: &str| Path {
        var: Some(v.into()),
        segments: vec!["name"],
    };
    let lambda = |all: bool, lit: Value| F::Lambda {
        path: Path {
            var: None,
            segments: vec!["fileStates"],
        },
        all,
        var: "f".into(),
        body: Some(Box::new(F::Cmp(var("f"), name_ty, Op::Eq, lit))),
    };
    assert_eq!(
        lambda(false, json!("x")).eval(&row, &mut Vec::new()),
        Some(true)
    );
    assert_eq!(
        lambda(true, json!("x")).eval(&row, &mut Vec::new()),
        Some(false)
    );
    assert_eq!(
        lambda(true, Value::Null).eval(&row, &mut Vec::new()),
        Some(false)
    );
    assert_eq!(
        lambda(false, json!("x")).render(),
        "fileStates/any(f: f/name eq 'x')"
    );
    let null_coll = json!({"id": "b", "fileStates": null});
    assert_eq!(
        lambda(false, json!("x")).eval(&null_coll, &mut Vec::new()),
        None
    );
    let confidence = &alerts.property("confidence").expect("confidence").ty;
    let cmp = |op, lit: Value| {
        F::Cmp(
            Path {
                var: None,
                segments: vec!["confidence"],
            },
            confidence,
            op,
            lit,
        )
        .eval(&row, &mut Vec::new())
    };
    assert_eq!(cmp(Op::Gt, json!(4.5)), Some(true));
    assert_eq!(cmp(Op::Lt, Value::Null), Some(false));
    assert_eq!(cmp(Op::Ne, Value::Null), Some(true));
    assert_eq!(
        F::Not(Box::new(lambda(false, json!("x")))).eval(&null_coll, &mut Vec::new()),
        None
    );
}
