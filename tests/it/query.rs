//! CONTRACT §4 (query options) over HTTP, against a real server process.
//!
//! The centrepiece is a differential test: a reference evaluator written here, in plain Rust
//! over the JSON the server returns, implements the §4 semantics (lifted nulls, three-valued
//! logic, ordinal strings, enums by value, nulls first ascending, ties by id) independently of
//! `src/`; proptest generates filter/order/paging combinations and the server must return
//! exactly the rows the reference selects, in the same order, page after page. The remaining
//! tests pin the options one by one, the error paths, and keyset paging under concurrent writes.
//! That differential test is `cloudAppSecurityProfiles`'s; its model-driven generalisation to
//! every entity set of the family (nested paths, collections of complex values and of enums,
//! nested lambdas, numbers) is `conformance.rs`, and the last test here pins the family's
//! surface with known answers.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error};

// ---------------------------------------------------------------------------------------------
// Reference semantics (CONTRACT §4), independent of src/.
// ---------------------------------------------------------------------------------------------

/// `microsoft.graph.applicationPermissionsRequired`, by underlying value (CONTRACT §1).
const MEMBERS: &[(&str, i64)] = &[
    ("unknown", 0),
    ("anonymous", 1),
    ("guest", 2),
    ("user", 3),
    ("administrator", 4),
    ("system", 5),
    ("unknownFutureValue", 127),
];
const ENUM_TYPE: &str = "microsoft.graph.applicationPermissionsRequired";

fn member_value(name: &str) -> i64 {
    MEMBERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("unknown member {name}"))
}

/// RFC 3339 text -> UTC 100 ns ticks.
fn ticks(text: &str) -> i64 {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("bad DateTimeOffset {text}: {e}"));
    (t.unix_timestamp_nanos() / 100) as i64
}

/// UTC ticks -> an unquoted DateTimeOffset literal written in another offset (minutes), with
/// all 7 fractional digits, so the server has to convert it back to the same instant.
fn datetime_literal(ticks: i64, offset_minutes: i32) -> String {
    let local = ticks + i64::from(offset_minutes) * 60 * 10_000_000;
    let secs = local.div_euclid(10_000_000);
    let frac = local.rem_euclid(10_000_000);
    let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("in range");
    let zone = match offset_minutes {
        0 => "Z".to_string(),
        m => format!(
            "{}{:02}:{:02}",
            if m < 0 { '-' } else { '+' },
            m.abs() / 60,
            m.abs() % 60
        ),
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:07}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A comparison operator of `$filter`, shared with the model-driven suite (`conformance.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

pub(crate) const OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];

impl Op {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }

    /// The operator applied to two non-null values that compare as `o`.
    pub(crate) fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o.is_eq(),
            Op::Ne => o.is_ne(),
            Op::Gt => o.is_gt(),
            Op::Ge => o.is_ge(),
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
        }
    }

    /// OData's lifted comparison: `eq`/`ne` treat null as a value, `gt ge lt le` with a null
    /// operand are false (never null).
    fn lifted<T: Ord>(self, a: Option<T>, b: Option<T>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => self.holds(a.cmp(&b)),
            (None, None) => self == Op::Eq,
            _ => self == Op::Ne,
        }
    }
}

/// Three-valued logic: `None` is null.
pub(crate) fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

pub(crate) fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A declared property (or `vendorInformation/member`) of a profile as returned on the wire.
fn at<'a>(p: &'a Value, path: &str) -> &'a Value {
    let mut v = p;
    for seg in path.split('/') {
        v = v.get(seg).unwrap_or(&Value::Null);
    }
    v
}

fn string_at(p: &Value, path: &str) -> Option<String> {
    at(p, path).as_str().map(str::to_owned)
}

/// Declared string properties (and complex members) the generator compares.
const STRING_PATHS: &[&str] = &[
    "name",
    "platform",
    "riskScore",
    "publisher",
    "vendorInformation/provider",
    "vendorInformation/vendor",
];
/// Dynamic properties of the open type in the generated data.
const DYNAMIC: &[&str] = &["custom", "flag"];

/// A string-valued operand.
#[derive(Clone, Debug)]
enum Str {
    Path(&'static str),
    /// A dynamic property used as a string function argument: its JSON string, else null.
    Dyn(&'static str),
    Lower(Box<Str>),
    Upper(Box<Str>),
}

impl Str {
    fn render(&self) -> String {
        match self {
            Str::Path(p) | Str::Dyn(p) => p.to_string(),
            Str::Lower(s) => format!("tolower({})", s.render()),
            Str::Upper(s) => format!("toupper({})", s.render()),
        }
    }

    fn eval(&self, p: &Value) -> Option<String> {
        match self {
            Str::Path(path) => string_at(p, path),
            Str::Dyn(name) => p.get(*name).and_then(Value::as_str).map(str::to_owned),
            // The engine's documented decision: ASCII letters only (É stays É, ß stays ß).
            Str::Lower(s) => s.eval(p).map(|v| v.to_ascii_lowercase()),
            Str::Upper(s) => s.eval(p).map(|v| v.to_ascii_uppercase()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Clone, Debug)]
enum TagBody {
    Eq(String),
    StartsWith(String),
    LowerEq(String),
    LengthGt(i64),
}

impl TagBody {
    fn render(&self) -> String {
        match self {
            TagBody::Eq(s) => format!("t eq {}", quote(s)),
            TagBody::StartsWith(s) => format!("startswith(t, {})", quote(s)),
            TagBody::LowerEq(s) => format!("tolower(t) eq {}", quote(s)),
            TagBody::LengthGt(n) => format!("length(t) gt {n}"),
        }
    }

    fn eval(&self, t: &str) -> bool {
        match self {
            TagBody::Eq(s) => t == s,
            TagBody::StartsWith(s) => t.starts_with(s.as_str()),
            TagBody::LowerEq(s) => t.to_ascii_lowercase() == *s,
            TagBody::LengthGt(n) => (t.chars().count() as i64) > *n,
        }
    }
}

#[derive(Clone, Debug)]
enum DynLit {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
}

/// The generated subset of the `$filter` language.
#[derive(Clone, Debug)]
enum F {
    StrCmp(Str, Op, Option<String>),
    StrIn(Str, Vec<Option<String>>),
    StrFn(StrFn, Str, String),
    LenCmp(Str, Op, i64),
    BoolCmp(Op, Option<bool>),
    /// `isSigned` used as a predicate.
    BoolPred,
    /// The member index into [`MEMBERS`] (None = null), and whether to write it qualified.
    EnumCmp(Op, Option<usize>, bool),
    EnumIn(Vec<(usize, bool)>),
    DtCmp(&'static str, Op, i64, i32),
    VendorNull(Op),
    DynCmp(&'static str, Op, DynLit),
    DynPred(&'static str),
    /// `tags/any()` when the body is None.
    Any(Option<TagBody>),
    All(TagBody),
    Not(Box<F>),
    And(Box<F>, Box<F>),
    Or(Box<F>, Box<F>),
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn enum_literal(i: usize, qualified: bool) -> String {
    let name = MEMBERS[i].0;
    if qualified {
        format!("{ENUM_TYPE}'{name}'")
    } else {
        format!("'{name}'")
    }
}

impl F {
    fn render(&self) -> String {
        let opt = |s: &Option<String>| s.as_deref().map_or("null".to_string(), quote);
        match self {
            F::StrCmp(s, op, lit) => format!("{} {} {}", s.render(), op.keyword(), opt(lit)),
            F::StrIn(s, items) => format!(
                "{} in ({})",
                s.render(),
                items.iter().map(opt).collect::<Vec<_>>().join(", ")
            ),
            F::StrFn(f, s, lit) => {
                let name = match f {
                    StrFn::StartsWith => "startswith",
                    StrFn::EndsWith => "endswith",
                    StrFn::Contains => "contains",
                };
                format!("{name}({}, {})", s.render(), quote(lit))
            }
            F::LenCmp(s, op, n) => format!("length({}) {} {n}", s.render(), op.keyword()),
            F::BoolCmp(op, b) => format!(
                "isSigned {} {}",
                op.keyword(),
                b.map_or("null".to_string(), |b| b.to_string())
            ),
            F::BoolPred => "isSigned".into(),
            F::EnumCmp(op, m, q) => format!(
                "permissionsRequired {} {}",
                op.keyword(),
                m.map_or("null".to_string(), |i| enum_literal(i, *q))
            ),
            F::EnumIn(items) => format!(
                "permissionsRequired in ({})",
                items
                    .iter()
                    .map(|(i, q)| enum_literal(*i, *q))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            F::DtCmp(path, op, t, off) => {
                format!("{path} {} {}", op.keyword(), datetime_literal(*t, *off))
            }
            F::VendorNull(op) => format!("vendorInformation {} null", op.keyword()),
            F::DynCmp(name, op, lit) => {
                let lit = match lit {
                    DynLit::Null => "null".to_string(),
                    DynLit::Text(s) => quote(s),
                    DynLit::Int(i) => i.to_string(),
                    DynLit::Bool(b) => b.to_string(),
                };
                format!("{name} {} {lit}", op.keyword())
            }
            F::DynPred(name) => name.to_string(),
            F::Any(None) => "tags/any()".into(),
            F::Any(Some(b)) => format!("tags/any(t: {})", b.render()),
            F::All(b) => format!("tags/all(t: {})", b.render()),
            F::Not(f) => format!("not ({})", f.render()),
            F::And(a, b) => format!("({} and {})", a.render(), b.render()),
            F::Or(a, b) => format!("({} or {})", a.render(), b.render()),
        }
    }

    /// The filter's value on one profile: `Some(true)` selects it.
    fn eval(&self, p: &Value) -> Option<bool> {
        match self {
            F::StrCmp(s, op, lit) => Some(op.lifted(s.eval(p), lit.clone())),
            // `in` is a chain of `eq` joined by `or`.
            F::StrIn(s, items) => {
                let v = s.eval(p);
                Some(items.iter().any(|i| Op::Eq.lifted(v.clone(), i.clone())))
            }
            // A function of null is null.
            F::StrFn(f, s, lit) => s.eval(p).map(|v| match f {
                StrFn::StartsWith => v.starts_with(lit.as_str()),
                StrFn::EndsWith => v.ends_with(lit.as_str()),
                StrFn::Contains => v.contains(lit.as_str()),
            }),
            // `length` counts code points.
            F::LenCmp(s, op, n) => {
                Some(op.lifted(s.eval(p).map(|v| v.chars().count() as i64), Some(*n)))
            }
            F::BoolCmp(op, b) => Some(op.lifted(at(p, "isSigned").as_bool(), *b)),
            F::BoolPred => at(p, "isSigned").as_bool(),
            F::EnumCmp(op, m, _) => {
                let v = at(p, "permissionsRequired").as_str().map(member_value);
                Some(op.lifted(v, m.map(|i| MEMBERS[i].1)))
            }
            F::EnumIn(items) => {
                let v = at(p, "permissionsRequired").as_str().map(member_value);
                Some(items.iter().any(|(i, _)| v == Some(MEMBERS[*i].1)))
            }
            F::DtCmp(path, op, t, _) => Some(op.lifted(at(p, path).as_str().map(ticks), Some(*t))),
            F::VendorNull(op) => {
                Some(op.lifted((!at(p, "vendorInformation").is_null()).then_some(()), None))
            }
            F::DynCmp(name, op, lit) => Some(dyn_compare(p.get(*name), *op, lit)),
            F::DynPred(name) => p.get(*name).and_then(Value::as_bool),
            // A lambda over a null collection is null; `any` over [] is false, `all` true.
            F::Any(body) => at(p, "tags").as_array().map(|tags| {
                let tags = tags.iter().filter_map(Value::as_str);
                match body {
                    None => tags.count() > 0,
                    Some(b) => tags.into_iter().any(|t| b.eval(t)),
                }
            }),
            F::All(b) => at(p, "tags")
                .as_array()
                .map(|tags| tags.iter().filter_map(Value::as_str).all(|t| b.eval(t))),
            F::Not(f) => f.eval(p).map(|b| !b),
            F::And(a, b) => and3(a.eval(p), b.eval(p)),
            F::Or(a, b) => or3(a.eval(p), b.eval(p)),
        }
    }
}

/// Dynamic properties compare as JSON primitives with a literal: another JSON type never
/// equals and never orders; `eq null` means absent or JSON null.
fn dyn_compare(v: Option<&Value>, op: Op, lit: &DynLit) -> bool {
    let v = v.unwrap_or(&Value::Null);
    let ord = match (lit, v) {
        (DynLit::Null, _) => {
            return match op {
                Op::Eq => v.is_null(),
                Op::Ne => !v.is_null(),
                _ => false,
            };
        }
        (DynLit::Text(s), Value::String(x)) => Some(x.as_str().cmp(s.as_str())),
        (DynLit::Int(i), Value::Number(n)) => n.as_f64().and_then(|x| x.partial_cmp(&(*i as f64))),
        (DynLit::Bool(b), Value::Bool(x)) => Some(x.cmp(b)),
        _ => None,
    };
    match ord {
        Some(o) => op.holds(o),
        None => op == Op::Ne,
    }
}

/// `$orderby` keys the generator uses: (path, kind).
const ORDER_KEYS: &[&str] = &[
    "name",
    "platform",
    "riskScore",
    "publisher",
    "isSigned",
    "permissionsRequired",
    "createdDateTime",
    "lastModifiedDateTime",
    "vendorInformation/provider",
    "id",
];

/// A sort key: variants are declared in ascending order, so `Null` sorts first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Null,
    Bool(bool),
    Int(i64),
    /// Rust's `str` order is the code point order.
    Text(String),
}

fn sort_key(p: &Value, path: &str) -> Key {
    let v = at(p, path);
    if v.is_null() {
        return Key::Null;
    }
    match path {
        "isSigned" => Key::Bool(v.as_bool().expect("bool")),
        "permissionsRequired" => Key::Int(member_value(v.as_str().expect("enum"))),
        "createdDateTime" | "lastModifiedDateTime" => Key::Int(ticks(v.as_str().expect("date"))),
        _ => Key::Text(v.as_str().expect("string").to_string()),
    }
}

/// The reference order: the keys (nulls first ascending, last descending), then `id`.
fn compare_rows(a: &Value, b: &Value, order: &[(&str, bool)]) -> Ordering {
    for (path, desc) in order {
        let o = sort_key(a, path).cmp(&sort_key(b, path));
        let o = if *desc { o.reverse() } else { o };
        if o.is_ne() {
            return o;
        }
    }
    sort_key(a, "id").cmp(&sort_key(b, "id"))
}

/// The ids the reference selects, in order.
fn reference(rows: &[Value], filter: Option<&F>, order: &[(&str, bool)]) -> Vec<String> {
    let mut selected: Vec<&Value> = rows
        .iter()
        .filter(|p| filter.is_none_or(|f| f.eval(p) == Some(true)))
        .collect();
    selected.sort_by(|a, b| compare_rows(a, b, order));
    selected
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn reference_evaluator_sanity() {
    // The reference itself must encode §4 correctly, or the differential test proves nothing.
    let p = json!({"id": "x", "name": null, "isSigned": null, "tags": null, "platform": "É",
                   "permissionsRequired": "system", "custom": 5});
    let name_gt = F::StrCmp(Str::Path("name"), Op::Gt, Some("a".into()));
    assert_eq!(
        name_gt.eval(&p),
        Some(false),
        "relational with null is false"
    );
    assert_eq!(F::Not(Box::new(name_gt)).eval(&p), Some(true));
    let name_eq_null = F::StrCmp(Str::Path("name"), Op::Eq, None);
    assert_eq!(name_eq_null.eval(&p), Some(true), "eq null is null-safe");
    let starts = F::StrFn(StrFn::StartsWith, Str::Path("name"), "a".into());
    assert_eq!(starts.eval(&p), None, "function of null is null");
    assert_eq!(
        F::Not(Box::new(starts.clone())).eval(&p),
        None,
        "not null is null"
    );
    let t = F::StrCmp(Str::Path("platform"), Op::Eq, Some("É".into()));
    assert_eq!(
        F::Or(Box::new(starts.clone()), Box::new(t.clone())).eval(&p),
        Some(true)
    );
    assert_eq!(F::And(Box::new(starts.clone()), Box::new(t)).eval(&p), None);
    assert_eq!(F::Any(None).eval(&p), None, "lambda over null is null");
    assert_eq!(F::BoolPred.eval(&p), None);
    let lower = F::StrCmp(
        Str::Lower(Box::new(Str::Path("platform"))),
        Op::Eq,
        Some("é".into()),
    );
    assert_eq!(lower.eval(&p), Some(false), "tolower maps ASCII only");
    assert_eq!(
        F::EnumCmp(Op::Gt, Some(4), false).eval(&p),
        Some(true),
        "system (5) > administrator (4)"
    );
    assert_eq!(
        F::DynCmp("custom", Op::Ne, DynLit::Text("5".into())).eval(&p),
        Some(true)
    );
    assert_eq!(
        F::DynCmp("custom", Op::Eq, DynLit::Null).eval(&p),
        Some(false)
    );
    assert_eq!(
        F::DynCmp("other", Op::Eq, DynLit::Null).eval(&p),
        Some(true)
    );
    assert_eq!(
        F::DynCmp("custom", Op::Ge, DynLit::Int(5)).eval(&p),
        Some(true)
    );
    let q = json!({"id": "a", "tags": []});
    assert_eq!(F::Any(Some(TagBody::Eq("x".into()))).eval(&q), Some(false));
    assert_eq!(F::All(TagBody::Eq("x".into())).eval(&q), Some(true));
    // Ordinal order: uppercase before lowercase, ASCII before é, nulls first ascending.
    let rows = vec![
        json!({"id": "3", "name": "é"}),
        json!({"id": "2", "name": "a"}),
        json!({"id": "1", "name": "B"}),
        json!({"id": "0", "name": null}),
        json!({"id": "4", "name": "a"}),
    ];
    assert_eq!(
        reference(&rows, None, &[("name", false)]),
        ["0", "1", "2", "4", "3"]
    );
    assert_eq!(
        reference(&rows, None, &[("name", true)]),
        ["3", "2", "4", "1", "0"]
    );
    assert_eq!(
        datetime_literal(ticks("2020-01-01T00:00:00.5Z"), 330),
        "2020-01-01T05:30:00.5000000+05:30"
    );
    assert_eq!(
        ticks("2020-01-01T05:30:00.5000000+05:30"),
        ticks("2020-01-01T00:00:00.5Z")
    );
}

// ---------------------------------------------------------------------------------------------
// The differential property test.
// ---------------------------------------------------------------------------------------------

/// String fragments: case variants, non-ASCII letters whose case mapping is not ASCII (É, ß,
/// İ), an astral-plane emoji, quotes, spaces and LIKE metacharacters.
const FRAGMENTS: &[&str] = &[
    "a", "A", "b", "B", "ab", "é", "É", "ß", "SS", "🙂", "'", "''", " ", "%", "_", "Zz", "İ",
    "x y", "0", "10",
];
const PLATFORMS: &[&str] = &[
    "Windows", "windows", "WINDOWS", "macOS", "Linux", "é", "É", "",
];
const RISK: &[&str] = &["1", "10", "9", "07", "100", "ß"];
const PROVIDERS: &[&str] = &["MCAS", "mcas", "Microsoft", "Contoso 🙂", "O'Brien"];
const TAGS: &[&str] = &[
    "a", "A", "alpha", "Alpha", "é", "É", "ß", "🙂 ok", "it's", "", "%_",
];
const ID_PREFIXES: &[&str] = &["p", "P", "é", "_", "Z"];
const PROFILES: usize = 80;
/// The server's default page size in the property test (small, so default pages too).
const PAGE_SIZE: usize = 9;
const CASES: u32 = 200;

fn text() -> BoxedStrategy<String> {
    proptest::collection::vec(proptest::sample::select(FRAGMENTS), 1..=3)
        .prop_map(|parts| parts.concat())
        .boxed()
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::weighted(0.8, s).boxed()
}

fn profile_body() -> impl Strategy<Value = Value> {
    let custom = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        text().prop_map(|s| Some(Value::String(s))),
        (-3i64..12).prop_map(|i| Some(json!(i))),
        any::<bool>().prop_map(|b| Some(json!(b))),
        Just(Some(json!(2.5))),
        Just(Some(json!(["a"]))),
    ];
    let flag = prop_oneof![
        Just(None),
        any::<bool>().prop_map(|b| Some(json!(b))),
        Just(Some(json!("true"))),
    ];
    let vendor = maybe((maybe(proptest::sample::select(PROVIDERS)), maybe(text())));
    (
        maybe(text()),
        maybe(proptest::sample::select(PLATFORMS)),
        maybe(proptest::sample::select(RISK)),
        maybe(text()),
        maybe(any::<bool>()),
        // unknownFutureValue is a sentinel clients may not send.
        maybe(proptest::sample::select(&MEMBERS[..6]).prop_map(|(n, _)| n)),
        maybe(proptest::collection::vec(
            proptest::sample::select(TAGS),
            0..4,
        )),
        vendor,
        custom,
        flag,
    )
        .prop_map(
            |(name, platform, risk, publisher, signed, perm, tags, vendor, custom, flag)| {
                let mut body = json!({
                    "name": name,
                    "platform": platform,
                    "riskScore": risk,
                    "publisher": publisher,
                    "isSigned": signed,
                    "permissionsRequired": perm,
                    "tags": tags,
                    "vendorInformation": vendor.map(|(p, v)| json!({"provider": p, "vendor": v})),
                });
                if let Some(c) = custom {
                    body["custom"] = c;
                }
                if let Some(f) = flag {
                    body["flag"] = f;
                }
                body
            },
        )
}

/// Values drawn from the data set, so generated literals often hit.
struct Pools {
    strings: Vec<String>,
    times: Vec<i64>,
}

fn string_literal(pools: &Arc<Pools>) -> BoxedStrategy<String> {
    let from_data = proptest::sample::select(pools.strings.clone());
    prop_oneof![
        3 => from_data.clone(),
        // Case variants: the ASCII ones can match through tolower/toupper, the Unicode ones
        // (É -> é) must not.
        1 => from_data.clone().prop_map(|s| s.to_ascii_lowercase()),
        1 => from_data.clone().prop_map(|s| s.to_lowercase()),
        1 => from_data.prop_map(|s| s.to_ascii_uppercase()),
        2 => proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..=2)
            .prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        2 => Just(Op::Eq),
        1 => Just(Op::Ne),
        2 => proptest::sample::select(OPS),
    ]
    .boxed()
}

/// A string operand; a bare dynamic property is only used as a function argument (compared
/// directly it follows the JSON-typed rules of `DynCmp` instead).
fn str_operand(bare_dynamic: bool) -> BoxedStrategy<Str> {
    let base = prop_oneof![
        4 => proptest::sample::select(STRING_PATHS).prop_map(Str::Path),
        1 => Just(Str::Dyn("custom")),
    ];
    (base, 0u8..5)
        .prop_map(move |(b, wrap)| match (wrap, &b) {
            (0..=3, Str::Dyn(_)) if !bare_dynamic => Str::Lower(Box::new(b)),
            (0..=2, _) => b,
            (3, _) => Str::Lower(Box::new(b)),
            _ => Str::Upper(Box::new(b)),
        })
        .boxed()
}

fn tag_body(pools: &Arc<Pools>) -> BoxedStrategy<TagBody> {
    let lit = prop_oneof![
        2 => proptest::sample::select(TAGS).prop_map(str::to_owned),
        1 => string_literal(pools),
    ];
    prop_oneof![
        lit.clone().prop_map(TagBody::Eq),
        lit.clone().prop_map(TagBody::StartsWith),
        lit.prop_map(|s| TagBody::LowerEq(s.to_ascii_lowercase())),
        (0i64..5).prop_map(TagBody::LengthGt),
    ]
    .boxed()
}

fn leaf(pools: &Arc<Pools>) -> BoxedStrategy<F> {
    let lit = string_literal(pools);
    let opt_lit = proptest::option::weighted(0.85, lit.clone());
    let member = 0..MEMBERS.len();
    let time = (proptest::sample::select(pools.times.clone()), -1i64..=1).prop_map(|(t, d)| t + d);
    let dyn_lit = prop_oneof![
        Just(DynLit::Null),
        lit.clone().prop_map(DynLit::Text),
        (-3i64..12).prop_map(DynLit::Int),
        any::<bool>().prop_map(DynLit::Bool),
    ];
    prop_oneof![
        6 => (str_operand(false), op(), opt_lit.clone()).prop_map(|(s, o, l)| F::StrCmp(s, o, l)),
        2 => (str_operand(false), proptest::collection::vec(opt_lit, 1..5))
            .prop_map(|(s, l)| F::StrIn(s, l)),
        3 => (
            prop_oneof![Just(StrFn::StartsWith), Just(StrFn::EndsWith), Just(StrFn::Contains)],
            str_operand(true),
            lit,
        )
            .prop_map(|(f, s, l)| F::StrFn(f, s, l)),
        2 => (str_operand(true), op(), 0i64..6).prop_map(|(s, o, n)| F::LenCmp(s, o, n)),
        1 => (op(), proptest::option::weighted(0.8, any::<bool>())).prop_map(|(o, b)| F::BoolCmp(o, b)),
        1 => Just(F::BoolPred),
        2 => (op(), proptest::option::weighted(0.9, member.clone()), any::<bool>())
            .prop_map(|(o, m, q)| F::EnumCmp(o, m, q)),
        1 => proptest::collection::vec((member, any::<bool>()), 1..4).prop_map(F::EnumIn),
        2 => (
            prop_oneof![Just("createdDateTime"), Just("lastModifiedDateTime")],
            op(),
            time,
            proptest::sample::select(&[0, 330, -480, 60, -1][..]),
        )
            .prop_map(|(p, o, t, off)| F::DtCmp(p, o, t, off)),
        1 => prop_oneof![Just(Op::Eq), Just(Op::Ne)].prop_map(F::VendorNull),
        2 => (proptest::sample::select(DYNAMIC), op(), dyn_lit).prop_map(|(n, o, l)| F::DynCmp(n, o, l)),
        1 => proptest::sample::select(DYNAMIC).prop_map(F::DynPred),
        2 => proptest::option::weighted(0.85, tag_body(pools)).prop_map(F::Any),
        1 => tag_body(pools).prop_map(F::All),
    ]
    .boxed()
}

fn filter(pools: &Arc<Pools>) -> BoxedStrategy<F> {
    leaf(pools)
        .prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                1 => inner.clone().prop_map(|f| F::Not(Box::new(f))),
                2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| F::And(Box::new(a), Box::new(b))),
                2 => (inner.clone(), inner).prop_map(|(a, b)| F::Or(Box::new(a), Box::new(b))),
            ]
        })
        .boxed()
}

/// One generated list request.
#[derive(Clone, Debug)]
struct Case {
    filter: Option<F>,
    order: Vec<(&'static str, bool)>,
    top: Option<usize>,
    skip: Option<usize>,
    count: bool,
    select: bool,
    /// Seed of [`recase`]: the request spells option names, declared names, keywords,
    /// functions and enum members in random case (CONTRACT §4 "Case"); `None` keeps the
    /// canonical spelling.
    casing: Option<u64>,
}

/// Words that OData's case rules let a client spell in any case: keywords and functions of
/// the generated grammar, and the declared names (properties, complex members, the enum type).
fn case_insensitive_words() -> HashSet<String> {
    use graphsec::model::edm::EdmType;
    let profiles = graphsec::model::catalog()
        .set("cloudAppSecurityProfiles")
        .expect("served");
    let mut words: HashSet<String> = [
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "and",
        "or",
        "not",
        "in",
        "true",
        "false",
        "null",
        "any",
        "all",
        "asc",
        "desc",
        "tolower",
        "toupper",
        "startswith",
        "endswith",
        "contains",
        "length", // system query option names
        "filter",
        "orderby",
        "top",
        "skip",
        "count",
        "select",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    words.insert(ENUM_TYPE.to_ascii_lowercase());
    for p in profiles.properties {
        words.insert(p.name.to_ascii_lowercase());
        if let EdmType::Complex(c) = p.ty {
            words.extend(c.members.iter().map(|m| m.name.to_ascii_lowercase()));
        }
    }
    words
}

/// Rewrites `src` with every case-insensitive word (see [`case_insensitive_words`]) and every
/// quoted enum member in a random case from `seed`. String literals, dynamic property names
/// and lambda variables keep their spelling: those are case-sensitive.
fn recase(src: &str, seed: u64) -> String {
    static WORDS: std::sync::OnceLock<HashSet<String>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(case_insensitive_words);
    let mut state = seed | 1;
    let mut flip = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state & 1 == 1
    };
    let mut recased = |w: &str| -> String {
        w.chars()
            .map(|c| {
                if flip() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    };
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    // Inside `permissionsRequired <op> '...'` or `... in ('...', ...)`: quoted enum members.
    let mut enum_operand = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            let inner: String = chars[start + 1..i.min(chars.len())].iter().collect();
            let member = MEMBERS.iter().any(|(m, _)| *m == inner);
            if enum_operand && member {
                out.push('\'');
                out.push_str(&recased(&inner));
                out.push('\'');
            } else {
                out.extend(&chars[start..(i + 1).min(chars.len())]);
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            if lower == "permissionsrequired" || lower == ENUM_TYPE.to_ascii_lowercase() {
                enum_operand = true;
            } else if lower == "and" || lower == "or" {
                enum_operand = false;
            }
            if words.contains(&lower) {
                out.push_str(&recased(&word));
            } else {
                out.push_str(&word);
            }
        } else if c.is_ascii_digit() {
            // Numbers and unquoted dates (`2020-01-01T00:00:00Z`) stay as they are.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "-:.+".contains(chars[i]))
            {
                out.push(chars[i]);
                i += 1;
            }
        } else {
            if c == ')' {
                enum_operand = false;
            }
            out.push(c);
            i += 1;
        }
    }
    out
}

#[test]
fn recase_touches_only_case_insensitive_words() {
    let src = "(name eq 'name' and tags/any(t: tolower(t) eq 'x')) or custom ne null \
               or permissionsRequired in ('user', microsoft.graph.applicationPermissionsRequired'guest') \
               or createdDateTime gt 2020-01-01T00:00:00Z";
    for seed in 1..50u64 {
        let r = recase(src, seed);
        assert_eq!(r.to_ascii_lowercase(), src.to_ascii_lowercase(), "{r}");
        for kept in [
            "'name'",
            "t: ",
            "(t)",
            "'x'",
            "custom",
            "2020-01-01T00:00:00Z",
        ] {
            assert!(r.contains(kept), "{kept} in {r}");
        }
    }
    assert!(
        (1..50u64).any(|seed| !recase(src, seed).contains("'user'")),
        "enum members recased"
    );
    assert!(
        (1..50u64).any(|seed| !recase(src, seed).contains("name eq")),
        "names recased"
    );
}

impl Case {
    fn params(&self) -> Vec<(String, String)> {
        let plain = self.canonical_params();
        match self.casing {
            None => plain,
            Some(seed) => plain
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    let seed = seed.wrapping_add(i as u64 * 0x9e37_79b9);
                    (recase(&k, seed ^ 0x5555), recase(&v, seed))
                })
                .collect(),
        }
    }

    fn canonical_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(f) = &self.filter {
            out.push(("$filter".to_string(), f.render()));
        }
        if !self.order.is_empty() {
            let keys: Vec<String> = self
                .order
                .iter()
                .map(|(p, d)| {
                    if *d {
                        format!("{p} desc")
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            out.push(("$orderby".to_string(), keys.join(",")));
        }
        if let Some(t) = self.top {
            out.push(("$top".to_string(), t.to_string()));
        }
        if let Some(s) = self.skip {
            out.push(("$skip".to_string(), s.to_string()));
        }
        if self.count {
            out.push(("$count".to_string(), "true".to_string()));
        }
        if self.select {
            out.push(("$select".to_string(), "name,custom".to_string()));
        }
        out
    }
}

fn case(pools: &Arc<Pools>) -> BoxedStrategy<Case> {
    let order = proptest::sample::subsequence(ORDER_KEYS, 0..=3)
        .prop_shuffle()
        .prop_flat_map(|keys| {
            let n = keys.len();
            (Just(keys), proptest::collection::vec(any::<bool>(), n))
        })
        .prop_map(|(keys, desc)| keys.into_iter().zip(desc).collect::<Vec<_>>());
    (
        proptest::option::weighted(0.9, filter(pools)),
        order,
        proptest::option::weighted(0.8, 1usize..=20),
        proptest::option::weighted(0.2, 0usize..=12),
        any::<bool>(),
        proptest::bool::weighted(0.15),
        proptest::option::weighted(0.5, any::<u64>()),
    )
        .prop_map(|(filter, order, top, skip, count, select, casing)| Case {
            filter,
            order,
            top,
            skip,
            count,
            select,
            casing,
        })
        .boxed()
}

/// One page as the server returned it.
struct PageSeen {
    ids: Vec<String>,
    count: Option<u64>,
    next: bool,
    /// Property names of each item (without annotations), for `$select`.
    keys: Vec<Vec<String>>,
}

/// Fetches the first page with `params` and follows `@odata.nextLink` to the end.
async fn walk(s: &Server, params: &[(String, String)]) -> Result<Vec<PageSeen>, String> {
    let mut pages = Vec::new();
    let mut req = s.client.get(s.url(COLLECTION)).query(params);
    loop {
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("HTTP {status}: {text}"));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let items = v["value"].as_array().ok_or("no value array")?;
        pages.push(PageSeen {
            ids: items
                .iter()
                .map(|i| i["id"].as_str().unwrap_or("").to_string())
                .collect(),
            count: v["@odata.count"].as_u64(),
            next: v.get("@odata.nextLink").is_some(),
            keys: items
                .iter()
                .map(|i| {
                    i.as_object()
                        .map(|o| o.keys().filter(|k| !k.starts_with('@')).cloned().collect())
                        .unwrap_or_default()
                })
                .collect(),
        });
        if pages.len() > 2 * PROFILES + 2 {
            return Err("the next links never end".into());
        }
        match v["@odata.nextLink"].as_str() {
            Some(next) => req = s.client.get(next),
            None => return Ok(pages),
        }
    }
}

fn check_case(rows: &[Value], c: &Case, pages: &[PageSeen]) -> Result<(), String> {
    let selected = reference(rows, c.filter.as_ref(), &c.order);
    let expected: Vec<&String> = selected.iter().skip(c.skip.unwrap_or(0)).collect();
    let got: Vec<&String> = pages.iter().flat_map(|p| &p.ids).collect();
    if got != expected {
        return Err(format!(
            "rows differ\n expected ({}) {expected:?}\n got      ({}) {got:?}",
            expected.len(),
            got.len()
        ));
    }
    let size = c.top.unwrap_or(PAGE_SIZE);
    for (i, p) in pages.iter().enumerate() {
        let last = i + 1 == pages.len();
        if p.next == last {
            return Err(format!("page {i}: nextLink present = {}", p.next));
        }
        if (!last && p.ids.len() != size) || p.ids.len() > size {
            return Err(format!(
                "page {i} has {} rows, page size {size}",
                p.ids.len()
            ));
        }
        let want = c.count.then_some(selected.len() as u64);
        if p.count != want {
            return Err(format!(
                "page {i}: @odata.count {:?}, expected {want:?}",
                p.count
            ));
        }
        if c.select {
            for k in &p.keys {
                if k.iter()
                    .any(|k| !["id", "name", "custom"].contains(&k.as_str()))
                {
                    return Err(format!("page {i}: $select=name,custom returned {k:?}"));
                }
            }
        }
    }
    Ok(())
}

fn seed() -> u64 {
    match std::env::var("GRAPHSEC_QUERY_SEED") {
        Ok(s) => s.parse().expect("GRAPHSEC_QUERY_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn rng(seed: u64, stream: u8) -> TestRng {
    let mut bytes = [stream; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

#[test]
fn server_agrees_with_the_reference_evaluator_across_pages() {
    // One seed drives both the data set and the query generator: a failure prints it, and
    // GRAPHSEC_QUERY_SEED=<seed> replays the same run.
    let seed = seed();
    eprintln!("GRAPHSEC_QUERY_SEED={seed}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let page_size = PAGE_SIZE.to_string();
    let s = Server::start_with(&["--page-size", &page_size]);

    let mut data_runner = TestRunner::new_with_rng(Config::default(), rng(seed, 1));
    let bodies: Vec<Value> = (0..PROFILES)
        .map(|i| {
            let mut b = profile_body()
                .new_tree(&mut data_runner)
                .expect("profile")
                .current();
            b["id"] = json!(format!("{}{i:03}", ID_PREFIXES[i % ID_PREFIXES.len()]));
            b
        })
        .collect();
    let rows: Vec<Value> = rt.block_on(async {
        for (i, b) in bodies.iter().enumerate() {
            s.create(b).await;
            // Some rows get a later lastModifiedDateTime than createdDateTime.
            if i % 4 == 0 {
                let path = format!("{COLLECTION}/{}", b["id"].as_str().expect("id"));
                let r = s.patch(&path, &json!({"type": "patched"})).await;
                assert_eq!(r.status(), 200);
            }
        }
        // The reference works on the rows as the server serialises them (dates as returned).
        let v: Value = s
            .client
            .get(s.url(COLLECTION))
            .query(&[("$top", "1000")])
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        v["value"].as_array().expect("value").clone()
    });
    assert_eq!(rows.len(), PROFILES);

    let mut strings: HashSet<String> = HashSet::new();
    let mut times = Vec::new();
    for r in &rows {
        for path in STRING_PATHS {
            strings.extend(string_at(r, path));
        }
        strings.extend(r["custom"].as_str().map(str::to_owned));
        for t in r["tags"].as_array().into_iter().flatten() {
            strings.extend(t.as_str().map(str::to_owned));
        }
        times.push(ticks(r["createdDateTime"].as_str().expect("created")));
        times.push(ticks(r["lastModifiedDateTime"].as_str().expect("modified")));
    }
    let mut strings: Vec<String> = strings.into_iter().collect();
    strings.sort();
    let pools = Arc::new(Pools { strings, times });

    // GRAPHSEC_QUERY_CASES=<n> runs longer (the data set stays the same size).
    let cases = std::env::var("GRAPHSEC_QUERY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 400,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(seed, 2));
    let stats = Mutex::new((0usize, 0usize));
    let result = runner.run(&case(&pools), |c| {
        let params = c.params();
        let pages = rt
            .block_on(walk(&s, &params))
            .map_err(|e| TestCaseError::fail(format!("{params:?}: {e}")))?;
        check_case(&rows, &c, &pages)
            .map_err(|e| TestCaseError::fail(format!("{params:?}: {e}")))?;
        let mut st = stats.lock().expect("stats");
        st.0 += 1;
        if pages.iter().any(|p| !p.ids.is_empty()) {
            st.1 += 1;
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, c)) => panic!(
            "GRAPHSEC_QUERY_SEED={seed}: minimal failing case {:?}\n$filter={}\n{why}",
            c,
            c.filter.as_ref().map(F::render).unwrap_or_default()
        ),
        Err(e) => panic!("GRAPHSEC_QUERY_SEED={seed}: {e}"),
    }
    let (cases, non_empty) = *stats.lock().expect("stats");
    eprintln!("{cases} cases, {non_empty} with at least one row");
    // A generator whose filters never select anything would make the comparison vacuous.
    assert!(
        non_empty * 4 >= cases,
        "{non_empty} of {cases} cases selected rows"
    );
}

// ---------------------------------------------------------------------------------------------
// The options one by one.
// ---------------------------------------------------------------------------------------------

/// GET the collection with these (unencoded) options; the status and the JSON body.
async fn list(s: &Server, params: &[(&str, &str)]) -> (u16, Value) {
    let r = s.get_with(COLLECTION, params).await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

/// The 400 message for these options (asserting the Graph error shape).
async fn list_error(s: &Server, params: &[(&str, &str)]) -> String {
    let r = s.get_with(COLLECTION, params).await;
    expect_error(r, 400, "BadRequest").await
}

fn ids(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no value array: {v}"))
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

/// Property names of an entity, without annotations, sorted.
fn props(item: &Value) -> Vec<String> {
    let mut k: Vec<String> = item
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| !k.starts_with('@'))
        .cloned()
        .collect();
    k.sort();
    k
}

/// Every id across pages, following next links; also checks each page's `@odata.count`.
async fn walk_ids(s: &Server, params: &[(&str, &str)], count: Option<u64>) -> Vec<String> {
    let (status, mut v) = list(s, params).await;
    assert_eq!(status, 200, "{params:?}: {v}");
    let mut out = Vec::new();
    loop {
        assert_eq!(v["@odata.count"].as_u64(), count, "{params:?}: {v}");
        out.extend(ids(&v));
        let Some(next) = v["@odata.nextLink"].as_str() else {
            return out;
        };
        let r = s.client.get(next).send().await.expect("next");
        assert_eq!(r.status(), 200, "{next}");
        v = r.json().await.expect("json");
    }
}

#[tokio::test]
async fn select_returns_declared_complex_and_dynamic_properties_and_names_them_in_the_context() {
    let s = Server::start();
    s.create(&json!({
        "id": "s1", "name": "n1", "riskScore": "7", "platform": "Windows", "tags": ["a"],
        "vendorInformation": {"provider": "MCAS", "vendor": "Microsoft"},
        "customField": "x"
    }))
    .await;

    let (st, v) = list(&s, &[("$select", "name,riskScore")]).await;
    assert_eq!(st, 200, "{v}");
    let ctx = v["@odata.context"].as_str().expect("context");
    assert!(
        ctx.ends_with("/$metadata#security/cloudAppSecurityProfiles(name,riskScore)"),
        "{ctx}"
    );
    let item = &v["value"][0];
    assert_eq!(
        props(item),
        ["id", "name", "riskScore"],
        "id always comes back"
    );
    assert_eq!(
        (item["name"].as_str(), item["riskScore"].as_str()),
        (Some("n1"), Some("7"))
    );

    // A complex property comes back whole; a dynamic one by name.
    let (_, v) = list(&s, &[("$select", "vendorInformation,customField")]).await;
    let item = &v["value"][0];
    assert_eq!(props(item), ["customField", "id", "vendorInformation"]);
    assert_eq!(item["customField"], "x");
    assert_eq!(item["vendorInformation"]["provider"], "MCAS");
    assert_eq!(item["vendorInformation"]["vendor"], "Microsoft");
    assert!(item["vendorInformation"]["subProvider"].is_null());

    let (_, v) = list(&s, &[("$select", "id")]).await;
    assert_eq!(props(&v["value"][0]), ["id"]);
    // A dynamic property no row has: nothing to return, but it is still named.
    let (_, v) = list(&s, &[("$select", "name,nowhere")]).await;
    assert_eq!(props(&v["value"][0]), ["id", "name"]);
    assert!(
        v["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("cloudAppSecurityProfiles(name,nowhere)")
    );
    let (_, v) = list(&s, &[("$select", "*")]).await;
    assert!(props(&v["value"][0]).len() > 18, "{v}");

    let msg = list_error(&s, &[("$select", "vendorInformation/provider")]).await;
    assert!(msg.contains("as a whole"), "{msg}");
    let msg = list_error(&s, &[("$select", "name,")]).await;
    assert!(msg.contains("$select"), "{msg}");

    // Get by id: the context names the selection and ends in /$entity.
    let r = s
        .client
        .get(s.url(&format!("{COLLECTION}/s1")))
        .query(&[("$select", "name")])
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("/$metadata#security/cloudAppSecurityProfiles(name)/$entity"),
        "{v}"
    );
    assert_eq!(props(&v), ["id", "name"]);
    // List-only options do not apply to a single entity.
    let r = s
        .client
        .get(s.url(&format!("{COLLECTION}/s1")))
        .query(&[("$filter", "name eq 'n1'")])
        .send()
        .await
        .expect("get");
    let msg = expect_error(r, 400, "BadRequest").await;
    assert!(msg.contains("$filter"), "{msg}");
}

#[tokio::test]
async fn orderby_takes_several_keys_nested_paths_enum_values_and_breaks_ties_by_id() {
    let s = Server::start();
    // (id, platform, provider, name, permissionsRequired)
    let rows = [
        ("o1", json!("b"), json!("MCAS"), "x", json!("user")),
        ("o2", json!("a"), Value::Null, "y", json!("administrator")),
        ("o3", json!("b"), json!("Contoso"), "x", json!("guest")),
        ("o4", Value::Null, json!("MCAS"), "x", Value::Null),
        ("o5", json!("a"), json!("mcas"), "z", json!("system")),
        ("o6", json!("B"), json!("MCAS"), "x", json!("anonymous")),
    ];
    for (id, platform, provider, name, perm) in rows {
        let vendor = if provider.is_null() {
            Value::Null
        } else {
            json!({ "provider": provider })
        };
        s.create(
            &json!({"id": id, "platform": platform, "vendorInformation": vendor,
                         "name": name, "permissionsRequired": perm}),
        )
        .await;
    }
    // Expected orders worked out by hand from CONTRACT §4: ordinal strings ('B' < 'a' < 'b'),
    // nulls first ascending and last descending, enums by value, ties by id.
    let cases: &[(&str, &[&str])] = &[
        (
            "vendorInformation/provider desc,platform",
            &["o5", "o4", "o6", "o1", "o3", "o2"],
        ),
        ("platform desc,name", &["o1", "o3", "o2", "o5", "o6", "o4"]),
        ("platform", &["o4", "o6", "o2", "o5", "o1", "o3"]),
        ("name", &["o1", "o3", "o4", "o6", "o2", "o5"]),
        ("name desc,id desc", &["o5", "o2", "o6", "o4", "o3", "o1"]),
        // By value: unknown < anonymous(1) < guest(2) < user(3) < administrator(4) < system(5);
        // alphabetical order would put administrator first.
        ("permissionsRequired", &["o4", "o6", "o3", "o1", "o2", "o5"]),
        (
            "permissionsRequired desc",
            &["o5", "o2", "o1", "o3", "o6", "o4"],
        ),
    ];
    for (order, want) in cases {
        let (st, v) = list(&s, &[("$orderby", order)]).await;
        assert_eq!(st, 200, "{order}: {v}");
        assert_eq!(ids(&v), *want, "{order}");
        // The same order page by page, also when the sort keys are not selected.
        let paged = walk_ids(
            &s,
            &[("$orderby", order), ("$top", "2"), ("$select", "id")],
            None,
        )
        .await;
        assert_eq!(paged, *want, "{order}, paged");
    }
    for bad in [
        "tags",
        "vendorInformation",
        "customField",
        "name sideways",
        "name,name",
    ] {
        let msg = list_error(&s, &[("$orderby", bad)]).await;
        assert!(msg.contains("$orderby"), "{bad}: {msg}");
    }
}

#[tokio::test]
async fn top_skip_and_count_follow_the_contract() {
    let s = Server::start();
    for i in 0..12 {
        let name = if i % 2 == 0 { "even" } else { "odd" };
        s.create(&json!({"id": format!("c{i:02}"), "name": name}))
            .await;
    }
    let all: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();

    for bad in ["0", "1001", "-1", "x"] {
        let msg = list_error(&s, &[("$top", bad)]).await;
        assert!(
            msg.contains("$top") && msg.contains("1 to 1000"),
            "{bad}: {msg}"
        );
    }
    let (st, v) = list(&s, &[("$top", "1000")]).await;
    assert_eq!(st, 200);
    assert_eq!(ids(&v), all);
    assert!(v.get("@odata.nextLink").is_none());

    // $skip applies once, before the first page; the next links carry on from there.
    let (_, v) = list(&s, &[("$skip", "5")]).await;
    assert_eq!(ids(&v), all[5..]);
    let paged = walk_ids(&s, &[("$skip", "5"), ("$top", "3")], None).await;
    assert_eq!(paged, all[5..]);
    let (_, v) = list(&s, &[("$skip", "100")]).await;
    assert!(ids(&v).is_empty());
    let msg = list_error(&s, &[("$skip", "-1")]).await;
    assert!(msg.contains("$skip"), "{msg}");

    // $count=true counts the whole filtered set, on every page, before `value`.
    let filter = ("$filter", "name eq 'even'");
    let evens: Vec<String> = all.iter().step_by(2).cloned().collect();
    let paged = walk_ids(&s, &[filter, ("$count", "true"), ("$top", "4")], Some(6)).await;
    assert_eq!(paged, evens);
    let with_skip = walk_ids(&s, &[filter, ("$count", "true"), ("$skip", "4")], Some(6)).await;
    assert_eq!(with_skip, evens[4..]);
    let text = s
        .client
        .get(s.url(COLLECTION))
        .query(&[filter, ("$count", "true"), ("$top", "1")])
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    let (c, v) = (text.find("\"@odata.count\":6"), text.find("\"value\""));
    assert!(c.is_some() && c < v, "@odata.count before value: {text}");
    let (_, v) = list(&s, &[("$count", "false")]).await;
    assert!(v.get("@odata.count").is_none());
    let msg = list_error(&s, &[("$count", "yes")]).await;
    assert!(msg.contains("$count"), "{msg}");

    // /$count, with and without $filter; it takes no other option.
    let count = |q: Vec<(&'static str, &'static str)>| {
        let req = s
            .client
            .get(s.url(&format!("{COLLECTION}/$count")))
            .query(&q);
        async move { req.send().await.expect("count") }
    };
    let r = count(vec![]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "12");
    let r = count(vec![("$filter", "name eq 'odd' and id ne 'c01'")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "5");
    let msg = expect_error(count(vec![("$top", "1")]).await, 400, "BadRequest").await;
    assert!(msg.contains("$top"), "{msg}");
    let msg = expect_error(count(vec![("$filter", "name eq")]).await, 400, "BadRequest").await;
    assert!(msg.contains("position"), "{msg}");
}

#[tokio::test]
async fn option_names_are_case_insensitive_with_an_optional_dollar_and_unknown_ones_are_named() {
    let s = Server::start();
    for i in 0..4 {
        s.create(&json!({"id": format!("n{i}"), "name": if i < 3 { "a" } else { "b" }}))
            .await;
    }
    for name in ["$filter", "filter", "$FILTER", "Filter"] {
        let (st, v) = list(
            &s,
            &[(name, "name eq 'a'"), ("TOP", "2"), ("$Count", "true")],
        )
        .await;
        assert_eq!(st, 200, "{name}: {v}");
        assert_eq!(ids(&v), ["n0", "n1"], "{name}");
        assert_eq!(v["@odata.count"], 3, "{name}");
    }
    // Parameters without `$` that are not system options belong to the client.
    let (st, _) = list(&s, &[("api-version", "1"), ("foo", "bar")]).await;
    assert_eq!(st, 200);

    for (opt, value) in [
        ("$expand", "x"),
        ("$search", "x"),
        ("$bogus", "1"),
        ("$format", "json"),
    ] {
        let msg = list_error(&s, &[(opt, value)]).await;
        assert!(msg.contains(opt), "{opt}: {msg}");
    }
    let msg = list_error(&s, &[("expand", "x")]).await;
    assert!(msg.contains("$expand"), "{msg}");
    for pair in [
        [("$filter", "name eq 'a'"), ("filter", "name eq 'b'")],
        [("$top", "1"), ("$TOP", "1")],
    ] {
        let msg = list_error(&s, &pair).await;
        assert!(msg.contains("more than once"), "{pair:?}: {msg}");
    }
}

/// `$skiptoken` of a next link.
fn skiptoken(next: &str) -> String {
    reqwest::Url::parse(next)
        .expect("absolute next link")
        .query_pairs()
        .find(|(k, _)| k == "$skiptoken")
        .map(|(_, v)| v.into_owned())
        .expect("$skiptoken in the next link")
}

#[tokio::test]
async fn skiptokens_are_tamper_evident_and_bound_to_their_query() {
    let s = Server::start();
    for i in 0..6 {
        s.create(&json!({"id": format!("k{i}"), "name": if i % 2 == 0 { "a" } else { "b" }}))
            .await;
    }
    let filter = ("$filter", "name eq 'a'");
    let (_, v) = list(&s, &[filter, ("$top", "1")]).await;
    let next = v["@odata.nextLink"]
        .as_str()
        .expect("next link")
        .to_string();
    assert!(
        next.starts_with(&s.base),
        "absolute, as the client addressed us: {next}"
    );
    let token = skiptoken(&next);

    let (st, v) = list(&s, &[filter, ("$top", "1"), ("$skiptoken", &token)]).await;
    assert_eq!(st, 200, "the genuine token: {v}");
    assert_eq!(ids(&v), ["k2"]);

    // Flip one character of the payload, of the signature; cut it; make one up.
    let flip = |at: usize| {
        let mut chars: Vec<char> = token.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let forged = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = json!({"v": 1, "q": "whatever", "k": ["k4"]}).to_string();
        format!("{}.{}", b64.encode(payload), b64.encode([7u8; 16]))
    };
    let bad_tokens = [
        flip(3),
        flip(token.len() - 2),
        token[..token.len() - 1].to_string(),
        forged,
        "garbage".to_string(),
    ];
    for bad in &bad_tokens {
        let msg = list_error(&s, &[filter, ("$top", "1"), ("$skiptoken", bad)]).await;
        assert!(msg.contains("skiptoken"), "{bad}: {msg}");
    }
    // The genuine token with another filter, page size or order is refused, not reinterpreted.
    for other in [
        vec![("$filter", "name eq 'b'"), ("$top", "1")],
        vec![filter, ("$top", "2")],
        vec![filter, ("$top", "1"), ("$orderby", "name")],
        vec![("$top", "1")],
    ] {
        let mut q = other.clone();
        q.push(("$skiptoken", &token));
        let msg = list_error(&s, &q).await;
        assert!(msg.contains("skiptoken"), "{other:?}: {msg}");
    }
    let msg = list_error(&s, &[filter, ("$skiptoken", "")]).await;
    assert!(msg.contains("skiptoken"), "{msg}");
}

#[tokio::test]
async fn filter_errors_say_where_and_limits_refuse_quickly() {
    let s = Server::start();
    s.create(&json!({"id": "e1", "name": "a"})).await;

    let msg = list_error(&s, &[("$filter", "isSigned eq 'x'")]).await;
    assert!(msg.contains("position 9"), "{msg}");
    for (bad, what) in [
        ("name eq", "position"),
        ("nope(name)", "unknown function"),
        ("name eq 'a' and", "position"),
        ("tags eq 'a'", "collection"),
        ("vendorInformation/nope eq 'a'", "no member"),
        ("length(isSigned) eq 1", "argument 1"),
        ("createdDateTime gt 2020-01-01T00:00:00", "DateTimeOffset"),
    ] {
        let msg = list_error(&s, &[("$filter", bad)]).await;
        assert!(msg.contains(what), "{bad}: {msg}");
    }

    // Limits: length, depth, `in` size, node count. Each must be refused before any work.
    let long = format!("name eq '{}'", "a".repeat(10 * 1024));
    let deep = format!("{}name eq 'a'{}", "(".repeat(40), ")".repeat(40));
    let list300 = format!(
        "name in ({})",
        (0..300)
            .map(|i| format!("'v{i}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let wide = vec!["name eq 'a'"; 200].join(" or ");
    for (f, what) in [
        (&long, "too long"),
        (&deep, "nested too deeply"),
        (&list300, "more than 200 items"),
        (&wide, "too complex"),
    ] {
        let started = std::time::Instant::now();
        let msg = list_error(&s, &[("$filter", f)]).await;
        eprintln!("{what}: refused in {:?}", started.elapsed());
        assert!(msg.contains(what), "{what}: {msg}");
    }
    // Just inside the limits is fine.
    let list200 = format!(
        "name in ({})",
        (0..200)
            .map(|i| format!("'v{i}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let deep30 = format!("{}name eq 'a'{}", "(".repeat(30), ")".repeat(30));
    for f in [&list200, &deep30] {
        let (st, v) = list(&s, &[("$filter", f)]).await;
        assert_eq!(st, 200, "{v}");
    }
}

#[tokio::test]
async fn dynamic_properties_datetime_literals_and_enum_literals_in_filter() {
    let s = Server::start();
    let rows = [
        json!({"id": "d1", "customScore": 5, "customFlag": true, "permissionsRequired": "administrator"}),
        json!({"id": "d2", "customScore": "5", "customFlag": false, "permissionsRequired": "user"}),
        json!({"id": "d3", "customScore": 7.5, "permissionsRequired": "system"}),
        json!({"id": "d4"}),
        json!({"id": "d5", "customScore": null, "permissionsRequired": "guest"}),
    ];
    let mut created = HashMap::new();
    for r in &rows {
        let v = s.create(r).await;
        created.insert(r["id"].as_str().expect("id").to_string(), v);
    }
    let cases: &[(&str, &[&str])] = &[
        // Dynamic properties compare as JSON primitives: a number is not a string.
        ("customScore eq 5", &["d1"]),
        ("customScore eq '5'", &["d2"]),
        ("customScore gt 5", &["d3"]),
        ("customScore ge 5.0", &["d1", "d3"]),
        ("customScore ne 5", &["d2", "d3", "d4", "d5"]),
        ("customScore eq null", &["d4", "d5"]),
        ("customScore ne null", &["d1", "d2", "d3"]),
        ("customScore gt null", &[]),
        ("customScore in ('5', 7.5)", &["d2", "d3"]),
        ("startswith(customScore, '5')", &["d2"]),
        ("customFlag", &["d1"]),
        ("not customFlag", &["d2"]),
        ("customFlag eq false", &["d2"]),
        ("customFlag ne true", &["d2", "d3", "d4", "d5"]),
        // Enum literals: bare member names and qualified ones; order by underlying value.
        (
            "permissionsRequired eq microsoft.graph.applicationPermissionsRequired'administrator'",
            &["d1"],
        ),
        ("permissionsRequired gt 'user'", &["d1", "d3"]),
        (
            "permissionsRequired le microsoft.graph.applicationPermissionsRequired'user'",
            &["d2", "d5"],
        ),
        (
            "permissionsRequired in ('guest', microsoft.graph.applicationPermissionsRequired'system')",
            &["d3", "d5"],
        ),
        ("permissionsRequired eq null", &["d4"]),
    ];
    for (f, want) in cases {
        let (st, v) = list(&s, &[("$filter", f)]).await;
        assert_eq!(st, 200, "{f}: {v}");
        assert_eq!(ids(&v), *want, "{f}");
    }
    for (f, what) in [
        ("permissionsRequired eq 'bogus'", "not a member"),
        (
            "permissionsRequired eq microsoft.graph.nope'user'",
            "unknown type",
        ),
        ("permissionsRequired eq 4", "cannot compare"),
        ("customScore eq createdDateTime", "cannot compare"),
    ] {
        let msg = list_error(&s, &[("$filter", f)]).await;
        assert!(msg.contains(what), "{f}: {msg}");
    }

    // Unquoted DateTimeOffset literals in other offsets name the same instant.
    let t = ticks(created["d3"]["createdDateTime"].as_str().expect("created"));
    for off in [330, -480, 0] {
        let lit = datetime_literal(t, off);
        for (op, want) in [
            ("eq", &["d3"][..]),
            ("ge", &["d3", "d4", "d5"][..]),
            ("lt", &["d1", "d2"][..]),
        ] {
            let f = format!("createdDateTime {op} {lit}");
            // reqwest percent-encodes `+` as %2B, as a client must.
            let (st, v) = list(&s, &[("$filter", &f)]).await;
            assert_eq!(st, 200, "{f}: {v}");
            assert_eq!(ids(&v), want, "{f}");
        }
    }
    // The same, with the query string written by hand.
    let lit = datetime_literal(t, 330).replace('+', "%2B");
    let url = s.url(&format!(
        "{COLLECTION}?$filter=createdDateTime%20eq%20{lit}"
    ));
    let v: Value = s
        .client
        .get(&url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&v), ["d3"], "{url}");
    // An unencoded `+` is a space in a query string (as Graph decodes it): no longer a valid
    // DateTimeOffset, so 400 rather than a silently different instant.
    let raw = datetime_literal(t, 330);
    let url = s.url(&format!(
        "{COLLECTION}?$filter=createdDateTime%20eq%20{raw}"
    ));
    let msg = expect_error(
        s.client.get(&url).send().await.expect("get"),
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("position"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Keyset paging under concurrent writes.
// ---------------------------------------------------------------------------------------------

/// A tiny deterministic generator for the mutator's choices (xorshift64*).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

const NAMES: &[Option<&str>] = &[Some("alpha"), Some("Beta"), Some("gamma"), Some("é"), None];

/// What the mutator did while a walk was in progress.
#[derive(Default)]
struct Mutations {
    inserted: HashSet<String>,
    /// Recorded before the DELETE is sent, so a row being deleted counts as deleted.
    deleted: HashSet<String>,
    /// Deleted (and acknowledged) before the walk had returned them.
    deleted_unseen: HashSet<String>,
}

/// One round: two inserts (random ids, so they land before and after the cursor), one delete
/// of a row the walk has not returned yet, one of a row it has.
async fn mutate(
    s: &Server,
    rng: &mut Lcg,
    originals: &[String],
    seen: &Mutex<HashSet<String>>,
    m: &Mutex<Mutations>,
    round: usize,
) {
    for k in 0..2 {
        let id = format!("r{:03}-new{round}-{k}", rng.next(1000));
        let name = NAMES[rng.next(NAMES.len())];
        s.create(&json!({"id": id, "name": name, "platform": "p"}))
            .await;
        m.lock().expect("m").inserted.insert(id);
    }
    let seen_now = seen.lock().expect("seen").clone();
    for want_seen in [false, true] {
        let pick = {
            let mut m = m.lock().expect("m");
            let candidates: Vec<&String> = originals
                .iter()
                .filter(|id| seen_now.contains(*id) == want_seen && !m.deleted.contains(*id))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let id = candidates[rng.next(candidates.len())].clone();
            m.deleted.insert(id.clone());
            id
        };
        let r = s.delete(&format!("{COLLECTION}/{pick}")).await;
        assert_eq!(r.status(), 204, "delete {pick}");
        if !want_seen {
            m.lock().expect("m").deleted_unseen.insert(pick);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_under_concurrent_inserts_and_deletes_returns_every_surviving_row_exactly_once() {
    let s = Arc::new(Server::start());
    let queries: &[&[(&str, &str)]] = &[
        &[("$top", "7")],
        &[("$top", "7"), ("$orderby", "name desc,createdDateTime")],
        &[
            ("$top", "7"),
            ("$filter", "platform eq 'p'"),
            ("$orderby", "name"),
        ],
    ];
    let mut rng = Lcg(0x9e37_79b9_7f4a_7c15);
    for query in queries {
        // Lock-step (mutations strictly between page fetches) and free-running (racing them).
        for lockstep in [true, false] {
            let existing = s.all_ids().await;
            for id in existing {
                let r = s.delete(&format!("{COLLECTION}/{id}")).await;
                assert_eq!(r.status(), 204);
            }
            let mut originals = Vec::new();
            for i in 0..100 {
                let id = format!("r{:03}", (i * 37) % 100);
                let name = NAMES[rng.next(NAMES.len())];
                s.create(&json!({"id": id, "name": name, "platform": "p"}))
                    .await;
                originals.push(id);
            }
            let originals = Arc::new(originals);
            let seen = Arc::new(Mutex::new(HashSet::new()));
            let muts = Arc::new(Mutex::new(Mutations::default()));
            let (page_tx, mut page_rx) = tokio::sync::mpsc::channel::<()>(1);
            let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            // Racing rounds done so far: the walker waits for one per page, so a slow store
            // or a loaded machine cannot leave the mutator idle for the whole walk.
            let raced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mutator = {
                let (s, originals, seen, muts, stop, raced) = (
                    s.clone(),
                    originals.clone(),
                    seen.clone(),
                    muts.clone(),
                    stop.clone(),
                    raced.clone(),
                );
                let mut rng = Lcg(rng.next(usize::MAX) as u64 | 1);
                tokio::spawn(async move {
                    let mut n = 0;
                    if lockstep {
                        while page_rx.recv().await.is_some() {
                            mutate(&s, &mut rng, &originals, &seen, &muts, n).await;
                            n += 1;
                            let _ = done_tx.send(()).await;
                        }
                    } else {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            mutate(&s, &mut rng, &originals, &seen, &muts, n).await;
                            n += 1;
                            raced.store(n, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                    }
                    n
                })
            };

            let mut walked: Vec<String> = Vec::new();
            let mut req = s.client.get(s.url(COLLECTION)).query(query);
            loop {
                let r = req.send().await.expect("page");
                assert_eq!(r.status(), 200);
                let v: Value = r.json().await.expect("json");
                let page = ids(&v);
                assert!(page.len() <= 7);
                seen.lock().expect("seen").extend(page.iter().cloned());
                walked.extend(page);
                let Some(next) = v["@odata.nextLink"].as_str() else {
                    break;
                };
                if lockstep {
                    page_tx.send(()).await.expect("mutator alive");
                    done_rx.recv().await.expect("mutator done");
                } else {
                    // Leave the racing mutator time to act between pages (bounded wait).
                    let pages = walked.len().div_ceil(7);
                    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    while raced.load(std::sync::atomic::Ordering::Relaxed) < pages
                        && std::time::Instant::now() < end
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    }
                }
                req = s.client.get(next);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(page_tx);
            let rounds = mutator.await.expect("mutator");

            let m = muts.lock().expect("m");
            let label = format!("{query:?}, lockstep {lockstep}, {rounds} mutation rounds");
            let mut once = HashSet::new();
            for id in &walked {
                assert!(once.insert(id), "{label}: {id} returned twice");
                assert!(
                    originals.contains(id) || m.inserted.contains(id),
                    "{label}: {id} never existed"
                );
                // Only in lock-step is "deleted before reached" certain: racing, the page that
                // holds the row may already have been read when the DELETE commits.
                assert!(
                    !lockstep || !m.deleted_unseen.contains(id),
                    "{label}: {id} was deleted before the walk reached it, yet returned"
                );
            }
            let survivors: Vec<&String> = originals
                .iter()
                .filter(|id| !m.deleted.contains(*id))
                .collect();
            for id in &survivors {
                assert!(once.contains(id), "{label}: surviving row {id} was skipped");
            }
            assert!(
                rounds >= 5 && !m.deleted_unseen.is_empty(),
                "{label}: the mutator barely ran"
            );
            assert!(survivors.len() < originals.len(), "{label}");
            eprintln!(
                "{label}: {} returned, {} survivors, {} inserted, {} deleted",
                walked.len(),
                survivors.len(),
                m.inserted.len(),
                m.deleted.len()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The family's Edm surface over HTTP (issue 14): paths into complex values, lambdas over
// collections of complex values and of enums, nested lambdas, Int32/Int64/Double. The random,
// model-driven counterpart (every set, a reference evaluator over nested and complex
// collections) is `conformance.rs`; these pin known answers and the refusals.
// ---------------------------------------------------------------------------------------------

async fn family_ids(s: &Server, set: &str, params: &[(&str, &str)]) -> Vec<String> {
    let path = format!("/beta/security/{set}");
    let mut out = Vec::new();
    let r = s.get_with(&path, params).await;
    assert_eq!(r.status(), 200, "{set} {params:?}");
    let mut v: Value = r.json().await.expect("json");
    loop {
        out.extend(ids(&v));
        let Some(next) = v["@odata.nextLink"].as_str() else {
            return out;
        };
        v = s
            .client
            .get(next)
            .send()
            .await
            .expect("next")
            .json()
            .await
            .expect("json");
    }
}

async fn family_error(s: &Server, set: &str, params: &[(&str, &str)]) -> String {
    let r = s.get_with(&format!("/beta/security/{set}"), params).await;
    expect_error(r, 400, "BadRequest").await
}

#[tokio::test]
async fn family_filters_walk_nested_paths_lambdas_numbers_and_enums() {
    let s = Server::start();
    let hosts = [
        json!({"id": "h1", "azureTenantId": "t", "logonUsers": [
            {"accountName": "a", "logonTypes": ["interactive", "network"]},
            {"accountName": "b", "logonTypes": []}]}),
        json!({"id": "h2", "azureTenantId": "t", "logonUsers": [{"accountName": "c", "logonTypes": ["service"]}]}),
        json!({"id": "h3", "azureTenantId": "t", "logonUsers": null}),
    ];
    let controls = [
        json!({"id": "c1", "azureTenantId": "t", "rank": 3, "complianceInformation": [
            {"certificationName": "ISO", "certificationControls": [{"name": "A.1"}, {"name": "A.2", "extra": true}]}]}),
        json!({"id": "c2", "azureTenantId": "t", "rank": 30, "complianceInformation": [
            {"certificationName": "SOC", "certificationControls": []}]}),
    ];
    let scores = [
        json!({"id": "s1", "azureTenantId": "t", "currentScore": 10.5, "activeUserCount": 9,
            "averageComparativeScores": [{"basis": "AllTenants", "averageScore": 51.25, "kept": {"a": 1}}]}),
        json!({"id": "s2", "azureTenantId": "t", "currentScore": 9, "activeUserCount": 2147483647}),
        json!({"id": "s3", "azureTenantId": "t", "currentScore": -1.25, "activeUserCount": -3}),
        json!({"id": "s4", "azureTenantId": "t"}),
    ];
    for (set, bodies) in [
        ("hostSecurityProfiles", &hosts[..]),
        ("secureScoreControlProfiles", &controls[..]),
        ("secureScores", &scores[..]),
    ] {
        for b in bodies {
            let r = s.post(&format!("/beta/security/{set}"), b).await;
            assert_eq!(
                r.status(),
                201,
                "{set} {b}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }
    let cases: &[(&str, &str, &str)] = &[
        (
            "hostSecurityProfiles",
            "logonUsers/any(u: u/logonTypes/any(x: x eq 'interactive'))",
            "h1",
        ),
        (
            "hostSecurityProfiles",
            "logonUsers/any(u: u/logonTypes/any(x: x ge 'network'))",
            "h1 h2",
        ),
        (
            "hostSecurityProfiles",
            "logonUsers/any(u: not u/logonTypes/any())",
            "h1",
        ),
        (
            "hostSecurityProfiles",
            "logonUsers/all(u: startswith(u/accountName, 'c'))",
            "h2",
        ),
        ("hostSecurityProfiles", "not logonUsers/any()", ""),
        (
            "secureScoreControlProfiles",
            "complianceInformation/any(c: c/certificationControls/any(d: d/name eq 'A.2'))",
            "c1",
        ),
        (
            "secureScoreControlProfiles",
            "complianceInformation/any(c: c/certificationName eq 'SOC' and not c/certificationControls/any())",
            "c2",
        ),
        ("secureScoreControlProfiles", "rank gt 3.5", "c2"),
        ("secureScores", "currentScore gt 9", "s1"),
        (
            "secureScores",
            "currentScore ge 9 and currentScore le 9.0",
            "s2",
        ),
        ("secureScores", "currentScore lt activeUserCount", "s2"),
        ("secureScores", "activeUserCount eq 2147483647", "s2"),
        (
            "secureScores",
            "averageComparativeScores/any(a: a/averageScore gt 50)",
            "s1",
        ),
        ("secureScores", "currentScore eq null", "s4"),
    ];
    for (set, filter, want) in cases {
        let got = family_ids(&s, set, &[("$filter", filter)]).await.join(" ");
        assert_eq!(got, *want, "{set} $filter={filter}");
    }
    // Numbers sort numerically and page with the keyset (one row per page).
    let got = family_ids(
        &s,
        "secureScores",
        &[("$orderby", "currentScore desc"), ("$top", "1")],
    )
    .await;
    assert_eq!(got.join(" "), "s1 s2 s3 s4");
    let got = family_ids(
        &s,
        "secureScores",
        &[("$orderby", "activeUserCount"), ("$top", "1")],
    )
    .await;
    assert_eq!(got.join(" "), "s4 s3 s1 s2");
    // Undeclared members of an open complex value are kept and returned inside it.
    let v: Value = s
        .get("/beta/security/secureScores/s1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["averageComparativeScores"][0]["kept"],
        json!({"a": 1}),
        "{v}"
    );

    // Refusals are 400s that name the path and the reason.
    let e = family_error(&s, "alerts", &[("$filter", "fileStates/name eq 'x'")]).await;
    assert!(
        e.contains("'fileStates' is a collection") && e.contains("fileStates/any(x: x/name"),
        "{e}"
    );
    let e = family_error(
        &s,
        "secureScores",
        &[("$filter", "averageComparativeScores/any(a: a/kept eq 1)")],
    )
    .await;
    assert!(
        e.contains("declares no member 'kept'") && e.contains("open complex type"),
        "{e}"
    );
    let e = family_error(
        &s,
        "alerts",
        &[("$filter", "fileStates/any(f: f/fileHash/x eq 'a')")],
    )
    .await;
    assert!(
        e.contains("'f/fileHash' has no member 'x' (members: hashType, hashValue)"),
        "{e}"
    );
    let e = family_error(&s, "alerts", &[("$filter", "confidence eq 'high'")]).await;
    assert!(e.contains("cannot compare 'confidence' (Edm.Int32)"), "{e}");
    let e = family_error(
        &s,
        "hostSecurityProfiles",
        &[(
            "$filter",
            "logonUsers/any(u: u/logonTypes/any(x: x eq 'remote'))",
        )],
    )
    .await;
    assert!(
        e.contains("'remote' is not a member of microsoft.graph.logonType"),
        "{e}"
    );
    let e = family_error(
        &s,
        "secureScores",
        &[("$orderby", "averageComparativeScores")],
    )
    .await;
    assert!(
        e.contains("is a collection") || e.contains("not sortable"),
        "{e}"
    );
}
