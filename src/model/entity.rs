//! THE TABLE: every fact about `microsoft.graph.cloudAppSecurityProfile` lives here.
//!
//! Validation, the SQL schema, `$filter` typing, `$select`, `$metadata`, OpenAPI and the JSON
//! field order are all derived from [`ENTITY`]. Nothing else in the crate spells out a property
//! name (a test checks that each derived artifact covers every property).

use super::edm::{ComplexType, EdmType, EnumType, Member, Primitive};

pub const NAMESPACE: &str = "microsoft.graph";

/// Who owns a property's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Managed {
    /// Clients set it freely.
    Client,
    /// The key: generated unless a POST supplies one; immutable afterwards.
    Key,
    /// Set by the server at create.
    Created,
    /// Set by the server at every successful write.
    Modified,
}

/// A declared property.
#[derive(Debug)]
pub struct Property {
    pub name: &'static str,
    pub ty: EdmType,
    pub nullable: bool,
    pub managed: Managed,
    /// May appear in `$filter`.
    pub filterable: bool,
    /// May appear in `$orderby`.
    pub sortable: bool,
    /// Gets a (tenant, property, id) index: the common filters and orders. Every index costs
    /// every write, so only a few properties have one.
    pub indexed: bool,
}

/// The entity type and the collection that serves it.
#[derive(Debug)]
pub struct EntityType {
    pub name: &'static str,
    pub base_type: &'static str,
    pub open: bool,
    /// The contained collection's name on the `security` singleton.
    pub collection: &'static str,
    pub singleton: &'static str,
    pub properties: &'static [Property],
}

impl EntityType {
    pub fn qualified_name(&self) -> String {
        format!("{NAMESPACE}.{}", self.name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.properties.iter().position(|p| p.name == name)
    }

    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    pub fn key_index(&self) -> usize {
        self.managed_index(Managed::Key)
    }

    pub fn managed_index(&self, m: Managed) -> usize {
        self.properties
            .iter()
            .position(|p| p.managed == m)
            .expect("the entity table declares every managed role")
    }
}

pub static APPLICATION_PERMISSIONS_REQUIRED: EnumType = EnumType {
    name: "applicationPermissionsRequired",
    members: &[
        ("unknown", 0),
        ("anonymous", 1),
        ("guest", 2),
        ("user", 3),
        ("administrator", 4),
        ("system", 5),
        ("unknownFutureValue", 127),
    ],
    sentinel: Some("unknownFutureValue"),
};

pub static SECURITY_VENDOR_INFORMATION: ComplexType = ComplexType {
    name: "securityVendorInformation",
    members: &[
        Member {
            name: "provider",
            ty: Primitive::String,
        },
        Member {
            name: "providerVersion",
            ty: Primitive::String,
        },
        Member {
            name: "subProvider",
            ty: Primitive::String,
        },
        Member {
            name: "vendor",
            ty: Primitive::String,
        },
    ],
};

const fn prop(name: &'static str, ty: EdmType) -> Property {
    Property {
        name,
        ty,
        nullable: true,
        managed: Managed::Client,
        filterable: true,
        sortable: true,
        indexed: false,
    }
}

const fn indexed(p: Property) -> Property {
    Property { indexed: true, ..p }
}

const STRING: EdmType = EdmType::Primitive(Primitive::String);
const DATETIME: EdmType = EdmType::Primitive(Primitive::DateTimeOffset);

pub static ENTITY: EntityType = EntityType {
    name: "cloudAppSecurityProfile",
    base_type: "microsoft.graph.entity",
    open: true,
    collection: "cloudAppSecurityProfiles",
    singleton: "security",
    properties: &[
        Property {
            nullable: false,
            managed: Managed::Key,
            ..prop("id", STRING)
        },
        prop("azureSubscriptionId", STRING),
        indexed(prop("azureTenantId", STRING)),
        indexed(Property {
            managed: Managed::Created,
            ..prop("createdDateTime", DATETIME)
        }),
        prop("deploymentPackageUrl", STRING),
        prop("destinationServiceName", STRING),
        prop("isSigned", EdmType::Primitive(Primitive::Boolean)),
        indexed(Property {
            managed: Managed::Modified,
            ..prop("lastModifiedDateTime", DATETIME)
        }),
        prop("manifest", STRING),
        indexed(prop("name", STRING)),
        prop(
            "permissionsRequired",
            EdmType::Enum(&APPLICATION_PERMISSIONS_REQUIRED),
        ),
        indexed(prop("platform", STRING)),
        prop("policyName", STRING),
        indexed(prop("publisher", STRING)),
        prop("riskScore", STRING),
        // A collection is filtered through any/all lambdas, never ordered.
        Property {
            sortable: false,
            ..prop("tags", EdmType::Collection(Primitive::String))
        },
        prop("type", STRING),
        prop(
            "vendorInformation",
            EdmType::Complex(&SECURITY_VENDOR_INFORMATION),
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_metadata_facts() {
        assert_eq!(ENTITY.properties.len(), 18);
        assert_eq!(ENTITY.properties[ENTITY.key_index()].name, "id");
        assert!(
            ENTITY
                .properties
                .iter()
                .filter(|p| !p.nullable)
                .all(|p| p.name == "id")
        );
        let names: Vec<_> = ENTITY.properties.iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted[1..].sort();
        assert_eq!(
            names, sorted,
            "table order is id, then the metadata's alphabetical order"
        );
        assert_eq!(
            APPLICATION_PERMISSIONS_REQUIRED.resolve("4"),
            Some(("administrator", 4))
        );
        assert_eq!(APPLICATION_PERMISSIONS_REQUIRED.resolve("String"), None);
    }
}
