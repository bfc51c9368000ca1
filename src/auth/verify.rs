//! JWT verification: parse, pick the key, check the signature, then the claims.
//!
//! We parse the compact serialisation ourselves and use jsonwebtoken only for the signature
//! primitive (`jsonwebtoken::crypto::verify`). That keeps every rejection distinguishable (each
//! gets its own client-facing message) and makes the rules explicit: the algorithm comes from the
//! key, `alg: none` and HMAC are refused before any key is touched, `crit` headers are refused
//! (RFC 7515 §4.1.11: we understand no extensions), and every claim is type-checked by hand so
//! that no input can panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::{KeyStore, LookupError};
use super::{AuthError, PERSONAL_ACCOUNT_TENANT, Principal, PrincipalKind, valid_tenant};

/// Tokens longer than this are refused before any decoding (Entra tokens are a few KiB; large
/// group claims are moved out of the token by Entra itself).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The placeholder in issuer templates.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";
/// A leading placeholder for any `http://` or `https://` origin (`scheme://host[:port]`). Only
/// development mode uses it: tokens from graphsec's own token endpoint are issued by the base URL
/// the client reached it at (`{origin}/{tenantid}/v2.0`), and only graphsec's own key signs them.
pub const ORIGIN_PLACEHOLDER: &str = "{origin}";

fn invalid(msg: &str) -> AuthError {
    AuthError::Unauthenticated(format!("Access token validation failure. {msg}"))
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

pub(crate) struct Verifier {
    pub(crate) keys: KeyStore,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: i64,
    /// Appended to the 401 for a token signed by a key this server does not know (development
    /// mode says where its key comes from).
    pub(crate) unknown_key_hint: Option<&'static str>,
}

/// How an issuer compares with a template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IssuerMatch {
    Yes,
    /// Same shape, but the tenant in the issuer is not the token's `tid`.
    OtherTenant,
    No,
}

/// Compares `iss` with a template, `{tenantid}` standing for the token's own `tid`.
pub(crate) fn match_issuer(template: &str, iss: &str, tid: &str) -> IssuerMatch {
    if let Some(rest) = template.strip_prefix(ORIGIN_PLACEHOLDER) {
        let after_scheme = iss
            .strip_prefix("https://")
            .or_else(|| iss.strip_prefix("http://"));
        let Some(after_scheme) = after_scheme else {
            return IssuerMatch::No;
        };
        let host_len = after_scheme.find('/').unwrap_or(after_scheme.len());
        let host = &after_scheme[..host_len];
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !host_ok {
            return IssuerMatch::No;
        }
        return match_issuer(rest, &after_scheme[host_len..], tid);
    }
    let Some((prefix, suffix)) = template.split_once(TENANT_PLACEHOLDER) else {
        return if template == iss {
            IssuerMatch::Yes
        } else {
            IssuerMatch::No
        };
    };
    if template.replace(TENANT_PLACEHOLDER, tid) == iss {
        return IssuerMatch::Yes;
    }
    let shaped = iss.len() > prefix.len() + suffix.len()
        && iss.starts_with(prefix)
        && iss.ends_with(suffix)
        && !suffix.contains(TENANT_PLACEHOLDER);
    if shaped {
        IssuerMatch::OtherTenant
    } else {
        IssuerMatch::No
    }
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        AuthError::Unauthenticated(format!(
            "Access token is malformed: the {what} is not base64url-encoded."
        ))
    })
}

/// A NumericDate claim: JSON number of seconds; fractions are truncated (RFC 7519 allows them).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // `as` saturates for out-of-range floats, which is the right clamp here.
                Ok(Some(f as i64))
            } else {
                Err(invalid(&format!("The {name} claim is not a valid date.")))
            }
        }
        Some(_) => Err(invalid(&format!("The {name} claim is not a number."))),
    }
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(&format!("The {name} claim is not a string."))),
    }
}

impl Verifier {
    /// Verifies a bearer token at time `now` (Unix seconds). On success returns the principal
    /// and the token's expiry (for the cache).
    pub(crate) async fn verify(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Principal, i64), AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Unauthenticated(
                "Access token is malformed: it is too long.".into(),
            ));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = parts[..] else {
            let msg = if parts.len() == 5 {
                "Access token is malformed: encrypted tokens (JWE) are not supported."
            } else {
                "Access token is malformed: a JWT has three dot-separated parts."
            };
            return Err(AuthError::Unauthenticated(msg.into()));
        };

        // --- Header: decide which key, and refuse dangerous algorithms before touching keys.
        let header: JoseHeader = serde_json::from_slice(&decode_part(header_b64, "header")?)
            .map_err(|_| {
                AuthError::Unauthenticated(
                    "Access token is malformed: the header is not a JSON object with an alg."
                        .into(),
                )
            })?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(invalid("Unsigned tokens (alg 'none') are not accepted."));
        }
        if header.alg.to_ascii_uppercase().starts_with("HS") {
            // Never verify an HMAC over a public key (key confusion); no HMAC key exists here.
            return Err(invalid(
                "Symmetric signing algorithms (HS*) are not accepted.",
            ));
        }
        let token_alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => {
                return Err(invalid(
                    "The token's signing algorithm is not supported (RS256 or ES256).",
                ));
            }
        };
        if header.crit.is_some() {
            return Err(invalid(
                "Critical header extensions (crit) are not supported.",
            ));
        }
        let key = self
            .keys
            .find(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                LookupError::UnknownKid => invalid(&format!(
                    "The token's signing key (kid) is not known.{}",
                    self.unknown_key_hint.unwrap_or_default()
                )),
                LookupError::NoKid => invalid("The token does not name its signing key (kid)."),
            })?;
        // The key pins the algorithm: an RSA key only ever verifies RS256, an EC key ES256.
        if key.alg != token_alg {
            return Err(invalid(
                "The token's algorithm does not match its signing key.",
            ));
        }

        // --- Signature over the exact bytes received.
        let signed_len = header_b64.len() + 1 + payload_b64.len();
        let message = &token.as_bytes()[..signed_len];
        match jsonwebtoken::crypto::verify(signature_b64, message, &key.key, key.alg) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(invalid("Invalid signature.")),
        }

        // --- Claims (only now: nothing unauthenticated is trusted).
        let claims: Map<String, Value> =
            serde_json::from_slice(&decode_part(payload_b64, "payload")?).map_err(|_| {
                AuthError::Unauthenticated(
                    "Access token is malformed: the payload is not a JSON object.".into(),
                )
            })?;

        let Some(exp) = numeric_date(&claims, "exp")? else {
            return Err(invalid("The token has no exp claim."));
        };
        let tid = match string_claim(&claims, "tid")? {
            Some(t) if valid_tenant(t) => t,
            Some(_) => return Err(invalid("The tid claim is not a valid tenant id.")),
            None => return Err(invalid("The token has no tid claim.")),
        };
        if now > exp.saturating_add(self.leeway) {
            return Err(AuthError::Unauthenticated("The token has expired.".into()));
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")?
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(AuthError::Unauthenticated(
                "The token is not yet valid (nbf).".into(),
            ));
        }

        // `aud` is a string or an array of strings (RFC 7519 §4.1.3).
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.iter().any(|x| x == a),
            Some(Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|x| x == a))
            }),
            _ => false,
        };
        if !aud_ok {
            return Err(invalid("Invalid audience."));
        }

        let Some(iss) = string_claim(&claims, "iss")? else {
            return Err(invalid("The token has no iss claim."));
        };
        let verdicts: Vec<IssuerMatch> = self
            .issuers
            .iter()
            .map(|t| match_issuer(t, iss, tid))
            .collect();
        if !verdicts.contains(&IssuerMatch::Yes) {
            return Err(if verdicts.contains(&IssuerMatch::OtherTenant) {
                invalid("The issuer's tenant does not match the tid claim.")
            } else {
                invalid("Invalid issuer.")
            });
        }

        // --- A genuine token; now decide whether it may be used here at all.
        if tid.eq_ignore_ascii_case(PERSONAL_ACCOUNT_TENANT) {
            return Err(AuthError::Forbidden(
                "Personal Microsoft accounts are not supported for this API.".into(),
            ));
        }
        let scopes: Vec<String> = string_claim(&claims, "scp")?
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let roles: Vec<String> = match claims.get("roles") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            Some(_) => return Err(invalid("The roles claim is not an array.")),
        };
        // Entra puts `scp` in delegated tokens and `roles` in app-only tokens; a delegated token
        // can also carry user app roles, so `scp` decides.
        let kind = if !scopes.is_empty() {
            PrincipalKind::Delegated { scopes }
        } else if !roles.is_empty() {
            PrincipalKind::Application { roles }
        } else {
            return Err(AuthError::Forbidden(
                "The token carries no permissions: it has neither scopes (scp) nor application roles (roles).".into(),
            ));
        };
        // v2 tokens name the client in `azp`, v1 tokens in `appid`.
        let app = match string_claim(&claims, "azp")? {
            Some(a) => Some(a.to_owned()),
            None => string_claim(&claims, "appid")?.map(str::to_owned),
        };
        let subject = match string_claim(&claims, "oid")? {
            Some(o) => Some(o.to_owned()),
            None => string_claim(&claims, "sub")?.map(str::to_owned),
        };
        let principal = Principal {
            tenant: tid.to_owned(),
            app,
            subject,
            kind,
            expires_at: Some(exp),
        };
        Ok((principal, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_templates() {
        let t = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let iss = "https://login.microsoftonline.com/abc/v2.0";
        assert_eq!(match_issuer(t, iss, "abc"), IssuerMatch::Yes);
        assert_eq!(match_issuer(t, iss, "xyz"), IssuerMatch::OtherTenant);
        assert_eq!(
            match_issuer(t, "https://evil.example/abc/v2.0", "abc"),
            IssuerMatch::No
        );
        assert_eq!(
            match_issuer("https://fixed", "https://fixed", "abc"),
            IssuerMatch::Yes
        );
        assert_eq!(
            match_issuer("https://fixed", "https://other", "abc"),
            IssuerMatch::No
        );
        let o = "{origin}/{tenantid}/v2.0";
        for iss in [
            "http://127.0.0.1:7470/abc/v2.0",
            "https://localhost/abc/v2.0",
            "https://[::1]:8443/abc/v2.0",
        ] {
            assert_eq!(match_issuer(o, iss, "abc"), IssuerMatch::Yes, "{iss}");
        }
        assert_eq!(
            match_issuer(o, "http://127.0.0.1:7470/xyz/v2.0", "abc"),
            IssuerMatch::OtherTenant
        );
        for iss in [
            "ftp://h/abc/v2.0",
            "https:///abc/v2.0",
            "https://h/p/abc/v2.0",
            "https://h@x/abc/v2.0",
            "https://h/abc/v2.0/",
        ] {
            assert_ne!(match_issuer(o, iss, "abc"), IssuerMatch::Yes, "{iss}");
        }
    }
}
