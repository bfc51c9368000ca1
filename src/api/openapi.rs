//! The OpenAPI 3.1 document (`/openapi.json`, `/beta/openapi.json`), rendered from entity types.
//!
//! Like `$metadata`, it is written over a list of [`EntityType`]s: paths, operations, query
//! options, request/response schemas, the Graph error schema and the bearer security scheme all
//! follow from the table. The output is deterministic so a golden file can be re-derived.

use serde_json::{Map, Value as Json, json};

use crate::model::edm::{EdmType, Primitive};
use crate::model::entity::{EntityType, Managed};

/// Where a schema of the components lives.
fn schema_ref(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn primitive(p: Primitive) -> Json {
    match p {
        Primitive::String => json!({ "type": "string" }),
        Primitive::Boolean => json!({ "type": "boolean" }),
        Primitive::DateTimeOffset => json!({ "type": "string", "format": "date-time" }),
        Primitive::Int32 => json!({ "type": "integer", "format": "int32" }),
        Primitive::Int64 => json!({ "type": "integer", "format": "int64" }),
        Primitive::Double => json!({ "type": "number", "format": "double" }),
    }
}

/// A property's schema; `nullable` adds JSON null as a value.
fn property_schema(ty: &EdmType, nullable: bool) -> Json {
    let base = match ty {
        EdmType::Primitive(p) => primitive(*p),
        EdmType::Enum(e) => schema_ref(&e.qualified_name()),
        EdmType::Complex(c) => schema_ref(&c.qualified_name()),
        EdmType::Collection(elem) => {
            json!({ "type": "array", "items": property_schema(elem, false) })
        }
    };
    if !nullable {
        return base;
    }
    json!({ "anyOf": [base, { "type": "null" }] })
}

fn entity_schema(e: &EntityType) -> Json {
    let mut props = Map::new();
    let ty = e.qualified_name();
    // Bodies may name the type with or without `#`; any other type is 400.
    props.insert(
        "@odata.type".into(),
        json!({ "type": "string", "enum": [format!("#{ty}"), ty] }),
    );
    for (i, p) in e.properties.iter().enumerate().filter(|(_, p)| p.declared) {
        let mut s = property_schema(&p.ty, p.nullable);
        let rule = e.rules.values.iter().find(|r| r.property == i);
        if let Some(rule) = rule {
            documented(&mut s, rule);
        }
        let server_set = rule.is_some_and(|r| r.on_create.is_some());
        if (server_set || matches!(p.managed, Managed::Created | Managed::Modified))
            && let Some(o) = s.as_object_mut()
        {
            // Sent values are type-checked, then the server's clock (or the documented value
            // the service sets) wins.
            o.insert("readOnly".into(), json!(true));
        }
        props.insert(p.name.into(), s);
    }
    json!({
        "title": e.name,
        "type": "object",
        "properties": props,
        // Control information and annotations (`@odata.context`, `@odata.etag`, …) come and go
        // on any type.
        "patternProperties": { "@": {} },
        // Open type: undeclared (dynamic) properties are stored and returned as sent.
        "additionalProperties": e.open,
    })
}

/// A property's documented value rule (the overlay's `values`) as JSON Schema: bounds, the
/// listed strings, a length, a default, and the page it comes from. Constraints go on the
/// non-null branch of a nullable property.
fn documented(schema: &mut Json, rule: &crate::model::entity::ValueRule) {
    if let Some(o) = schema.as_object_mut() {
        o.insert("description".into(), json!(rule.source));
        if let Some(d) = rule.default {
            o.insert("default".into(), d.clone());
        }
    }
    let target = match schema.get_mut("anyOf").and_then(|a| a.get_mut(0)) {
        Some(inner) => inner,
        None => schema,
    };
    let Some(o) = target.as_object_mut() else {
        return;
    };
    // Whole bounds as integers (`0`, not `0.0`): they bound Int32 properties.
    let bound = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            json!(x as i64)
        } else {
            json!(x)
        }
    };
    if let Some(min) = rule.min {
        o.insert("minimum".into(), bound(min));
    }
    if let Some(max) = rule.max {
        o.insert("maximum".into(), bound(max));
    }
    if let Some(len) = rule.max_length {
        o.insert("maxLength".into(), json!(len));
    }
    if !rule.one_of.is_empty() {
        o.insert("enum".into(), json!(rule.one_of));
    }
}

/// The `$select` values: declared properties of the type.
fn select_names(e: &EntityType) -> Vec<&'static str> {
    e.declared().map(|p| p.name).collect()
}

fn query_params(e: &EntityType, list: bool) -> Vec<Json> {
    let select = json!({
        "name": "$select", "in": "query", "description": "Properties to return (id always comes back).",
        "style": "form", "explode": false,
        "schema": { "type": "array", "uniqueItems": true, "items": { "type": "string", "enum": select_names(e) } }
    });
    if !list {
        return vec![select];
    }
    let sortable: Vec<String> = e
        .properties
        .iter()
        .filter(|p| p.sortable)
        .flat_map(|p| [p.name.to_string(), format!("{} desc", p.name)])
        .collect();
    let mut skip = json!({ "type": "integer", "minimum": 0 });
    if let Some(max) = e.rules.max_skip {
        skip["maximum"] = json!(max);
    }
    vec![
        json!({ "name": "$top", "in": "query", "description": "Page size.",
                "schema": { "type": "integer", "minimum": 1,
                            "maximum": e.rules.max_top.unwrap_or(crate::odata::query::MAX_TOP) } }),
        json!({ "name": "$skip", "in": "query", "description": "Items to skip.",
                "schema": skip }),
        json!({ "name": "$filter", "in": "query", "description": "OData filter expression.",
                "schema": { "type": "string" } }),
        json!({ "name": "$count", "in": "query", "description": "Include @odata.count.",
                "schema": { "type": "boolean" } }),
        json!({ "name": "$orderby", "in": "query", "description": "Order items by property values.",
                "style": "form", "explode": false,
                "schema": { "type": "array", "uniqueItems": true, "items": { "type": "string", "enum": sortable } } }),
        select,
    ]
}

/// A JSON response whose body is `schema`.
fn json_response(description: &str, schema: Json) -> Json {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// Success responses plus every client error (Graph's error body).
fn responses(success: &[(&str, Json)]) -> Json {
    let mut r = Map::new();
    for (status, resp) in success {
        r.insert((*status).into(), resp.clone());
    }
    r.insert(
        "4XX".into(),
        json!({ "$ref": "#/components/responses/error" }),
    );
    Json::Object(r)
}

fn json_body(schema: Json) -> Json {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// The paths of one entity set, relative to the version root.
fn entity_paths(e: &EntityType, paths: &mut Map<String, Json>) {
    let mut own = Map::new();
    set_paths(e, &mut own);
    own.extend(super::actions::openapi_paths(e));
    // A set Graph's metadata marks deprecated (Core.Revisions) has deprecated operations.
    if e.deprecation.is_some() {
        for item in own.values_mut() {
            for (verb, op) in item.as_object_mut().into_iter().flatten() {
                if verb != "parameters"
                    && let Some(o) = op.as_object_mut()
                {
                    o.insert("deprecated".into(), json!(true));
                }
            }
        }
    }
    paths.extend(own);
}

fn set_paths(e: &EntityType, paths: &mut Map<String, Json>) {
    let collection = format!("/{}/{}", e.singleton, e.collection);
    let entity = schema_ref(&e.qualified_name());
    let key = e.properties[e.key_index()].name;
    let tag = format!("{}.{}", e.singleton, e.name);
    let op = |verb: &str, what: &str| format!("{}.{}.{verb}", e.singleton, what);
    let list_schema = json!({
        "type": "object",
        "properties": {
            "@odata.context": { "type": "string" },
            "@odata.count": { "type": "integer" },
            "@odata.nextLink": { "type": "string" },
            "value": { "type": "array", "items": entity },
        },
        "required": ["value"],
    });
    let location = json!({ "Location": { "description": "The created entity's URL.", "schema": { "type": "string" } } });
    let mut created = json_response("Created", entity.clone());
    created["headers"] = location;
    paths.insert(
        collection.clone(),
        json!({
            "get": {
                "tags": [tag], "operationId": op("list", e.collection),
                "summary": format!("List {}", e.collection),
                "parameters": query_params(e, true),
                "responses": responses(&[("200", json_response("A page of entities", list_schema))]),
            },
            "post": {
                "tags": [tag], "operationId": op("create", e.collection),
                "summary": format!("Create {}", e.name),
                "requestBody": json_body(entity.clone()),
                "responses": responses(&[("201", created)]),
            },
        }),
    );
    paths.insert(
        format!("{collection}/$count"),
        json!({
            "get": {
                "tags": [tag], "operationId": op("count", e.collection),
                "summary": format!("Count {}", e.collection),
                "parameters": [{ "name": "$filter", "in": "query", "schema": { "type": "string" } }],
                "responses": responses(&[("200", json!({
                    "description": "The number of matching entities",
                    "content": { "text/plain": { "schema": { "type": "integer", "minimum": 0 } } },
                }))]),
            },
        }),
    );
    let key_param = json!({
        "name": key, "in": "path", "required": true, "description": format!("The {key} of the {}", e.name),
        "schema": { "type": "string" },
    });
    paths.insert(
        format!("{collection}/{{{key}}}"),
        json!({
            "parameters": [key_param],
            "get": {
                "tags": [tag], "operationId": op("get", e.name),
                "summary": format!("Get a {}", e.name),
                "parameters": query_params(e, false),
                "responses": responses(&[("200", json_response("The entity", entity.clone()))]),
            },
            "patch": {
                "tags": [tag], "operationId": op("update", e.name),
                "summary": format!("Update a {}", e.name),
                "requestBody": json_body(entity.clone()),
                "responses": responses(&[
                    ("200", json_response("The updated entity", entity.clone())),
                    ("204", json!({ "description": "Updated (Prefer: return=minimal)" })),
                ]),
            },
            "delete": {
                "tags": [tag], "operationId": op("delete", e.name),
                "summary": format!("Delete a {}", e.name),
                "responses": responses(&[("204", json!({ "description": "Deleted" }))]),
            },
        }),
    );
}

fn batch_path() -> Json {
    let request = json!({
        "type": "object", "required": ["id", "method", "url"],
        "properties": {
            "id": { "type": "string", "minLength": 1 },
            "method": { "type": "string" },
            "url": { "type": "string", "minLength": 1 },
            "headers": { "type": "object", "additionalProperties": { "type": "string" } },
            "body": {},
            "dependsOn": { "type": "array", "items": { "type": "string" } },
        },
    });
    let response = json!({
        "type": "object", "required": ["id", "status"],
        "properties": {
            "id": { "type": "string" },
            "status": { "type": "integer" },
            "headers": { "type": "object", "additionalProperties": { "type": "string" } },
            "body": {},
        },
    });
    json!({
        "post": {
            "tags": ["batch"], "operationId": "batch",
            "summary": format!("JSON batching: up to {} requests", super::batch::MAX_REQUESTS),
            "requestBody": json_body(json!({
                "type": "object", "required": ["requests"],
                "properties": { "requests": { "type": "array", "minItems": 1,
                    "maxItems": super::batch::MAX_REQUESTS, "items": request } },
            })),
            "responses": responses(&[("200", json_response("One response per request", json!({
                "type": "object", "required": ["responses"],
                "properties": { "responses": { "type": "array", "items": response } },
            })))]),
        },
    })
}

/// Adds the schemas of the enum and complex types `ty` uses, at any depth, each once.
fn type_schemas(ty: &EdmType, schemas: &mut Map<String, Json>) {
    match ty {
        EdmType::Primitive(_) => {}
        EdmType::Collection(elem) => type_schemas(elem, schemas),
        EdmType::Enum(en) => {
            let names: Vec<&str> = en.members.iter().map(|(n, _)| *n).collect();
            schemas.insert(
                en.qualified_name(),
                json!({ "title": en.name, "type": "string", "enum": names }),
            );
        }
        EdmType::Complex(c) => {
            if schemas.contains_key(&c.qualified_name()) {
                return;
            }
            let mut props = Map::new();
            for m in c.members {
                props.insert(m.name.into(), property_schema(&m.ty, m.nullable));
            }
            let required: Vec<&str> = c
                .members
                .iter()
                .filter(|m| !m.nullable)
                .map(|m| m.name)
                .collect();
            // Closed: an undeclared member is 400; open: kept as sent (annotations such as
            // `@odata.type` are allowed on input either way).
            let mut schema = json!({ "title": c.name, "type": "object", "properties": props,
                    "patternProperties": { "@": {} },
                    "additionalProperties": c.open });
            if !required.is_empty() {
                schema["required"] = json!(required);
            }
            schemas.insert(c.qualified_name(), schema);
            for m in c.members {
                type_schemas(&m.ty, schemas);
            }
        }
    }
}

/// Renders the OpenAPI document for `entities`, with `server` as the version root's URL.
pub fn render(entities: &[&EntityType], server: &str) -> Json {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for e in entities {
        entity_paths(e, &mut paths);
        schemas.insert(e.qualified_name(), entity_schema(e));
        for p in e.declared() {
            type_schemas(&p.ty, &mut schemas);
        }
    }
    paths.insert(format!("/{}", super::routes::BATCH_SEGMENT), batch_path());
    schemas.insert(
        "odata.error".into(),
        json!({
            "type": "object", "required": ["error"],
            "properties": { "error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string" },
                    "message": { "type": "string" },
                    "innerError": { "type": "object", "properties": {
                        "date": { "type": "string" },
                        "request-id": { "type": "string" },
                        "client-request-id": { "type": "string" },
                    } },
                },
            } },
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "graphsec",
            "description": "Microsoft Graph beta legacy security API, as served by graphsec.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "servers": [{ "url": server }],
        "security": [{ "bearerAuth": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "error": json_response("A Graph error", schema_ref("odata.error")),
            },
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
        },
    })
}
