//! Issuing, verifying and rotating tokens, and the JWKS seen from outside.
//!
//! Run: `cargo test -p attest-token --test tokens`

use std::collections::HashSet;

use attest_token::{Claims, Environment, Keyring, SigningKeyPair, TokenError};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const APP: &str = "TEAMID1234.com.example.app";
const NOW: OffsetDateTime = datetime!(2026-06-01 08:00:00 UTC);

fn claims_at(now: OffsetDateTime) -> Claims {
    let mut extra = serde_json::Map::new();
    extra.insert("risk_score".into(), json!(15));
    extra.insert("permissions".into(), json!(["read", "purchase"]));
    Claims {
        iss: "https://attestd.example.com".into(),
        sub: "device-42".into(),
        aud: APP.into(),
        iat: now,
        exp: now + Duration::minutes(15),
        key_id: URL_SAFE_NO_PAD.encode([7u8; 32]),
        env: Environment::Production,
        platform: attest_token::Platform::Ios,
        extra,
    }
}

fn keyring() -> Keyring {
    Keyring::generate().expect("generate keyring")
}

/// Splits a token into its decoded header and payload JSON and its signature text.
fn parts(token: &str) -> (Value, Value, String) {
    let pieces: Vec<&str> = token.split('.').collect();
    assert_eq!(pieces.len(), 3, "{token}");
    let decode = |text: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("json")
    };
    (decode(pieces[0]), decode(pieces[1]), pieces[2].to_owned())
}

fn join(header: &Value, payload: &Value, signature: &str) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{signature}", encode(header), encode(payload))
}

fn jwk_by_kid<'a>(jwks: &'a Value, kid: &str) -> &'a Value {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|jwk| jwk["kid"] == kid)
        .expect("kid published")
}

#[test]
fn issued_token_verifies_with_the_same_claims() {
    let keyring = keyring();
    let claims = claims_at(NOW);
    let token = keyring.issue(&claims).expect("issue");
    assert_eq!(keyring.verify(&token, APP, NOW), Ok(claims));

    let (header, payload, _) = parts(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], keyring.active().kid());
    assert_eq!(payload["iat"], json!(NOW.unix_timestamp()), "NumericDate");
    assert_eq!(payload["env"], "production");
    assert_eq!(payload["platform"], "ios");
    assert_eq!(
        payload["risk_score"], 15,
        "extra claims sit at the top level"
    );
}

#[test]
fn jwks_alone_verifies_an_issued_token() {
    let keyring = keyring();
    let now = OffsetDateTime::now_utc();
    let token = keyring.issue(&claims_at(now)).expect("issue");
    let jwks = keyring.jwks();
    let kid = jsonwebtoken::decode_header(&token)
        .expect("header")
        .kid
        .expect("kid");

    // As a relying party would: only x and y from the published JWK.
    let jwk = jwk_by_kid(&jwks, &kid);
    let x = jwk["x"].as_str().expect("x");
    let y = jwk["y"].as_str().expect("y");
    let key = DecodingKey::from_ec_components(x, y).expect("decoding key from JWK");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[APP]);
    let decoded = jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies");
    assert_eq!(decoded.claims["sub"], "device-42");

    // And through jsonwebtoken's own JWK Set type.
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a standard JWK Set");
    let jwk = set.find(&kid).expect("kid in set");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies");
}

#[test]
fn jwks_publishes_exactly_the_public_members() {
    let keyring = keyring();
    let jwks = keyring.jwks();
    let jwk = jwk_by_kid(&jwks, keyring.active().kid());
    let members: HashSet<&str> = jwk
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        HashSet::from(["kty", "crv", "x", "y", "kid", "use", "alg"])
    );
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["use"], &jwk["alg"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("sig"),
            &json!("ES256")
        )
    );
    for coordinate in ["x", "y"] {
        let bytes = URL_SAFE_NO_PAD
            .decode(jwk[coordinate].as_str().expect("text"))
            .expect("b64");
        assert_eq!(bytes.len(), 32, "{coordinate} is a P-256 field element");
    }
}

#[test]
fn kid_is_the_rfc7638_thumbprint_of_the_published_key() {
    let keyring = keyring();
    let jwks = keyring.jwks();
    let jwk = jwk_by_kid(&jwks, keyring.active().kid());
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y")
    );
    let expected = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
    assert_eq!(keyring.active().kid(), expected);
}

#[test]
fn rejects_tampered_payload() {
    let keyring = keyring();
    let token = keyring.issue(&claims_at(NOW)).expect("issue");
    let (header, mut payload, signature) = parts(&token);
    payload["sub"] = json!("device-43");
    let forged = join(&header, &payload, &signature);
    assert_eq!(
        keyring.verify(&forged, APP, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn rejects_tampered_signature() {
    let keyring = keyring();
    let token = keyring.issue(&claims_at(NOW)).expect("issue");
    let (header, payload, signature) = parts(&token);
    // Change the first character: still base64url, still 64 bytes, another signature.
    let replacement = if signature.starts_with('A') { "B" } else { "A" };
    let forged = join(
        &header,
        &payload,
        &format!("{replacement}{}", &signature[1..]),
    );
    assert_eq!(
        keyring.verify(&forged, APP, NOW),
        Err(TokenError::BadSignature)
    );
    let truncated = join(&header, &payload, &signature[..40]);
    assert_eq!(
        keyring.verify(&truncated, APP, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn rejects_alg_none() {
    let keyring = keyring();
    let token = keyring.issue(&claims_at(NOW)).expect("issue");
    let (mut header, payload, _) = parts(&token);
    header["alg"] = json!("none");
    for signature in ["", "AAAA"] {
        let unsigned = join(&header, &payload, signature);
        assert_eq!(
            keyring.verify(&unsigned, APP, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }
}

#[test]
fn rejects_hs256_keyed_with_the_public_key() {
    // The classic confusion: an HMAC "signed" with public material the attacker knows.
    let keyring = keyring();
    let jwks = keyring.jwks();
    let public = jwk_by_kid(&jwks, keyring.active().kid()).to_string();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keyring.active().kid().to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims_at(NOW),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("encode");
    assert_eq!(
        keyring.verify(&forged, APP, NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn rejects_token_for_another_audience() {
    let keyring = keyring();
    let token = keyring.issue(&claims_at(NOW)).expect("issue");
    assert_eq!(
        keyring.verify(&token, "TEAMID1234.com.example.other", NOW),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        keyring.verify(&token, "", NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn rejects_expired_token() {
    let keyring = keyring();
    let claims = claims_at(NOW);
    let token = keyring.issue(&claims).expect("issue");
    assert!(
        keyring
            .verify(&token, APP, claims.exp - Duration::seconds(1))
            .is_ok()
    );
    assert_eq!(
        keyring.verify(&token, APP, claims.exp),
        Err(TokenError::Expired)
    );
    assert_eq!(
        keyring.verify(&token, APP, claims.exp + Duration::days(1)),
        Err(TokenError::Expired)
    );
}

#[test]
fn rejects_token_issued_beyond_the_clock_skew() {
    let keyring = keyring();
    let token = keyring.issue(&claims_at(NOW)).expect("issue");
    assert!(
        keyring
            .verify(&token, APP, NOW - attest_token::MAX_CLOCK_SKEW)
            .is_ok()
    );
    assert_eq!(
        keyring.verify(
            &token,
            APP,
            NOW - attest_token::MAX_CLOCK_SKEW - Duration::seconds(1)
        ),
        Err(TokenError::IssuedInFuture)
    );
}

#[test]
fn rejects_token_of_a_key_outside_the_keyring() {
    let ours = keyring();
    let theirs = keyring();
    let token = theirs.issue(&claims_at(NOW)).expect("issue");
    assert_eq!(ours.verify(&token, APP, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn rejects_token_naming_our_kid_but_signed_by_another_key() {
    let ours = keyring();
    let other = SigningKeyPair::generate().expect("generate");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(ours.active().kid().to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims_at(NOW),
        &EncodingKey::from_ec_der(other.pkcs8_der()),
    )
    .expect("encode");
    assert_eq!(
        ours.verify(&forged, APP, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn rejects_token_without_kid() {
    let keyring = keyring();
    let token = keyring.issue(&claims_at(NOW)).expect("issue");
    let (mut header, payload, signature) = parts(&token);
    header.as_object_mut().expect("object").remove("kid");
    assert_eq!(
        keyring.verify(&join(&header, &payload, &signature), APP, NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn rejects_malformed_tokens() {
    let keyring = keyring();
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AAAA",
        "e30.e30.AAAA",
        "bnVsbA.e30.AAAA",
    ] {
        assert_eq!(
            keyring.verify(token, APP, NOW),
            Err(TokenError::Malformed),
            "{token:?}"
        );
    }
}

#[test]
fn rejects_oversized_token_before_decoding_it() {
    let keyring = keyring();
    let token = "a".repeat(attest_token::MAX_TOKEN_BYTES + 1);
    assert_eq!(keyring.verify(&token, APP, NOW), Err(TokenError::TooLarge));
}

#[test]
fn rejects_signed_token_missing_a_claim() {
    let keyring = keyring();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(keyring.active().kid().to_owned());
    let mut payload = serde_json::to_value(claims_at(NOW)).expect("json");
    payload.as_object_mut().expect("object").remove("key_id");
    let token = jsonwebtoken::encode(
        &header,
        &payload,
        &EncodingKey::from_ec_der(keyring.active().pkcs8_der()),
    )
    .expect("encode");
    assert_eq!(
        keyring.verify(&token, APP, NOW),
        Err(TokenError::InvalidClaims)
    );
}

#[test]
fn refuses_extra_claims_that_shadow_registered_ones() {
    let keyring = keyring();
    for name in ["aud", "exp", "sub", "key_id", "env", "nbf"] {
        let mut claims = claims_at(NOW);
        claims.extra.insert(name.into(), json!("shadow"));
        assert_eq!(
            keyring.issue(&claims),
            Err(TokenError::ReservedClaim(name.into()))
        );
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_until_the_old_key_is_retired() {
    let mut keyring = keyring();
    let old_kid = keyring.active().kid().to_owned();
    let old_token = keyring.issue(&claims_at(NOW)).expect("issue");

    let new_kid = keyring.rotate().expect("rotate").kid().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(keyring.active().kid(), new_kid);
    assert_eq!(keyring.previous().len(), 1);

    let new_token = keyring.issue(&claims_at(NOW)).expect("issue");
    assert_eq!(parts(&new_token).0["kid"], new_kid);
    assert!(
        keyring.verify(&old_token, APP, NOW).is_ok(),
        "old key still verifies"
    );
    assert!(keyring.verify(&new_token, APP, NOW).is_ok());

    let jwks = keyring.jwks();
    let published: Vec<&Value> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|jwk| &jwk["kid"])
        .collect();
    assert_eq!(
        published,
        [&json!(new_kid), &json!(old_kid)],
        "active key first"
    );

    assert!(
        keyring.retire(&new_kid).is_none(),
        "the active key cannot be retired"
    );
    assert!(keyring.retire(&old_kid).is_some());
    assert_eq!(
        keyring.verify(&old_token, APP, NOW),
        Err(TokenError::UnknownKey)
    );
    assert!(keyring.verify(&new_token, APP, NOW).is_ok());
    assert_eq!(keyring.jwks()["keys"].as_array().map(Vec::len), Some(1));
}

#[test]
fn keyring_rebuilt_from_stored_keys_verifies_earlier_tokens() {
    let mut keyring = keyring();
    let old_token = keyring.issue(&claims_at(NOW)).expect("issue");
    keyring.rotate().expect("rotate");
    let new_token = keyring.issue(&claims_at(NOW)).expect("issue");

    // What a restart does: reload every stored PKCS#8, newest active.
    let reload =
        |key: &SigningKeyPair| SigningKeyPair::from_pkcs8(key.pkcs8_der()).expect("reload");
    let restored = Keyring::with_previous(
        reload(keyring.active()),
        keyring
            .previous()
            .iter()
            .map(reload)
            .chain([reload(keyring.active())])
            .collect(),
    );
    assert_eq!(
        restored.previous().len(),
        1,
        "a duplicate of the active key is dropped"
    );
    assert!(restored.verify(&old_token, APP, NOW).is_ok());
    assert!(restored.verify(&new_token, APP, NOW).is_ok());
}

#[test]
fn error_codes_are_unique_snake_case() {
    let errors = [
        TokenError::KeyGeneration,
        TokenError::InvalidKey,
        TokenError::ReservedClaim("aud".into()),
        TokenError::Signing,
        TokenError::TooLarge,
        TokenError::Malformed,
        TokenError::UnsupportedAlgorithm,
        TokenError::UnknownKey,
        TokenError::BadSignature,
        TokenError::InvalidClaims,
        TokenError::WrongAudience,
        TokenError::Expired,
        TokenError::IssuedInFuture,
    ];
    let codes: HashSet<&str> = errors.iter().map(TokenError::code).collect();
    assert_eq!(codes.len(), errors.len());
    assert!(
        codes
            .iter()
            .all(|code| code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
}
