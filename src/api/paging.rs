//! Server-driven paging tokens: `$skiptoken` is opaque, tamper-evident (HMAC-SHA256 with a
//! secret kept in the store, so every node and every restart accepts it) and bound to the query
//! it was issued for. It carries the keyset position (the order-key values of the last row
//! returned), so page N costs the same as page 1 and concurrent inserts/deletes never make a
//! surviving row appear twice or go missing.

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value as Json;

use crate::error::GraphError;

/// Bytes of the HMAC-SHA256 tag kept in a token.
const TAG_BYTES: usize = 16;

/// A short, stable digest of everything that defines a result set (filter, order, select...).
pub fn fingerprint(parts: &[(&str, &str)]) -> String {
    let mut h = digest::Context::new(&digest::SHA256);
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(v.as_bytes());
        h.update(&[0]);
    }
    URL_SAFE_NO_PAD.encode(&h.finish().as_ref()[..12])
}

thread_local! {
    /// The HMAC key of the last secret this thread signed with: deriving a key hashes the
    /// padded secret twice, as much work again as signing a token (a store has one secret).
    static KEY: std::cell::RefCell<Option<(Vec<u8>, hmac::Key)>> =
        const { std::cell::RefCell::new(None) };
}

fn sign(secret: &[u8], payload: &[u8]) -> Vec<u8> {
    KEY.with_borrow_mut(|cached| {
        let key = match cached {
            Some((s, key)) if s.as_slice() == secret => key,
            _ => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                &cached.insert((secret.to_vec(), key)).1
            }
        };
        hmac::sign(key, payload).as_ref()[..TAG_BYTES].to_vec()
    })
}

/// A token's signed payload: `{"v":1,"q":<fingerprint>,"k":[<key values>]}`, serialized
/// straight from the borrowed parts (the same bytes as building the `json!` tree first).
#[derive(serde::Serialize)]
struct Payload<'a> {
    v: u32,
    q: &'a str,
    k: &'a [Json],
}

/// Issues a token for the position after `after` (the last row's key values).
pub fn encode(secret: &[u8], after: &[Json], fingerprint: &str) -> String {
    let payload = serde_json::to_string(&Payload {
        v: 1,
        q: fingerprint,
        k: after,
    })
    .unwrap_or_default();
    let sig = sign(secret, payload.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

fn invalid() -> GraphError {
    GraphError::BadRequest(
        "The $skiptoken is invalid: it was altered, or it belongs to a different query. Follow @odata.nextLink exactly as returned.".into(),
    )
}

/// Verifies a token against the current query and returns the keyset position.
pub fn decode(secret: &[u8], token: &str, fingerprint: &str) -> Result<Vec<Json>, GraphError> {
    let (payload_b64, sig_b64) = token.split_once('.').ok_or_else(invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| invalid())?;
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| invalid())?;
    // A shorter tag would be cheaper to guess; the comparison is constant-time.
    let expected = sign(secret, &payload);
    if sig.len() != TAG_BYTES
        || aws_lc_rs::constant_time::verify_slices_are_equal(&sig, &expected).is_err()
    {
        return Err(invalid());
    }
    let v: Json = serde_json::from_slice(&payload).map_err(|_| invalid())?;
    if v["v"] != 1 || v["q"] != fingerprint {
        return Err(invalid());
    }
    match v.get("k") {
        Some(Json::Array(k)) => Ok(k.clone()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_payload_is_the_json_tree_it_replaced_byte_for_byte() {
        let fp = fingerprint(&[("$filter", "name eq 'a'")]);
        let t = encode(
            b"s",
            &[json!("x\"y"), json!(null), json!(2.5), json!(-3)],
            &fp,
        );
        let payload = URL_SAFE_NO_PAD
            .decode(t.split_once('.').unwrap().0)
            .unwrap();
        let tree =
            json!({"v": 1, "q": fp, "k": [json!("x\"y"), json!(null), json!(2.5), json!(-3)]});
        assert_eq!(String::from_utf8(payload).unwrap(), tree.to_string());
    }

    #[test]
    fn round_trip_and_tamper_evidence() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let fp = fingerprint(&[("$filter", "name eq 'a'")]);
        let t = encode(secret, &[json!("x"), json!(null)], &fp);
        assert_eq!(
            decode(secret, &t, &fp).unwrap(),
            vec![json!("x"), json!(null)]
        );
        assert!(
            decode(b"another secret", &t, &fp).is_err(),
            "foreign secret"
        );
        assert!(
            decode(secret, &t, &fingerprint(&[("$filter", "name eq 'b'")])).is_err(),
            "other query"
        );
        let (p, s) = t.split_once('.').unwrap();
        let forged = encode(b"attacker", &[json!("y")], &fp);
        let (fp_payload, _) = forged.split_once('.').unwrap();
        assert!(
            decode(secret, &format!("{fp_payload}.{s}"), &fp).is_err(),
            "swapped payload"
        );
        assert!(
            decode(secret, &format!("{p}.{}", &s[1..]), &fp).is_err(),
            "cut signature"
        );
        for junk in ["", ".", "abc", "a.b", "%%%.%%%"] {
            assert!(decode(secret, junk, &fp).is_err(), "{junk}");
        }
    }
}
