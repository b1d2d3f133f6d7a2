//! `/openapi.json` says what the server enforces (issue 9). schemathesis found the document
//! inexact: schema-valid requests refused (`platform` and `format` without their enums, base64
//! and length rules left out), 400 and 415 answered on every JSON route but documented on none,
//! `limit`/`offset` above their documented maximum accepted, and 503 `apple_not_configured` for
//! a setting the operator has not made. Each finding is a test here, through the real server:
//! the document is walked route by route and every documented rule is tried against what the
//! server does. The long run is `fuzz/schemathesis.sh` (docs/fuzzing.md).

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use common::{ADMIN_TOKEN, APP, Db, Server, assert_error};
use regex::Regex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    every_operation_documents_the_statuses_its_layers_answer,
    every_json_route_answers_400_413_415_as_documented,
    admin_routes_answer_401_as_documented,
    documented_patterns_are_what_the_server_decodes,
    documented_enums_are_what_the_server_accepts,
    page_bounds_outside_the_document_are_refused,
    since_is_rfc3339_or_up_to_eleven_digits,
    client_ids_are_checked_as_sent,
    a_path_segment_that_is_not_utf8_is_a_json_400,
    a_null_challenge_body_is_no_body,
    devicecheck_without_credentials_is_a_documented_409,
);

/// The routes the per-address rate limit never answers (probes and the scrape).
const RATE_EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Routes answered from memory (no database, no timeout to speak of): no 503.
const IN_MEMORY: [&str; 4] = [
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/.well-known/jwks.json",
];

async fn document(server: &Server) -> Value {
    let (status, document) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{document}");
    document
}

/// One operation of the document.
struct Operation<'a> {
    method: Method,
    path: &'a str,
    operation: &'a Value,
}

impl Operation<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn admin(&self) -> bool {
        self.operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("admin_token").is_some()))
    }

    fn has_body(&self) -> bool {
        self.operation.get("requestBody").is_some()
    }

    fn body_required(&self) -> bool {
        self.operation["requestBody"]["required"] == true
    }

    fn has_query_or_path_parameters(&self) -> bool {
        self.operation["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["in"] == "query" || p["in"] == "path"))
    }

    fn statuses(&self) -> Vec<String> {
        self.operation["responses"]
            .as_object()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The path with its parameters filled in: a well-formed key id nobody attested, the
    /// configured app.
    fn url_path(&self) -> String {
        self.path
            .replace("{keyId}", &URL_SAFE_NO_PAD.encode([9u8; 32]))
            .replace("{appId}", common::APP)
    }

    fn error_schema(&self) -> &'static str {
        if self.path.starts_with("/api/v1/") {
            "#/components/schemas/HostedErrorBody"
        } else {
            "#/components/schemas/ErrorBody"
        }
    }
}

fn operations(document: &Value) -> Vec<Operation<'_>> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let method = method.to_uppercase().parse().expect("an HTTP method");
            operations.push(Operation {
                method,
                path,
                operation,
            });
        }
    }
    assert!(operations.len() >= 20, "{} operations", operations.len());
    operations
}

/// `schema` with `$ref`s to components followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn component<'a>(document: &'a Value, name: &str) -> &'a Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "component {name} is documented");
    schema
}

fn pattern(document: &Value, name: &str) -> Regex {
    let text = component(document, name)["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has a pattern"));
    Regex::new(text).expect("the documented pattern compiles")
}

async fn every_operation_documents_the_statuses_its_layers_answer(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let scheme = &document["components"]["securitySchemes"]["admin_token"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for op in operations(&document) {
        let name = op.name();
        let statuses = op.statuses();
        let mut expected: Vec<&str> = Vec::new();
        if op.has_body() || op.has_query_or_path_parameters() {
            expected.push("400");
        }
        if op.has_body() {
            expected.push("413");
        }
        if op.body_required() {
            expected.push("415");
        }
        if op.path.starts_with("/admin/") {
            assert!(op.admin(), "{name} names the admin_token scheme");
        }
        if op.admin() {
            expected.extend(["401", "404"]);
        }
        if !RATE_EXEMPT.contains(&op.path) {
            expected.push("429");
        }
        if !IN_MEMORY.contains(&op.path) {
            expected.push("503");
        }
        for status in expected {
            assert!(
                statuses.iter().any(|s| s == status),
                "{name} documents {status} (it documents {statuses:?})"
            );
        }
        assert!(!statuses.iter().any(|s| s == "500"), "{name}: 500 is a bug");
        for status in statuses.iter().filter(|s| !s.starts_with('2')) {
            let response = &op.operation["responses"][status];
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(
                schema,
                op.error_schema(),
                "{name} {status} has the error body"
            );
        }
        let responses = &op.operation["responses"];
        if op.admin() {
            assert!(
                responses["401"]["headers"]["WWW-Authenticate"].is_object(),
                "{name} 401 documents WWW-Authenticate"
            );
        }
        if !RATE_EXEMPT.contains(&op.path) {
            assert_eq!(
                responses["429"]["headers"]["Retry-After"]["schema"]["type"], "integer",
                "{name} 429 documents Retry-After"
            );
        }
    }
    server.stop().await;
}

/// What `request` answered, with its status documented for `op`.
async fn documented_answer(
    op: &Operation<'_>,
    request: reqwest::RequestBuilder,
) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    assert!(
        op.statuses().contains(&status.as_u16().to_string()),
        "{}: {status} is not documented: {text}",
        op.name()
    );
    assert!(
        content_type.starts_with("application/json"),
        "{}: {status} answered {content_type}: {text}",
        op.name()
    );
    (status, serde_json::from_str(&text).expect("a JSON body"))
}

/// The code of an error body, in either shape (the hosted routes keep attestd's code in
/// `details.reason`).
fn code(body: &Value) -> &str {
    body["details"]["reason"]
        .as_str()
        .or(body["code"].as_str())
        .unwrap_or_default()
}

async fn every_json_route_answers_400_413_415_as_documented(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let body_operations: Vec<_> = operations(&document)
        .into_iter()
        .filter(Operation::has_body)
        .collect();
    assert!(
        body_operations.len() >= 10,
        "{} bodies",
        body_operations.len()
    );
    for op in &body_operations {
        let request = || {
            server
                .client
                .request(op.method.clone(), server.url(&op.url_path()))
                .bearer_auth(ADMIN_TOKEN)
        };
        let json = "application/json";
        let (status, body) = documented_answer(
            op,
            request()
                .header("content-type", json)
                .body("{\"unclosed\": "),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", op.name());
        assert_eq!(code(&body), "malformed_request", "{}: {body}", op.name());

        let (status, body) = documented_answer(
            op,
            request()
                .header("content-type", json)
                .body(vec![b' '; 70 * 1024]),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}: {body}",
            op.name()
        );
        assert_eq!(code(&body), "body_too_large", "{}: {body}", op.name());

        if op.body_required() {
            let (status, body) = documented_answer(
                op,
                request().header("content-type", "text/plain").body("{}"),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{}: {body}",
                op.name()
            );
            assert_eq!(
                code(&body),
                "unsupported_media_type",
                "{}: {body}",
                op.name()
            );
        }
    }
    server.stop().await;
}

async fn admin_routes_answer_401_as_documented(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    for op in operations(&document).iter().filter(|op| op.admin()) {
        for token in [None, Some("not-the-admin-token")] {
            let mut request = server
                .client
                .request(op.method.clone(), server.url(&op.url_path()));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{}", op.name());
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{}",
                op.name()
            );
            let body: Value = response.json().await.expect("JSON");
            assert_eq!(body["code"], "unauthorized", "{}: {body}", op.name());
        }
    }
    server.stop().await;
}

/// A deterministic stream of numbers (xorshift), so that the samples, and the test, are the
/// same on every run.
struct Samples(u64);

impl Samples {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Spellings of `len` random bytes in every alphabet and padding, and each edited once
    /// (a character replaced by one of base64's, padding or whitespace).
    fn base64_spellings(&mut self, lengths: &[usize]) -> Vec<String> {
        let mut texts = Vec::new();
        for &len in lengths {
            let bytes = self.bytes(len);
            for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                let text = engine.encode(&bytes);
                texts.push(text.clone());
                let mut chars: Vec<char> = text.chars().collect();
                if !chars.is_empty() {
                    let at = (self.next() as usize) % chars.len();
                    let replacements = ['+', '/', '-', '_', '=', 'B', 'A', ' ', '\n', '.'];
                    chars[at] = replacements[(self.next() as usize) % replacements.len()];
                    texts.push(chars.into_iter().collect());
                }
            }
        }
        let fixed = [
            "",
            "=",
            "A",
            "AA",
            "AA=",
            "AA==",
            "AAA",
            "AAA=",
            "AB",
            "AAB",
            "+_AA",
            "QUJD\nREVG",
            " QUJD",
            "QUJD ",
            "QUJD\r\n",
            "QUJD\t=",
        ];
        texts.extend(fixed.map(str::to_owned));
        texts
    }
}

async fn documented_patterns_are_what_the_server_decodes(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let mut samples = Samples(0x9e37_79b9_7f4a_7c15);
    let valid_key_id = URL_SAFE_NO_PAD.encode([3u8; 32]);

    // KeyId, through `POST /v1/challenges`: 201, or 400 naming `keyId`.
    let key_id = pattern(&document, "KeyId");
    for text in samples.base64_spellings(&[31, 32, 32, 32, 33]) {
        let body = json!({ "appId": common::APP, "purpose": "assertion", "keyId": text });
        let answer = server.post("/v1/challenges", &body).await;
        if key_id.is_match(&text) {
            assert_eq!(answer.0, StatusCode::CREATED, "{text:?}: {}", answer.1);
        } else {
            assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
            assert_eq!(answer.1["details"]["field"], "keyId", "{text:?}");
        }
    }

    // Base64, through `POST /v1/assertions`: 404 `key_unknown` (nobody attested the key), or
    // 400 naming `token`.
    let base64 = pattern(&document, "Base64");
    for text in samples.base64_spellings(&[0, 1, 2, 3, 4, 5, 17, 64]) {
        let body = json!({
            "platform": "ios", "format": "apple-app-attest", "keyId": valid_key_id,
            "payload": "p", "token": text,
        });
        let answer = server.post("/v1/assertions", &body).await;
        if base64.is_match(&text) {
            assert_error(&answer, StatusCode::NOT_FOUND, "key_unknown");
        } else {
            assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
            assert_eq!(answer.1["details"]["field"], "token", "{text:?}");
        }
    }

    // DeviceToken, through `POST /admin/v1/devicecheck/validate`: 409 (no Apple credentials,
    // so the token was well-formed), or 400 naming `deviceToken`.
    let device_token = pattern(&document, "DeviceToken");
    let max = component(&document, "DeviceToken")["maxLength"]
        .as_u64()
        .expect("DeviceToken has a maxLength") as usize;
    let mut texts = samples.base64_spellings(&[1, 2, 3, 40]);
    texts.extend([
        "A".repeat(max),
        format!("{}\n", "A".repeat(max)),
        "A".repeat(max + 4),
    ]);
    for text in texts {
        let answer = admin_post(
            &server,
            "/admin/v1/devicecheck/validate",
            &json!({ "deviceToken": text }),
        )
        .await;
        if device_token.is_match(&text) && text.chars().count() <= max {
            assert_error(&answer, StatusCode::CONFLICT, "apple_not_configured");
        } else {
            assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
            assert_eq!(answer.1["details"]["field"], "deviceToken", "{text:?}");
        }
    }

    // Challenge: anything not matching is 400 `challenge_invalid` like a forged one.
    let challenge = pattern(&document, "Challenge");
    let issued = server.challenge(common::APP).await;
    assert!(challenge.is_match(&issued), "{issued}");
    assert!(!challenge.is_match(&issued[1..]));
    assert!(!challenge.is_match(&format!("{issued}=")));

    // FilterText: a NUL is refused (admin_filters.rs tries every filter).
    let filter = pattern(&document, "FilterText");
    assert!(filter.is_match("any text at all, even \u{7f}"));
    assert!(!filter.is_match("a\u{0}b"));
    server.stop().await;
}

async fn admin_post(server: &Server, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

/// The enum of a component, as strings.
fn enum_values(document: &Value, name: &str) -> Vec<String> {
    component(document, name)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is an enum"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

async fn documented_enums_are_what_the_server_accepts(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let attestation = component(&document, "AttestationBody");
    assert_eq!(
        attestation["properties"]["platform"]["$ref"],
        "#/components/schemas/Platform"
    );
    assert_eq!(
        attestation["properties"]["format"]["$ref"],
        "#/components/schemas/AttestationFormat"
    );
    let device_check = component(&document, "DeviceCheckBody");
    assert_eq!(
        device_check["properties"]["format"]["$ref"],
        "#/components/schemas/DeviceCheckFormat"
    );

    let platforms = enum_values(&document, "Platform");
    let formats = enum_values(&document, "AttestationFormat");
    assert_eq!(platforms, ["ios", "android"]);
    assert_eq!(formats, ["apple-app-attest", "android-key-attestation"]);
    // Each format belongs to one platform: the pairs the server serves.
    let pairs = [
        ("ios", "apple-app-attest"),
        ("android", "android-key-attestation"),
    ];
    assert_eq!(
        enum_values(&document, "DeviceCheckFormat"),
        ["apple-devicecheck"]
    );
    let key_id = URL_SAFE_NO_PAD.encode([4u8; 32]);
    for platform in ["ios", "iOS", "android", "", "ios "] {
        for format in [
            "apple-app-attest",
            "apple-devicecheck",
            "Apple-App-Attest",
            "android-key-attestation",
        ] {
            let body = json!({
                "platform": platform, "format": format, "keyId": key_id, "payload": "p",
                "token": "", "signature": "",
            });
            let answer = server.post("/v1/assertions", &body).await;
            let documented = pairs.contains(&(platform, format));
            assert!(!documented || platforms.iter().any(|p| p == platform));
            assert!(!documented || formats.iter().any(|f| f == format));
            if documented {
                assert_error(&answer, StatusCode::NOT_FOUND, "key_unknown");
            } else {
                assert_error(&answer, StatusCode::BAD_REQUEST, "unsupported_platform");
            }
        }
    }

    // The filters' enums.
    for (path, name, field) in [
        ("/admin/v1/decisions?outcome=", "Outcome", "outcome"),
        (
            "/admin/v1/webhooks/deliveries?status=",
            "DeliveryStatus",
            "status",
        ),
    ] {
        let values = enum_values(&document, name);
        for value in values
            .iter()
            .map(String::as_str)
            .chain(["", "Deny", "none"])
        {
            let answer = server
                .admin(Method::GET, &format!("{path}{value}"), Some(ADMIN_TOKEN))
                .await;
            if values.iter().any(|v| v == value) {
                assert_eq!(answer.0, StatusCode::OK, "{path}{value}: {}", answer.1);
            } else {
                assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
                assert_eq!(answer.1["details"]["field"], field);
            }
        }
    }
    server.stop().await;
}

/// The bounds of a query parameter of `GET path`.
fn bounds(document: &Value, path: &str, name: &str) -> (Option<u64>, u64) {
    let parameters = document["paths"][path]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let schema = &parameters
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{path} has {name}"))["schema"];
    let schema = resolve(document, schema);
    (
        schema["minimum"].as_u64(),
        schema["maximum"]
            .as_u64()
            .unwrap_or_else(|| panic!("{path} {name} has a maximum: {schema}")),
    )
}

async fn page_bounds_outside_the_document_are_refused(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let app_senders = format!("/admin/v1/apps/{APP}/senders");
    for (documented, path) in [
        ("/admin/v1/devices", "/admin/v1/devices"),
        ("/admin/v1/decisions", "/admin/v1/decisions"),
        (
            "/admin/v1/webhooks/deliveries",
            "/admin/v1/webhooks/deliveries",
        ),
        ("/admin/v1/apps/{appId}/senders", app_senders.as_str()),
        // schemathesis: `limit=0` was accepted here, as the route ignored `limit`.
        ("/admin/v1/senders/{address}", "/admin/v1/senders/127.0.0.1"),
    ] {
        let (minimum, maximum) = bounds(&document, documented, "limit");
        assert_eq!((minimum, maximum), (Some(1), 1000), "{path}");
        // Inside: 200. Outside (schemathesis sent limit=2147483648; 0 was quietly 1): 400.
        for (limit, ok) in [
            (1, true),
            (maximum, true),
            (0, false),
            (maximum + 1, false),
            (2_147_483_648, false),
            (u64::from(u32::MAX) + 1, false),
        ] {
            let answer = server
                .admin(
                    Method::GET,
                    &format!("{path}?limit={limit}"),
                    Some(ADMIN_TOKEN),
                )
                .await;
            if ok {
                assert_eq!(
                    answer.0,
                    StatusCode::OK,
                    "{path}?limit={limit}: {}",
                    answer.1
                );
            } else {
                assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
            }
        }
    }
    // `offset`: schemathesis sent 2^63, which was echoed back as accepted.
    let (_, maximum) = bounds(&document, "/admin/v1/devices", "offset");
    assert_eq!(maximum, i64::MAX as u64);
    let answer = server
        .admin_get(&format!("/admin/v1/devices?offset={maximum}"))
        .await;
    assert_eq!(answer["devices"], json!([]));
    let answer = server
        .admin(
            Method::GET,
            &format!("/admin/v1/devices?offset={}", maximum + 1),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(answer.1["details"]["field"], "offset");
    server.stop().await;
}

async fn since_is_rfc3339_or_up_to_eleven_digits(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let since = component(&document, "Since");
    let digits = since["anyOf"]
        .as_array()
        .and_then(|any| any.iter().find_map(|s| s["pattern"].as_str()))
        .expect("Since has a digits pattern");
    assert_eq!(digits, "^[0-9]{1,11}$");
    assert!(
        since["anyOf"]
            .as_array()
            .is_some_and(|any| any.iter().any(|s| s["format"] == "date-time"))
    );
    for (text, ok) in [
        ("0", true),
        ("1800000000", true),
        ("99999999999", true),
        ("2026-11-23T17:00:00Z", true),
        ("2026-11-23T17:00:00.5+01:00", true),
        ("999999999999", false),
        (" 1800000000", false),
        ("1800000000 ", false),
        ("-1", false),
        ("+5", false),
        ("", false),
        ("yesterday", false),
    ] {
        for path in ["/admin/v1/decisions", "/admin/v1/apps/{appId}/summary"] {
            let path = path.replace("{appId}", common::APP);
            let response = server
                .client
                .get(server.url(&format!("{path}?since={}", percent_encoded(text))))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            if ok {
                assert_eq!(status, StatusCode::OK, "{path} since={text:?}: {body}");
            } else {
                assert_error(
                    &(status, body.clone()),
                    StatusCode::BAD_REQUEST,
                    "malformed_request",
                );
                assert_eq!(body["details"]["field"], "since", "{text:?}");
            }
        }
    }
    server.stop().await;
}

/// `text` percent-encoded for a query (every byte but the unreserved ones).
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn client_ids_are_checked_as_sent(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let client_id = pattern(&document, "ClientId");
    let max = component(&document, "ClientId")["maxLength"]
        .as_u64()
        .expect("ClientId has a maxLength") as usize;
    let body = |user_id: &str| {
        json!({
            "platform": "ios", "format": "apple-app-attest", "appId": common::APP,
            "keyId": URL_SAFE_NO_PAD.encode([5u8; 32]), "challenge": "A".repeat(56),
            "token": "", "userId": user_id,
        })
    };
    let texts = [
        "alice".to_owned(),
        " alice ".to_owned(),
        "alice\n".to_owned(),
        "\talice".to_owned(),
        "a\u{85}b".to_owned(),
        "é".repeat(max),
        "x".repeat(max),
        format!(" {}", "x".repeat(max)),
        "x".repeat(max + 1),
        "   ".to_owned(),
        String::new(),
    ];
    for text in texts {
        let answer = server.post("/v1/attestations", &body(&text)).await;
        if client_id.is_match(&text) && text.chars().count() <= max {
            // Past the id: the forged challenge is what is refused.
            assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");
        } else {
            assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
            assert_eq!(answer.1["details"]["field"], "userId", "{text:?}");
        }
    }
    server.stop().await;
}

async fn a_path_segment_that_is_not_utf8_is_a_json_400(db: &Db) {
    let server = Server::start(db).await;
    for path in [
        "/admin/v1/devices/%FF",
        "/admin/v1/devices/%C3%28/revoke",
        "/admin/v1/devices/%FF/receipt-refresh",
        "/admin/v1/apps/%FF/summary",
    ] {
        let method = if path.ends_with("/revoke") {
            Method::POST
        } else {
            Method::GET
        };
        let answer = server.admin(method, path, Some(ADMIN_TOKEN)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    }
    server.stop().await;
}

async fn a_null_challenge_body_is_no_body(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    let schema = &document["paths"]["/v1/challenges"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert!(
        schema["oneOf"]
            .as_array()
            .is_some_and(|any| any.iter().any(|s| s["type"] == "null")),
        "{schema}"
    );
    // A single configured app would be the default; name one of the two.
    let answer = server
        .client
        .post(server.url("/v1/challenges"))
        .header("content-type", "application/json")
        .header("x-app-id", common::APP)
        .body("null")
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), StatusCode::CREATED);
    server.stop().await;
}

async fn devicecheck_without_credentials_is_a_documented_409(db: &Db) {
    let server = Server::start(db).await;
    let document = document(&server).await;
    for route in ["validate", "query", "update"] {
        let path = format!("/admin/v1/devicecheck/{route}");
        let responses = &document["paths"][&path]["post"]["responses"];
        let conflict = responses["409"]["description"].as_str().unwrap_or_default();
        assert!(
            conflict.contains("apple_not_configured"),
            "{path}: {responses}"
        );
        let unavailable = responses["503"]["description"].as_str().unwrap_or_default();
        assert!(
            !unavailable.contains("apple_not_configured"),
            "{path}: {unavailable}"
        );
        let body = json!({ "deviceToken": "QUJD", "bit0": true, "bit1": false });
        let body = if route == "update" {
            body
        } else {
            json!({ "deviceToken": "QUJD" })
        };
        let answer = admin_post(&server, &path, &body).await;
        assert_error(&answer, StatusCode::CONFLICT, "apple_not_configured");
    }
    server.stop().await;
}
