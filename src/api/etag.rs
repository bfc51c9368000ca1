//! Entity tags and the conditional-request headers (`ETag`, `If-Match`, `If-None-Match`).
//!
//! An entity's tag is its store version (a per-write unique tick) as a strong validator,
//! `"<version>"`. CONTRACT §6: Graph declares no concurrency token for this type, so the tag is
//! sent only as a header; bodies keep the seed pages' shape (no `@odata.etag`).
//!
//! `If-Match` uses strong comparison (RFC 9110 §13.1.1): a weak tag (`W/"..."`) or a tag that
//! is not one of ours matches nothing, so the write is refused with 412 rather than applied
//! unconditionally. `If-None-Match` uses weak comparison (the `W/` prefix is ignored).

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::store::{Precondition, Tags};

/// The `ETag` header value of an entity at `version`.
pub fn header_value(version: i64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The version an opaque tag (`"123"`) names, if it is one of ours.
fn version_of(opaque: &str) -> Option<i64> {
    let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    inner.parse().ok()
}

/// Parses every line of a precondition header into the versions it names. `None` when the
/// header is absent.
fn tags(headers: &HeaderMap, name: HeaderName, weak_ok: bool) -> Option<Tags> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut versions = Vec::new();
    for line in lines {
        // A header that is not visible ASCII names no tag of ours; it still counts as present.
        let Ok(text) = line.to_str() else { continue };
        for item in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if item == "*" {
                return Some(Tags::Any);
            }
            let strong = match item.strip_prefix("W/") {
                Some(rest) if weak_ok => rest,
                Some(_) => continue,
                None => item,
            };
            versions.extend(version_of(strong));
        }
    }
    Some(Tags::Versions(versions))
}

/// The request's preconditions, typed for the store.
pub fn precondition(headers: &HeaderMap) -> Precondition {
    Precondition {
        if_match: tags(headers, header::IF_MATCH, false),
        if_none_match: tags(headers, header::IF_NONE_MATCH, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(name: HeaderName, values: &[&str]) -> Precondition {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        precondition(&h)
    }

    #[test]
    fn tags_round_trip_and_compare_as_rfc_9110_says() {
        let tag = header_value(638_123_456_789_012_345);
        assert_eq!(tag, "\"638123456789012345\"");
        let own = tag.to_str().unwrap();
        assert_eq!(
            pre(header::IF_MATCH, &[own]).if_match,
            Some(Tags::Versions(vec![638_123_456_789_012_345]))
        );
        // Strong comparison for If-Match: a weak form of our own tag matches nothing.
        assert_eq!(
            pre(header::IF_MATCH, &[&format!("W/{own}")]).if_match,
            Some(Tags::Versions(vec![]))
        );
        // Weak comparison for If-None-Match.
        assert_eq!(
            pre(header::IF_NONE_MATCH, &[&format!("W/{own}")]).if_none_match,
            Some(Tags::Versions(vec![638_123_456_789_012_345]))
        );
        assert_eq!(
            pre(header::IF_MATCH, &["\"x\", \"7\"", "\"9\""]).if_match,
            Some(Tags::Versions(vec![7, 9]))
        );
        assert_eq!(
            pre(header::IF_MATCH, &["\"1\", *"]).if_match,
            Some(Tags::Any)
        );
        assert_eq!(pre(header::IF_MATCH, &[]), Precondition::default());
    }
}
