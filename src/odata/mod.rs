//! The OData query engine: `$filter` text -> AST -> typed tree, and the system query options.
//!
//! Everything here is pure (no I/O) and total: any input yields a value or a [`QueryError`],
//! never a panic. The store turns the typed tree into SQL (`crate::store::compile`).

pub mod ast;
pub mod names;
pub mod parser;
pub mod query;
pub mod typecheck;

/// A client-facing query error; the API layer maps it to HTTP 400 `BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
}

impl QueryError {
    pub fn new(message: impl Into<String>) -> Self {
        QueryError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod fuzz {
    //! The whole pipeline (parse, type-check, compile for both dialects) never panics.

    use crate::store::compile::compile_filter;
    use crate::store::schema::Dialect;
    use proptest::prelude::*;

    const VALID: &[&str] = &[
        "name eq 'a''b' and not (isSigned eq true) or tags/any(t: startswith(t, 'x'))",
        "permissionsRequired in ('user', microsoft.graph.applicationPermissionsRequired'guest', null)",
        "year(createdDateTime) ge 2020 and date(lastModifiedDateTime) lt 2021-01-01",
        "createdDateTime gt 2020-01-01T00:00:00.1234567+03:00",
        "substring(tolower(trim(name)), 1, 2) eq concat('a', vendorInformation/provider)",
        "tags/all(t: tags/any(u: indexof(u, t) ge 0)) and custom gt 1.5e3",
        "not tags/any() or length(customText) eq -3",
        "custom ge null or custom in ('a', 1, true, null) or custom ne null",
    ];

    const WORDS: &[&str] = &[
        "name",
        "tags",
        "isSigned",
        "vendorInformation",
        "provider",
        "/",
        "eq",
        "ne",
        "gt",
        "and",
        "or",
        "not",
        "in",
        "(",
        ")",
        ",",
        ":",
        "'x'",
        "''",
        "'",
        "null",
        "true",
        "1",
        "-1",
        "1.5",
        "2020-01-01",
        "2020-01-01T00:00:00Z",
        "any",
        "all",
        "t",
        "startswith",
        "substring",
        "date",
        "microsoft.graph.applicationPermissionsRequired'user'",
        "permissionsRequired",
        "custom",
        "é",
        "$",
        // Names and keywords in other cases (CONTRACT §4 "Case").
        "NAME",
        "VendorInformation",
        "EQ",
        "And",
        "NOT",
        "In",
        "TRUE",
        "Null",
        "ANY",
        "StartsWith",
        "Microsoft.Graph.ApplicationPermissionsRequired'USER'",
    ];

    /// Cases per fuzz property: 2,000 in CI (a few seconds); set `GRAPHSEC_FUZZ_CASES` to run
    /// longer, e.g. `GRAPHSEC_FUZZ_CASES=200000 cargo test --release --lib odata::fuzz`.
    fn fuzz_cases() -> u32 {
        std::env::var("GRAPHSEC_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    fn pipeline(src: &str) {
        let profiles = crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap();
        if let Ok(typed) = super::typecheck::parse_and_check(profiles, src) {
            for (dialect, sigil) in [(Dialect::Sqlite, '?'), (Dialect::Postgres, '$')] {
                let frag = compile_filter(&typed, dialect, 1);
                assert_every_param_is_used(src, &frag.sql, sigil, frag.params.len());
            }
        }
    }

    /// A bound parameter the SQL never references is an error on both databases (SQLite: "wrong
    /// number of parameters" when it is the highest-numbered one).
    fn assert_every_param_is_used(src: &str, sql: &str, sigil: char, count: usize) {
        for n in 1..=count {
            let mark = format!("{sigil}{n}");
            let used = sql.match_indices(&mark).any(|(at, _)| {
                !sql[at + mark.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            });
            assert!(used, "{src}: parameter {mark} is bound but unused in {sql}");
        }
    }

    #[test]
    fn relational_null_on_a_dynamic_property_binds_nothing() {
        for src in [
            "custom gt null",
            "null le custom",
            "name eq 'a' and custom lt null",
        ] {
            pipeline(src);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text(s in "\\PC{0,300}") {
            pipeline(&s);
        }

        #[test]
        fn token_soup(words in proptest::collection::vec(proptest::sample::select(WORDS), 0..60)) {
            pipeline(&words.join(" "));
            pipeline(&words.concat());
        }

        #[test]
        fn mutated_valid_filters(
            which in 0..VALID.len(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 0..6),
        ) {
            let mut chars: Vec<char> = VALID[which].chars().collect();
            for (at, op, c) in edits {
                if chars.is_empty() { break; }
                let i = at.index(chars.len());
                match op {
                    0 => chars.insert(i, c),
                    1 => { chars.remove(i); }
                    2 => chars[i] = c,
                    _ => { let tail: Vec<char> = chars[i..].to_vec(); chars.extend(tail); }
                }
            }
            let s: String = chars.into_iter().collect();
            pipeline(&s);
        }
    }
}
