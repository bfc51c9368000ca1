//! The entity model: Edm types, the entity table, values of a profile and body validation.

pub mod csdl;
pub mod edm;
pub mod entity;
pub mod record;
pub mod validate;
