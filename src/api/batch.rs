//! JSON batching (`POST /beta/$batch`, CONTRACT §7), as Graph's JSON batching works.
//!
//! A batch is parsed and checked as a whole first (a malformed batch is one 400 and runs
//! nothing). Each sub-request then becomes a real `http::Request` carrying the outer token and is
//! dispatched in-process through [`Target`], the very service stack a direct call goes through
//! (routing, authentication, permissions, tenant scope, validation, per-call middleware), never a
//! copy of it. Requests run as soon as everything they depend on has finished, independent ones
//! concurrently; a request whose dependency failed is not run and gets 424. The batch answers
//! only after every sub-request has finished, so an acknowledged write inside a batch is as
//! durable as a direct one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use tower::ServiceExt;

use super::AppState;
use super::context::{self, RequestIds};
use super::routes::{self, Route};
use crate::error::GraphError;
use crate::odata::parser::shorten;

/// Graph's limit on requests in one batch.
pub const MAX_REQUESTS: usize = 20;

/// Where sub-requests are dispatched: the per-call Graph stack.
#[derive(Clone)]
pub struct Target {
    state: Arc<AppState>,
    call: Router,
}

impl Target {
    pub fn new(state: Arc<AppState>, call: Router) -> Target {
        Target { state, call }
    }
}

/// Takes `POST …/$batch`; every other request goes on down the stack untouched.
pub async fn middleware(State(target): State<Target>, req: Request, next: Next) -> Response {
    let is_batch = req.method() == Method::POST
        && routes::may_be_batch(req.uri().path())
        && routes::resolve(req.uri().path()).is_ok_and(|r| r.route == Route::Batch);
    if !is_batch {
        return next.run(req).await;
    }
    match run(&target, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// One parsed sub-request.
struct Item {
    id: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    /// Indexes of the requests this one depends on.
    depends_on: Vec<usize>,
}

/// A finished sub-request, as it appears in `responses`. The body is passed through as the
/// sub-response wrote it, never parsed into a tree again (a parse would refuse what the
/// direct answer carried, e.g. a dynamic value nested past serde_json's depth limit).
struct Outcome {
    status: StatusCode,
    headers: Map<String, Json>,
    body: Option<Box<RawValue>>,
}

/// One entry of `responses`, serialized straight into the answer.
#[derive(serde::Serialize)]
struct SubResponse<'a> {
    id: &'a str,
    status: u16,
    headers: &'a Map<String, Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a RawValue>,
}

#[derive(serde::Serialize)]
struct Responses<'a> {
    responses: Vec<SubResponse<'a>>,
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::BadRequest(message.into())
}

async fn run(target: &Target, req: Request) -> Result<Response, GraphError> {
    let state = &target.state;
    let (parts, body) = req.into_parts();
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    // The batch itself needs a valid token (no token, no information); each sub-request is then
    // authenticated and authorized again with the same token, like a direct call.
    state
        .auth
        .authenticate(authorization.as_ref().and_then(|v| v.to_str().ok()))
        .await
        .map_err(GraphError::from)?;
    let doc = super::handlers::json_body(state, &parts, body).await?;
    let items = parse(&doc)?;
    let order = schedule(&items)?;
    // Sub-requests are relative to the version root the batch was posted to.
    let prefix = match routes::resolve(parts.uri.path())
        .ok()
        .and_then(|r| r.prefix)
    {
        Some(version) => format!("/{version}"),
        None => String::new(),
    };
    let mut outer = Outer {
        headers: HeaderMap::new(),
        intercepted: parts
            .extensions
            .get::<crate::proxy::Intercepted>()
            .is_some(),
    };
    if let Some(a) = authorization {
        outer.headers.insert(header::AUTHORIZATION, a);
    }
    if let Some(h) = parts.headers.get(header::HOST) {
        outer.headers.insert(header::HOST, h.clone());
    }
    // A batch with a write runs to its end once it starts: it reports every sub-request
    // rather than answering 408 with some of them written.
    if items
        .iter()
        .any(|it| it.method != Method::GET && it.method != Method::HEAD)
        && let Some(c) = parts.extensions.get::<super::limits::Committed>()
    {
        c.set();
    }
    let outcomes = execute(target, &items, &order, &prefix, &outer).await;
    let responses = Responses {
        responses: items
            .iter()
            .zip(&outcomes)
            .map(|(item, o)| SubResponse {
                id: &item.id,
                status: o.status.as_u16(),
                headers: &o.headers,
                body: o.body.as_deref(),
            })
            .collect(),
    };
    let text = serde_json::to_string(&responses).map_err(|e| {
        tracing::error!(error = %e, "batch response serialization failed");
        GraphError::Internal
    })?;
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::envelope::ODATA_JSON),
    );
    Ok(resp)
}

/// Checks the whole batch; any mistake is a 400 for the batch, before anything runs.
fn parse(doc: &Json) -> Result<Vec<Item>, GraphError> {
    let requests = doc
        .get("requests")
        .ok_or_else(|| bad("The batch body must be a JSON object with a 'requests' array."))?
        .as_array()
        .ok_or_else(|| bad("The batch's 'requests' must be an array."))?;
    if requests.is_empty() {
        return Err(bad("The batch contains no requests."));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "A batch may contain at most {MAX_REQUESTS} requests; this one has {}.",
            requests.len()
        )));
    }
    // Ids are unique ignoring case, so a dependsOn entry names one request unambiguously.
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        let id = r
            .get("id")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "Request {} of the batch has no 'id' string.",
                    i + 1
                ))
            })?;
        if index.insert(id.to_lowercase(), i).is_some() {
            return Err(bad(format!(
                "The batch contains the request id '{}' more than once (ids are compared ignoring case).",
                shorten(id)
            )));
        }
    }
    requests.iter().map(|r| parse_item(r, &index)).collect()
}

fn parse_item(r: &Json, index: &HashMap<String, usize>) -> Result<Item, GraphError> {
    let full_id = r.get("id").and_then(Json::as_str).unwrap_or_default();
    // Messages quote client input shortened: a batch may hold megabytes of it.
    let id = shorten(full_id);
    let field = |name: &str| r.get(name).filter(|v| !v.is_null());
    let method = field("method")
        .and_then(Json::as_str)
        .ok_or_else(|| bad(format!("Request '{id}' has no 'method' string.")))?;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
        bad(format!(
            "Request '{id}' has an invalid method '{}'.",
            shorten(method)
        ))
    })?;
    let url = field("url")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("Request '{id}' has no 'url' string.")))?;
    let uri = relative_uri(url).ok_or_else(|| {
        bad(format!(
            "Request '{id}' has the url '{}', which is not a URL relative to the version root.",
            shorten(url)
        ))
    })?;
    if routes::resolve(uri.path()).is_ok_and(|r| r.route == Route::Batch) {
        return Err(bad(format!(
            "Request '{id}' addresses $batch: batches cannot be nested."
        )));
    }
    let mut headers = HeaderMap::new();
    if let Some(h) = field("headers") {
        let h = h.as_object().ok_or_else(|| {
            bad(format!(
                "The 'headers' of request '{id}' must be an object."
            ))
        })?;
        for (full_name, value) in h {
            let name = shorten(full_name);
            let value = value.as_str().ok_or_else(|| {
                bad(format!(
                    "Header '{name}' of request '{id}' must be a string."
                ))
            })?;
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(full_name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(bad(format!(
                    "Header '{name}' of request '{id}' is not a valid HTTP header."
                )));
            };
            headers.append(n, v);
        }
    }
    let body = match field("body") {
        None => None,
        Some(b) => {
            if !headers.contains_key(header::CONTENT_TYPE) {
                return Err(bad(format!(
                    "Request '{id}' has a body but no Content-Type header."
                )));
            }
            Some(body_bytes(b, &headers))
        }
    };
    let mut depends_on = Vec::new();
    // msgraph-core for Python (1.5) writes the field as `depends_on`; Graph documents only
    // `dependsOn`. Honouring both gives that SDK the ordering its caller asked for.
    for d in [field("dependsOn"), field("depends_on")]
        .into_iter()
        .flatten()
    {
        let list = d.as_array().ok_or_else(|| {
            bad(format!(
                "The 'dependsOn' of request '{id}' must be an array."
            ))
        })?;
        for dep in list {
            let full_name = dep.as_str().ok_or_else(|| {
                bad(format!(
                    "The 'dependsOn' of request '{id}' must list request ids (strings)."
                ))
            })?;
            let i = index.get(&full_name.to_lowercase()).ok_or_else(|| {
                bad(format!(
                    "Request '{id}' depends on '{}', which is not a request of this batch.",
                    shorten(full_name)
                ))
            })?;
            if !depends_on.contains(i) {
                depends_on.push(*i);
            }
        }
    }
    Ok(Item {
        id: full_id.to_string(),
        method,
        uri,
        headers,
        body,
        depends_on,
    })
}

/// A JSON body is sent as JSON; a string body with a non-JSON content type is sent as its text.
fn body_bytes(b: &Json, headers: &HeaderMap) -> Vec<u8> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    match b {
        Json::String(s) if !json_type => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// A sub-request url is relative to the version root (`/security/…` or `security/…`). SDKs
/// sometimes keep the version (`/beta/security/…`, `/v1.0/security/…`) or the whole URL; both
/// address the same thing, under the batch's own version root.
fn relative_uri(url: &str) -> Option<Uri> {
    let mut rest = url;
    if let Some(after_scheme) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        rest = &after_scheme[after_scheme.find('/')?..];
    }
    let rest = rest.trim_start_matches('/');
    let rest = match rest.split_once('/') {
        Some((head, tail)) if crate::model::catalog::version(head).is_some() => tail,
        _ => rest,
    };
    format!("/{rest}")
        .parse::<Uri>()
        .ok()
        .filter(|u| u.scheme().is_none())
}

/// A topological order of the requests (Kahn); a cycle is a malformed batch.
fn schedule(items: &[Item]) -> Result<Vec<usize>, GraphError> {
    let mut waiting: Vec<usize> = items.iter().map(|it| it.depends_on.len()).collect();
    let mut ready: VecDeque<usize> = (0..items.len()).filter(|i| waiting[*i] == 0).collect();
    let mut order = Vec::with_capacity(items.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        release(items, i, &mut waiting, &mut ready);
    }
    if order.len() < items.len() {
        let stuck: Vec<String> = (0..items.len())
            .filter(|i| !order.contains(i))
            .map(|i| shorten(&items[i].id))
            .collect();
        return Err(bad(format!(
            "The dependsOn of the batch's requests form a cycle (among: {}).",
            stuck.join(", ")
        )));
    }
    Ok(order)
}

/// Runs every request once all its dependencies are done; independent ones concurrently.
async fn execute(
    target: &Target,
    items: &[Item],
    order: &[usize],
    prefix: &str,
    outer: &Outer,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
    let mut waiting: Vec<usize> = items.iter().map(|it| it.depends_on.len()).collect();
    let mut ready: VecDeque<usize> = order
        .iter()
        .copied()
        .filter(|i| items[*i].depends_on.is_empty())
        .collect();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while let Some(i) = ready.pop_front() {
            let item = &items[i];
            let failed = item.depends_on.iter().find(|d| {
                outcomes[**d]
                    .as_ref()
                    .is_none_or(|o| !o.status.is_success())
            });
            if let Some(d) = failed {
                outcomes[i] = Some(failed_dependency(item, &items[*d]).await);
                release(items, i, &mut waiting, &mut ready);
                continue;
            }
            let req = sub_request(item, prefix, outer);
            let call = target.call.clone();
            running.spawn(async move { (i, dispatch(call, req).await) });
        }
        match running.join_next().await {
            None => break,
            Some(Ok((i, outcome))) => {
                outcomes[i] = Some(outcome);
                release(items, i, &mut waiting, &mut ready);
            }
            // The per-call stack turns handler panics into 500s; this is a bug in this module.
            Some(Err(e)) => tracing::error!(error = %e, "batch sub-request task failed"),
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for o in outcomes {
        out.push(match o {
            Some(o) => o,
            None => error_outcome(GraphError::Internal).await,
        });
    }
    out
}

/// Marks request `i` finished: its dependents with nothing else to wait for become ready.
fn release(items: &[Item], i: usize, waiting: &mut [usize], ready: &mut VecDeque<usize>) {
    for (j, it) in items.iter().enumerate() {
        for d in &it.depends_on {
            if *d == i {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push_back(j);
                }
            }
        }
    }
}

async fn failed_dependency(item: &Item, dep: &Item) -> Outcome {
    error_outcome(GraphError::FailedDependency(format!(
        "Request '{}' was not run because request '{}', on which it depends, failed.",
        shorten(&item.id),
        shorten(&dep.id)
    )))
    .await
}

/// A sub-response made here rather than by the stack: the same Graph error body and ids.
async fn error_outcome(e: GraphError) -> Outcome {
    let request_id = uuid::Uuid::new_v4().to_string();
    let ids = RequestIds {
        client_request_id: request_id.clone(),
        request_id,
    };
    outcome(context::finish(e.into_response(), &ids)).await
}

/// What every sub-request takes from the batch request: its token and `Host` (which builds the
/// URLs), and whether it came through `--https-proxy`'s tunnel (`https` URLs).
struct Outer {
    headers: HeaderMap,
    intercepted: bool,
}

fn sub_request(item: &Item, prefix: &str, outer: &Outer) -> Request {
    let uri = format!("{prefix}{}", item.uri);
    let mut req = Request::new(Body::from(item.body.clone().unwrap_or_default()));
    *req.method_mut() = item.method.clone();
    // Checked at parse time; the prefix is a fixed path segment.
    *req.uri_mut() = uri.parse().unwrap_or_else(|_| item.uri.clone());
    let headers = req.headers_mut();
    for (name, value) in &item.headers {
        // The outer token authenticates every sub-request; the outer Host builds its URLs.
        // Encodings describe the outer message: a sub-request's body is plain JSON from the
        // batch and its response is embedded in the batch's JSON, never compressed on its own.
        let outer_only = [
            header::AUTHORIZATION,
            header::HOST,
            header::CONTENT_LENGTH,
            header::CONTENT_ENCODING,
            header::ACCEPT_ENCODING,
        ];
        if !outer_only.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in &outer.headers {
        headers.insert(name.clone(), value.clone());
    }
    if outer.intercepted {
        req.extensions_mut().insert(crate::proxy::Intercepted);
    }
    req
}

async fn dispatch(call: Router, req: Request) -> Outcome {
    match call.oneshot(req).await {
        Ok(resp) => outcome(resp).await,
        Err(never) => match never {},
    }
}

/// Headers a sub-response does not repeat: they describe the outer HTTP message.
fn framing(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || name == header::DATE
}

/// A response header's name as Graph writes it inside a batch (`Content-Type`, `Location`,
/// `OData-Version`): the JavaScript client looks up `headers["Content-Type"]` by exact name to
/// decide that a body is JSON. Graph's own headers (`request-id`, ...) stay lowercase.
fn wire_name(name: &HeaderName) -> String {
    match name.as_str() {
        "odata-version" => "OData-Version".into(),
        "etag" => "ETag".into(),
        "www-authenticate" => "WWW-Authenticate".into(),
        n @ ("content-type" | "location" | "retry-after" | "allow" | "cache-control"
        | "content-encoding" | "vary" | "preference-applied") => n
            .split('-')
            .map(|part| {
                let mut c = part.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
        other => other.to_string(),
    }
}

async fn outcome(resp: Response) -> Outcome {
    let (parts, body) = resp.into_parts();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        if framing(name) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            headers.insert(wire_name(name), Json::String(v.to_string()));
        }
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if bytes.is_empty() {
        None
    } else if is_json {
        // The server's own JSON; a body that is not (a bug) is passed as a string instead.
        RawValue::from_string(text.clone())
            .or_else(|_| RawValue::from_string(Json::String(text).to_string()))
            .ok()
    } else {
        RawValue::from_string(Json::String(text).to_string()).ok()
    };
    Outcome {
        status: parts.status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A sub-response's body is passed through as written: a value nested deeper than
    /// serde_json's parse limit (128) still comes back whole.
    #[test]
    fn deep_bodies_pass_through() {
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let raw = RawValue::from_string(deep.clone()).expect("passed through");
        assert_eq!(raw.get(), deep);
        assert!(
            serde_json::from_str::<Json>(&deep).is_err(),
            "a tree parse refuses it"
        );
    }

    #[test]
    fn urls_are_taken_relative_to_the_version_root() {
        for url in [
            "/security/cloudAppSecurityProfiles?$top=1",
            "security/cloudAppSecurityProfiles?$top=1",
            "/beta/security/cloudAppSecurityProfiles?$top=1",
            "https://graph.microsoft.com/beta/security/cloudAppSecurityProfiles?$top=1",
            "/v1.0/security/cloudAppSecurityProfiles?$top=1",
            "https://graph.microsoft.com/V1.0/security/cloudAppSecurityProfiles?$top=1",
        ] {
            assert_eq!(
                relative_uri(url).map(|u| u.to_string()),
                Some("/security/cloudAppSecurityProfiles?$top=1".to_string()),
                "{url}"
            );
        }
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_refused() {
        let doc = |reqs: Json| parse(&json!({ "requests": reqs }));
        let r = |id: &str, deps: &[&str]| json!({"id": id, "method": "GET", "url": "/security/cloudAppSecurityProfiles", "dependsOn": deps});
        let items = doc(json!([r("1", &["2"]), r("2", &["3"]), r("3", &["1"])])).unwrap();
        assert!(schedule(&items).is_err());
        let items = doc(json!([r("1", &["1"])])).unwrap();
        assert!(schedule(&items).is_err());
        assert!(doc(json!([r("1", &["9"])])).is_err());
        let items = doc(json!([r("3", &["2"]), r("2", &["1"]), r("1", &[])])).unwrap();
        assert_eq!(schedule(&items).unwrap(), vec![2, 1, 0]);
    }
}
