//! SafetyNet (legacy): every real record in `tests/data/android/safetynet` gives exactly its
//! expected result at its own `verify_at` against the pinned GlobalSign roots; then every check
//! is broken one at a time on tokens signed by a test CA (configured in place of GlobalSign's).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::ValidityFailure;
use attest_core::android::safetynet::{
    EvaluationType, MAX_JWS_LEN, SafetyNetAnchor, SafetyNetChainFailure, SafetyNetError,
    SafetyNetRequest, SafetyNetVerifier, Sha256Digest, VerifiedSafetyNet,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SigningKey,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

// ---------------------------------------------------------------------------------------------
// Real vectors
// ---------------------------------------------------------------------------------------------

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/android/safetynet")
}

fn records() -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn at(when: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(when.unix_timestamp() as u64))
}

fn time_of(value: &Value) -> UnixTime {
    at(OffsetDateTime::parse(
        value.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap())
}

/// The vector set's failure names, as attestd's stable codes.
fn code_for(failure: &str) -> &'static str {
    match failure {
        "format" => "malformed",
        "signature" => "signature_invalid",
        "chain" => "certificate_chain_invalid",
        "hostname" => "hostname_mismatch",
        "expired" => "certificate_expired",
        "nonce" => "nonce_mismatch",
        "package" => "package_mismatch",
        other => panic!("unknown failure name {other}"),
    }
}

/// The nonce a record expects. Two records (webauthn4j 2018, Yubico 2019) come without the
/// clientDataJSON their nonce derives from: for them the payload's own nonce is taken, which
/// only exercises the comparison, as the vector set's `nonce_note` says.
fn expected_nonce(record: &Value) -> String {
    record["expected_nonce"]
        .as_str()
        .or_else(|| record["facts"]["payload"]["nonce"].as_str())
        .unwrap()
        .to_owned()
}

fn verify_record(record: &Value) -> Result<VerifiedSafetyNet, SafetyNetError> {
    let nonce = expected_nonce(record);
    let request = SafetyNetRequest {
        nonce: &nonce,
        package_name: record["package_name"].as_str(),
        time: time_of(&record["verify_at"]),
    };
    SafetyNetVerifier::google().verify(record["jws"].as_str().unwrap().as_bytes(), &request)
}

#[test]
fn every_record_gives_exactly_its_expected_result() {
    let records = records();
    assert_eq!(records.len(), 9, "all nine SafetyNet records are copied");
    for record in &records {
        let id = record["id"].as_str().unwrap();
        let result = verify_record(record);
        let expect = &record["expect"];
        if expect["valid"].as_bool().unwrap() {
            let verified = result.unwrap_or_else(|e| panic!("{id}: expected valid, got {e:?}"));
            assert!(!verified.hardware_backed(), "{id}");
            assert!(verified.package_checked(), "{id}");
        } else {
            let code = code_for(expect["failure"].as_str().unwrap());
            match result {
                Ok(_) => panic!("{id}: expected {code}, got valid"),
                Err(e) => assert_eq!(e.code(), code, "{id}: {e}"),
            }
        }
    }
}

#[test]
fn valid_records_expose_the_payload_facts_the_checker_read() {
    for record in records().iter().filter(|r| r["expect"]["valid"] == true) {
        let id = record["id"].as_str().unwrap();
        let verified = verify_record(record).unwrap();
        let facts = &record["facts"]["payload"];
        let payload = verified.payload();
        assert_eq!(payload.nonce, facts["nonce"].as_str().unwrap(), "{id}");
        assert_eq!(
            Some(payload.timestamp_ms),
            facts["timestampMs"].as_u64(),
            "{id}"
        );
        assert_eq!(
            payload.apk_package_name.as_deref(),
            facts["apkPackageName"].as_str(),
            "{id}"
        );
        let digest =
            |v: &Value| Sha256Digest(B64.decode(v.as_str().unwrap()).unwrap().try_into().unwrap());
        assert_eq!(
            payload.apk_digest_sha256,
            Some(digest(&facts["apkDigestSha256"])),
            "{id}"
        );
        let certs: Vec<_> = facts["apkCertificateDigestSha256"]
            .as_array()
            .unwrap()
            .iter()
            .map(digest)
            .collect();
        assert_eq!(payload.apk_certificate_digest_sha256, certs, "{id}");
        assert_eq!(
            Some(payload.cts_profile_match),
            facts["ctsProfileMatch"].as_bool()
        );
        assert_eq!(
            Some(payload.basic_integrity),
            facts["basicIntegrity"].as_bool()
        );
        assert_eq!(
            verified.meets_integrity(),
            record.get("expect_if_integrity_required").is_none(),
            "{id}: meets_integrity matches expect_if_integrity_required"
        );
        let evaluation: Vec<&str> = payload
            .evaluation_type
            .iter()
            .map(EvaluationType::as_str)
            .collect();
        let expected_evaluation: Vec<&str> = facts["evaluationType"]
            .as_str()
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        assert_eq!(evaluation, expected_evaluation, "{id}");
        let advice: Vec<&str> = facts["advice"]
            .as_str()
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        assert_eq!(payload.advice, advice, "{id}");
        let anchor = match record["facts"]["anchor"].as_str().unwrap() {
            "GlobalSign_Root_CA.pem" => SafetyNetAnchor::GlobalSignRootCa,
            "GlobalSign_Root_CA_R2.pem" => SafetyNetAnchor::GlobalSignRootCaR2,
            other => panic!("{id}: unknown anchor {other}"),
        };
        assert_eq!(verified.anchor(), anchor, "{id}");
    }
}

#[test]
fn the_r2_era_records_fail_after_globalsign_r2_expired() {
    // GlobalSign Root CA - R2 and its GTS CA 1O1 expired on 2021-12-15: a captured response of
    // that era only verifies at a time before (the vectors' `verify_at`), never "now".
    let record = records()
        .into_iter()
        .find(|r| r["id"] == "pyattest-safetynet-2021")
        .unwrap();
    let nonce = expected_nonce(&record);
    let request = SafetyNetRequest {
        nonce: &nonce,
        package_name: None,
        time: at(datetime!(2021-12-16 00:00 UTC)),
    };
    let result =
        SafetyNetVerifier::google().verify(record["jws"].as_str().unwrap().as_bytes(), &request);
    assert_eq!(
        result.unwrap_err(),
        SafetyNetError::CertificateExpired(ValidityFailure::Expired)
    );
}

#[test]
fn a_record_without_the_package_check_says_so() {
    let record = records()
        .into_iter()
        .find(|r| r["id"] == "pywebauthn-safetynet-2021")
        .unwrap();
    let nonce = expected_nonce(&record);
    let request = SafetyNetRequest {
        nonce: &nonce,
        package_name: None,
        time: time_of(&record["verify_at"]),
    };
    let verified = SafetyNetVerifier::google()
        .verify(record["jws"].as_str().unwrap().as_bytes(), &request)
        .unwrap();
    assert!(!verified.package_checked());
}

// ---------------------------------------------------------------------------------------------
// Simulator-built negatives: a test CA plays GlobalSign, its leaf plays attest.android.com.
// ---------------------------------------------------------------------------------------------

const NOW: OffsetDateTime = datetime!(2021-06-01 12:00 UTC);
const NONCE: &str = "c2VydmVyIG5vbmNlIDAxMjM0NTY3ODk=";
const PACKAGE: &str = "com.example.app";

struct Keys {
    root: KeyPair,
    intermediate: KeyPair,
    leaf: KeyPair,
    other: KeyPair,
}

/// RSA key generation is slow: four keys, made once for every test.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = || KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
        Keys {
            root: rsa(),
            intermediate: rsa(),
            leaf: rsa(),
            other: rsa(),
        }
    })
}

fn ca_params(name: &str, from: OffsetDateTime, to: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = from;
    params.not_after = to;
    params
}

/// How the leaf certificate is made.
#[derive(Clone)]
struct LeafSpec {
    san: Vec<String>,
    cn: &'static str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Default for LeafSpec {
    fn default() -> Self {
        Self {
            san: vec!["attest.android.com".into()],
            cn: "attest.android.com",
            not_before: datetime!(2021-01-01 0:00 UTC),
            not_after: datetime!(2021-12-31 0:00 UTC),
        }
    }
}

/// A test PKI: root -> intermediate -> leaf, all RSA-2048.
struct Pki {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    intermediate: Issuer<'static, &'static KeyPair>,
}

impl Pki {
    fn new(root_key: &'static KeyPair, root_validity: (OffsetDateTime, OffsetDateTime)) -> Self {
        let keys = keys();
        let root_params = ca_params("Test SafetyNet Root", root_validity.0, root_validity.1);
        let root_der = root_params.self_signed(root_key).unwrap().der().to_vec();
        let root = Issuer::new(root_params, root_key);
        let mut params = ca_params(
            "Test SafetyNet CA",
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2029-01-01 0:00 UTC),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let intermediate_der = params
            .signed_by(&keys.intermediate, &root)
            .unwrap()
            .der()
            .to_vec();
        Self {
            root_der,
            intermediate_der,
            intermediate: Issuer::new(params, &keys.intermediate),
        }
    }

    fn standard() -> &'static Self {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| {
            Pki::new(
                &keys().root,
                (
                    datetime!(2020-01-01 0:00 UTC),
                    datetime!(2030-01-01 0:00 UTC),
                ),
            )
        })
    }

    fn verifier(&self) -> SafetyNetVerifier {
        SafetyNetVerifier::with_roots(vec![self.root_der.clone()]).unwrap()
    }

    fn leaf(&self, spec: &LeafSpec, key: &KeyPair) -> Vec<u8> {
        let mut params = CertificateParams::new(spec.san.clone()).unwrap();
        params.distinguished_name.push(DnType::CommonName, spec.cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params
            .signed_by(key, &self.intermediate)
            .unwrap()
            .der()
            .to_vec()
    }
}

fn payload() -> Value {
    json!({
        "nonce": NONCE,
        "timestampMs": 1_622_548_800_000_u64,
        "apkPackageName": PACKAGE,
        "apkDigestSha256": B64.encode([7u8; 32]),
        "apkCertificateDigestSha256": [B64.encode([9u8; 32])],
        "ctsProfileMatch": true,
        "basicIntegrity": true,
        "evaluationType": "BASIC,HARDWARE_BACKED",
        "deprecationInformation": "SafetyNet is deprecated",
    })
}

/// A token: header (with x5c) + payload, signed by `signer`.
struct Token {
    header: Value,
    payload: Value,
}

impl Token {
    fn new(x5c: &[&[u8]]) -> Self {
        let x5c: Vec<String> = x5c.iter().map(|der| B64.encode(der)).collect();
        Self {
            header: json!({"alg": "RS256", "x5c": x5c}),
            payload: payload(),
        }
    }

    fn standard() -> Self {
        let pki = Pki::standard();
        let leaf = pki.leaf(&LeafSpec::default(), &keys().leaf);
        Self::new(&[&leaf, &pki.intermediate_der])
    }

    fn sign(&self, signer: &impl SigningKey) -> String {
        let input = format!(
            "{}.{}",
            B64URL.encode(self.header.to_string()),
            B64URL.encode(self.payload.to_string())
        );
        let signature = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", B64URL.encode(signature))
    }

    fn signed(&self) -> String {
        self.sign(&keys().leaf)
    }
}

fn request(time: OffsetDateTime) -> SafetyNetRequest<'static> {
    SafetyNetRequest {
        nonce: NONCE,
        package_name: Some(PACKAGE),
        time: at(time),
    }
}

fn verify(jws: &str) -> Result<VerifiedSafetyNet, SafetyNetError> {
    Pki::standard()
        .verifier()
        .verify(jws.as_bytes(), &request(NOW))
}

#[test]
fn accepts_a_simulated_response_and_reads_its_facts() {
    let verified = verify(&Token::standard().signed()).unwrap();
    assert_eq!(verified.anchor(), SafetyNetAnchor::Caller);
    assert!(verified.package_checked());
    assert!(verified.meets_integrity());
    let payload = verified.payload();
    assert_eq!(payload.apk_digest_sha256, Some(Sha256Digest([7; 32])));
    assert_eq!(
        payload.apk_certificate_digest_sha256,
        [Sha256Digest([9; 32])]
    );
    assert_eq!(
        payload.evaluation_type,
        [EvaluationType::Basic, EvaluationType::HardwareBacked]
    );
    assert_eq!(
        payload.deprecation_information.as_deref(),
        Some("SafetyNet is deprecated")
    );
}

#[test]
fn never_claims_hardware_backing_even_for_a_hardware_backed_evaluation() {
    let verified = verify(&Token::standard().signed()).unwrap();
    assert!(
        verified
            .payload()
            .evaluation_type
            .contains(&EvaluationType::HardwareBacked)
    );
    assert!(!verified.hardware_backed());
}

#[test]
fn rejects_algorithms_other_than_rs256() {
    for alg in ["ES256", "RS384", "PS256", "HS256", "none", "rs256"] {
        let mut token = Token::standard();
        token.header["alg"] = json!(alg);
        assert_eq!(
            verify(&token.signed()).unwrap_err(),
            SafetyNetError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
}

#[test]
fn rejects_a_response_whose_signature_does_not_verify() {
    let token = Token::standard();
    // Signed by another key than the leaf's.
    assert_eq!(
        verify(&token.sign(&keys().other)).unwrap_err(),
        SafetyNetError::SignatureInvalid
    );
    // One signature byte changed.
    let good = token.signed();
    let (input, signature) = good.rsplit_once('.').unwrap();
    let mut bytes = B64URL.decode(signature).unwrap();
    bytes[10] ^= 1;
    let tampered = format!("{input}.{}", B64URL.encode(bytes));
    assert_eq!(
        verify(&tampered).unwrap_err(),
        SafetyNetError::SignatureInvalid
    );
    // The payload changed after signing.
    let (_, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut other = Token::standard();
    other.payload["nonce"] = json!("b3RoZXI=");
    let swapped = format!(
        "{}.{}.{signature}",
        B64URL.encode(other.header.to_string()),
        B64URL.encode(other.payload.to_string())
    );
    assert_eq!(
        verify(&swapped).unwrap_err(),
        SafetyNetError::SignatureInvalid
    );
}

#[test]
fn rejects_a_leaf_whose_key_is_not_rsa() {
    let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let pki = Pki::standard();
    let leaf = pki.leaf(&LeafSpec::default(), &ec);
    let token = Token::new(&[&leaf, &pki.intermediate_der]);
    assert_eq!(
        verify(&token.sign(&ec)).unwrap_err(),
        SafetyNetError::SignatureInvalid
    );
}

#[test]
fn rejects_a_chain_to_an_untrusted_root() {
    // The same chain, verified against GlobalSign's roots instead of the test root.
    let jws = Token::standard().signed();
    assert_eq!(
        SafetyNetVerifier::google()
            .verify(jws.as_bytes(), &request(NOW))
            .unwrap_err(),
        SafetyNetError::CertificateChainInvalid(SafetyNetChainFailure::UnknownIssuer)
    );
    // The intermediate left out.
    let pki = Pki::standard();
    let leaf = pki.leaf(&LeafSpec::default(), &keys().leaf);
    assert_eq!(
        verify(&Token::new(&[&leaf]).signed()).unwrap_err(),
        SafetyNetError::CertificateChainInvalid(SafetyNetChainFailure::UnknownIssuer)
    );
}

#[test]
fn an_expired_leaf_under_an_untrusted_root_is_a_chain_failure() {
    let spec = LeafSpec {
        not_after: datetime!(2021-03-01 0:00 UTC),
        ..LeafSpec::default()
    };
    let pki = Pki::standard();
    let leaf = pki.leaf(&spec, &keys().leaf);
    let jws = Token::new(&[&leaf, &pki.intermediate_der]).signed();
    assert_eq!(
        SafetyNetVerifier::google()
            .verify(jws.as_bytes(), &request(NOW))
            .unwrap_err()
            .code(),
        "certificate_chain_invalid"
    );
}

#[test]
fn rejects_a_leaf_for_another_hostname() {
    let pki = Pki::standard();
    for spec in [
        LeafSpec {
            san: vec!["attest.android.com.evil.example".into()],
            ..LeafSpec::default()
        },
        // A SAN dNSName is present, so the CN does not count.
        LeafSpec {
            san: vec!["other.example".into()],
            cn: "attest.android.com",
            ..LeafSpec::default()
        },
        LeafSpec {
            san: Vec::new(),
            cn: "android.com",
            ..LeafSpec::default()
        },
    ] {
        let leaf = pki.leaf(&spec, &keys().leaf);
        let jws = Token::new(&[&leaf, &pki.intermediate_der]).signed();
        assert_eq!(
            verify(&jws).unwrap_err(),
            SafetyNetError::HostnameMismatch,
            "{:?} / {}",
            spec.san,
            spec.cn
        );
    }
}

#[test]
fn accepts_the_hostname_in_the_common_name_when_there_is_no_san() {
    let pki = Pki::standard();
    let spec = LeafSpec {
        san: Vec::new(),
        cn: "attest.android.com",
        ..LeafSpec::default()
    };
    let leaf = pki.leaf(&spec, &keys().leaf);
    let jws = Token::new(&[&leaf, &pki.intermediate_der]).signed();
    assert!(verify(&jws).is_ok());
}

#[test]
fn rejects_an_expired_or_not_yet_valid_leaf() {
    let pki = Pki::standard();
    let leaf = pki.leaf(&LeafSpec::default(), &keys().leaf);
    let jws = Token::new(&[&leaf, &pki.intermediate_der]).signed();
    let verifier = pki.verifier();
    for (when, failure) in [
        (datetime!(2022-01-01 0:00 UTC), ValidityFailure::Expired),
        (datetime!(2020-12-01 0:00 UTC), ValidityFailure::NotYetValid),
    ] {
        assert_eq!(
            verifier.verify(jws.as_bytes(), &request(when)).unwrap_err(),
            SafetyNetError::CertificateExpired(failure),
            "{when}"
        );
    }
}

#[test]
fn rejects_a_chain_whose_root_has_expired() {
    // The root's own validity ends before the verification time; webpki does not look at an
    // anchor's dates, the verifier does.
    let pki = Pki::new(
        &keys().root,
        (
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2021-03-01 0:00 UTC),
        ),
    );
    let leaf = pki.leaf(&LeafSpec::default(), &keys().leaf);
    let jws = Token::new(&[&leaf, &pki.intermediate_der]).signed();
    assert_eq!(
        pki.verifier()
            .verify(jws.as_bytes(), &request(NOW))
            .unwrap_err(),
        SafetyNetError::CertificateExpired(ValidityFailure::Expired)
    );
}

#[test]
fn a_wrong_hostname_is_reported_before_expiry() {
    let pki = Pki::standard();
    let spec = LeafSpec {
        san: vec!["other.example".into()],
        not_after: datetime!(2021-03-01 0:00 UTC),
        ..LeafSpec::default()
    };
    let leaf = pki.leaf(&spec, &keys().leaf);
    let jws = Token::new(&[&leaf, &pki.intermediate_der]).signed();
    assert_eq!(verify(&jws).unwrap_err(), SafetyNetError::HostnameMismatch);
}

#[test]
fn rejects_a_response_for_another_nonce() {
    let verifier = Pki::standard().verifier();
    let jws = Token::standard().signed();
    // Another nonce, the same nonce unpadded, and in the URL-safe alphabet: compared exactly.
    for nonce in [
        "b3RoZXIgbm9uY2U=",
        "c2VydmVyIG5vbmNlIDAxMjM0NTY3ODk",
        "c2VydmVyIG5vbmNlIDAxMjM0NTY3ODk=",
    ] {
        let mut request = request(NOW);
        request.nonce = nonce;
        let result = verifier.verify(jws.as_bytes(), &request);
        if nonce == NONCE {
            assert!(result.is_ok());
        } else {
            assert_eq!(
                result.unwrap_err(),
                SafetyNetError::NonceMismatch,
                "{nonce}"
            );
        }
    }
    let mut request = request(NOW);
    request.nonce = "";
    assert_eq!(
        verifier
            .verify(jws.as_bytes(), &request)
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
}

#[test]
fn rejects_a_response_for_another_package() {
    let verifier = Pki::standard().verifier();
    let jws = Token::standard().signed();
    let mut other = request(NOW);
    other.package_name = Some("com.example.other");
    assert_eq!(
        verifier.verify(jws.as_bytes(), &other).unwrap_err(),
        SafetyNetError::PackageMismatch
    );
    // No apkPackageName in the payload while one is expected.
    let mut token = Token::standard();
    token
        .payload
        .as_object_mut()
        .unwrap()
        .remove("apkPackageName");
    let jws = token.signed();
    assert_eq!(
        verifier.verify(jws.as_bytes(), &request(NOW)).unwrap_err(),
        SafetyNetError::PackageMismatch
    );
    // Without an expected package the check is skipped, and the result says so.
    let mut skip = request(NOW);
    skip.package_name = None;
    let verified = verifier.verify(jws.as_bytes(), &skip).unwrap();
    assert!(!verified.package_checked());
    assert_eq!(verified.payload().apk_package_name, None);
}

#[test]
fn rejects_truncated_responses_without_panicking() {
    let jws = Token::standard().signed();
    let header_len = jws.find('.').unwrap();
    for cut in 0..jws.len() {
        let result = verify(&jws[..cut]);
        let error = result.expect_err("a truncated token verified");
        if cut <= header_len + 1 {
            assert_eq!(error.code(), "malformed", "cut at {cut}");
        }
    }
}

#[test]
fn rejects_garbage_and_malformed_parts() {
    let pki = Pki::standard();
    let leaf = pki.leaf(&LeafSpec::default(), &keys().leaf);
    let sign = |header: Value, payload: Value| Token { header, payload }.signed();
    let x5c = json!([B64.encode(&leaf), B64.encode(&pki.intermediate_der)]);
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("garbage", "\u{1}\u{2}garbage".into()),
        ("three dots", "...".into()),
        ("two parts", "eyJhbGciOiJSUzI1NiJ9.e30".into()),
        ("four parts", format!("{}.x", Token::standard().signed())),
        ("header not base64url", "!!!.e30.AAAA".into()),
        (
            "header padded",
            format!("{}=.e30.AAAA", B64URL.encode(r#"{"alg":"RS256"}"#)),
        ),
        (
            "header not JSON",
            format!("{}.e30.AAAA", B64URL.encode("alg=RS256")),
        ),
        (
            "header without x5c",
            sign(json!({"alg": "RS256"}), payload()),
        ),
        (
            "x5c not an array",
            sign(json!({"alg": "RS256", "x5c": "abc"}), payload()),
        ),
        (
            "x5c empty",
            sign(json!({"alg": "RS256", "x5c": []}), payload()),
        ),
        (
            "x5c not base64",
            sign(json!({"alg": "RS256", "x5c": ["%%%"]}), payload()),
        ),
        (
            "x5c not a certificate",
            sign(json!({"alg": "RS256", "x5c": ["AAEC"]}), payload()),
        ),
        (
            "x5c too long",
            sign(
                json!({"alg": "RS256", "x5c": vec![B64.encode(&leaf); 9]}),
                payload(),
            ),
        ),
        (
            "critical header",
            sign(
                json!({"alg": "RS256", "x5c": x5c, "crit": ["exp"]}),
                payload(),
            ),
        ),
        (
            "alg given twice",
            format!(
                "{}.{}.AAAA",
                B64URL.encode(format!(r#"{{"alg":"RS256","alg":"RS256","x5c":{x5c}}}"#)),
                B64URL.encode(payload().to_string())
            ),
        ),
        ("payload not JSON", {
            let input = format!(
                "{}.{}",
                B64URL.encode(json!({"alg": "RS256", "x5c": x5c}).to_string()),
                B64URL.encode("not json")
            );
            let signature = keys().leaf.sign(input.as_bytes()).unwrap();
            format!("{input}.{}", B64URL.encode(signature))
        }),
        ("payload without nonce", {
            let mut p = payload();
            p.as_object_mut().unwrap().remove("nonce");
            sign(json!({"alg": "RS256", "x5c": x5c}), p)
        }),
        ("payload with a string timestamp", {
            let mut p = payload();
            p["timestampMs"] = json!("1622548800000");
            sign(json!({"alg": "RS256", "x5c": x5c}), p)
        }),
        ("payload with a bad digest", {
            let mut p = payload();
            p["apkDigestSha256"] = json!(B64.encode([1u8; 20]));
            sign(json!({"alg": "RS256", "x5c": x5c}), p)
        }),
        ("signature not base64url", {
            let good = Token::standard().signed();
            format!("{}.***", good.rsplit_once('.').unwrap().0)
        }),
        ("too large", "a".repeat(MAX_JWS_LEN + 1)),
    ];
    for (name, jws) in cases {
        assert_eq!(
            verify(&jws).map(|_| ()).unwrap_err().code(),
            "malformed",
            "{name}"
        );
    }
}

#[test]
fn a_root_that_is_not_a_certificate_is_an_invalid_argument() {
    assert_eq!(
        SafetyNetVerifier::with_roots(vec![vec![1, 2, 3]])
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
}
