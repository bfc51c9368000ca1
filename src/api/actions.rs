//! Bound actions over HTTP (`POST /security/tiIndicators/submitTiIndicators`,
//! `POST /security/securityActions/{id}/cancelSecurityAction`, …): the request body is read
//! against the action's parameter ([`crate::model::actions`], from the metadata), then each item
//! is applied through the store as its own create, PATCH or delete, and the answer lists one
//! result per item in request order.
//!
//! Status (Graph's "Microsoft Graph Security API error responses", threat indicator bulk action
//! errors): 200 when every item succeeded; 206 Partial Content when one or more failed, with
//! the outcome of every item in the body; 400 when the body itself is malformed (not an object,
//! a parameter missing, unknown or of the wrong JSON kind, an item of the wrong kind), and then
//! nothing is written. Items are independent: a failed item writes nothing of itself and does not
//! undo the items before it (each is one store transaction).
//!
//! Per-item outcomes: an action that returns entities puts the written entity at the item's
//! position, or, for a failed item, the item as sent with a `@graphsec.error` instance
//! annotation `{"code", "message"}` (Graph's error codes); an action that returns `resultInfo`
//! puts `{"code": <HTTP status of the item: 200 or the error's>, "message", "subcode": 0}`.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value as Json, json};

use super::AppState;
use super::envelope::{self, Root};
use super::handlers::{Ctx, json_body, store_error};
use crate::error::GraphError;
use crate::model::actions::{
    self, Binding, BoundAction, Effect, ParamKind, RESULT_INFO, RESULT_INFO_MEMBERS, Returns,
};
use crate::model::entity::{EntityType, NAMESPACE};
use crate::model::record::Record;
use crate::model::validate::{self, Mode};
use crate::odata::typecheck;
use crate::store::{ListSpec, Precondition};

/// Rows a delete-by-property reads per round.
const DELETE_BY_PAGE: usize = 200;

/// Whether a POST to `/{set}/{segment}` names an action rather than an entity: some action is
/// bound to the collection of `entity` in its version, or `segment` names one that another
/// version binds to the set (`updateAlerts` under `/v1.0`).
pub fn names_an_action(entity: &'static EntityType, segment: &str) -> bool {
    actions::of(entity, Binding::Collection).next().is_some()
        || !actions::versions_binding(entity, segment).is_empty()
}

/// The 400 for a POST to `/{set}/{segment}` where `segment` is no action bound to the set in
/// the version addressed: Graph's unknown-segment error, with the actions that are bound there
/// or the versions that bind it.
pub fn not_an_action(entity: &'static EntityType, segment: &str) -> GraphError {
    let names: Vec<&str> = actions::of(entity, Binding::Collection)
        .map(|a| a.name)
        .collect();
    let elsewhere = actions::versions_binding(entity, segment);
    let mut message = format!("Resource not found for the segment '{segment}'.");
    if !names.is_empty() {
        message.push_str(&format!(
            " The actions bound to '{}' are: {}.",
            entity.collection,
            names.join(", ")
        ));
    }
    if !elsewhere.is_empty() {
        message.push_str(&format!(
            " '{segment}' is bound to '{}' in Graph {} only, not in {}.",
            entity.collection,
            elsewhere.join(", "),
            entity.version
        ));
    }
    GraphError::BadRequest(message)
}

/// The outcome of one item.
enum Outcome {
    Entity(Record),
    Done,
    Failed(GraphError),
}

/// Runs `action` (bound to the entity `id` for an entity-bound one) and answers it.
pub async fn invoke(
    state: &AppState,
    ctx: &Ctx,
    action: &'static BoundAction,
    id: Option<&str>,
    parts: &Parts,
    body: Body,
) -> Result<Response, GraphError> {
    let entity = action.entity;
    let items = read_parameter(state, action, parts, body).await?;
    if let Effect::Set { body } = action.effect {
        let id = id.unwrap_or_default();
        let changes = validate::changes_from_caller(entity, body, Mode::Patch, state.validation, &ctx.caller)
            .map_err(|e| {
                tracing::error!(action = action.name, error = %e.0, "the action table's body does not validate");
                GraphError::Internal
            })?;
        state
            .store
            .update(&ctx.tenant, id, changes, Precondition::default())
            .await
            .map_err(|e| store_error(e, entity, id))?;
        // Graph's page: "200 OK. It doesn't return anything in the response body."
        return Ok(Response::new(Body::empty()));
    }
    if let Some(max) = action.max_items
        && items.len() > max
    {
        return Err(bad(format!(
            "The action '{}' takes at most {max} items per request (Graph's documented limit); this request has {}. Send them in several requests.",
            action.name,
            items.len()
        )));
    }
    // From the first item on, the action runs to its end and reports every item: a 408 with
    // some items written would make a retrying client duplicate them.
    if let Some(c) = parts.extensions.get::<super::limits::Committed>() {
        c.set();
    }
    let mut outcomes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        outcomes.push(apply(state, ctx, action, i, item).await);
    }
    // Nothing succeeded because the store failed: that is the request's error, not a partial
    // result (and nothing was written).
    let all_server_errors = outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Failed(e) if e.status().is_server_error()));
    if all_server_errors && let Some(Outcome::Failed(e)) = outcomes.first() {
        return Err(e.clone());
    }
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(_)));
    let status = if failed {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let value: Vec<Json> = outcomes
        .into_iter()
        .zip(items)
        .map(|(o, item)| match action.returns {
            Returns::Entities => entity_result(o, item),
            _ => result_info(o),
        })
        .collect();
    Ok(envelope::json_response(
        status,
        &json!({
            "@odata.context": result_context(&ctx.root, action),
            "value": value,
        }),
    ))
}

/// `@odata.context` of an action's collection result (OData JSON Format §10.7).
fn result_context(root: &Root, action: &BoundAction) -> String {
    let ty = match action.returns {
        Returns::Entities => action.entity.qualified_name(),
        _ => format!("{NAMESPACE}.{RESULT_INFO}"),
    };
    format!("{}/$metadata#Collection({ty})", root.0)
}

fn entity_result(o: Outcome, item: Json) -> Json {
    match o {
        Outcome::Entity(r) => Json::Object(r.to_json(None)),
        Outcome::Done => Json::Null,
        Outcome::Failed(e) => {
            let mut echo = match item {
                Json::Object(m) => m,
                _ => Map::new(),
            };
            let error = json!({"code": e.code(), "message": e.message()});
            // Microsoft's MISP-to-Graph sample (security-api-solutions, Samples/MISP/
            // RequestManager.py) tells a failed item by a top-level `Error` member; graphsec's
            // own `@graphsec.error` annotation stays for clients that read it.
            echo.insert("Error".into(), error.clone());
            echo.insert("@graphsec.error".into(), error);
            Json::Object(echo)
        }
    }
}

fn result_info(o: Outcome) -> Json {
    let [code, message, subcode] = RESULT_INFO_MEMBERS;
    let (status, text) = match o {
        Outcome::Failed(e) => (e.status().as_u16(), e.message()),
        Outcome::Entity(_) | Outcome::Done => (StatusCode::OK.as_u16(), "Deleted.".to_string()),
    };
    let mut m = Map::new();
    m.insert(
        "@odata.type".into(),
        Json::String(format!("#{NAMESPACE}.{RESULT_INFO}")),
    );
    m.insert(code.into(), json!(status));
    m.insert(message.into(), Json::String(text));
    m.insert(subcode.into(), json!(0));
    Json::Object(m)
}

fn bad(msg: String) -> GraphError {
    GraphError::BadRequest(msg)
}

/// Reads the body into the parameter's items (empty for an action without a parameter),
/// refusing every malformed body before anything is written.
async fn read_parameter(
    state: &AppState,
    action: &BoundAction,
    parts: &Parts,
    body: Body,
) -> Result<Vec<Json>, GraphError> {
    let Some(param) = action.parameter else {
        // Graph's pages say to send no body; an empty object (what some clients send for
        // "no parameters") is accepted too.
        let bytes = axum::body::to_bytes(body, state.max_body_bytes)
            .await
            .map_err(|_| {
                bad(format!(
                    "The request body is larger than {} bytes or could not be read.",
                    state.max_body_bytes
                ))
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let parsed = json_body(state, parts, Body::from(bytes)).await?;
        return match parsed {
            Json::Object(m) if m.keys().all(|k| k.contains('@')) => Ok(Vec::new()),
            _ => Err(bad(format!(
                "The action '{}' takes no parameters; send no request body.",
                action.name
            ))),
        };
    };
    let parsed = json_body(state, parts, body).await?;
    let Json::Object(mut obj) = parsed else {
        return Err(bad(format!(
            "The request body of the action '{}' must be a JSON object with the parameter '{}'.",
            action.name, param.name
        )));
    };
    if let Some(extra) = obj.keys().find(|k| !k.contains('@') && *k != param.name) {
        return Err(bad(format!(
            "'{extra}' is not a parameter of the action '{}'; its only parameter is '{}'.",
            action.name, param.name
        )));
    }
    let (expected, kind) = match param.kind {
        ParamKind::Entities => (
            format!("Collection({})", action.entity.qualified_name()),
            "an object",
        ),
        ParamKind::Strings => ("Collection(Edm.String)".to_string(), "a string"),
    };
    let items = match obj.remove(param.name) {
        None => {
            return Err(bad(format!(
                "The parameter '{}' ({expected}) of the action '{}' is missing.",
                param.name, action.name
            )));
        }
        Some(Json::Array(items)) => items,
        Some(_) => {
            return Err(bad(format!(
                "The parameter '{}' of the action '{}' must be a JSON array ({expected}).",
                param.name, action.name
            )));
        }
    };
    for (i, item) in items.iter().enumerate() {
        let ok = match param.kind {
            ParamKind::Entities => item.is_object(),
            ParamKind::Strings => item.is_string(),
        };
        if !ok {
            return Err(bad(format!(
                "Item {i} of the parameter '{}' must be {kind} ({expected}).",
                param.name
            )));
        }
        // Refused on every store alike, as in entity bodies (PostgreSQL cannot store it).
        if item.as_str().is_some_and(|s| s.contains('\0')) {
            return Err(bad(format!(
                "Item {i} of the parameter '{}' contains the character U+0000, which is not supported.",
                param.name
            )));
        }
    }
    Ok(items)
}

/// Applies one item; every failure is the item's own (nothing of it was written).
async fn apply(
    state: &AppState,
    ctx: &Ctx,
    action: &BoundAction,
    i: usize,
    item: &Json,
) -> Outcome {
    let entity = action.entity;
    let at = |m: String| GraphError::BadRequest(format!("Item {i}: {m}"));
    let result = match action.effect {
        Effect::Create => {
            let changes = match validate::changes_from_caller(
                entity,
                item,
                Mode::Create,
                state.validation,
                &ctx.caller,
            ) {
                Ok(c) => c,
                Err(e) => return Outcome::Failed(at(e.0)),
            };
            let id = changes
                .requested_id()
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            state
                .store
                .create(&ctx.tenant, changes, id.clone())
                .await
                .map(Outcome::Entity)
                .map_err(|e| store_error(e, entity, &id))
        }
        Effect::Update { required } => {
            let key = entity.key();
            let missing: Vec<&str> = required
                .iter()
                .map(|p| &entity.properties[*p])
                .filter(|p| item.get(p.name).is_none_or(Json::is_null))
                .map(|p| p.name)
                .collect();
            if !missing.is_empty() {
                return Outcome::Failed(at(format!(
                    "the action '{}' requires {} in every item; missing: {}.",
                    action.name,
                    required
                        .iter()
                        .map(|p| entity.properties[*p].name)
                        .collect::<Vec<_>>()
                        .join(", "),
                    missing.join(", ")
                )));
            }
            let Some(id) = item.get(key.name).and_then(Json::as_str) else {
                return Outcome::Failed(at(format!("'{}' must be a string.", key.name)));
            };
            let changes = match validate::changes_from_caller(
                entity,
                item,
                Mode::Patch,
                state.validation,
                &ctx.caller,
            ) {
                Ok(c) => c,
                Err(e) => return Outcome::Failed(at(e.0)),
            };
            state
                .store
                .update(&ctx.tenant, id, changes, Precondition::default())
                .await
                .map(Outcome::Entity)
                .map_err(|e| store_error(e, entity, id))
        }
        Effect::Delete => {
            let id = item.as_str().unwrap_or_default();
            state
                .store
                .delete(entity, &ctx.tenant, id, Precondition::default())
                .await
                .map(|()| Outcome::Done)
                .map_err(|e| store_error(e, entity, id))
        }
        Effect::DeleteBy { property } => {
            delete_by(
                state,
                ctx,
                entity,
                property,
                item.as_str().unwrap_or_default(),
            )
            .await
        }
        Effect::Set { .. } => Ok(Outcome::Done),
    };
    result.unwrap_or_else(|e| Outcome::Failed(at_item(i, e)))
}

/// Prefixes a client error's message with the item's position.
fn at_item(i: usize, e: GraphError) -> GraphError {
    match e {
        GraphError::NotFound(m) => GraphError::NotFound(format!("Item {i}: {m}")),
        GraphError::Conflict(m) => GraphError::Conflict(format!("Item {i}: {m}")),
        GraphError::BadRequest(m) => GraphError::BadRequest(format!("Item {i}: {m}")),
        other => other,
    }
}

/// Deletes every entity of the tenant whose `property` equals `value` (each delete its own
/// transaction); 404 when there is none.
async fn delete_by(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    property: usize,
    value: &str,
) -> Result<Outcome, GraphError> {
    let name = entity.properties[property].name;
    let literal = value.replace('\'', "''");
    let filter = typecheck::parse_and_check(entity, &format!("{name} eq '{literal}'"))
        .map_err(|e| GraphError::BadRequest(e.message))?;
    let mut deleted = 0u64;
    loop {
        let page = state
            .store
            .list(
                entity,
                &ctx.tenant,
                ListSpec {
                    filter: Some(filter.clone()),
                    limit: DELETE_BY_PAGE,
                    ..ListSpec::default()
                },
            )
            .await
            .map_err(|e| store_error(e, entity, ""))?;
        for r in &page.records {
            match state
                .store
                .delete(entity, &ctx.tenant, r.id(), Precondition::default())
                .await
            {
                // Deleted meanwhile by another request: it is gone either way.
                Ok(()) | Err(crate::store::StoreError::NotFound) => deleted += 1,
                Err(e) => return Err(store_error(e, entity, r.id())),
            }
        }
        if !page.more || page.records.is_empty() {
            break;
        }
    }
    if deleted == 0 {
        return Err(GraphError::NotFound(format!(
            "No {} with {name} '{value}' was found.",
            entity.name
        )));
    }
    Ok(Outcome::Done)
}

/// The OpenAPI path items of the actions bound to `e` (its collection or one entity), relative
/// to the version root, for [`crate::api::openapi`]: request body from the action's parameter,
/// 200 (and 206 for the bulk actions) with the result, Graph's error body for 4XX.
pub fn openapi_paths(e: &EntityType) -> Vec<(String, Json)> {
    let collection = format!("/{}/{}", e.singleton, e.collection);
    let key = e.key().name;
    let tag = format!("{}.{}", e.singleton, e.name);
    let entity_ref = json!({ "$ref": format!("#/components/schemas/{}", e.qualified_name()) });
    let [code, message, subcode] = RESULT_INFO_MEMBERS;
    let result_info = json!({
        "title": RESULT_INFO, "type": "object",
        "properties": {
            code: { "type": "integer", "format": "int32" },
            message: { "anyOf": [{ "type": "string" }, { "type": "null" }] },
            subcode: { "type": "integer", "format": "int32" },
        },
        "required": [code, subcode],
    });
    let error = json!({ "$ref": "#/components/responses/error" });
    actions::all()
        .iter()
        .filter(|a| a.entity == e)
        .map(|a| {
            let mut op = Map::new();
            op.insert("tags".into(), json!([tag]));
            op.insert(
                "operationId".into(),
                json!(format!("{}.{}.{}", e.singleton, e.collection, a.name)),
            );
            op.insert("summary".into(), json!(format!("Invoke action {}", a.name)));
            if let Some(p) = a.parameter {
                let items = match p.kind {
                    ParamKind::Entities => entity_ref.clone(),
                    ParamKind::Strings => json!({ "type": "string" }),
                };
                op.insert(
                    "requestBody".into(),
                    json!({ "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "required": [p.name],
                        "properties": { p.name: { "type": "array", "items": items } },
                    } } } }),
                );
            }
            let responses = match a.returns {
                Returns::Nothing => json!({
                    "200": { "description": "Done (no response body)" },
                    "4XX": error,
                }),
                Returns::Entities | Returns::ResultInfo => {
                    let item = if a.returns == Returns::Entities {
                        entity_ref.clone()
                    } else {
                        result_info.clone()
                    };
                    let body = json!({ "content": { "application/json": { "schema": {
                        "type": "object", "required": ["value"],
                        "properties": {
                            "@odata.context": { "type": "string" },
                            "value": { "type": "array", "items": item },
                        },
                    } } } });
                    let mut ok = body.clone();
                    ok["description"] = json!("Every item succeeded: one result per item");
                    // A failed entity item is echoed as sent, with `@graphsec.error`.
                    let mut partial = body;
                    if a.returns == Returns::Entities {
                        partial["content"]["application/json"]["schema"]["properties"]["value"]
                            ["items"] = json!({ "anyOf": [item, {
                                "type": "object", "required": ["@graphsec.error"],
                            }] });
                    }
                    partial["description"] =
                        json!("Some items failed: one result per item, failures included");
                    json!({ "200": ok, "206": partial, "4XX": error })
                }
            };
            op.insert("responses".into(), responses);
            match a.binding {
                Binding::Collection => (
                    format!("{collection}/{}", a.name),
                    json!({ "post": Json::Object(op) }),
                ),
                Binding::Entity => (
                    format!("{collection}/{{{key}}}/{}", a.name),
                    json!({
                        "parameters": [{ "name": key, "in": "path", "required": true,
                            "description": format!("The {key} of the {}", e.name),
                            "schema": { "type": "string" } }],
                        "post": Json::Object(op),
                    }),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_paths_follow_the_signatures() {
        let ti = crate::model::catalog().set("tiIndicators").unwrap();
        let paths: Map<String, Json> = openapi_paths(ti).into_iter().collect();
        let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "/security/tiIndicators/deleteTiIndicators",
                "/security/tiIndicators/deleteTiIndicatorsByExternalId",
                "/security/tiIndicators/submitTiIndicators",
                "/security/tiIndicators/updateTiIndicators",
            ]
        );
        let submit = &paths["/security/tiIndicators/submitTiIndicators"]["post"];
        assert_eq!(
            submit["requestBody"]["content"]["application/json"]["schema"]["properties"]["value"]["items"]
                ["$ref"],
            "#/components/schemas/microsoft.graph.tiIndicator"
        );
        assert!(submit["responses"]["206"].is_object());
        let delete = &paths["/security/tiIndicators/deleteTiIndicators"]["post"];
        let item = &delete["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
            ["value"]["items"];
        assert_eq!(item["required"], json!(["code", "subcode"]));
        let sa = crate::model::catalog().set("securityActions").unwrap();
        let paths: Map<String, Json> = openapi_paths(sa).into_iter().collect();
        let cancel = &paths["/security/securityActions/{id}/cancelSecurityAction"];
        assert_eq!(cancel["parameters"][0]["name"], "id");
        assert!(cancel["post"].get("requestBody").is_none());
        assert!(openapi_paths(crate::model::catalog().set("secureScores").unwrap()).is_empty());
    }
}
