//! The explorer's HTML (maud: compile-time templates that escape every value they insert),
//! its stylesheet and its one small script. Pages take plain values, so the unit tests below
//! render them directly.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};
use serde_json::Value as Json;

use super::{BASE, ListForm, entity_href, href, template};
use crate::model::actions::{self, Binding, BoundAction};
use crate::model::catalog::{catalog, catalogs};
use crate::model::edm::EdmType;
use crate::model::entity::{EntityType, Managed, Property};
use crate::model::record::Record;
use crate::store::notify::{DeliveryLog, SubscriptionRow};

/// The stylesheet: plain, responsive, dark when the system is.
pub const CSS: &str = include_str!("explorer.css");
/// Asks before the forms marked `data-confirm` are sent (delete, reset). The pages work
/// without it.
pub const JS: &str = include_str!("explorer.js");

/// Per tenant, its entity count per set (by the set's storage index).
pub type Counts = BTreeMap<String, BTreeMap<usize, u64>>;

/// The overview pages count up to this many entities per tenant and set and show a larger
/// count as "10,000+" (the set's own page counts them all).
pub const COUNT_CAP: u64 = 10_000;

/// `n` with thousands separators (10,000).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A count as the overview pages show it, and as a screen reader says it.
fn count_text(n: u64) -> (String, String) {
    if n > COUNT_CAP {
        (
            format!("{}+", grouped(COUNT_CAP)),
            format!("more than {}", grouped(COUNT_CAP)),
        )
    } else {
        (grouped(n), grouped(n))
    }
}

/// The note under a table with a capped count.
fn capped_note() -> Markup {
    html! {
        p.note { "Counts stop above " (grouped(COUNT_CAP)) " so this page stays fast; a set's own page counts all its entities." }
    }
}

/// One page of a list.
pub struct ListPage<'a> {
    pub records: &'a [Record],
    pub count: Option<u64>,
    /// The next page's position, if there is one.
    pub next: Option<&'a str>,
    pub not_first: bool,
}

/// A link in the breadcrumb trail.
struct Crumb(String, String);

fn layout(title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · graphsec explorer" }
                link rel="stylesheet" href=(format!("{BASE}/style.css"));
                script src=(format!("{BASE}/app.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Breadcrumb" {
                        ol {
                            li { a href=(BASE) { "graphsec explorer" } }
                            @for c in crumbs {
                                li { a href=(c.0) { (c.1) } }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn tenant_crumb(tenant: &str) -> Crumb {
    Crumb(
        href("tenant", &[("tenant", tenant)]),
        format!("tenant {tenant}"),
    )
}

fn set_crumb(tenant: &str, entity: &EntityType) -> Crumb {
    Crumb(
        list_href(tenant, entity),
        format!("{} {}", entity.version, entity.collection),
    )
}

fn list_href(tenant: &str, entity: &EntityType) -> String {
    href(
        "list",
        &[
            ("tenant", tenant),
            ("version", entity.version),
            ("set", entity.collection),
        ],
    )
}

fn new_href(tenant: &str, entity: &EntityType) -> String {
    href(
        "new",
        &[
            ("tenant", tenant),
            ("version", entity.version),
            ("set", entity.collection),
        ],
    )
}

/// A Graph error as Graph returns it: its code and message.
fn graph_error(code: &str, message: &str) -> Markup {
    html! {
        div.error role="alert" {
            p { strong { (code) } ": " span.message { (message) } }
        }
    }
}

pub fn error_page(code: &str, message: &str) -> Markup {
    layout("Error", &[], graph_error(code, message))
}

fn hidden(csrf: &str, pairs: &[(&str, &str)]) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        @for (k, v) in pairs {
            input type="hidden" name=(k) value=(v);
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        &[],
        html! {
            @if let Some(e) = error {
                div.error role="alert" { p { (e) } }
            }
            p { "The explorer needs the server's admin token (the value of " code { "--admin-token" } ")." }
            form method="post" action=(format!("{BASE}/login")) {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn home(counts: &Counts, token_mode: bool, _csrf: &str) -> Markup {
    let sets: Vec<&EntityType> = catalog().served().collect();
    layout(
        "Tenants",
        &[],
        html! {
            @if counts.is_empty() {
                p { "No tenant has entities yet." }
            } @else {
                div.scroll {
                    table {
                        caption { "Entities per tenant and set (" (catalog().version) ")" }
                        thead { tr {
                            th scope="col" { "tenant" }
                            @for e in &sets { th scope="col" { (e.collection) } }
                        } }
                        tbody {
                            @for (tenant, per) in counts {
                                tr {
                                    th scope="row" { a href=(href("tenant", &[("tenant", tenant)])) { (tenant) } }
                                    @for e in &sets {
                                        @let (shown, said) = count_text(per.get(&e.index).copied().unwrap_or(0));
                                        td.num {
                                            a href=(list_href(tenant, e))
                                              aria-label=(format!("{said} {} of tenant {tenant}", e.collection)) {
                                                (shown)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if counts.values().flat_map(|per| per.values()).any(|&n| n > COUNT_CAP) {
                    (capped_note())
                }
            }
            form method="get" action=(format!("{BASE}/tenant")) {
                label for="tenant" { "Open a tenant" }
                input #tenant type="text" name="tenant" required;
                button type="submit" { "Open" }
            }
            @if token_mode {
                form method="post" action=(format!("{BASE}/logout")) {
                    button type="submit" { "Sign out" }
                }
            }
        },
    )
}

pub fn tenant(tenant: &str, counts: Option<&BTreeMap<usize, u64>>, csrf: &str) -> Markup {
    layout(
        &format!("Tenant {tenant}"),
        &[tenant_crumb(tenant)],
        html! {
            @for c in catalogs() {
                section aria-labelledby=(format!("v-{}", c.version)) {
                    h2 id=(format!("v-{}", c.version)) { "/" (c.version) }
                    div.scroll {
                        table {
                            thead { tr {
                                th scope="col" { "entity set" }
                                th scope="col" { "entities" }
                                th scope="col" { "create" }
                            } }
                            tbody {
                                @for e in c.served() {
                                    tr {
                                        th scope="row" { a href=(list_href(tenant, e)) { (e.collection) } }
                                        @let (shown, said) = count_text(counts.and_then(|m| m.get(&e.index)).copied().unwrap_or(0));
                                        td.num aria-label=(said) { (shown) }
                                        td {
                                            @if e.capabilities.insertable {
                                                a href=(new_href(tenant, e)) { "New " (e.name) }
                                            } @else { "—" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if counts.is_some_and(|m| m.values().any(|&n| n > COUNT_CAP)) {
                (capped_note())
            }
            p { a href=(href("subscriptions", &[("tenant", tenant)])) { "Subscriptions and deliveries" } }
            form method="post" action=(format!("{BASE}/reset"))
                data-confirm=(format!("Delete every entity of tenant {tenant}?")) {
                (hidden(csrf, &[("tenant", tenant)]))
                button.danger type="submit" { "Reset tenant (delete all its entities)" }
            }
        },
    )
}

/// The list's columns: the key, the created and modified stamps, then the first few primitive
/// or enum properties.
fn columns(entity: &EntityType) -> Vec<&'static Property> {
    let mut out: Vec<&'static Property> = Vec::new();
    for m in [Managed::Key, Managed::Created, Managed::Modified] {
        if let Some(i) = entity.managed_index(m)
            && entity.properties[i].declared
        {
            out.push(&entity.properties[i]);
        }
    }
    // The properties the set indexes (its common filters) first, then the ones a create
    // requires, then the metadata's order.
    let mut simple: Vec<(usize, &'static Property)> = entity
        .properties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.declared && p.managed == Managed::Client)
        .filter(|(_, p)| matches!(p.ty, EdmType::Primitive(_) | EdmType::Enum(_)))
        .collect();
    simple.sort_by_key(|(i, p)| (!p.indexed, !entity.rules.required_on_create.contains(i), *i));
    out.extend(simple.into_iter().map(|(_, p)| p).take(4));
    out
}

/// A value as a cell shows it: strings as they are, others as JSON, long ones cut.
fn cell(v: Option<&Json>) -> String {
    let text = match v {
        None | Some(Json::Null) => return "—".into(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(59).collect();
        format!("{cut}…")
    } else {
        text
    }
}

pub(crate) fn list_row(tenant: &str, record: &Record, cols: &[&Property]) -> Markup {
    let json = record.to_json(None);
    html! {
        tr {
            @for (i, p) in cols.iter().enumerate() {
                @if i == 0 {
                    th scope="row" { a href=(entity_href(tenant, record)) { (cell(json.get(p.name))) } }
                } @else {
                    td.stamp[matches!(p.managed, Managed::Created | Managed::Modified)] { (cell(json.get(p.name))) }
                }
            }
        }
    }
}

pub fn list(lf: &ListForm<'_>, page: Result<ListPage<'_>, (&str, String)>, csrf: &str) -> Markup {
    let entity = lf.entity;
    let cols = columns(entity);
    let tenant = lf.tenant;
    html! {
        (layout(
            &format!("{} of {tenant}", entity.collection),
            &[tenant_crumb(tenant), set_crumb(tenant, entity)],
            html! {
                form.query method="get" action=(format!("{BASE}/list")) role="search" {
                    input type="hidden" name="tenant" value=(tenant);
                    input type="hidden" name="version" value=(entity.version);
                    input type="hidden" name="set" value=(entity.collection);
                    div {
                        label for="filter" { "$filter" }
                        input #filter type="text" name="filter" value=(lf.filter) placeholder="severity eq 'high'" spellcheck="false";
                    }
                    div {
                        label for="orderby" { "$orderby" }
                        input #orderby type="text" name="orderby" value=(lf.orderby) placeholder="createdDateTime desc" spellcheck="false";
                    }
                    button type="submit" { "Apply" }
                }
                @match &page {
                    Err((code, message)) => { (graph_error(code, message)) }
                    Ok(p) => {
                        p.count {
                            @if let Some(n) = p.count { (n) " matching entities" }
                            @if entity.capabilities.insertable {
                                " · " a href=(new_href(tenant, entity)) { "New " (entity.name) }
                            }
                        }
                        div.scroll {
                            table {
                                caption { (entity.version) " " (entity.collection) }
                                thead { tr { @for c in &cols { th scope="col" { (c.name) } } } }
                                tbody {
                                    @for r in p.records { (list_row(tenant, r, &cols)) }
                                }
                            }
                        }
                        nav.pager aria-label="Pages" {
                            @if p.not_first {
                                a href=(href("list", &[("tenant", tenant), ("version", entity.version), ("set", entity.collection), ("filter", lf.filter), ("orderby", lf.orderby)])) { "First page" }
                            }
                            @if let Some(next) = p.next {
                                a rel="next" href=(href("list", &[("tenant", tenant), ("version", entity.version), ("set", entity.collection), ("filter", lf.filter), ("orderby", lf.orderby), ("after", next)])) { "Next page" }
                            }
                        }
                    }
                }
                (actions_section(tenant, entity, None, csrf))
            },
        ))
    }
}

fn action_form(
    tenant: &str,
    action: &BoundAction,
    id: Option<&str>,
    csrf: &str,
    body: &str,
) -> Markup {
    let field = format!("action-{}", action.name);
    html! {
        form.action method="post" action=(format!("{BASE}/action")) {
            (hidden(csrf, &[("tenant", tenant), ("version", action.entity.version), ("set", action.entity.collection), ("action", action.name), ("id", id.unwrap_or(""))]))
            label for=(field) { "Body of " code { (action.name) } }
            textarea id=(field) name="body" rows="6" spellcheck="false" { (body) }
            button type="submit" { "Run " (action.name) }
        }
    }
}

fn actions_section(
    tenant: &str,
    entity: &'static EntityType,
    id: Option<&str>,
    csrf: &str,
) -> Markup {
    let binding = if id.is_some() {
        Binding::Entity
    } else {
        Binding::Collection
    };
    let bound: Vec<&BoundAction> = actions::of(entity, binding).collect();
    html! {
        @if !bound.is_empty() {
            section aria-labelledby="actions" {
                h2 #actions { "Bound actions" }
                p { "Each runs through the API's action code, as " code { "POST" } " to the action would (see docs/ACTIONS.md)." }
                @for a in bound {
                    (action_form(tenant, a, id, csrf, &serde_json::to_string_pretty(&template::action_body(a, id)).unwrap_or_default()))
                }
            }
        }
    }
}

pub fn entity(
    tenant: &str,
    record: &Record,
    csrf: &str,
    error: Option<(&str, String, &str)>,
) -> Markup {
    let entity = record.entity;
    let id = record.id();
    let etag = format!("\"{}\"", record.version);
    let pretty =
        serde_json::to_string_pretty(&Json::Object(record.to_json(None))).unwrap_or_default();
    let edit = match &error {
        Some((_, _, body)) => (*body).to_owned(),
        None => serde_json::to_string_pretty(&template::edit_body(record)).unwrap_or_default(),
    };
    let version = record.version.to_string();
    layout(
        &format!("{} {id}", entity.name),
        &[tenant_crumb(tenant), set_crumb(tenant, entity)],
        html! {
            p { "ETag: " code #etag { (etag) } }
            @if let Some((code, message, _)) = &error { (graph_error(code, message)) }
            section aria-labelledby="json" {
                h2 #json { "JSON" }
                pre.json tabindex="0" { code { (pretty) } }
            }
            @if entity.capabilities.updatable {
                section aria-labelledby="edit-h" {
                    h2 #edit-h { "Edit" }
                    form method="post" action=(format!("{BASE}/update")) {
                        (hidden(csrf, &[("tenant", tenant), ("version", entity.version), ("set", entity.collection), ("id", id), ("etag", &version)]))
                        label for="edit" { "PATCH body (sent with If-Match: " (etag) ")" }
                        textarea #edit name="body" rows="12" spellcheck="false" { (edit) }
                        button type="submit" { "Save" }
                    }
                }
            }
            @if entity.capabilities.deletable {
                form method="post" action=(format!("{BASE}/delete")) data-confirm=(format!("Delete {} {id}?", entity.name)) {
                    (hidden(csrf, &[("tenant", tenant), ("version", entity.version), ("set", entity.collection), ("id", id), ("etag", &version)]))
                    button.danger type="submit" { "Delete" }
                }
            }
            (actions_section(tenant, entity, Some(id), csrf))
        },
    )
}

pub fn new_entity(
    tenant: &str,
    entity: &'static EntityType,
    body: &str,
    csrf: &str,
    error: Option<(&str, String)>,
) -> Markup {
    layout(
        &format!("New {}", entity.name),
        &[tenant_crumb(tenant), set_crumb(tenant, entity)],
        html! {
            @if let Some((code, message)) = &error { (graph_error(code, message)) }
            p { "The template fills what a create must carry; the server sets the key and the timestamps unless you give them." }
            form method="post" action=(format!("{BASE}/create")) {
                (hidden(csrf, &[("tenant", tenant), ("version", entity.version), ("set", entity.collection)]))
                label for="body" { "POST body" }
                textarea #body name="body" rows="16" spellcheck="false" { (body) }
                button type="submit" { "Create" }
            }
        },
    )
}

#[allow(clippy::too_many_arguments)]
pub fn action_result(
    tenant: &str,
    action: &BoundAction,
    id: Option<&str>,
    status: u16,
    answer: &str,
    body: &str,
    csrf: &str,
) -> Markup {
    let entity = action.entity;
    layout(
        &format!("{}: {status}", action.name),
        &[tenant_crumb(tenant), set_crumb(tenant, entity)],
        html! {
            p { "Status " strong #status { (status) } }
            pre.json tabindex="0" { code { (answer) } }
            (action_form(tenant, action, id, csrf, body))
        },
    )
}

pub fn subscriptions(tenant: &str, rows: &[(SubscriptionRow, Vec<DeliveryLog>)]) -> Markup {
    use crate::model::edm::format_datetime;
    layout(
        &format!("Subscriptions of {tenant}"),
        &[tenant_crumb(tenant)],
        html! {
            @if rows.is_empty() { p { "No live subscription." } }
            @for (s, log) in rows {
                section aria-label=(format!("subscription {}", s.id)) {
                    h2 { code { (s.id) } }
                    dl {
                        dt { "resource" } dd { (s.resource) }
                        dt { "change types" } dd { (s.change_types) }
                        dt { "notification URL" } dd { (s.notification_url) }
                        dt { "expires" } dd { (format_datetime(s.expiration)) }
                        dt { "application" } dd { (s.app) }
                    }
                    @if log.is_empty() { p { "No delivery yet." } } @else {
                        div.scroll {
                            table {
                                caption { "Latest deliveries (newest first)" }
                                thead { tr {
                                    th scope="col" { "at" } th scope="col" { "kind" } th scope="col" { "attempt" }
                                    th scope="col" { "notifications" } th scope="col" { "status" } th scope="col" { "outcome" } th scope="col" { "error" }
                                } }
                                tbody {
                                    @for d in log.iter().take(20) {
                                        tr {
                                            td { (format_datetime(d.at)) } td { (d.kind) } td.num { (d.attempt) }
                                            td.num { (d.notifications) } td.num { @if let Some(st) = d.status { (st) } @else { "—" } }
                                            td { (d.outcome) } td { (d.error.as_deref().unwrap_or("")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::validate::{self, Mode};
    use serde_json::json;

    const NASTY: &str =
        "<script>alert('x')</script> \"quoted\" & 'single' <b>bold</b> é 漢字 😀 \u{202e}";

    fn nasty_record() -> Record {
        let entity = catalog().set("cloudAppSecurityProfiles").unwrap();
        let body = json!({
            "name": NASTY, "platform": "Windows", "isSigned": true, "riskScore": NASTY,
            "tags": [NASTY, "&amp;"],
            "vendorInformation": {"provider": NASTY, "vendor": "v&v"},
            "dynProp": NASTY,
        });
        let changes =
            validate::changes_from_json(entity, &body, Mode::Create, Default::default()).unwrap();
        Record::create(changes, "id-<script>&\"'".into(), 1).unwrap()
    }

    /// No value of an entity reaches the HTML unescaped: strings in cells, in the JSON view, in
    /// the edit textarea, in attributes (links, hidden fields), and dynamic property names.
    #[test]
    fn every_value_is_escaped() {
        let r = nasty_record();
        let pages = [
            entity("t<&>\"'", &r, "c\"<", None).into_string(),
            entity("t", &r, "c", Some(("BadRequest", NASTY.into(), NASTY))).into_string(),
            list_row("t\"<", &r, &columns(r.entity)).into_string(),
            error_page(NASTY, NASTY).into_string(),
            new_entity(NASTY, r.entity, NASTY, NASTY, Some((NASTY, NASTY.into()))).into_string(),
            tenant(NASTY, None, NASTY).into_string(),
        ];
        for (i, page) in pages.iter().enumerate() {
            assert!(!page.contains("<script>alert"), "{page}");
            assert!(!page.contains("<b>"), "{page}");

            assert!(!page.contains("\"quoted\""), "{page}");
            assert!(!page.contains("id-<script>"), "{page}");
            // Unicode goes through as it is (UTF-8 page).
            if i != 2 {
                assert!(page.contains("😀"), "{page}");
            }
        }
        let e = &pages[0];
        assert!(e.contains("&lt;script&gt;alert('x')&lt;/script&gt;"), "{e}");
        assert!(
            e.contains("&amp;amp;"),
            "the literal '&amp;' tag stays text: {e}"
        );
        assert!(e.contains("漢字 😀"));
        assert!(
            e.contains("&quot;dynProp&quot;: &quot;&lt;script&gt;"),
            "{e}"
        );
        // Attribute values: quotes escaped, so no attribute can be closed early.
        assert!(e.contains("value=\"c&quot;&lt;\""), "{e}");
        let row = &pages[2];
        assert!(row.contains("id-&lt;script&gt;&amp;&quot;'"), "{row}");
        // The link to the entity percent-encodes the id and the tenant.
        assert!(row.contains("id=id-%3Cscript%3E%26%22%27"), "{row}");
        assert!(row.contains("tenant=t%22%3C"), "{row}");
    }

    #[test]
    fn counts_above_the_cap_show_as_more_than_it() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(count_text(COUNT_CAP).0, "10,000");
        assert_eq!(
            count_text(COUNT_CAP + 1),
            ("10,000+".into(), "more than 10,000".into())
        );
    }

    #[test]
    fn columns_come_from_the_model() {
        for c in catalogs() {
            for e in c.served() {
                let cols = columns(e);
                assert_eq!(cols[0].managed, Managed::Key, "{}", e.collection);
                assert!(cols.len() >= 2, "{}", e.collection);
            }
        }
    }
}
