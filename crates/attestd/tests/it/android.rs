//! Android through the real server, on both stores: a Key Attestation chain (under a test root
//! given as a danger Android root) registers a key, and requests signed by it are its
//! assertions, each on a one-time challenge. Every refusal has its stable code and leaves
//! nothing behind.

use crate::common;

use std::sync::OnceLock;

use attest_sim::android::{AndroidAttestation, AndroidCa, AndroidProvisioning, KeyDescriptionSpec};
use attestd::server::android::app::AndroidAppConfig;
use attestd::server::config::{AppConfig, Config, TrustRoot};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{ADMIN_TOKEN, APP, Db, Server, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub const PACKAGE: &str = "dev.attestd.tests.android";
pub const SIGNING_DIGEST: [u8; 32] = [0x5a; 32];

/// The test root playing Google's, shared by the tests of this binary.
pub fn android_ca() -> &'static AndroidCa {
    static CA: OnceLock<AndroidCa> = OnceLock::new();
    CA.get_or_init(AndroidCa::generate)
}

/// The test configuration plus an Android-only app trusting the test root.
pub fn android_config(db: &Db) -> Config {
    let mut config = common::config(db);
    let android = AndroidAppConfig::new(PACKAGE.to_owned(), vec![SIGNING_DIGEST]);
    config
        .apps
        .push(AppConfig::android(android).expect("an Android app"));
    config.danger_extra_android_roots = vec![TrustRoot {
        source: "test Android CA".into(),
        der: android_ca().root_der().to_vec(),
    }];
    config
}

/// A device's chain attesting a key over `challenge` for `package` signed by `digest`.
pub fn chain(challenge: &str, package: &str, digest: &[u8]) -> AndroidAttestation {
    let description = KeyDescriptionSpec::new(challenge.as_bytes(), package, digest);
    android_ca()
        .chain(
            AndroidProvisioning::Remote,
            &description,
            OffsetDateTime::now_utc(),
        )
        .build()
}

/// The key id attestd expects: standard base64 of SHA-256 of the leaf's SPKI.
pub fn android_key_id(attestation: &AndroidAttestation) -> String {
    let leaf = x509_parser::parse_x509_certificate(&attestation.chain[0])
        .expect("leaf")
        .1;
    STANDARD.encode(digest(&SHA256, leaf.public_key().raw))
}

pub fn attestation_body(attestation: &AndroidAttestation, challenge: &str) -> Value {
    json!({
        "platform": "android",
        "format": "android-key-attestation",
        "keyId": android_key_id(attestation),
        "challenge": challenge,
        "x5c": attestation.chain.iter().map(|der| STANDARD.encode(der)).collect::<Vec<_>>(),
        "appId": PACKAGE,
    })
}

pub fn signed_request(attestation: &AndroidAttestation, payload: &str) -> Value {
    json!({
        "platform": "android",
        "format": "android-key-attestation",
        "keyId": android_key_id(attestation),
        "payload": payload,
        "signature": STANDARD.encode(attestation.sign(payload.as_bytes())),
    })
}

/// Registers a device and returns its chain and the first assertion challenge.
pub async fn attested(server: &Server) -> (AndroidAttestation, String) {
    let challenge = server.challenge(PACKAGE).await;
    let device = chain(&challenge, PACKAGE, &SIGNING_DIGEST);
    let (status, answer) = server
        .post("/v1/attestations", &attestation_body(&device, &challenge))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let next = answer["nextChallenge"]["challenge"]
        .as_str()
        .expect("next challenge")
        .to_owned();
    (device, next)
}

on_both_stores!(
    an_android_device_registers_and_signs_requests_once_per_challenge,
    android_attestations_are_refused_with_their_code_and_store_nothing,
    signed_requests_are_refused_with_their_code,
    a_real_chain_fails_closed_without_a_fresh_list_and_is_refused_when_revoked,
    an_unlocked_bootloader_is_scored_and_refused_where_the_app_requires_verified_boot,
);

async fn an_android_device_registers_and_signs_requests_once_per_challenge(db: &Db) {
    let server = Server::start_with(android_config(db)).await;
    let challenge = server.challenge(PACKAGE).await;
    let device = chain(&challenge, PACKAGE, &SIGNING_DIGEST);
    let (status, answer) = server
        .post("/v1/attestations", &attestation_body(&device, &challenge))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["keyId"], android_key_id(&device));
    let claims = common::claims(answer["token"].as_str().unwrap());
    assert_eq!(claims["aud"], PACKAGE);
    assert_eq!(claims["platform"], "android");
    // The simulated device is locked and verified, on a September 2024 patch level: more
    // than 24 months old now, and said so.
    let factors = common::factor_names(&answer);
    assert!(
        factors.contains(&"old_patch_level".to_owned()),
        "{factors:?}"
    );
    assert!(
        !factors
            .iter()
            .any(|f| f == "unlocked_bootloader" || f == "self_signed_boot")
    );

    // The challenge is spent: the same attestation again is refused.
    let again = server
        .post("/v1/attestations", &attestation_body(&device, &challenge))
        .await;
    assert_error(&again, StatusCode::BAD_REQUEST, "challenge_invalid");

    // Signed requests, each on the challenge the last answer handed out.
    let mut next = answer["nextChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    for round in 0..3 {
        let payload =
            json!({ "challenge": next, "action": "transfer", "round": round }).to_string();
        let (status, accepted) = server
            .post("/v1/assertions", &signed_request(&device, &payload))
            .await;
        assert_eq!(status, StatusCode::OK, "{accepted}");
        assert_eq!(accepted["counter"], Value::Null);
        assert_eq!(accepted["deviceId"], answer["deviceId"]);
        // The same signed request again: its challenge is spent.
        let replay = server
            .post("/v1/assertions", &signed_request(&device, &payload))
            .await;
        assert_error(&replay, StatusCode::BAD_REQUEST, "challenge_invalid");
        next = accepted["nextChallenge"]["challenge"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    // A token through /v1/tokens, with the platform claim.
    let (status, token) = server
        .post("/v1/tokens", &signed_request(&device, &next))
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        common::claims(token["token"].as_str().unwrap())["platform"],
        "android"
    );

    // The admin API shows the key with its platform and evidence, and no counter.
    let path = format!(
        "/admin/v1/devices/{}",
        URL_SAFE_NO_PAD.encode(
            STANDARD
                .decode(android_key_id(&device))
                .expect("key id base64")
        )
    );
    let (status, key) = server.admin(Method::GET, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let key = if key.get("key").is_some() {
        &key["key"]
    } else {
        &key
    };
    assert_eq!(key["platform"], "android", "{key}");
    assert_eq!(key["counter"], Value::Null);
    assert_eq!(key["assertionCount"], 4);
    assert_eq!(key["metadata"]["anchor"], "extra");
    assert_eq!(key["metadata"]["packageNames"][0], PACKAGE);
    server.stop().await;
}

async fn android_attestations_are_refused_with_their_code_and_store_nothing(db: &Db) {
    let server = Server::start_with(android_config(db)).await;
    type Case = (&'static str, StatusCode, &'static str, fn(&mut Value, &str));
    let cases: [Case; 7] = [
        (
            "wrong package",
            StatusCode::UNPROCESSABLE_ENTITY,
            "package_mismatch",
            |body, challenge| {
                let other = chain(challenge, "dev.attestd.other", &SIGNING_DIGEST);
                *body = attestation_body(&other, challenge);
            },
        ),
        (
            "wrong signer",
            StatusCode::UNPROCESSABLE_ENTITY,
            "package_mismatch",
            |body, challenge| {
                let other = chain(challenge, PACKAGE, &[0x11; 32]);
                *body = attestation_body(&other, challenge);
            },
        ),
        (
            "other challenge",
            StatusCode::UNPROCESSABLE_ENTITY,
            "challenge_mismatch",
            |body, challenge| {
                let other = chain(&format!("{challenge}x"), PACKAGE, &SIGNING_DIGEST);
                let mut wrong = attestation_body(&other, challenge);
                wrong["challenge"] = json!(challenge);
                *body = wrong;
            },
        ),
        (
            "key id of another key",
            StatusCode::UNPROCESSABLE_ENTITY,
            "key_id_mismatch",
            |body, _| {
                body["keyId"] = json!(STANDARD.encode([7u8; 32]));
            },
        ),
        (
            "no chain",
            StatusCode::BAD_REQUEST,
            "malformed_request",
            |body, _| {
                body.as_object_mut().unwrap().remove("x5c");
            },
        ),
        (
            "empty chain",
            StatusCode::BAD_REQUEST,
            "malformed_request",
            |body, _| {
                body["x5c"] = json!([]);
            },
        ),
        (
            "a chain of garbage",
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed",
            |body, _| {
                body["x5c"] = json!(["AAAA", "AAAA"]);
            },
        ),
    ];
    for (name, status, code, change) in cases {
        let challenge = server.challenge(PACKAGE).await;
        let device = chain(&challenge, PACKAGE, &SIGNING_DIGEST);
        let mut body = attestation_body(&device, &challenge);
        change(&mut body, &challenge);
        let answer = server.post("/v1/attestations", &body).await;
        assert_eq!(answer.0, status, "{name}: {}", answer.1);
        assert_eq!(answer.1["code"], code, "{name}: {}", answer.1);
    }
    // An iOS attestation for the Android-only app, and an Android one for an iOS-only app.
    let challenge = server.challenge(APP).await;
    let device = chain(&challenge, PACKAGE, &SIGNING_DIGEST);
    let mut body = attestation_body(&device, &challenge);
    body["appId"] = json!(APP);
    assert_error(
        &server.post("/v1/attestations", &body).await,
        StatusCode::BAD_REQUEST,
        "unsupported_platform",
    );
    // Nothing was stored.
    let (status, listed) = server
        .admin(
            Method::GET,
            &format!("/admin/v1/devices?appId={PACKAGE}"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["devices"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    server.stop().await;
}

async fn signed_requests_are_refused_with_their_code(db: &Db) {
    let server = Server::start_with(android_config(db)).await;
    let (device, next) = attested(&server).await;

    // Signed by another key, or over another payload.
    let stranger = chain(&next, PACKAGE, &SIGNING_DIGEST);
    let mut forged = signed_request(&device, &next);
    forged["signature"] = json!(STANDARD.encode(stranger.sign(next.as_bytes())));
    assert_error(
        &server.post("/v1/assertions", &forged).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_invalid",
    );
    let mut swapped = signed_request(&device, &next);
    swapped["payload"] = json!(json!({ "challenge": next }).to_string());
    assert_error(
        &server.post("/v1/assertions", &swapped).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_invalid",
    );
    // The refusals did not spend the challenge: the genuine request still goes through.
    let (status, accepted) = server
        .post("/v1/assertions", &signed_request(&device, &next))
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");

    // A payload without a challenge this server issued for this key.
    let other_challenge = server.challenge(PACKAGE).await;
    assert_error(
        &server
            .post("/v1/assertions", &signed_request(&device, &other_challenge))
            .await,
        StatusCode::BAD_REQUEST,
        "challenge_invalid",
    );
    // No signature, or an App Attest assertion naming the Android key.
    let mut unsigned = signed_request(&device, &next);
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_error(
        &server.post("/v1/assertions", &unsigned).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );
    let mut as_ios = signed_request(&device, &next);
    as_ios["platform"] = json!("ios");
    as_ios["format"] = json!("apple-app-attest");
    as_ios["token"] = json!("AAAA");
    assert_error(
        &server.post("/v1/assertions", &as_ios).await,
        StatusCode::NOT_FOUND,
        "key_unknown",
    );
    server.stop().await;
}

/// A real factory chain (anchored at Google's RSA key), through the server: with no status
/// list held it fails closed; with a list that revokes its intermediate it is revoked; with a
/// list that does not, the checks go on to its challenge (captured elsewhere, not ours).
async fn a_real_chain_fails_closed_without_a_fresh_list_and_is_refused_when_revoked(db: &Db) {
    use crate::common::fake_status::{FakeStatus, Mode};
    use std::time::{Duration, Instant};

    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../tests/data/android/key_attestation/\
                 aka-blueline-sdk28-tee-ec-none-at-2026-12-02.json",
        ))
        .expect("vector"),
    )
    .expect("vector JSON");
    let package = record["package_name"].as_str().expect("package").to_owned();
    let digests: Vec<[u8; 32]> = record["signature_digests"]
        .as_array()
        .expect("digests")
        .iter()
        .map(|d| {
            let bytes = STANDARD
                .decode(d.as_str().expect("digest"))
                .expect("base64");
            <[u8; 32]>::try_from(bytes.as_slice()).expect("32 bytes")
        })
        .collect();
    let x5c: Vec<Value> = record["x5c"].as_array().expect("x5c").clone();
    let leaf = STANDARD.decode(x5c[0].as_str().unwrap()).unwrap();
    let spki = x509_parser::parse_x509_certificate(&leaf)
        .unwrap()
        .1
        .public_key()
        .raw
        .to_vec();
    let key_id = STANDARD.encode(digest(&SHA256, &spki));
    let attest = |challenge: &str| {
        json!({
            "platform": "android", "format": "android-key-attestation", "keyId": key_id,
            "challenge": challenge, "x5c": x5c, "appId": package,
        })
    };

    let fake = FakeStatus::start(Mode::Error).await;
    let mut config = common::config(db);
    config
        .apps
        .push(AppConfig::android(AndroidAppConfig::new(package.clone(), digests)).expect("app"));
    let list = &mut config.android.revocation_list;
    list.enabled = true;
    list.url = fake.url.clone();
    list.interval = Duration::from_secs(1);
    list.jitter = Duration::ZERO;
    list.failure_backoff = Duration::from_secs(1);
    list.failure_backoff_max = Duration::from_secs(1);
    let server = Server::start_with(config).await;

    // No list yet (the fake answers 500): fail closed.
    let challenge = server.challenge(&package).await;
    assert_error(
        &server.post("/v1/attestations", &attest(&challenge)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "revocation_list_stale",
    );

    // A list revoking the chain's batch intermediate.
    let serial = record["facts"]["serials_hex"][2].as_str().unwrap();
    let revoking =
        json!({ "entries": { serial: { "status": "REVOKED", "reason": "KEY_COMPROMISE" } } });
    fake.set(Mode::List {
        body: revoking.to_string().into_bytes(),
        etag: Some("\"r\"".into()),
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let challenge = server.challenge(&package).await;
        let answer = server.post("/v1/attestations", &attest(&challenge)).await;
        if answer.1["code"] != "revocation_list_stale" || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "certificate_revoked",
    );

    // A list that revokes something else: the chain passes revocation and the challenge is
    // checked (the chain was captured with another challenge).
    let other =
        json!({ "entries": { "1234abcd": { "status": "REVOKED", "reason": "KEY_COMPROMISE" } } });
    fake.set(Mode::List {
        body: other.to_string().into_bytes(),
        etag: Some("\"o\"".into()),
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let challenge = server.challenge(&package).await;
        let answer = server.post("/v1/attestations", &attest(&challenge)).await;
        if answer.1["code"] != "certificate_revoked" || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "challenge_mismatch",
    );
    server.stop().await;
}

/// An unlocked device is accepted and scored by default (`unlocked_bootloader`), and refused
/// (`verified_boot_required`) by an app that requires a verified boot on a locked device.
async fn an_unlocked_bootloader_is_scored_and_refused_where_the_app_requires_verified_boot(
    db: &Db,
) {
    use attest_sim::android::{AuthTag, RootOfTrustSpec};
    let unlocked_chain = |challenge: &str| {
        let mut description =
            KeyDescriptionSpec::new(challenge.as_bytes(), PACKAGE, &SIGNING_DIGEST);
        description.set(true, AuthTag::root_of_trust(&RootOfTrustSpec::unlocked()));
        android_ca()
            .chain(
                AndroidProvisioning::Remote,
                &description,
                OffsetDateTime::now_utc(),
            )
            .build()
    };
    let server = Server::start_with(android_config(db)).await;
    let challenge = server.challenge(PACKAGE).await;
    let device = unlocked_chain(&challenge);
    let (status, answer) = server
        .post("/v1/attestations", &attestation_body(&device, &challenge))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let factor = common::factor(&answer, "unlocked_bootloader").expect("scored");
    assert_eq!(
        factor["evidence"],
        "bootloader unlocked, verified boot state unverified"
    );
    server.stop().await;

    let mut config = android_config(db);
    for app in &mut config.apps {
        if let Some(android) = &mut app.android {
            android.require_verified_boot = true;
        }
    }
    let server = Server::start_with(config).await;
    let challenge = server.challenge(PACKAGE).await;
    let device = unlocked_chain(&challenge);
    assert_error(
        &server
            .post("/v1/attestations", &attestation_body(&device, &challenge))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verified_boot_required",
    );
    server.stop().await;
}
