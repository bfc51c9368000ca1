//! The loaded slice against the family summary (`legacy-security-family.md`), against the
//! `$metadata` graphsec serves, and the reader's error paths. (The catalog built from it is
//! checked against the former static table in `model::catalog`.)

use super::registry::{Property, Registry, Resolved, TypeKind};
use super::{CsdlError, EdmPrimitive, LEGACY_SECURITY_CSDL, Schema};
use crate::model::entity::EntityType;

fn registry() -> Registry {
    Registry::legacy_security().expect("the embedded slice loads")
}

/// (b) The summary in `legacy-security-family.md`: per set, properties besides `id`,
/// non-nullable ones besides `id`, properties that are collections of complex values (nested
/// ones included), distinct enum types reachable, and bound actions.
/// (set, type, properties besides id, non-null besides id, complex collections, enum types,
/// bound actions).
type FamilyRow = (
    &'static str,
    &'static str,
    usize,
    &'static [&'static str],
    usize,
    usize,
    &'static [&'static str],
);

const FAMILY: &[FamilyRow] = &[
    (
        "alerts",
        "alert",
        39,
        &["azureTenantId", "severity", "status"],
        16,
        15,
        &["updateAlerts"],
    ),
    (
        "cloudAppSecurityProfiles",
        "cloudAppSecurityProfile",
        17,
        &[],
        0,
        1,
        &[],
    ),
    (
        "domainSecurityProfiles",
        "domainSecurityProfile",
        14,
        &["azureTenantId"],
        1,
        0,
        &[],
    ),
    (
        "fileSecurityProfiles",
        "fileSecurityProfile",
        16,
        &["azureTenantId"],
        3,
        1,
        &[],
    ),
    (
        "hostSecurityProfiles",
        "hostSecurityProfile",
        18,
        &["azureTenantId"],
        2,
        2,
        &[],
    ),
    (
        "ipSecurityProfiles",
        "ipSecurityProfile",
        13,
        &["azureTenantId"],
        2,
        0,
        &[],
    ),
    (
        "providerTenantSettings",
        "providerTenantSetting",
        5,
        &["azureTenantId"],
        0,
        0,
        &[],
    ),
    (
        "secureScoreControlProfiles",
        "secureScoreControlProfile",
        19,
        &["azureTenantId"],
        3,
        0,
        &[],
    ),
    (
        "secureScores",
        "secureScore",
        10,
        &["azureTenantId"],
        2,
        0,
        &[],
    ),
    (
        "securityActions",
        "securityAction",
        14,
        &[],
        2,
        1,
        &["cancelSecurityAction"],
    ),
    (
        "tiIndicators",
        "tiIndicator",
        58,
        &["targetProduct"],
        0,
        4,
        &[
            "deleteTiIndicators",
            "deleteTiIndicatorsByExternalId",
            "submitTiIndicators",
            "updateTiIndicators",
        ],
    ),
    (
        "userSecurityProfiles",
        "userSecurityProfile",
        10,
        &["azureTenantId"],
        1,
        1,
        &[],
    ),
];

/// Walks nested complex values: counts collection-of-complex properties, collects enum types.
fn reachable(reg: &Registry, props: &[Property], cc: &mut usize, enums: &mut Vec<usize>) {
    for p in props {
        match p.ty.kind {
            TypeKind::Complex(i) => {
                *cc += usize::from(p.ty.collection);
                reachable(reg, &reg.complex_types[i].properties, cc, enums);
            }
            TypeKind::Enum(i) => enums.push(i),
            TypeKind::Primitive(_) | TypeKind::Entity(_) => {}
        }
    }
}

#[test]
fn the_family_summary_holds() {
    let reg = registry();
    let s = &reg.schema;
    assert_eq!(
        (
            s.entity_types.len(),
            s.complex_types.len(),
            s.enum_types.len(),
            s.actions.len()
        ),
        (14, 33, 21, 6),
        "12 entity types plus entity and security; complex, enum types and actions"
    );
    assert_eq!(reg.entity_sets.len(), FAMILY.len());
    for (set_name, type_name, props, non_null, complex_collections, enums, actions) in FAMILY {
        let set = reg.entity_set(set_name).expect(set_name);
        let ty = reg.entity_type_of(set);
        assert_eq!(ty.name, *type_name);
        assert_eq!(ty.key, ["id"], "{set_name}");
        assert_eq!(ty.properties[0].name, "id", "{set_name}: id first");
        assert_eq!(ty.properties[0].declared_in, "microsoft.graph.entity");
        assert_eq!(ty.properties.len(), props + 1, "{set_name}: properties");
        let nn: Vec<&str> = ty.properties[1..]
            .iter()
            .filter(|p| !p.nullable)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(nn, *non_null, "{set_name}: non-nullable");
        let (mut cc, mut reached) = (0, Vec::new());
        reachable(&reg, &ty.properties, &mut cc, &mut reached);
        assert_eq!(cc, *complex_collections, "{set_name}: complex collections");
        reached.sort_unstable();
        reached.dedup();
        assert_eq!(reached.len(), *enums, "{set_name}: enum types");
        let mut bound: Vec<&str> = reg.actions_of(set).map(|a| a.name.as_str()).collect();
        bound.sort_unstable();
        assert_eq!(bound, *actions, "{set_name}: bound actions");
        assert_eq!(
            ty.open,
            *set_name != "providerTenantSettings",
            "{set_name}: open type"
        );
        // Capabilities: where annotated, the query options are supported and nothing is
        // restricted; deprecation everywhere but the two score sets (still in Graph v1.0).
        let c = &set.capabilities;
        for flag in [
            c.countable,
            c.filterable,
            c.sortable,
            c.select,
            c.top,
            c.skip,
        ] {
            assert_ne!(flag, Some(false), "{set_name}");
        }
        for flag in [c.insertable, c.updatable, c.deletable] {
            assert_eq!(flag, None, "{set_name}");
        }
        // The slice lacks the annotations of four types (the summary says so); they have none.
        let unannotated = [
            "fileSecurityProfile",
            "hostSecurityProfile",
            "ipSecurityProfile",
            "providerTenantSetting",
        ]
        .contains(type_name);
        assert_eq!(
            s.annotations_of(&ty.qualified_name).is_none(),
            unannotated,
            "{set_name}: annotated"
        );
        let live = set_name.starts_with("secureScore");
        assert_eq!(
            set.revisions.is_empty(),
            live || unannotated,
            "{set_name}: deprecation"
        );
        for r in &set.revisions {
            assert_eq!(r.kind.as_deref(), Some("Deprecated"));
            assert_eq!(r.date.as_deref(), Some("2024-04-10"));
            assert_eq!(r.removal_date.as_deref(), Some("2026-04-10"));
        }
    }
    // Bound actions: the binding parameter first, then `value`.
    for a in &s.actions {
        assert!(a.is_bound);
        let names: Vec<&str> = a.parameters.iter().map(|p| p.name.as_str()).collect();
        let expected: &[&str] = if a.name == "cancelSecurityAction" {
            &["bindparameter"]
        } else {
            &["bindparameter", "value"]
        };
        assert_eq!(names, expected, "{}", a.name);
    }
    // Primitive types used anywhere in the family's types.
    let mut used: Vec<&str> = reg
        .entity_types
        .iter()
        .chain(&reg.complex_types)
        .flat_map(|t| &t.properties)
        .filter_map(|p| match p.ty.kind {
            TypeKind::Primitive(x) => Some(x.edm_name()),
            _ => None,
        })
        .collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(
        used,
        [
            "Edm.Boolean",
            "Edm.DateTimeOffset",
            "Edm.Double",
            "Edm.Int32",
            "Edm.Int64",
            "Edm.String"
        ]
    );
    assert!(s.enum_types.iter().all(|e| !e.is_flags), "no flags enums");
    // Enums are not uniform (summary point 6).
    let op = s
        .enum_type("microsoft.graph.operationStatus")
        .expect("operationStatus");
    assert_eq!(op.members.first(), Some(&("NotStarted".to_string(), 0)));
    assert!(op.members.iter().all(|(n, _)| n != "unknownFutureValue"));
    let proto = s
        .enum_type("microsoft.graph.securityNetworkProtocol")
        .expect("securityNetworkProtocol");
    let values: Vec<i64> = proto.members.iter().map(|(_, v)| *v).collect();
    assert_eq!(values.iter().min(), Some(&-1));
    assert_eq!(values.iter().max(), Some(&32767));
    // Open complex types (summary point 3).
    let mut open: Vec<&str> = reg
        .complex_types
        .iter()
        .filter(|c| c.open)
        .map(|c| c.name.as_str())
        .collect();
    open.sort_unstable();
    assert_eq!(
        open,
        [
            "averageComparativeScore",
            "certificationControl",
            "complianceInformation",
            "controlScore"
        ]
    );
}

fn load(text: &str) -> Result<Registry, CsdlError> {
    Registry::build(Schema::parse(text)?)
}

/// The slice with one exact piece of text replaced (asserted present, so a test cannot pass
/// because its edit missed).
fn edited(from: &str, to: &str) -> String {
    assert!(LEGACY_SECURITY_CSDL.contains(from), "{from}");
    LEGACY_SECURITY_CSDL.replacen(from, to, 1)
}

fn error_of(text: &str) -> String {
    load(text).expect_err("must be refused").to_string()
}

/// (c) Error paths name what and where.
#[test]
fn unknown_elements_and_attributes_are_refused_with_their_place() {
    let e = error_of(&edited(
        r#"<Property Name="title" Type="Edm.String" />"#,
        r#"<Property Name="title" Type="Edm.String" /><Foo />"#,
    ));
    assert!(e.contains("unknown element <Foo>"), "{e}");
    assert!(e.contains("EntityType[alert]"), "{e}");
    assert!(e.contains("line 471"), "{e}");

    let e = error_of(&edited(
        r#"<Property Name="title" Type="Edm.String" />"#,
        r#"<Property Name="title" Type="Edm.String" MaxLength="5" />"#,
    ));
    assert!(e.contains("unknown attribute MaxLength"), "{e}");
    assert!(e.contains("Property[title]"), "{e}");

    let e = error_of(&edited(
        "Org.OData.Capabilities.V1.TopSupported",
        "Org.OData.Capabilities.V1.ExpandSupported",
    ));
    assert!(e.contains("ExpandSupported"), "{e}");

    let e = error_of(&edited(
        r#"<PropertyValue Property="Countable" Bool="true" />"#,
        r#"<PropertyValue Property="Countable" Bool="true" /><PropertyValue Property="NonCountableProperties" Bool="true" />"#,
    ));
    assert!(e.contains("NonCountableProperties"), "{e}");
}

#[test]
fn dangling_references_are_refused_by_name() {
    let e = error_of(&edited(
        r#"Type="Collection(graph.alertTrigger)""#,
        r#"Type="Collection(graph.alertTriggr)""#,
    ));
    assert!(
        e.contains("microsoft.graph.alertTriggr is not defined") && e.contains("triggers"),
        "{e}"
    );

    let e = error_of(&edited(
        r#"<Property Name="isSigned" Type="Edm.Boolean" />"#,
        r#"<Property Name="isSigned" Type="Edm.Bool" />"#,
    ));
    assert!(e.contains("Edm.Bool is not defined"), "{e}");

    let e = error_of(&edited(
        r#"<EntityType Name="alert" BaseType="graph.entity""#,
        r#"<EntityType Name="alert" BaseType="graph.entities""#,
    ));
    assert!(e.contains("base type microsoft.graph.entities"), "{e}");

    let e = error_of(&edited(
        r#"<EntityType Name="entity" Abstract="true">"#,
        r#"<EntityType Name="entity" Abstract="true" BaseType="graph.alert">"#,
    ));
    assert!(e.contains("loops"), "{e}");

    let e = error_of(&edited(
        r#"<Annotations Target="microsoft.graph.alertDetection">"#,
        r#"<Annotations Target="microsoft.graph.alertDetections">"#,
    ));
    assert!(e.contains("alertDetections names no type"), "{e}");

    let e = error_of(&edited(
        r#"Type="Collection(graph.resultInfo)""#,
        r#"Type="Collection(other.resultInfo)""#,
    ));
    assert!(e.contains("other.resultInfo is not qualified"), "{e}");
}

#[test]
fn malformed_documents_are_errors_not_panics() {
    for text in [
        "",
        "<",
        "<edmx:Edmx Version=\"4.0\">",
        "<a/>",
        "<edmx:Edmx Version=\"3.0\"/>",
        "<edmx:Edmx Version=\"4.0\"><edmx:DataServices/></edmx:Edmx>",
        "<edmx:Edmx Version=\"4.0\"></edmx:Edmx><x/>",
        &LEGACY_SECURITY_CSDL[..LEGACY_SECURITY_CSDL.len() / 2],
        &edited(r#"Nullable="false""#, r#"Nullable="no""#),
        &edited(r#"Value="127""#, r#"Value="lots""#),
        &edited("<Key>", "<Key>&amp;"),
    ] {
        let e = load(text).expect_err(text);
        assert!(e.to_string().starts_with("CSDL: "), "{e}");
    }
}

/// Features the slice does not use but CSDL allows: complex base types, implicit enum values,
/// flags enums, unbound actions, a key on a derived chain.
const SMALL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.01" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="test.ns" Alias="t" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EnumType Name="color"><Member Name="red" /><Member Name="green" /></EnumType>
      <EnumType Name="bits" IsFlags="true"><Member Name="a" Value="1" /><Member Name="b" Value="2" /></EnumType>
      <ComplexType Name="base" Abstract="true"><Property Name="x" Type="Edm.Guid" Nullable="false" /></ComplexType>
      <ComplexType Name="derived" BaseType="t.base" OpenType="true"><Property Name="y" Type="Collection(t.color)" /></ComplexType>
      <EntityType Name="root" Abstract="true"><Key><PropertyRef Name="k" /></Key><Property Name="k" Type="Edm.Int64" Nullable="false" /></EntityType>
      <EntityType Name="thing" BaseType="test.ns.root"><Property Name="d" Type="t.derived" /><Property Name="f" Type="t.bits" /></EntityType>
      <EntityType Name="holder"><NavigationProperty Name="things" Type="Collection(t.thing)" ContainsTarget="true" /></EntityType>
      <Action Name="reset"><Parameter Name="when" Type="Edm.Date" /></Action>
      <EntityContainer Name="C"><Singleton Name="h" Type="t.holder" /></EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"#;

#[test]
fn derived_complex_types_flags_and_defaults_resolve() {
    let reg = load(SMALL).expect("loads");
    let color = reg.schema.enum_type("test.ns.color").expect("color");
    assert_eq!(
        color.members,
        [("red".to_string(), 0), ("green".to_string(), 1)]
    );
    assert!(reg.schema.enum_type("test.ns.bits").expect("bits").is_flags);
    let derived = reg
        .complex_types
        .iter()
        .find(|c| c.name == "derived")
        .expect("derived");
    let names: Vec<&str> = derived.properties.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x", "y"], "base members first");
    assert_eq!(derived.properties[0].declared_in, "test.ns.base");
    assert!(derived.open && !derived.properties[0].nullable);
    let set = reg.entity_set("things").expect("things");
    assert_eq!(set.singleton, "h");
    let thing = reg.entity_type_of(set);
    assert_eq!(thing.key, ["k"]);
    assert_eq!(
        thing.property("k").map(|p| p.ty.kind),
        Some(TypeKind::Primitive(EdmPrimitive::Int64))
    );
    assert!(set.actions.is_empty());
    assert!(!reg.schema.actions[0].is_bound);
    assert_eq!(reg.schema.actions[0].binding(), None);

    let flags_without_values =
        SMALL.replace(r#"<Member Name="a" Value="1" />"#, r#"<Member Name="a" />"#);
    assert!(error_of(&flags_without_values).contains("flags enum needs a Value"));
    let not_contained = SMALL.replace(r#" ContainsTarget="true""#, "");
    assert!(error_of(&not_contained).contains("only contained collections"));
    let bad_key = SMALL.replace(r#"<PropertyRef Name="k" />"#, r#"<PropertyRef Name="d" />"#);
    assert!(error_of(&bad_key).contains("key d must be a non-nullable primitive"));
}

/// The `$metadata` graphsec serves, read back by this strict reader, describes every entity set
/// exactly as Graph's metadata does (same properties, types, nullability, enum members and
/// complex members at any depth, same bound actions with their signatures), and its capability
/// and deprecation annotations agree with the slice's where the slice has them (the four sets
/// the slice does not annotate carry the family's, from the overlay).
#[test]
fn served_metadata_agrees_with_the_slice() {
    for c in crate::model::catalog::catalogs() {
        served_metadata_agrees_with_the_version_slice(c);
    }
}

fn served_metadata_agrees_with_the_version_slice(c: &crate::model::catalog::Catalog) {
    let sets: Vec<&EntityType> = c.served().collect();
    assert_eq!(sets.len(), c.registry.entity_sets.len(), "{}", c.version);
    let served =
        load(&crate::api::metadata::render(&c.registry, &sets)).expect("served $metadata loads");
    let graph = &c.registry;
    let describe = |reg: &Registry, name: &str| {
        let set = reg.entity_set(name).expect("served set");
        let ty = reg.entity_type_of(set);
        let props: Vec<(String, String, bool)> = ty
            .properties
            .iter()
            .map(|p| (p.name.clone(), type_text(reg, p.ty), p.nullable))
            .collect();
        let actions: Vec<String> = reg
            .actions_of(set)
            .map(|a| {
                let params: Vec<String> = a
                    .parameters
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}:{}:{:?}",
                            p.name,
                            p.ty.csdl_name(),
                            p.nullable,
                            p.unicode
                        )
                    })
                    .collect();
                format!("{}({}) -> {:?}", a.name, params.join(", "), a.return_type)
            })
            .collect();
        (
            ty.qualified_name.clone(),
            ty.open,
            ty.key.clone(),
            props,
            actions,
        )
    };
    for e in &sets {
        assert_eq!(
            describe(&served, e.collection),
            describe(graph, e.collection),
            "{}",
            e.collection
        );
        let (s, g) = (
            served.entity_set(e.collection).expect("served"),
            graph.entity_set(e.collection).expect("graph"),
        );
        let (sc, gc) = (&s.capabilities, &g.capabilities);
        if *gc != Default::default() {
            for (what, served, graph) in [
                ("Countable", sc.countable, gc.countable),
                ("Filterable", sc.filterable, gc.filterable),
                ("Sortable", sc.sortable, gc.sortable),
                ("Select", sc.select, gc.select),
                ("Top", sc.top, gc.top),
                ("Skip", sc.skip, gc.skip),
            ] {
                assert_eq!(served, graph, "{}: {what}", e.collection);
            }
        }
        if !g.revisions.is_empty() {
            assert_eq!(s.revisions, g.revisions, "{}", e.collection);
        }
        assert_eq!(
            s.revisions.is_empty(),
            e.deprecation.is_none(),
            "{}",
            e.collection
        );
    }
    // graphsec says more than Graph here: collections cannot be ordered.
    if let Some(profiles) = served.entity_set("cloudAppSecurityProfiles") {
        assert_eq!(profiles.capabilities.non_sortable, ["tags"]);
    }
}

/// A resolved type spelled out in full: enum members and complex members included, so two
/// registries compare by content, not by index.
fn type_text(reg: &Registry, ty: Resolved) -> String {
    let inner = match ty.kind {
        TypeKind::Primitive(p) => p.edm_name().to_string(),
        TypeKind::Enum(i) => {
            let e = &reg.schema.enum_types[i];
            format!("enum {}{:?}", e.name, e.members)
        }
        TypeKind::Complex(i) => {
            let c = &reg.complex_types[i];
            let members: Vec<String> = c
                .properties
                .iter()
                .map(|m| format!("{}:{}:{}", m.name, type_text(reg, m.ty), m.nullable))
                .collect();
            format!("complex {} open={} {members:?}", c.qualified_name, c.open)
        }
        TypeKind::Entity(i) => reg.entity_types[i].qualified_name.clone(),
    };
    if ty.collection {
        format!("Collection({inner})")
    } else {
        inner
    }
}
