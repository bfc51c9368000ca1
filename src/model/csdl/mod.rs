//! The legacy Graph Security family's model, read from Graph's own metadata (issue 14,
//! groundwork): the CSDL slice `legacy-security.csdl.xml` (a verbatim slice of Graph's beta
//! CSDL, descriptions removed) is embedded and read into an owned, typed [`Schema`], which
//! [`registry::Registry`] then resolves into the twelve entity sets with flattened types.
//!
//! `crate::model::catalog` builds the served entity types from it at startup (with graphsec's
//! overlay); see `docs/FAMILY.md`.
//!
//! Section references are to OData CSDL XML Format Version 4.01 ("CSDL XML") and OData
//! Vocabularies (Capabilities, Core). The reader is strict: an element or attribute it does
//! not understand is an error naming where it is, so the slice cannot carry a fact graphsec
//! silently ignores.

mod xml;

pub mod registry;
#[cfg(test)]
mod tests;

use xml::Node;

/// The embedded beta slice.
pub const LEGACY_SECURITY_CSDL: &str = include_str!("legacy-security.csdl.xml");

/// The embedded v1.0 slice (`shared/spec/legacy-security-v1.0.csdl.xml`: the three sets Graph
/// v1.0 kept, verbatim types, no `updateAlerts`).
pub const LEGACY_SECURITY_V1_CSDL: &str = include_str!("legacy-security-v1.0.csdl.xml");

/// Why a CSDL document was refused: one message that says where (line and element path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsdlError(pub String);

impl std::fmt::Display for CsdlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CSDL: {}", self.0)
    }
}

impl std::error::Error for CsdlError {}

/// A primitive Edm type (CSDL XML §4.4, the `Edm` namespace). Only the ones a reader of Graph
/// metadata is likely to meet; any other `Edm.*` name is a load error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdmPrimitive {
    String,
    Boolean,
    DateTimeOffset,
    Date,
    TimeOfDay,
    Duration,
    Int16,
    Int32,
    Int64,
    Byte,
    Double,
    Single,
    Decimal,
    Guid,
    Binary,
}

impl EdmPrimitive {
    const ALL: [EdmPrimitive; 15] = [
        Self::String,
        Self::Boolean,
        Self::DateTimeOffset,
        Self::Date,
        Self::TimeOfDay,
        Self::Duration,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Byte,
        Self::Double,
        Self::Single,
        Self::Decimal,
        Self::Guid,
        Self::Binary,
    ];

    /// The name as CSDL spells it, e.g. `Edm.Int32`.
    pub fn edm_name(self) -> &'static str {
        match self {
            Self::String => "Edm.String",
            Self::Boolean => "Edm.Boolean",
            Self::DateTimeOffset => "Edm.DateTimeOffset",
            Self::Date => "Edm.Date",
            Self::TimeOfDay => "Edm.TimeOfDay",
            Self::Duration => "Edm.Duration",
            Self::Int16 => "Edm.Int16",
            Self::Int32 => "Edm.Int32",
            Self::Int64 => "Edm.Int64",
            Self::Byte => "Edm.Byte",
            Self::Double => "Edm.Double",
            Self::Single => "Edm.Single",
            Self::Decimal => "Edm.Decimal",
            Self::Guid => "Edm.Guid",
            Self::Binary => "Edm.Binary",
        }
    }

    pub fn from_edm_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.edm_name() == name)
    }
}

/// A type reference as written on a property, parameter or return type (CSDL XML §7.2.1
/// `Type`: a qualified name, or `Collection(...)` of one). Alias-qualified names (`graph.x`)
/// are rewritten to the namespace (`microsoft.graph.x`) when read, so every name in a
/// [`Schema`] is namespace-qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    pub collection: bool,
    /// `Edm.String` or `microsoft.graph.alert`.
    pub name: String,
}

impl TypeRef {
    /// As CSDL spells it (namespace-qualified).
    pub fn csdl_name(&self) -> String {
        if self.collection {
            format!("Collection({})", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// A structural property (CSDL XML §6.1). `nullable` defaults to true (§6.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyDef {
    pub name: String,
    pub ty: TypeRef,
    pub nullable: bool,
}

/// An entity type (CSDL XML §6): `key` is empty when inherited (§6.5: a derived type must not
/// redeclare it), `base_type` is qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTypeDef {
    pub name: String,
    pub base_type: Option<String>,
    pub is_abstract: bool,
    pub open: bool,
    pub key: Vec<String>,
    pub properties: Vec<PropertyDef>,
    pub navigation: Vec<NavigationDef>,
}

/// A navigation property (CSDL XML §7.1); `contains_target` (§7.1.5) makes the target a
/// contained entity set, which is how the `security` singleton holds the family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavigationDef {
    pub name: String,
    pub ty: TypeRef,
    pub contains_target: bool,
}

/// A complex type (CSDL XML §9): may be open (§9.1.3, extra members are kept) and derive
/// from another complex type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplexTypeDef {
    pub name: String,
    pub base_type: Option<String>,
    pub is_abstract: bool,
    pub open: bool,
    pub properties: Vec<PropertyDef>,
}

/// An enum type (CSDL XML §10): members in declaration order with their values. Values are
/// optional in CSDL (§10.2.2: then they are 0, 1, ... in order, flags types must give them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumTypeDef {
    pub name: String,
    pub is_flags: bool,
    pub members: Vec<(String, i64)>,
}

/// A parameter of an action (CSDL XML §12.8). For a bound action the first one is the binding
/// parameter (§12.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDef {
    pub name: String,
    pub ty: TypeRef,
    pub nullable: bool,
    /// `Unicode` facet (§6.2.5); Graph marks string collections of ids `false`.
    pub unicode: Option<bool>,
}

/// An action (CSDL XML §12.1). Only bound actions are in the slice; unbound ones load too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDef {
    pub name: String,
    pub is_bound: bool,
    pub parameters: Vec<ParameterDef>,
    pub return_type: Option<TypeRef>,
}

impl ActionDef {
    /// The binding parameter's type, for a bound action.
    pub fn binding(&self) -> Option<&TypeRef> {
        if self.is_bound {
            self.parameters.first().map(|p| &p.ty)
        } else {
            None
        }
    }

    /// The overload signature annotations target (CSDL XML §14.2.1.1:
    /// `ns.name(paramType, ...)` listing every parameter of a bound action).
    pub fn signature(&self, namespace: &str) -> String {
        let params: Vec<String> = self.parameters.iter().map(|p| p.ty.csdl_name()).collect();
        format!("{namespace}.{}({})", self.name, params.join(", "))
    }
}

/// A singleton of the entity container (CSDL XML §13.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingletonDef {
    pub name: String,
    pub ty: String,
}

/// A constant annotation value (CSDL XML §14.4 constant expressions and §14.5 dynamic ones
/// the vocabularies here need: Record, Collection, EnumMember).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationValue {
    Bool(bool),
    String(String),
    Date(String),
    EnumMember(String),
    /// A `PropertyPath` (§14.5.13), e.g. in NonFilterableProperties.
    PropertyPath(String),
    Record(Vec<(String, AnnotationValue)>),
    Collection(Vec<AnnotationValue>),
}

/// Capability restrictions on an entity type (Org.OData.Capabilities.V1). `None` = not
/// annotated: OData's default for every one of them is "supported".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// CountRestrictions/Countable.
    pub countable: Option<bool>,
    /// FilterRestrictions/Filterable.
    pub filterable: Option<bool>,
    /// FilterRestrictions/NonFilterableProperties.
    pub non_filterable: Vec<String>,
    /// SortRestrictions/Sortable.
    pub sortable: Option<bool>,
    /// SortRestrictions/NonSortableProperties.
    pub non_sortable: Vec<String>,
    /// SelectSupport/Supported.
    pub select: Option<bool>,
    /// TopSupported.
    pub top: Option<bool>,
    /// SkipSupported.
    pub skip: Option<bool>,
    /// ExpandRestrictions/Expandable.
    pub expandable: Option<bool>,
    /// SearchRestrictions/Searchable.
    pub searchable: Option<bool>,
    /// InsertRestrictions/Insertable.
    pub insertable: Option<bool>,
    /// UpdateRestrictions/Updatable.
    pub updatable: Option<bool>,
    /// DeleteRestrictions/Deletable.
    pub deletable: Option<bool>,
}

/// One Org.OData.Core.V1.Revisions entry (a deprecation notice in Graph's metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    pub version: Option<String>,
    /// `Org.OData.Core.V1.RevisionKind/Deprecated` -> `Deprecated`.
    pub kind: Option<String>,
    pub date: Option<String>,
    pub removal_date: Option<String>,
    pub description: Option<String>,
}

/// The annotations of one target (CSDL XML §14.2 `Annotations`), interpreted per term.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetAnnotations {
    /// As written, e.g. `microsoft.graph.alert` or an action overload signature.
    pub target: String,
    pub capabilities: Capabilities,
    pub revisions: Vec<Revision>,
}

/// A referenced vocabulary or schema (CSDL XML §3.3 `edmx:Reference`, §3.4 `edmx:Include`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub uri: String,
    /// (namespace, alias) pairs.
    pub includes: Vec<(String, Option<String>)>,
}

/// One CSDL schema (CSDL XML §5) with its entity container, everything in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub references: Vec<Reference>,
    pub namespace: String,
    pub alias: Option<String>,
    pub enum_types: Vec<EnumTypeDef>,
    pub complex_types: Vec<ComplexTypeDef>,
    pub entity_types: Vec<EntityTypeDef>,
    pub actions: Vec<ActionDef>,
    pub container: String,
    pub singletons: Vec<SingletonDef>,
    pub annotations: Vec<TargetAnnotations>,
}

impl Schema {
    /// Reads a CSDL XML document holding one schema (the shape of the slice). Only syntax and
    /// the reader's strictness are checked here; type references are resolved by
    /// [`registry::Registry::build`].
    pub fn parse(text: &str) -> Result<Schema, CsdlError> {
        let root = xml::parse(text)?;
        if root.name != "edmx:Edmx" {
            return Err(root.error("the root element must be <edmx:Edmx> (CSDL XML §3.1)"));
        }
        root.allow(&["Version"], &["edmx:Reference", "edmx:DataServices"])?;
        match root.required("Version")? {
            "4.0" | "4.01" => {}
            v => return Err(root.error(format!("unsupported OData version {v}"))),
        }
        let services = single(&root, "edmx:DataServices")?;
        services.allow(&[], &["Schema"])?;
        let mut references = Vec::new();
        for r in root.children_named("edmx:Reference") {
            r.allow(&["Uri"], &["edmx:Include"])?;
            let mut includes = Vec::new();
            for i in &r.children {
                i.allow(&["Namespace", "Alias"], &[])?;
                includes.push((
                    i.required("Namespace")?.to_string(),
                    i.attr("Alias").map(str::to_string),
                ));
            }
            references.push(Reference {
                uri: r.required("Uri")?.to_string(),
                includes,
            });
        }
        let schema = single(services, "Schema")?;
        let mut out = read_schema(schema, &references)?;
        out.references = references;
        Ok(out)
    }

    /// The embedded slice.
    pub fn legacy_security() -> Result<Schema, CsdlError> {
        Self::parse(LEGACY_SECURITY_CSDL)
    }

    pub fn entity_type(&self, qualified: &str) -> Option<&EntityTypeDef> {
        self.local(qualified)
            .and_then(|n| self.entity_types.iter().find(|t| t.name == n))
    }

    pub fn complex_type(&self, qualified: &str) -> Option<&ComplexTypeDef> {
        self.local(qualified)
            .and_then(|n| self.complex_types.iter().find(|t| t.name == n))
    }

    pub fn enum_type(&self, qualified: &str) -> Option<&EnumTypeDef> {
        self.local(qualified)
            .and_then(|n| self.enum_types.iter().find(|t| t.name == n))
    }

    /// The annotations targeting `target`, if any.
    pub fn annotations_of(&self, target: &str) -> Option<&TargetAnnotations> {
        self.annotations.iter().find(|a| a.target == target)
    }

    /// `microsoft.graph.alert` -> `alert` when the namespace is this schema's.
    fn local<'a>(&self, qualified: &'a str) -> Option<&'a str> {
        qualified
            .strip_prefix(self.namespace.as_str())
            .and_then(|r| r.strip_prefix('.'))
    }
}

fn single<'a>(parent: &'a Node, name: &'a str) -> Result<&'a Node, CsdlError> {
    let mut it = parent.children_named(name);
    match (it.next(), it.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(parent.error(format!("<{}> needs one <{name}>", parent.name))),
        (Some(_), Some(second)) => Err(second.error(format!(
            "only one <{name}> is supported inside <{}>",
            parent.name
        ))),
    }
}

/// Qualifies names: alias -> namespace (CSDL XML §5.1.2), `Collection(...)` unwrapped.
struct Names<'a> {
    namespace: &'a str,
    alias: Option<&'a str>,
}

impl Names<'_> {
    fn qualify(&self, node: &Node, name: &str) -> Result<String, CsdlError> {
        if name.starts_with("Edm.") {
            return Ok(name.to_string());
        }
        if let Some(alias) = self.alias
            && let Some(rest) = name.strip_prefix(alias).and_then(|r| r.strip_prefix('.'))
        {
            return Ok(format!("{}.{rest}", self.namespace));
        }
        if name
            .strip_prefix(self.namespace)
            .is_some_and(|r| r.starts_with('.'))
        {
            return Ok(name.to_string());
        }
        Err(node.error(format!(
            "{name} is not qualified by the namespace {} or its alias",
            self.namespace
        )))
    }

    fn type_ref(&self, node: &Node, text: &str) -> Result<TypeRef, CsdlError> {
        match text
            .strip_prefix("Collection(")
            .and_then(|r| r.strip_suffix(')'))
        {
            Some(inner) => Ok(TypeRef {
                collection: true,
                name: self.qualify(node, inner)?,
            }),
            None => Ok(TypeRef {
                collection: false,
                name: self.qualify(node, text)?,
            }),
        }
    }
}

fn read_schema(schema: &Node, references: &[Reference]) -> Result<Schema, CsdlError> {
    schema.allow(
        &["Namespace", "Alias"],
        &[
            "EnumType",
            "ComplexType",
            "EntityType",
            "Action",
            "EntityContainer",
            "Annotations",
        ],
    )?;
    let namespace = schema.required("Namespace")?.to_string();
    let alias = schema.attr("Alias").map(str::to_string);
    let names = Names {
        namespace: &namespace,
        alias: alias.as_deref(),
    };
    let mut out = Schema {
        references: Vec::new(),
        namespace: namespace.clone(),
        alias: alias.clone(),
        enum_types: Vec::new(),
        complex_types: Vec::new(),
        entity_types: Vec::new(),
        actions: Vec::new(),
        container: String::new(),
        singletons: Vec::new(),
        annotations: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for node in &schema.children {
        // Type and action names share one namespace scope (CSDL XML §5: schema children are
        // unique by name, except action overloads).
        if node.name != "Annotations"
            && node.name != "Action"
            && !seen.insert(node.required("Name")?.to_string())
        {
            return Err(node.error("a second schema element with this name"));
        }
        match node.name.as_str() {
            "EnumType" => out.enum_types.push(read_enum(node)?),
            "ComplexType" => out.complex_types.push(read_complex(node, &names)?),
            "EntityType" => out.entity_types.push(read_entity(node, &names)?),
            "Action" => out.actions.push(read_action(node, &names)?),
            "EntityContainer" => {
                if !out.container.is_empty() {
                    return Err(node.error("only one <EntityContainer> per schema (§13.1)"));
                }
                node.allow(&["Name"], &["Singleton"])?;
                out.container = node.required("Name")?.to_string();
                for s in &node.children {
                    s.allow(&["Name", "Type"], &[])?;
                    out.singletons.push(SingletonDef {
                        name: s.required("Name")?.to_string(),
                        ty: names.qualify(s, s.required("Type")?)?,
                    });
                }
            }
            "Annotations" => out.annotations.push(read_annotations(node, references)?),
            // allow() above refused every other child; an error, not a panic, if that drifts.
            other => return Err(node.error(format!("unknown element <{other}>"))),
        }
    }
    Ok(out)
}

fn read_enum(node: &Node) -> Result<EnumTypeDef, CsdlError> {
    node.allow(&["Name", "IsFlags", "UnderlyingType"], &["Member"])?;
    if let Some(u) = node.attr("UnderlyingType")
        && !matches!(
            u,
            "Edm.Byte" | "Edm.SByte" | "Edm.Int16" | "Edm.Int32" | "Edm.Int64"
        )
    {
        return Err(node.error(format!("{u} is not an enum underlying type (§10.1.2)")));
    }
    let is_flags = node.bool_attr("IsFlags")?.unwrap_or(false);
    let mut members: Vec<(String, i64)> = Vec::new();
    for (i, m) in node.children.iter().enumerate() {
        m.allow(&["Name", "Value"], &[])?;
        let name = m.required("Name")?.to_string();
        let value = match m.attr("Value") {
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| m.error(format!("Value=\"{v}\" is not an integer")))?,
            None if is_flags => {
                return Err(m.error("a member of a flags enum needs a Value (§10.2.2)"));
            }
            None => i64::try_from(i).unwrap_or(i64::MAX),
        };
        if members.iter().any(|(n, _)| *n == name) {
            return Err(m.error(format!("a second member named {name}")));
        }
        members.push((name, value));
    }
    Ok(EnumTypeDef {
        name: node.required("Name")?.to_string(),
        is_flags,
        members,
    })
}

fn read_property(node: &Node, names: &Names) -> Result<PropertyDef, CsdlError> {
    node.allow(&["Name", "Type", "Nullable"], &[])?;
    Ok(PropertyDef {
        name: node.required("Name")?.to_string(),
        ty: names.type_ref(node, node.required("Type")?)?,
        nullable: node.bool_attr("Nullable")?.unwrap_or(true),
    })
}

fn read_complex(node: &Node, names: &Names) -> Result<ComplexTypeDef, CsdlError> {
    node.allow(&["Name", "BaseType", "Abstract", "OpenType"], &["Property"])?;
    Ok(ComplexTypeDef {
        name: node.required("Name")?.to_string(),
        base_type: node
            .attr("BaseType")
            .map(|b| names.qualify(node, b))
            .transpose()?,
        is_abstract: node.bool_attr("Abstract")?.unwrap_or(false),
        open: node.bool_attr("OpenType")?.unwrap_or(false),
        properties: node
            .children
            .iter()
            .map(|p| read_property(p, names))
            .collect::<Result<_, _>>()?,
    })
}

fn read_entity(node: &Node, names: &Names) -> Result<EntityTypeDef, CsdlError> {
    node.allow(
        &["Name", "BaseType", "Abstract", "OpenType"],
        &["Key", "Property", "NavigationProperty"],
    )?;
    let mut key = Vec::new();
    let mut properties = Vec::new();
    let mut navigation = Vec::new();
    for c in &node.children {
        match c.name.as_str() {
            "Key" => {
                c.allow(&[], &["PropertyRef"])?;
                for r in &c.children {
                    r.allow(&["Name"], &[])?;
                    key.push(r.required("Name")?.to_string());
                }
            }
            "Property" => properties.push(read_property(c, names)?),
            _ => {
                c.allow(&["Name", "Type", "ContainsTarget"], &[])?;
                navigation.push(NavigationDef {
                    name: c.required("Name")?.to_string(),
                    ty: names.type_ref(c, c.required("Type")?)?,
                    contains_target: c.bool_attr("ContainsTarget")?.unwrap_or(false),
                });
            }
        }
    }
    Ok(EntityTypeDef {
        name: node.required("Name")?.to_string(),
        base_type: node
            .attr("BaseType")
            .map(|b| names.qualify(node, b))
            .transpose()?,
        is_abstract: node.bool_attr("Abstract")?.unwrap_or(false),
        open: node.bool_attr("OpenType")?.unwrap_or(false),
        key,
        properties,
        navigation,
    })
}

fn read_action(node: &Node, names: &Names) -> Result<ActionDef, CsdlError> {
    node.allow(&["Name", "IsBound"], &["Parameter", "ReturnType"])?;
    let mut parameters = Vec::new();
    let mut return_type = None;
    for c in &node.children {
        if c.name == "Parameter" {
            c.allow(&["Name", "Type", "Nullable", "Unicode"], &[])?;
            parameters.push(ParameterDef {
                name: c.required("Name")?.to_string(),
                ty: names.type_ref(c, c.required("Type")?)?,
                nullable: c.bool_attr("Nullable")?.unwrap_or(true),
                unicode: c.bool_attr("Unicode")?,
            });
        } else {
            c.allow(&["Type", "Nullable"], &[])?;
            if return_type.is_some() {
                return Err(c.error("a second <ReturnType> (§12.7)"));
            }
            return_type = Some(names.type_ref(c, c.required("Type")?)?);
        }
    }
    let is_bound = node.bool_attr("IsBound")?.unwrap_or(false);
    if is_bound && parameters.is_empty() {
        return Err(node.error("a bound action needs its binding parameter (§12.4)"));
    }
    Ok(ActionDef {
        name: node.required("Name")?.to_string(),
        is_bound,
        parameters,
        return_type,
    })
}

const CAPABILITIES: &str = "Org.OData.Capabilities.V1.";
const REVISIONS: &str = "Org.OData.Core.V1.Revisions";

/// A term's qualified name with an included alias replaced by its namespace (§3.4.2).
fn term_name(term: &str, references: &[Reference]) -> String {
    for (namespace, alias) in references.iter().flat_map(|r| &r.includes) {
        if let Some(rest) = alias
            .as_deref()
            .and_then(|a| term.strip_prefix(a))
            .and_then(|r| r.strip_prefix('.'))
        {
            return format!("{namespace}.{rest}");
        }
    }
    term.to_string()
}

fn read_annotations(node: &Node, references: &[Reference]) -> Result<TargetAnnotations, CsdlError> {
    node.allow(&["Target"], &["Annotation"])?;
    let mut out = TargetAnnotations {
        target: node.required("Target")?.to_string(),
        ..TargetAnnotations::default()
    };
    for a in &node.children {
        let term = &term_name(a.required("Term")?, references);
        let value = annotation_value(a, &["Term"])?;
        if term == REVISIONS {
            out.revisions = read_revisions(a, &value)?;
            continue;
        }
        let short = term.strip_prefix(CAPABILITIES).ok_or_else(|| {
            a.error(format!(
                "the term {term} is not one graphsec reads (Capabilities and Core.Revisions only)"
            ))
        })?;
        let caps = &mut out.capabilities;
        // Each restriction term is a record with one boolean property we read; the *Supported
        // terms are plain booleans (Org.OData.Capabilities.V1 vocabulary).
        let (slot, record_property, paths) = match short {
            "CountRestrictions" => (&mut caps.countable, Some("Countable"), None),
            "FilterRestrictions" => (
                &mut caps.filterable,
                Some("Filterable"),
                Some(("NonFilterableProperties", &mut caps.non_filterable)),
            ),
            "SortRestrictions" => (
                &mut caps.sortable,
                Some("Sortable"),
                Some(("NonSortableProperties", &mut caps.non_sortable)),
            ),
            "SelectSupport" => (&mut caps.select, Some("Supported"), None),
            "ExpandRestrictions" => (&mut caps.expandable, Some("Expandable"), None),
            "SearchRestrictions" => (&mut caps.searchable, Some("Searchable"), None),
            "InsertRestrictions" => (&mut caps.insertable, Some("Insertable"), None),
            "UpdateRestrictions" => (&mut caps.updatable, Some("Updatable"), None),
            "DeleteRestrictions" => (&mut caps.deletable, Some("Deletable"), None),
            "TopSupported" => (&mut caps.top, None, None),
            "SkipSupported" => (&mut caps.skip, None, None),
            other => {
                return Err(a.error(format!(
                    "the capability term {other} is not one graphsec reads"
                )));
            }
        };
        let mut paths = paths;
        *slot = Some(match (record_property, value) {
            (None, AnnotationValue::Bool(b)) => b,
            (Some(p), AnnotationValue::Record(fields)) => {
                let mut found = None;
                for (k, v) in fields {
                    match (v, &mut paths) {
                        (AnnotationValue::Bool(b), _) if k == p => found = Some(b),
                        (AnnotationValue::Collection(items), Some((name, list))) if k == *name => {
                            for item in items {
                                let AnnotationValue::PropertyPath(path) = item else {
                                    return Err(a.error(format!("{term}/{k}: property paths only")));
                                };
                                list.push(path);
                            }
                        }
                        _ => {
                            return Err(a.error(format!(
                                "{term}: the record property {k} is not one graphsec reads \
                                 (only a boolean {p} and the Non*Properties paths)"
                            )));
                        }
                    }
                }
                found.ok_or_else(|| a.error(format!("{term}: the record has no {p}")))?
            }
            _ => return Err(a.error(format!("{term}: unexpected value shape"))),
        });
    }
    Ok(out)
}

fn read_revisions(a: &Node, value: &AnnotationValue) -> Result<Vec<Revision>, CsdlError> {
    let AnnotationValue::Collection(items) = value else {
        return Err(a.error("Revisions must be a collection of records"));
    };
    let mut out = Vec::new();
    for item in items {
        let AnnotationValue::Record(fields) = item else {
            return Err(a.error("Revisions must be a collection of records"));
        };
        let mut r = Revision::default();
        for (k, v) in fields {
            let text = match v {
                AnnotationValue::String(s) | AnnotationValue::Date(s) => s.clone(),
                AnnotationValue::EnumMember(m) => m
                    .strip_prefix("Org.OData.Core.V1.RevisionKind/")
                    .ok_or_else(|| a.error(format!("{m} is not a RevisionKind member")))?
                    .to_string(),
                _ => return Err(a.error(format!("Revisions: unexpected value of {k}"))),
            };
            let slot = match k.as_str() {
                "Version" => &mut r.version,
                "Kind" => &mut r.kind,
                "Date" => &mut r.date,
                "RemovalDate" => &mut r.removal_date,
                "Description" => &mut r.description,
                other => {
                    return Err(a.error(format!("Revisions: unknown record property {other}")));
                }
            };
            *slot = Some(text);
        }
        out.push(r);
    }
    Ok(out)
}

/// The value of an `Annotation` or `PropertyValue`: a constant attribute (`Bool`, `String`,
/// `Date`; CSDL XML §14.4) or one child expression (`Record` §14.5.14, `Collection` §14.5.3,
/// `EnumMember` §14.4.9). `own` lists the element's other allowed attributes.
fn annotation_value(node: &Node, own: &[&str]) -> Result<AnnotationValue, CsdlError> {
    let mut attrs: Vec<&str> = own.to_vec();
    attrs.extend(["Bool", "String", "Date"]);
    node.allow(&attrs, &["Record", "Collection", "EnumMember"])?;
    let constants: Vec<AnnotationValue> = [
        node.bool_attr("Bool")?.map(AnnotationValue::Bool),
        node.attr("String")
            .map(|s| AnnotationValue::String(s.to_string())),
        node.attr("Date")
            .map(|s| AnnotationValue::Date(s.to_string())),
    ]
    .into_iter()
    .flatten()
    .chain(
        node.children
            .iter()
            .map(expression)
            .collect::<Result<Vec<_>, _>>()?,
    )
    .collect();
    let mut it = constants.into_iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(node.error(format!("<{}> needs exactly one value", node.name))),
    }
}

fn expression(node: &Node) -> Result<AnnotationValue, CsdlError> {
    match node.name.as_str() {
        "EnumMember" | "PropertyPath" => {
            if !node.attrs.is_empty() || !node.children.is_empty() || node.text.is_empty() {
                return Err(node.error(format!("<{}> holds only a path as text", node.name)));
            }
            Ok(if node.name == "EnumMember" {
                AnnotationValue::EnumMember(node.text.clone())
            } else {
                AnnotationValue::PropertyPath(node.text.clone())
            })
        }
        "Record" => {
            node.allow(&[], &["PropertyValue"])?;
            let mut fields = Vec::new();
            for pv in &node.children {
                fields.push((
                    pv.required("Property")?.to_string(),
                    annotation_value(pv, &["Property"])?,
                ));
            }
            Ok(AnnotationValue::Record(fields))
        }
        _ => {
            node.allow(&[], &["Record", "EnumMember", "PropertyPath"])?;
            Ok(AnnotationValue::Collection(
                node.children
                    .iter()
                    .map(expression)
                    .collect::<Result<_, _>>()?,
            ))
        }
    }
}
