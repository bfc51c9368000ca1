//! The resolved registry: the entity sets the `security` singleton contains, each with its
//! entity type flattened (inherited properties first, in declared order, so `id` leads), every
//! type reference resolved to an index, capability and deprecation annotations attached, and
//! the bound actions that apply to the set. An unresolved reference is a load error naming it.

use std::collections::HashMap;

use super::{
    ActionDef, Capabilities, CsdlError, EdmPrimitive, PropertyDef, Revision, Schema, TypeRef,
};

/// What a type reference resolved to. Indices point into the [`Registry`]'s `schema` vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    Primitive(EdmPrimitive),
    Enum(usize),
    Complex(usize),
    Entity(usize),
}

/// A resolved type: the kind and whether it is a collection of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub kind: TypeKind,
    pub collection: bool,
}

/// A property with its type resolved; `declared_in` names the type that declares it (the base
/// type for inherited ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub ty: Resolved,
    pub nullable: bool,
    pub declared_in: String,
}

/// A structured type with inherited members flattened (CSDL XML §6.1.1 / §9.1.1: a derived
/// type has its base type's properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structured {
    /// Namespace-qualified name.
    pub qualified_name: String,
    pub name: String,
    pub open: bool,
    /// Key property names (entity types only; inherited from the base chain).
    pub key: Vec<String>,
    pub properties: Vec<Property>,
}

impl Structured {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// A contained entity set of the singleton (CSDL XML §7.1.5 ContainsTarget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySet {
    /// The navigation property's name, i.e. the URL segment (`alerts`).
    pub name: String,
    pub singleton: String,
    /// Index into [`Registry::entity_types`].
    pub entity_type: usize,
    /// Annotations on the entity type (Graph annotates the type, not the navigation property).
    pub capabilities: Capabilities,
    pub revisions: Vec<Revision>,
    /// Indices into `schema.actions` of actions bound to the type or a collection of it.
    pub actions: Vec<usize>,
}

/// The whole resolved model.
#[derive(Debug, Clone)]
pub struct Registry {
    pub schema: Schema,
    /// Flattened entity types, same order as `schema.entity_types`.
    pub entity_types: Vec<Structured>,
    /// Flattened complex types, same order as `schema.complex_types`.
    pub complex_types: Vec<Structured>,
    pub entity_sets: Vec<EntitySet>,
}

impl Registry {
    /// Loads and resolves the embedded beta slice.
    pub fn legacy_security() -> Result<Registry, CsdlError> {
        Self::build(Schema::legacy_security()?)
    }

    /// Parses and resolves a CSDL document (a version's embedded slice).
    pub fn from_csdl(text: &str) -> Result<Registry, CsdlError> {
        Self::build(Schema::parse(text)?)
    }

    /// Resolves every type reference of `schema` and builds the entity sets of its singletons.
    pub fn build(schema: Schema) -> Result<Registry, CsdlError> {
        let r = Resolver::new(&schema);
        let complex_types = (0..schema.complex_types.len())
            .map(|i| r.flatten(Kind::Complex, i))
            .collect::<Result<Vec<_>, _>>()?;
        let entity_types = (0..schema.entity_types.len())
            .map(|i| r.flatten(Kind::Entity, i))
            .collect::<Result<Vec<_>, _>>()?;
        for a in &schema.actions {
            let at = format!("action {}", a.name);
            for p in &a.parameters {
                r.resolve(&p.ty, &at)?;
            }
            if let Some(t) = &a.return_type {
                r.resolve(t, &at)?;
            }
        }
        for t in &schema.annotations {
            r.check_target(&t.target)?;
        }
        let mut entity_sets = Vec::new();
        for s in &schema.singletons {
            let at = format!("singleton {}", s.name);
            let Some(TypeKind::Entity(ti)) = r.by_name.get(s.ty.as_str()).copied() else {
                return Err(CsdlError(format!("{at}: {} is not an entity type", s.ty)));
            };
            for nav in &schema.entity_types[ti].navigation {
                let at = format!("{at}, navigation property {}", nav.name);
                let resolved = r.resolve(&nav.ty, &at)?;
                let TypeKind::Entity(target) = resolved.kind else {
                    return Err(CsdlError(format!("{at}: the target is not an entity type")));
                };
                if !(nav.contains_target && resolved.collection) {
                    // Only contained collections are entity sets graphsec could serve.
                    return Err(CsdlError(format!(
                        "{at}: only contained collections (ContainsTarget, Collection(...)) are read"
                    )));
                }
                let qualified = &entity_types[target].qualified_name;
                let notes = schema.annotations_of(qualified);
                entity_sets.push(EntitySet {
                    name: nav.name.clone(),
                    singleton: s.name.clone(),
                    entity_type: target,
                    capabilities: notes.map(|n| n.capabilities.clone()).unwrap_or_default(),
                    revisions: notes.map(|n| n.revisions.clone()).unwrap_or_default(),
                    actions: schema
                        .actions
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.binding().is_some_and(|b| b.name == *qualified))
                        .map(|(i, _)| i)
                        .collect(),
                });
            }
        }
        Ok(Registry {
            schema,
            entity_types,
            complex_types,
            entity_sets,
        })
    }

    pub fn entity_set(&self, name: &str) -> Option<&EntitySet> {
        self.entity_sets.iter().find(|s| s.name == name)
    }

    pub fn entity_type_of(&self, set: &EntitySet) -> &Structured {
        &self.entity_types[set.entity_type]
    }

    pub fn actions_of<'a>(&'a self, set: &'a EntitySet) -> impl Iterator<Item = &'a ActionDef> {
        set.actions.iter().map(|i| &self.schema.actions[*i])
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Entity,
    Complex,
}

struct Resolver<'a> {
    schema: &'a Schema,
    by_name: HashMap<String, TypeKind>,
}

impl<'a> Resolver<'a> {
    fn new(schema: &'a Schema) -> Self {
        let ns = &schema.namespace;
        let mut by_name = HashMap::new();
        for (i, t) in schema.enum_types.iter().enumerate() {
            by_name.insert(format!("{ns}.{}", t.name), TypeKind::Enum(i));
        }
        for (i, t) in schema.complex_types.iter().enumerate() {
            by_name.insert(format!("{ns}.{}", t.name), TypeKind::Complex(i));
        }
        for (i, t) in schema.entity_types.iter().enumerate() {
            by_name.insert(format!("{ns}.{}", t.name), TypeKind::Entity(i));
        }
        Resolver { schema, by_name }
    }

    fn resolve(&self, ty: &TypeRef, at: &str) -> Result<Resolved, CsdlError> {
        let kind = if ty.name.starts_with("Edm.") {
            EdmPrimitive::from_edm_name(&ty.name).map(TypeKind::Primitive)
        } else {
            self.by_name.get(&ty.name).copied()
        };
        kind.map(|kind| Resolved {
            kind,
            collection: ty.collection,
        })
        .ok_or_else(|| CsdlError(format!("{at}: the type {} is not defined", ty.name)))
    }

    /// The type with its base chain's properties first. A cycle or a base of the other kind is
    /// an error.
    fn flatten(&self, kind: Kind, index: usize) -> Result<Structured, CsdlError> {
        let ns = &self.schema.namespace;
        let (name, open) = self.header(kind, index);
        let qualified_name = format!("{ns}.{name}");
        let mut chain = vec![index];
        let mut current = index;
        while let Some(base) = self.base_of(kind, current) {
            let base_index = match (kind, self.by_name.get(base)) {
                (Kind::Entity, Some(TypeKind::Entity(i)))
                | (Kind::Complex, Some(TypeKind::Complex(i))) => *i,
                _ => {
                    return Err(CsdlError(format!(
                        "type {qualified_name}: the base type {base} is not a defined type of the same kind"
                    )));
                }
            };
            if chain.contains(&base_index) {
                return Err(CsdlError(format!(
                    "type {qualified_name}: its base type chain loops through {base}"
                )));
            }
            chain.push(base_index);
            current = base_index;
        }
        let mut properties: Vec<Property> = Vec::new();
        let mut key = Vec::new();
        for &i in chain.iter().rev() {
            let (declaring, _) = self.header(kind, i);
            if let Kind::Entity = kind {
                let k = &self.schema.entity_types[i].key;
                if !k.is_empty() {
                    if !key.is_empty() {
                        return Err(CsdlError(format!(
                            "type {ns}.{declaring}: redeclares the key its base type has (CSDL XML §6.5)"
                        )));
                    }
                    key = k.clone();
                }
            }
            for p in self.props(kind, i) {
                let at = format!("type {ns}.{declaring}, property {}", p.name);
                if properties.iter().any(|q| q.name == p.name) {
                    return Err(CsdlError(format!("{at}: declared twice in the chain")));
                }
                properties.push(Property {
                    name: p.name.clone(),
                    ty: self.resolve(&p.ty, &at)?,
                    nullable: p.nullable,
                    declared_in: format!("{ns}.{declaring}"),
                });
            }
        }
        for k in &key {
            match properties.iter().find(|p| p.name == *k) {
                Some(p) if matches!(p.ty.kind, TypeKind::Primitive(_)) && !p.nullable => {}
                _ => {
                    return Err(CsdlError(format!(
                        "type {qualified_name}: key {k} must be a non-nullable primitive property (§6.5)"
                    )));
                }
            }
        }
        Ok(Structured {
            qualified_name,
            name: name.to_string(),
            open,
            key,
            properties,
        })
    }

    fn header(&self, kind: Kind, i: usize) -> (&'a str, bool) {
        match kind {
            Kind::Entity => {
                let t = &self.schema.entity_types[i];
                (&t.name, t.open)
            }
            Kind::Complex => {
                let t = &self.schema.complex_types[i];
                (&t.name, t.open)
            }
        }
    }

    fn base_of(&self, kind: Kind, i: usize) -> Option<&'a str> {
        match kind {
            Kind::Entity => self.schema.entity_types[i].base_type.as_deref(),
            Kind::Complex => self.schema.complex_types[i].base_type.as_deref(),
        }
    }

    fn props(&self, kind: Kind, i: usize) -> &'a [PropertyDef] {
        match kind {
            Kind::Entity => &self.schema.entity_types[i].properties,
            Kind::Complex => &self.schema.complex_types[i].properties,
        }
    }

    /// An annotation target must name a type of the schema or an action overload with its exact
    /// parameter list (CSDL XML §14.2.1.1).
    fn check_target(&self, target: &str) -> Result<(), CsdlError> {
        if self.by_name.contains_key(target) {
            return Ok(());
        }
        let ns = &self.schema.namespace;
        if target.contains('(')
            && self
                .schema
                .actions
                .iter()
                .any(|a| a.signature(ns) == target)
        {
            return Ok(());
        }
        Err(CsdlError(format!(
            "Annotations target {target} names no type or action overload of the schema"
        )))
    }
}
