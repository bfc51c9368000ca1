//! The entity model: Edm types, the catalog of entity sets (from Graph's metadata and
//! graphsec's overlay), values of an entity and body validation.

pub mod actions;
pub mod catalog;
pub mod csdl;
pub mod edm;
pub mod entity;
pub mod family_doc;
pub mod record;
pub mod validate;

pub use catalog::catalog;
