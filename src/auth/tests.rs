//! Tests of the whole authenticator with real crypto: every rejection, the permission matrix,
//! issuer templates, JWKS refresh against a local HTTP server, the cache, dev key persistence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ISS_V2: &str = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
const RW: &str = "SecurityEvents.ReadWrite.All";
const READ: &str = "SecurityEvents.Read.All";

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// jsonwebtoken's aws-lc backend wants PKCS#1 RSA keys, which aws-lc-rs does not export, so
/// RSA test tokens are signed with aws-lc-rs directly.
enum TestSigner {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Jwt(EncodingKey, Algorithm),
}

impl TestSigner {
    fn sign(&self, msg: &[u8]) -> String {
        match self {
            TestSigner::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .unwrap();
                b64(&sig)
            }
            TestSigner::Jwt(key, alg) => jsonwebtoken::crypto::sign(msg, key, *alg).unwrap(),
        }
    }
}

/// A signing key of the kind an identity provider holds, with its public JWK.
struct TestKey {
    kid: String,
    alg: Algorithm,
    signer: TestSigner,
    jwk: Value,
    /// Public key bytes, for the HMAC key-confusion attack.
    public_der: Vec<u8>,
}

impl TestKey {
    fn rsa(kid: &str) -> TestKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "kid": kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        let public_der = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(public)
            .unwrap()
            .as_ref()
            .to_vec();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            signer: TestSigner::Rsa(pair),
            jwk,
            public_der,
        }
    }

    fn ec(kid: &str) -> TestKey {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            signer: TestSigner::Jwt(EncodingKey::from_ec_der(doc.as_ref()), Algorithm::ES256),
            jwk,
            public_der: point,
        }
    }

    fn alg_name(&self) -> &'static str {
        if self.alg == Algorithm::RS256 {
            "RS256"
        } else {
            "ES256"
        }
    }

    /// Signs `claims` with a header naming this key.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": self.alg_name(), "kid": self.kid});
        sign_raw(&header, claims, &self.signer)
    }
}

fn sign_raw(header: &Value, claims: &Value, signer: &TestSigner) -> String {
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{msg}.{}", signer.sign(msg.as_bytes()))
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// Entra-like v2 application token claims.
fn claims() -> Value {
    let now = unix_now();
    json!({
        "aud": "https://graph.microsoft.com",
        "iss": ISS_V2,
        "iat": now, "nbf": now, "exp": now + 3600,
        "tid": TENANT,
        "azp": "11111111-2222-3333-4444-555555555555",
        "oid": "66666666-7777-8888-9999-000000000000",
        "roles": [RW],
    })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

/// A `jwks`-mode authenticator reading `keys` from a JWKS file in `dir`.
fn jwks_auth(
    dir: &std::path::Path,
    keys: &[&TestKey],
    tweak: impl FnOnce(&mut AuthConfig),
) -> Authenticator {
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks(keys).to_string()).unwrap();
    let mut cfg = AuthConfig::new(AuthMode::Jwks);
    cfg.jwks_file = Some(path);
    tweak(&mut cfg);
    Authenticator::new(cfg).unwrap()
}

async fn auth_token(a: &Authenticator, token: &str) -> Result<Principal, AuthError> {
    a.authenticate(Some(&format!("Bearer {token}"))).await
}

#[track_caller]
fn assert_401(r: Result<Principal, AuthError>, needle: &str) {
    match r {
        Err(AuthError::Unauthenticated(m)) => {
            assert!(m.contains(needle), "message {m:?} lacks {needle:?}")
        }
        other => panic!("expected 401 containing {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_403(r: Result<Principal, AuthError>, needle: &str) {
    match r {
        Err(AuthError::Forbidden(m)) => {
            assert!(m.contains(needle), "message {m:?} lacks {needle:?}")
        }
        other => panic!("expected 403 containing {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_entra_shaped_tokens_rs256_and_es256() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ec) = (TestKey::rsa("rsa1"), TestKey::ec("ec1"));
    let a = jwks_auth(dir.path(), &[&rsa, &ec], |_| {});
    for key in [&rsa, &ec] {
        let p = auth_token(&a, &key.sign(&claims())).await.unwrap();
        assert_eq!(p.tenant, TENANT);
        assert_eq!(
            p.app.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(
            p.subject.as_deref(),
            Some("66666666-7777-8888-9999-000000000000")
        );
        assert_eq!(
            p.kind,
            PrincipalKind::Application {
                roles: vec![RW.into()]
            }
        );
    }
    // v1 shape: sts.windows.net issuer, appid, the GUID audience, audience as an array.
    let v1 = json!({
        "aud": ["00000003-0000-0000-c000-000000000000"],
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "exp": unix_now() + 60, "tid": TENANT, "appid": "app-v1", "scp": "User.Read  SecurityEvents.Read.All",
    });
    let p = auth_token(&a, &rsa.sign(&v1)).await.unwrap();
    assert_eq!(p.app.as_deref(), Some("app-v1"));
    assert_eq!(
        p.kind,
        PrincipalKind::Delegated {
            scopes: vec!["User.Read".into(), READ.into()]
        }
    );
}

#[tokio::test]
async fn header_and_scheme_rejections() {
    let a = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
    let token = a
        .issue_dev_token(TENANT, &[RW.into()], &[], 60, None)
        .unwrap();
    assert_401(a.authenticate(None).await, "Access token is empty.");
    assert_401(a.authenticate(Some("")).await, "Access token is empty.");
    assert_401(
        a.authenticate(Some("Bearer ")).await,
        "Access token is empty.",
    );
    assert_401(
        a.authenticate(Some(&format!("Basic {token}"))).await,
        "Bearer scheme",
    );
    assert_401(
        a.authenticate(Some(&format!("Bearerx {token}"))).await,
        "Bearer scheme",
    );
    assert_401(a.authenticate(Some(&token)).await, "Bearer scheme");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert!(
            a.authenticate(Some(&format!("{scheme} {token}")))
                .await
                .is_ok(),
            "{scheme}"
        );
    }
    assert!(
        a.authenticate(Some(&format!("  Bearer \t {token}  ")))
            .await
            .is_ok()
    );
    let e = crate::error::GraphError::from(a.authenticate(None).await.unwrap_err());
    assert_eq!(
        (e.status().as_u16(), e.code()),
        (401, "InvalidAuthenticationToken")
    );
    let resp = axum::response::IntoResponse::into_response(e);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
}

#[tokio::test]
async fn every_rejection_is_401_with_a_precise_message() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ec) = (TestKey::rsa("rsa1"), TestKey::ec("ec1"));
    let a = jwks_auth(dir.path(), &[&rsa, &ec], |_| {});
    let now = unix_now();
    let good = rsa.sign(&claims());

    // Malformed.
    assert_401(auth_token(&a, "garbage").await, "three dot-separated parts");
    assert_401(auth_token(&a, "a.b").await, "three dot-separated parts");
    assert_401(auth_token(&a, "a.b.c.d.e").await, "encrypted tokens");
    assert_401(
        auth_token(&a, "!!!.e30.sig").await,
        "header is not base64url",
    );
    assert_401(
        auth_token(&a, &format!("{}.e30.sig", b64(b"[1,2]"))).await,
        "header is not a JSON object",
    );
    assert_401(auth_token(&a, &"a".repeat(20_000)).await, "too long");

    // Expired, beyond the 5 minute leeway; and within it (accepted).
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "exp", json!(now - 301)))).await,
        "The token has expired.",
    );
    assert!(
        auth_token(&a, &rsa.sign(&with(claims(), "exp", json!(now - 60))))
            .await
            .is_ok()
    );
    // Not yet valid.
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "nbf", json!(now + 3600)))).await,
        "not yet valid",
    );
    assert!(
        auth_token(&a, &rsa.sign(&with(claims(), "nbf", json!(now + 60))))
            .await
            .is_ok()
    );
    // Wrong audience (string and array), wrong issuer, issuer tenant differing from tid.
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "aud", json!("api://other")))).await,
        "Invalid audience.",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "aud", json!(["api://a", 5])))).await,
        "Invalid audience.",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&without(claims(), "aud"))).await,
        "Invalid audience.",
    );
    assert_401(
        auth_token(
            &a,
            &rsa.sign(&with(claims(), "iss", json!("https://evil.example/"))),
        )
        .await,
        "Invalid issuer.",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&without(claims(), "iss"))).await,
        "no iss claim",
    );
    let other_tenant = with(
        claims(),
        "tid",
        json!("0c0c0c0c-0000-0000-0000-000000000000"),
    );
    assert_401(
        auth_token(&a, &rsa.sign(&other_tenant)).await,
        "issuer's tenant does not match the tid",
    );
    // Missing or ill-typed required claims.
    assert_401(
        auth_token(&a, &rsa.sign(&without(claims(), "tid"))).await,
        "no tid claim",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "tid", json!("a/b")))).await,
        "not a valid tenant",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "tid", json!(7)))).await,
        "tid claim is not a string",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&without(claims(), "exp"))).await,
        "no exp claim",
    );
    assert_401(
        auth_token(&a, &rsa.sign(&with(claims(), "exp", json!("soon")))).await,
        "exp claim is not a number",
    );

    // alg none (any spelling), with an empty or fake signature.
    for alg in ["none", "None", "NONE"] {
        let h = json!({"alg": alg, "typ": "JWT", "kid": "rsa1"});
        let unsigned = format!(
            "{}.{}.",
            b64(h.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        assert_401(auth_token(&a, &unsigned).await, "alg 'none'");
    }
    // HS256 signed with the RSA public key as HMAC secret (key confusion), and HS512.
    for (alg, jalg) in [("HS256", Algorithm::HS256), ("HS512", Algorithm::HS512)] {
        let h = json!({"alg": alg, "typ": "JWT", "kid": "rsa1"});
        let forged = sign_raw(
            &h,
            &claims(),
            &TestSigner::Jwt(EncodingKey::from_secret(&rsa.public_der), jalg),
        );
        assert_401(
            auth_token(&a, &forged).await,
            "Symmetric signing algorithms",
        );
    }
    // Algorithms we do not support at all.
    let h = json!({"alg": "PS256", "kid": "rsa1"});
    let ps = format!("{}.{}.AAAA", b64(h.to_string().as_bytes()), b64(b"{}"));
    assert_401(auth_token(&a, &ps).await, "not supported");
    // The header's alg must match the key's: an ES256 header naming the RSA key.
    let h = json!({"alg": "ES256", "kid": "rsa1"});
    let mixed = sign_raw(&h, &claims(), &ec.signer);
    assert_401(
        auth_token(&a, &mixed).await,
        "does not match its signing key",
    );
    // Unknown kid; no kid with several keys configured.
    let stranger = TestKey::rsa("stranger");
    assert_401(
        auth_token(&a, &stranger.sign(&claims())).await,
        "signing key (kid) is not known",
    );
    let h = json!({"alg": "RS256"});
    assert_401(
        auth_token(&a, &sign_raw(&h, &claims(), &rsa.signer)).await,
        "does not name its signing key",
    );
    // A foreign key claiming a known kid.
    let impostor = TestKey {
        kid: "rsa1".into(),
        ..TestKey::rsa("x")
    };
    assert_401(
        auth_token(&a, &impostor.sign(&claims())).await,
        "Invalid signature.",
    );
    // Tampered payload (tenant swapped after signing) and tampered signature.
    let parts: Vec<&str> = good.split('.').collect();
    let evil_claims = with(claims(), "tid", json!("evil"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(evil_claims.to_string().as_bytes()),
        parts[2]
    );
    assert_401(auth_token(&a, &tampered).await, "Invalid signature.");
    let mut sig = parts[2].to_string();
    let flipped = if sig.ends_with('A') { "B" } else { "A" };
    sig.replace_range(sig.len() - 1.., flipped);
    assert_401(
        auth_token(&a, &format!("{}.{}.{sig}", parts[0], parts[1])).await,
        "Invalid signature.",
    );
    assert_401(
        auth_token(&a, &format!("{}.{}.!!", parts[0], parts[1])).await,
        "Invalid signature.",
    );
    // crit headers are refused.
    let h = json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"]});
    assert_401(
        auth_token(&a, &sign_raw(&h, &claims(), &rsa.signer)).await,
        "crit",
    );

    // Messages never carry key material.
    let e = auth_token(&a, &impostor.sign(&claims())).await.unwrap_err();
    let n = rsa.jwk["n"].as_str().unwrap();
    assert!(!e.message().contains(&n[..20]));

    // The good token still works after all that.
    assert!(auth_token(&a, &good).await.is_ok());
}

#[tokio::test]
async fn no_panic_on_hostile_input() {
    let a = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
    let good = a
        .issue_dev_token(TENANT, &[RW.into()], &[], 60, None)
        .unwrap();
    let mut inputs: Vec<String> = vec![
        ".".into(),
        "..".into(),
        "...".into(),
        "\u{0}.\u{0}.\u{0}".into(),
        "é.é.é".into(),
        format!("{}..", b64(br#"{"alg":"ES256"}"#)),
        format!(
            "{}.{}.",
            b64(br#"{"alg":"ES256","kid":null}"#),
            b64(b"null")
        ),
        format!("{}.{}.x", b64(br#"{"alg":5}"#), b64(b"{}")),
    ];
    // Every prefix of a valid token, and every single-character corruption of its first 80.
    for i in 0..good.len() {
        inputs.push(good[..i].to_string());
    }
    for i in 0..80 {
        let mut t = good.clone().into_bytes();
        t[i] = if t[i] == b'x' { b'y' } else { b'x' };
        inputs.push(String::from_utf8(t).unwrap());
    }
    for input in inputs {
        assert!(
            a.authenticate(Some(&format!("Bearer {input}")))
                .await
                .is_err(),
            "{input:?}"
        );
    }
    // Odd but well-signed claim values.
    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::ec("k");
    let a = jwks_auth(dir.path(), &[&k], |_| {});
    for (name, v) in [
        ("exp", json!(1e300)),
        ("exp", json!(-1e300)),
        ("exp", json!(i64::MAX)),
        ("nbf", json!(i64::MIN)),
        ("exp", json!(u64::MAX)),
        ("roles", json!({"a": 1})),
        ("scp", json!(["x"])),
        ("azp", json!(1)),
    ] {
        let _ = auth_token(&a, &k.sign(&with(claims(), name, v))).await;
    }
    let not_object = k.sign(&json!([1, 2, 3]));
    assert_401(
        auth_token(&a, &not_object).await,
        "payload is not a JSON object",
    );
}

#[tokio::test]
async fn permission_matrix_through_tokens() {
    let a = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // (scopes, roles, may read, may write)
    let cases = [
        (s(&[READ]), s(&[]), true, false),
        (s(&[RW]), s(&[]), true, true),
        (s(&["User.Read"]), s(&[]), false, false),
        (s(&[]), s(&[READ]), true, false),
        (s(&[]), s(&[RW]), true, true),
        (s(&[]), s(&["Directory.Read.All"]), false, false),
        // Delegated wins when both are present: the user's scope decides, not app roles.
        (s(&["User.Read"]), s(&[RW]), false, false),
    ];
    for (scopes, roles, read, write) in cases {
        let token = a
            .issue_dev_token(TENANT, &scopes, &roles, 60, Some("app"))
            .unwrap();
        let p = auth_token(&a, &token).await.unwrap();
        assert_eq!(
            a.authorize(&p, Operation::Read).is_ok(),
            read,
            "{scopes:?} {roles:?} read"
        );
        assert_eq!(
            a.authorize(&p, Operation::Write).is_ok(),
            write,
            "{scopes:?} {roles:?} write"
        );
        if !write {
            let e = crate::error::GraphError::from(a.authorize(&p, Operation::Write).unwrap_err());
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (403, "Authorization_RequestDenied")
            );
            let resp = axum::response::IntoResponse::into_response(e);
            assert!(resp.headers().get("www-authenticate").is_none());
        }
    }
    // A configured map replaces the default.
    let mut cfg = AuthConfig::new(AuthMode::Dev);
    cfg.permissions =
        PermissionMap::from_json(r#"{"read": ["*"], "write": ["Custom.Write"]}"#).unwrap();
    let a = Authenticator::new(cfg).unwrap();
    let p = auth_token(
        &a,
        &a.issue_dev_token(TENANT, &s(&["User.Read"]), &[], 60, None)
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(a.authorize(&p, Operation::Read).is_ok());
    assert!(a.authorize(&p, Operation::Write).is_err());
}

#[tokio::test]
async fn personal_accounts_and_permissionless_tokens_are_403() {
    let a = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
    let msa = a
        .issue_dev_token(PERSONAL_ACCOUNT_TENANT, &[RW.into()], &[], 60, None)
        .unwrap();
    assert_403(auth_token(&a, &msa).await, "Personal Microsoft accounts");
    let upper = a
        .issue_dev_token(
            &PERSONAL_ACCOUNT_TENANT.to_uppercase(),
            &[RW.into()],
            &[],
            60,
            None,
        )
        .unwrap();
    assert_403(auth_token(&a, &upper).await, "Personal Microsoft accounts");
    let bare = a.issue_dev_token(TENANT, &[], &[], 60, None).unwrap();
    assert_403(
        auth_token(&a, &bare).await,
        "neither scopes (scp) nor application roles",
    );

    // Same in jwks mode with an Entra-shaped token, including an empty scp.
    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::rsa("k");
    let a = jwks_auth(dir.path(), &[&k], |_| {});
    assert_403(
        auth_token(&a, &k.sign(&without(claims(), "roles"))).await,
        "neither",
    );
    let empty = with(without(claims(), "roles"), "scp", json!("  "));
    assert_403(auth_token(&a, &k.sign(&empty)).await, "neither");
    let msa = json!({
        "aud": "https://graph.microsoft.com", "exp": unix_now() + 60, "tid": PERSONAL_ACCOUNT_TENANT,
        "iss": format!("https://login.microsoftonline.com/{PERSONAL_ACCOUNT_TENANT}/v2.0"), "scp": RW,
    });
    assert_403(auth_token(&a, &k.sign(&msa)).await, "Personal");
}

#[tokio::test]
async fn issuer_templates_substitute_the_tokens_tid() {
    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::ec("k");
    let a = jwks_auth(dir.path(), &[&k], |c| {
        c.issuers = vec![
            "https://idp.example/{tenantid}/".into(),
            "https://fixed.example".into(),
        ];
        c.audiences = vec!["api://graphsec".into()];
    });
    let base = with(claims(), "aud", json!("api://graphsec"));
    for tenant in ["tenant-a", "tenant-b"] {
        let c = with(
            with(base.clone(), "tid", json!(tenant)),
            "iss",
            json!(format!("https://idp.example/{tenant}/")),
        );
        assert_eq!(auth_token(&a, &k.sign(&c)).await.unwrap().tenant, tenant);
    }
    let cross = with(
        with(base.clone(), "tid", json!("tenant-a")),
        "iss",
        json!("https://idp.example/tenant-b/"),
    );
    assert_401(
        auth_token(&a, &k.sign(&cross)).await,
        "issuer's tenant does not match",
    );
    // A fixed issuer accepts any tid.
    let fixed = with(
        with(base.clone(), "tid", json!("tenant-c")),
        "iss",
        json!("https://fixed.example"),
    );
    assert!(auth_token(&a, &k.sign(&fixed)).await.is_ok());
    // The default Entra issuers are not accepted when others are configured, nor Graph's audience.
    assert_401(
        auth_token(&a, &k.sign(&with(base, "iss", json!(ISS_V2)))).await,
        "Invalid issuer.",
    );
    assert_401(
        auth_token(&a, &k.sign(&claims())).await,
        "Invalid audience.",
    );
}

/// A local JWKS endpoint whose document the test can change, counting fetches.
struct JwksServer {
    url: String,
    doc: Arc<std::sync::Mutex<Value>>,
    hits: Arc<AtomicU64>,
}

async fn jwks_server(initial: Value) -> JwksServer {
    let doc = Arc::new(std::sync::Mutex::new(initial));
    let hits = Arc::new(AtomicU64::new(0));
    let (d, h) = (doc.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || {
            let (d, h) = (d.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                axum::Json(body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer { url, doc, hits }
}

fn url_auth(url: &str, min_refresh: Duration) -> Authenticator {
    let mut cfg = AuthConfig::new(AuthMode::Jwks);
    cfg.jwks_url = Some(url.into());
    cfg.min_jwks_refresh = min_refresh;
    Authenticator::new(cfg).unwrap()
}

#[tokio::test]
async fn jwks_url_refreshes_on_unknown_kid() {
    let (k1, k2) = (TestKey::rsa("k1"), TestKey::ec("k2"));
    let srv = jwks_server(jwks(&[&k1])).await;
    let a = url_auth(&srv.url, Duration::ZERO);
    assert_eq!(a.warm_up().await.unwrap(), 1);
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    assert!(auth_token(&a, &k1.sign(&claims())).await.is_ok());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1, "known kid: no fetch");

    // The provider rotates in k2: the first k2 token triggers a refresh and succeeds.
    *srv.doc.lock().unwrap() = jwks(&[&k1, &k2]);
    assert!(auth_token(&a, &k2.sign(&claims())).await.is_ok());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);

    // k1 retired: a new k1 token (not cached) is refused once the set no longer has it.
    *srv.doc.lock().unwrap() = jwks(&[&k2]);
    let stranger = TestKey::rsa("k3");
    assert_401(auth_token(&a, &stranger.sign(&claims())).await, "not known");
    let fresh_k1 = k1.sign(&with(claims(), "uti", json!("new")));
    assert_401(auth_token(&a, &fresh_k1).await, "not known");

    // A broken endpoint keeps the last good keys.
    *srv.doc.lock().unwrap() = json!({"nope": true});
    assert!(
        auth_token(&a, &k2.sign(&with(claims(), "uti", json!("x"))))
            .await
            .is_ok()
    );
    assert_401(auth_token(&a, &stranger.sign(&claims())).await, "not known");
}

#[tokio::test]
async fn unknown_kid_storm_fetches_at_most_once_per_floor() {
    let k1 = TestKey::ec("k1");
    let srv = jwks_server(jwks(&[&k1])).await;
    let a = Arc::new(url_auth(&srv.url, Duration::from_secs(3600)));
    // First use loads the keys (lazy; no warm_up).
    assert!(auth_token(&a, &k1.sign(&claims())).await.is_ok());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    // 50 concurrent tokens with random kids: the floor holds, no further fetch.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let a = a.clone();
        let k = TestKey {
            kid: format!("random-{i}"),
            ..TestKey::ec("x")
        };
        tasks.push(tokio::spawn(async move {
            auth_token(&a, &k.sign(&claims())).await
        }));
    }
    for t in tasks {
        assert_401(t.await.unwrap(), "not known");
    }
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    if let Mode::Verify { verifier, .. } = &a.mode {
        assert_eq!(verifier.keys.fetch_count().await, 1);
    }
}

#[tokio::test]
async fn jwks_url_failures_are_reported_not_fatal() {
    // Nothing listens on this port (bound, then dropped).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = url_auth(&format!("http://127.0.0.1:{port}/keys"), Duration::ZERO);
    assert!(a.warm_up().await.unwrap_err().contains("cannot fetch JWKS"));
    assert_401(
        auth_token(&a, &TestKey::ec("k").sign(&claims())).await,
        "not known",
    );
}

#[tokio::test]
async fn cache_skips_signature_checks_and_reports_speedup() {
    let dir = tempfile::tempdir().unwrap();
    let k = TestKey::rsa("k");
    let token = k.sign(&claims());
    let cached = jwks_auth(dir.path(), &[&k], |_| {});
    let p1 = auth_token(&cached, &token).await.unwrap();
    let p2 = auth_token(&cached, &token).await.unwrap();
    assert_eq!(p1, p2);
    assert_eq!(cached.cache_stats(), (1, 1));
    // A cached token is still re-checked for nothing else: a different token misses.
    let other = k.sign(&with(claims(), "uti", json!("2")));
    auth_token(&cached, &other).await.unwrap();
    assert_eq!(cached.cache_stats(), (1, 2));

    let uncached = jwks_auth(dir.path(), &[&k], |c| c.cache_capacity = 0);
    const N: u32 = 300;
    let t = Instant::now();
    for _ in 0..N {
        auth_token(&uncached, &token).await.unwrap();
    }
    let slow = t.elapsed();
    let t = Instant::now();
    for _ in 0..N {
        auth_token(&cached, &token).await.unwrap();
    }
    let fast = t.elapsed();
    println!(
        "RS256 token, {N} requests: {:?}/req verifying, {:?}/req cached ({:.0}x)",
        slow / N,
        fast / N,
        slow.as_secs_f64() / fast.as_secs_f64().max(1e-9)
    );
}

#[tokio::test]
async fn dev_key_persists_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        let mut c = AuthConfig::new(AuthMode::Dev);
        c.data_dir = Some(dir.path().to_path_buf());
        c
    };
    let a = Authenticator::new(cfg()).unwrap();
    let key_path = dir.path().join(DEV_KEY_FILE);
    let pem_before = std::fs::read(&key_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let token = a
        .issue_dev_token(TENANT, &[RW.into()], &[], 600, Some("cli"))
        .unwrap();
    drop(a);
    let b = Authenticator::new(cfg()).unwrap();
    assert_eq!(
        std::fs::read(&key_path).unwrap(),
        pem_before,
        "key reused, not regenerated"
    );
    let p = auth_token(&b, &token).await.unwrap();
    assert_eq!((p.tenant.as_str(), p.app.as_deref()), (TENANT, Some("cli")));
    // `graphsec token` (the free function) signs with the same key.
    let cli = issue_dev_token(dir.path(), "contoso", &[], &[READ.into()], 60, None).unwrap();
    let p = auth_token(&b, &cli).await.unwrap();
    assert_eq!(
        p.kind,
        PrincipalKind::Application {
            roles: vec![READ.into()]
        }
    );
    // Another data dir has another key.
    let other = tempfile::tempdir().unwrap();
    let mut c = AuthConfig::new(AuthMode::Dev);
    c.data_dir = Some(other.path().to_path_buf());
    let c = Authenticator::new(c).unwrap();
    assert_401(
        auth_token(&c, &token).await,
        "signing key (kid) is not known",
    );
    // An in-memory authenticator neither accepts it.
    let mem = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
    assert_401(auth_token(&mem, &token).await, "not known");
    // Dev tokens are refused by a jwks-mode server with Entra issuers even with the dev key.
    let jwks_path = dir.path().join("dev-jwks.json");
    std::fs::write(&jwks_path, b.dev_public_jwks().unwrap().to_string()).unwrap();
    let mut j = AuthConfig::new(AuthMode::Jwks);
    j.jwks_file = Some(jwks_path);
    let j = Authenticator::new(j).unwrap();
    assert_401(auth_token(&j, &token).await, "Invalid issuer.");
}

#[tokio::test]
async fn dev_token_validation_and_cli() {
    let a = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
    assert!(a.issue_dev_token("", &[], &[], 60, None).is_err());
    assert!(a.issue_dev_token("a b", &[], &[], 60, None).is_err());
    assert!(
        a.issue_dev_token(TENANT, &["a b".into()], &[], 60, None)
            .is_err()
    );
    assert!(a.issue_dev_token(TENANT, &[], &[], 0, None).is_err());
    assert!(
        a.issue_dev_token(TENANT, &[RW.into()], &[], u64::MAX, None)
            .is_ok()
    );

    let dir = tempfile::tempdir().unwrap();
    let mut args = TokenArgs {
        url: None,
        dev_key: None,
        data_dir: Some(dir.path().join("new-subdir")),
        cacert: None,
        tenant: TENANT.into(),
        scopes: vec![],
        roles: vec![],
        ttl: 120,
        app_id: None,
    };
    // `graphsec token` never creates a key: it says where keys are looked for.
    let refused = args.run().await.unwrap_err();
    assert!(
        refused.contains(
            &dir.path()
                .join("new-subdir")
                .join(DEV_KEY_FILE)
                .display()
                .to_string()
        ) && refused.contains("--dev-key")
            && refused.contains("--url"),
        "{refused}"
    );
    assert!(!dir.path().join("new-subdir").exists(), "nothing created");
    let mut cfg = AuthConfig::new(AuthMode::Dev);
    cfg.data_dir = Some(dir.path().join("new-subdir"));
    let server = Authenticator::new(cfg).unwrap();
    let token = args.run().await.unwrap();
    let p = auth_token(&server, &token).await.unwrap();
    assert_eq!(
        p.kind,
        PrincipalKind::Delegated {
            scopes: vec![RW.into()]
        },
        "default scope"
    );
    let exp = p.expires_at.unwrap();
    assert!((unix_now() + 100..=unix_now() + 121).contains(&exp));
    // --dev-key: a key file shared by servers (created by the first) and the token command.
    let shared = dir.path().join("suite-key.pem");
    args.dev_key = Some(shared.clone());
    assert!(args.run().await.unwrap_err().contains("suite-key.pem"));
    let with_key = |file: &std::path::Path| {
        let mut c = AuthConfig::new(AuthMode::Dev);
        c.dev_key_file = Some(file.to_path_buf());
        Authenticator::new(c).unwrap()
    };
    let first = with_key(&shared);
    let token = args.run().await.unwrap();
    auth_token(&first, &token).await.unwrap();
    drop(first);
    auth_token(&with_key(&shared), &token).await.unwrap();
    // A token for another key: the 401 says how keys are matched.
    let other = with_key(&dir.path().join("other-key.pem"));
    let e = auth_token(&other, &token).await.unwrap_err();
    assert!(
        e.message().contains("--dev-key") && e.message().contains("--data-dir"),
        "{e}"
    );
    assert!(
        Authenticator::new(AuthConfig::new(AuthMode::None))
            .unwrap()
            .issue_dev_token(TENANT, &[], &[], 1, None)
            .is_err()
    );
}

#[tokio::test]
async fn none_mode_is_a_fixed_unrestricted_principal() {
    let a = Authenticator::from_args(
        &AuthArgs {
            auth: Some(AuthMode::None),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert!(a.is_disabled());
    for h in [None, Some("garbage"), Some("Bearer x.y.z")] {
        let p = a.authenticate(h).await.unwrap();
        assert_eq!(p.tenant, NONE_MODE_TENANT);
        assert!(a.authorize(&p, Operation::Write).is_ok());
    }
}

#[test]
fn from_args_rules() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("k.json");
    std::fs::write(&jwks_file, jwks(&[&TestKey::ec("k")]).to_string()).unwrap();

    // Default: dev; with a JWKS source: jwks.
    let a = Authenticator::from_args(&AuthArgs::default(), Some(dir.path())).unwrap();
    assert!(a.describe().starts_with("dev"), "{}", a.describe());
    let args = AuthArgs {
        jwks_file: Some(jwks_file.clone()),
        ..Default::default()
    };
    let a = Authenticator::from_args(&args, None).unwrap();
    assert!(a.describe().starts_with("jwks"), "{}", a.describe());
    // Contradictions and missing pieces are startup errors, not silent defaults.
    let bad = [
        AuthArgs {
            auth: Some(AuthMode::Dev),
            jwks_file: Some(jwks_file.clone()),
            ..Default::default()
        },
        AuthArgs {
            auth: Some(AuthMode::None),
            jwks_url: Some("https://x".into()),
            ..Default::default()
        },
        AuthArgs {
            auth: Some(AuthMode::Dev),
            issuers: vec!["https://i".into()],
            ..Default::default()
        },
        AuthArgs {
            auth: Some(AuthMode::Jwks),
            ..Default::default()
        },
        AuthArgs {
            auth: Some(AuthMode::Jwks),
            jwks_url: Some("ftp://x".into()),
            ..Default::default()
        },
        AuthArgs {
            jwks_file: Some(dir.path().join("missing.json")),
            ..Default::default()
        },
        AuthArgs {
            permissions_file: Some(dir.path().join("missing.json")),
            ..Default::default()
        },
    ];
    for args in bad {
        assert!(Authenticator::from_args(&args, None).is_err(), "{args:?}");
    }
    let perms = dir.path().join("perms.json");
    std::fs::write(&perms, r#"{"read": ["A"], "write": ["B"]}"#).unwrap();
    let args = AuthArgs {
        permissions_file: Some(perms),
        ..Default::default()
    };
    assert!(Authenticator::from_args(&args, None).is_ok());
}
