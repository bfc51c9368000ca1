//! The OData envelope: base URLs, `@odata.context`, content types, and entity/collection bodies.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value as Json};

use crate::model::entity::ENTITY;
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

/// The URL root the client addressed, e.g. `http://127.0.0.1:7470/beta`.
#[derive(Debug, Clone)]
pub struct Root(pub String);

impl Root {
    /// From a configured public URL, or the scheme we serve and the `Host` the client used.
    pub fn new(public_url: Option<&str>, tls: bool, headers: &HeaderMap, versioned: bool) -> Root {
        let base = match public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
                    .unwrap_or("localhost");
                format!("{}://{host}", if tls { "https" } else { "http" })
            }
        };
        if versioned {
            Root(format!("{base}/{}", crate::api::routes::VERSION))
        } else {
            Root(base)
        }
    }

    pub fn collection_path(&self) -> String {
        format!("{}/{}/{}", self.0, ENTITY.singleton, ENTITY.collection)
    }

    /// The canonical URL of one profile (`…/cloudAppSecurityProfiles('id')`).
    pub fn entity_url(&self, id: &str) -> String {
        let quoted = id.replace('\'', "''");
        let encoded = percent_encoding::utf8_percent_encode(&quoted, SEGMENT);
        format!("{}('{encoded}')", self.collection_path())
    }

    fn context_base(&self) -> String {
        format!(
            "{}/$metadata#{}/{}",
            self.0, ENTITY.singleton, ENTITY.collection
        )
    }

    /// `@odata.context` of a collection response (with the `$select` list, if any).
    pub fn collection_context(&self, select: Option<&str>) -> String {
        match select {
            Some(names) => format!("{}({names})", self.context_base()),
            None => self.context_base(),
        }
    }

    pub fn entity_context(&self, select: Option<&str>) -> String {
        format!("{}/$entity", self.collection_context(select))
    }
}

/// A JSON response with graphsec's success headers.
pub fn json_response(status: StatusCode, body: &Json) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    resp
}

/// One entity with its context first.
pub fn entity_body(
    root: &Root,
    record: &Record,
    select: Option<&Selection>,
    names: Option<&str>,
) -> Json {
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        Json::String(root.entity_context(names)),
    );
    out.extend(record.to_json(select));
    Json::Object(out)
}

/// A page of a collection: context, count, value, next link.
pub fn collection_body(
    context: String,
    count: Option<u64>,
    records: &[Record],
    select: Option<&Selection>,
    next_link: Option<String>,
) -> Json {
    let mut out = Map::new();
    out.insert("@odata.context".into(), Json::String(context));
    if let Some(n) = count {
        out.insert("@odata.count".into(), Json::from(n));
    }
    out.insert(
        "value".into(),
        Json::Array(
            records
                .iter()
                .map(|r| Json::Object(r.to_json(select)))
                .collect(),
        ),
    );
    if let Some(link) = next_link {
        out.insert("@odata.nextLink".into(), Json::String(link));
    }
    Json::Object(out)
}
