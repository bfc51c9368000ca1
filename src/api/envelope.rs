//! The OData envelope: base URLs, `@odata.context`, content types, and entity/collection bodies.

use axum::body::Body;
use axum::response::IntoResponse;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use crate::model::entity::EntityType;
use crate::model::record::{Record, Selection};

/// The content type of every successful JSON response.
pub const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// What must be escaped in a path segment we generate (RFC 3986 `pchar` keeps the rest).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// The URL root the client addressed, e.g. `http://127.0.0.1:7470/beta` or `…/v1.0`.
#[derive(Debug, Clone)]
pub struct Root(pub String);

impl Root {
    /// From a configured public URL, or the scheme we serve and the `Host` the client used,
    /// then the version root segment the client wrote (`None`: an unversioned path).
    pub fn new(
        public_url: Option<&str>,
        tls: bool,
        headers: &HeaderMap,
        version: Option<&str>,
    ) -> Root {
        // One buffer, sized once: this runs for every request.
        let mut root = String::with_capacity(64);
        match public_url {
            Some(u) => root.push_str(u.trim_end_matches('/')),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
                    .unwrap_or("localhost");
                root.push_str(if tls { "https://" } else { "http://" });
                root.push_str(host);
            }
        }
        if let Some(version) = version {
            root.push('/');
            root.push_str(version);
        }
        Root(root)
    }

    /// The URL of the entity set (`…/security/cloudAppSecurityProfiles`).
    pub fn collection_path(&self, entity: &EntityType) -> String {
        format!("{}/{}/{}", self.0, entity.singleton, entity.collection)
    }

    /// The canonical URL of one entity (`…/cloudAppSecurityProfiles('id')`).
    pub fn entity_url(&self, entity: &EntityType, id: &str) -> String {
        let quoted = id.replace('\'', "''");
        let encoded = percent_encoding::utf8_percent_encode(&quoted, SEGMENT);
        format!("{}('{encoded}')", self.collection_path(entity))
    }

    /// `{root}/$metadata#{singleton}/{collection}`, then `({select})` and `suffix`, built in one
    /// buffer (it is on the path of every response).
    fn context(&self, entity: &EntityType, select: Option<&str>, suffix: &str) -> String {
        let names = select.map_or(0, |n| n.len() + 2);
        let mut out = String::with_capacity(
            self.0.len() + entity.singleton.len() + entity.collection.len() + names + 20,
        );
        out.push_str(&self.0);
        out.push_str("/$metadata#");
        out.push_str(entity.singleton);
        out.push('/');
        out.push_str(entity.collection);
        if let Some(names) = select {
            out.push('(');
            out.push_str(names);
            out.push(')');
        }
        out.push_str(suffix);
        out
    }

    /// `@odata.context` of a collection response (with the `$select` list, if any).
    pub fn collection_context(&self, entity: &EntityType, select: Option<&str>) -> String {
        self.context(entity, select, "")
    }

    pub fn entity_context(&self, entity: &EntityType, select: Option<&str>) -> String {
        self.context(entity, select, "/$entity")
    }
}

/// A JSON response with graphsec's success headers.
pub fn json_response(status: StatusCode, body: &Json) -> Response {
    serialized_response(status, body, 1)
}

/// Serializes `body` straight into the response bytes (no intermediate JSON tree).
fn serialized_response(status: StatusCode, body: &impl Serialize, records: usize) -> Response {
    // A profile is about 1 KB: size the buffer once instead of growing it by doubling.
    let mut bytes = Vec::with_capacity(512 + 1024 * records);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => {}
        Err(e) => {
            // Only a bug can get here (every value we serialize is valid JSON).
            tracing::error!(error = %e, "response serialization failed");
            return crate::error::GraphError::Internal.into_response();
        }
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    resp
}

/// One entity with its context first, as a response.
pub fn entity_response(
    status: StatusCode,
    root: &Root,
    record: &Record,
    select: Option<&Selection>,
    names: Option<&str>,
) -> Response {
    let context = root.entity_context(record.entity, names);
    serialized_response(status, &record.wire(select, Some(&context)), 1)
}

/// A page of a collection (context, count, value, next link), as a response.
pub fn collection_response(
    context: &str,
    count: Option<u64>,
    records: &[Record],
    select: Option<&Selection>,
    next_link: Option<&str>,
) -> Response {
    serialized_response(
        StatusCode::OK,
        &Collection {
            context,
            count,
            records,
            select,
            next_link,
        },
        records.len(),
    )
}

struct Collection<'a> {
    context: &'a str,
    count: Option<u64>,
    records: &'a [Record],
    select: Option<&'a Selection>,
    next_link: Option<&'a str>,
}

impl Serialize for Collection<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(None)?;
        out.serialize_entry("@odata.context", self.context)?;
        if let Some(n) = self.count {
            out.serialize_entry("@odata.count", &n)?;
        }
        let value = self.records.iter().map(|r| r.wire(self.select, None));
        out.serialize_entry("value", &Seq(std::cell::Cell::new(Some(value))))?;
        if let Some(link) = self.next_link {
            out.serialize_entry("@odata.nextLink", link)?;
        }
        out.end()
    }
}

/// Serializes an iterator once, as a JSON array.
struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = T>, T: Serialize> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(items) => s.collect_seq(items),
            None => s.serialize_unit(),
        }
    }
}

/// One entity with its context first, as a JSON tree (the same serializer as
/// [`entity_response`], for callers that must edit the body).
pub fn entity_body(
    root: &Root,
    record: &Record,
    select: Option<&Selection>,
    names: Option<&str>,
) -> Json {
    let context = root.entity_context(record.entity, names);
    serde_json::to_value(record.wire(select, Some(&context))).unwrap_or(Json::Null)
}

/// A page of a collection as a JSON tree (the same serializer as [`collection_response`]).
pub fn collection_body(
    context: String,
    count: Option<u64>,
    records: &[Record],
    select: Option<&Selection>,
    next_link: Option<String>,
) -> Json {
    serde_json::to_value(Collection {
        context: &context,
        count,
        records,
        select,
        next_link: next_link.as_deref(),
    })
    .unwrap_or(Json::Null)
}
