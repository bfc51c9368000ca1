//! Which permissions an operation needs: the (configurable) mapping from [`Operation`] to the
//! delegated scopes (`scp`) and application roles (`roles`) that allow it.
//!
//! The default follows CONTRACT §1 (inferred from Graph's legacy security family): reads need
//! `SecurityEvents.Read.All` or `SecurityEvents.ReadWrite.All`, writes need
//! `SecurityEvents.ReadWrite.All`, each accepted as a delegated scope or an application role.
//! A set whose reference pages name other permissions has them instead (the overlay's
//! `permissions`, see [`crate::model::entity::Rules::permissions`]): tiIndicators
//! `ThreatIndicators.ReadWrite.OwnedBy`, securityActions `SecurityActions.Read.All` /
//! `ReadWrite.All` as application roles only. A permissions file's `read`/`write` replace the
//! family's; its `sets` replace one set's. See the [`crate::auth`] module documentation for
//! the `--permissions-file` format.

use std::path::Path;

use serde::Deserialize;

use super::{AuthError, Operation, PrincipalKind};

/// The wildcard entry: any valid token of that kind is enough (for example, reads open to every
/// caller of the tenant).
const WILDCARD: &str = "*";

/// The permissions that allow one operation, per kind of token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Delegated scopes (`scp`), any one of which allows the operation.
    pub delegated: Vec<String>,
    /// Application roles (`roles`), any one of which allows the operation.
    pub application: Vec<String>,
}

/// The mapping from operations to accepted permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionMap {
    /// What allows [`Operation::Read`] on the family's sets.
    pub read: Accepted,
    /// What allows [`Operation::Write`] on the family's sets.
    pub write: Accepted,
    /// A permissions file's per-set entries: (collection, read, write), over the documented
    /// ones.
    pub sets: Vec<(String, Accepted, Accepted)>,
}

impl Default for PermissionMap {
    fn default() -> Self {
        let read = vec![
            "SecurityEvents.Read.All".to_owned(),
            "SecurityEvents.ReadWrite.All".to_owned(),
        ];
        let write = vec!["SecurityEvents.ReadWrite.All".to_owned()];
        PermissionMap {
            read: Accepted {
                delegated: read.clone(),
                application: read,
            },
            write: Accepted {
                delegated: write.clone(),
                application: write,
            },
            sets: Vec::new(),
        }
    }
}

/// File shape: each operation is either a list (same for both token kinds) or an object with
/// `delegated` and `application` lists. Unknown fields are refused so that a typo (`"wirte"`)
/// cannot silently leave the default in place.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMap {
    read: FileEntry,
    write: FileEntry,
    /// Per entity set (its collection name): `{"read": ..., "write": ...}`.
    #[serde(default)]
    sets: std::collections::BTreeMap<String, SetEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetEntry {
    read: FileEntry,
    write: FileEntry,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileEntry {
    Both(Vec<String>),
    Split(SplitEntry),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitEntry {
    delegated: Vec<String>,
    application: Vec<String>,
}

impl From<FileEntry> for Accepted {
    fn from(entry: FileEntry) -> Self {
        match entry {
            FileEntry::Both(list) => Accepted {
                delegated: list.clone(),
                application: list,
            },
            FileEntry::Split(s) => Accepted {
                delegated: s.delegated,
                application: s.application,
            },
        }
    }
}

impl PermissionMap {
    /// Parses the JSON text of a permissions file.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: FileMap = serde_json::from_str(text).map_err(|e| {
            format!(
                "permissions file: {e} (expected {{\"read\": [...], \"write\": [...]}}, \
                 each list or {{\"delegated\": [...], \"application\": [...]}})"
            )
        })?;
        let mut sets = Vec::new();
        for (name, entry) in file.sets {
            if !crate::model::catalog::catalogs()
                .iter()
                .any(|c| c.set(&name).is_some())
            {
                return Err(format!(
                    "permissions file: 'sets' names '{name}', which is not an entity set"
                ));
            }
            sets.push((name, entry.read.into(), entry.write.into()));
        }
        let map = PermissionMap {
            read: file.read.into(),
            write: file.write.into(),
            sets,
        };
        for name in map.all_names() {
            if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
                return Err(format!(
                    "permissions file: invalid permission name {name:?}"
                ));
            }
        }
        Ok(map)
    }

    /// Reads and parses a permissions file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read permissions file {}: {e}", path.display()))?;
        Self::from_json(&text)
    }

    /// Every application role that allows some operation on some set (the family's, the files'
    /// and each set's documented ones), sorted: what a development token that may do
    /// everything carries.
    pub fn every_application_role(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.read, &self.write]
            .into_iter()
            .chain(self.sets.iter().flat_map(|(_, r, w)| [r, w]))
            .flat_map(|a| a.application.iter().cloned())
            .collect();
        for c in crate::model::catalog::catalogs() {
            for e in c.sets() {
                if let Some(p) = e.rules.permissions {
                    out.extend(p.read.application.iter().cloned());
                    out.extend(p.write.application.iter().cloned());
                }
            }
        }
        out.retain(|r| r != WILDCARD);
        out.sort();
        out.dedup();
        out
    }

    fn all_names(&self) -> impl Iterator<Item = &String> {
        [&self.read, &self.write]
            .into_iter()
            .chain(self.sets.iter().flat_map(|(_, r, w)| [r, w]))
            .flat_map(|a| a.delegated.iter().chain(&a.application))
    }

    /// Checks that a token kind carries a permission allowing `op` on the family's sets.
    pub(crate) fn check(&self, kind: &PrincipalKind, op: Operation) -> Result<(), AuthError> {
        self.check_set(kind, op, None)
    }

    /// Checks that a token kind carries a permission allowing `op` on `set` (the file's entry
    /// for it, else its documented permissions, else the family's).
    pub(crate) fn check_set(
        &self,
        kind: &PrincipalKind,
        op: Operation,
        set: Option<&crate::model::entity::EntityType>,
    ) -> Result<(), AuthError> {
        let pick = |read: &Accepted, write: &Accepted| match op {
            Operation::Read => read.clone(),
            Operation::Write => write.clone(),
        };
        let documented = |p: &crate::model::entity::PermissionLists| Accepted {
            delegated: p.delegated.clone(),
            application: p.application.clone(),
        };
        let owned;
        let accepted = match set {
            Some(e) => match self
                .sets
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(e.collection))
            {
                Some((_, r, w)) => {
                    owned = pick(r, w);
                    &owned
                }
                None => match e.rules.permissions {
                    Some(p) => {
                        owned = pick(&documented(&p.read), &documented(&p.write));
                        &owned
                    }
                    None => self.family(op),
                },
            },
            None => self.family(op),
        };
        Self::check_accepted(accepted, kind)
    }

    fn family(&self, op: Operation) -> &Accepted {
        match op {
            Operation::Read => &self.read,
            Operation::Write => &self.write,
        }
    }

    fn check_accepted(accepted: &Accepted, kind: &PrincipalKind) -> Result<(), AuthError> {
        let (needed, held, what) = match kind {
            PrincipalKind::Unrestricted => return Ok(()),
            PrincipalKind::Delegated { scopes } => (&accepted.delegated, scopes, "scope"),
            PrincipalKind::Application { roles } => (&accepted.application, roles, "role"),
        };
        // Entra treats permission names case-insensitively; so do we.
        let allowed = needed.iter().any(|n| {
            n == WILDCARD || (!held.is_empty() && held.iter().any(|h| h.eq_ignore_ascii_case(n)))
        });
        if allowed {
            return Ok(());
        }
        // Graph's own wording, so that people who know Graph recognise it.
        let plural = if what == "scope" { "Scopes" } else { "Roles" };
        let mut held_text = held.join(", ");
        if held_text.len() > 512 {
            // The list comes from a verified token, but keep error bodies small anyway.
            let cut = (0..=512)
                .rev()
                .find(|i| held_text.is_char_boundary(*i))
                .unwrap_or(0);
            held_text.truncate(cut);
            held_text.push_str(", ...");
        }
        let message = if needed.is_empty() {
            format!(
                "Missing {what} permissions on the request. This operation is not allowed for {what}s."
            )
        } else {
            format!(
                "Missing {what} permissions on the request. API requires one of '{}'. {plural} on the request '{held_text}'.",
                needed.join(", ")
            )
        };
        Err(AuthError::Forbidden(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegated(s: &[&str]) -> PrincipalKind {
        PrincipalKind::Delegated {
            scopes: s.iter().map(|x| x.to_string()).collect(),
        }
    }
    fn application(s: &[&str]) -> PrincipalKind {
        PrincipalKind::Application {
            roles: s.iter().map(|x| x.to_string()).collect(),
        }
    }

    #[test]
    fn default_matrix() {
        let m = PermissionMap::default();
        let read = "SecurityEvents.Read.All";
        let rw = "SecurityEvents.ReadWrite.All";
        // (kind, op, allowed)
        let cases = [
            (delegated(&[read]), Operation::Read, true),
            (delegated(&[read]), Operation::Write, false),
            (delegated(&[rw]), Operation::Read, true),
            (delegated(&[rw]), Operation::Write, true),
            (delegated(&["User.Read"]), Operation::Read, false),
            (delegated(&["User.Read"]), Operation::Write, false),
            (application(&[read]), Operation::Read, true),
            (application(&[read]), Operation::Write, false),
            (application(&[rw]), Operation::Read, true),
            (application(&[rw]), Operation::Write, true),
            (application(&["Directory.Read.All"]), Operation::Read, false),
            (application(&[]), Operation::Read, false),
            // Case-insensitive, like Entra.
            (
                delegated(&["securityevents.readwrite.all"]),
                Operation::Write,
                true,
            ),
            (PrincipalKind::Unrestricted, Operation::Write, true),
        ];
        for (kind, op, allowed) in cases {
            let got = m.check(&kind, op);
            assert_eq!(got.is_ok(), allowed, "{kind:?} {op:?}: {got:?}");
            if let Err(e) = got {
                assert!(matches!(e, AuthError::Forbidden(_)));
            }
        }
    }

    #[test]
    fn forbidden_message_names_the_needed_permission() {
        let m = PermissionMap::default();
        let Err(AuthError::Forbidden(msg)) = m.check(&delegated(&["User.Read"]), Operation::Write)
        else {
            panic!("expected 403")
        };
        assert_eq!(
            msg,
            "Missing scope permissions on the request. API requires one of \
             'SecurityEvents.ReadWrite.All'. Scopes on the request 'User.Read'."
        );
    }

    #[test]
    fn file_forms() {
        let m = PermissionMap::from_json(
            r#"{"read": ["*"],
                "write": {"delegated": ["Custom.Write"], "application": []}}"#,
        )
        .unwrap();
        assert!(m.check(&delegated(&["Anything"]), Operation::Read).is_ok());
        assert!(
            m.check(&application(&["Anything"]), Operation::Read)
                .is_ok()
        );
        assert!(
            m.check(&delegated(&["Custom.Write"]), Operation::Write)
                .is_ok()
        );
        assert!(
            m.check(&application(&["Custom.Write"]), Operation::Write)
                .is_err()
        );

        assert!(PermissionMap::from_json(r#"{"read": []}"#).is_err());
        assert!(PermissionMap::from_json(r#"{"read": [], "write": [], "wirte": []}"#).is_err());
        assert!(PermissionMap::from_json(r#"{"read": ["a b"], "write": []}"#).is_err());
        assert!(PermissionMap::from_json("not json").is_err());
    }
}
