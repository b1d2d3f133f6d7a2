//! What the server answers at the HTTP level, read off a raw socket: a response sent before the
//! request's body was read (413 `body_too_large`...) says `Connection: close` and the
//! connection is then closed; requests hyper cannot parse get a JSON error with a stable code
//! (docs/api.md, "Answers before the router"); well-formed requests keep the connection alive.

use crate::common;

use std::time::Duration;

use common::raw::{self, RawResponse, closed_within, read_response};
use common::{Db, Server};
use tokio::io::AsyncWriteExt;

const GENEROUS: Duration = Duration::from_secs(30);
/// The smallest body limit the configuration accepts.
const BODY_LIMIT: usize = 1024;

async fn server() -> (Server, Db) {
    let db = Db::sqlite();
    let mut config = common::config(&db);
    config.body_limit = BODY_LIMIT;
    (Server::start_with(config).await, db)
}

fn post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: attestd.test\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[track_caller]
fn assert_json_error(response: &RawResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{response:?}"
    );
    let body = response.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["details"].is_object(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_sent_before_the_body_was_read_says_connection_close_and_closes() {
    let (server, _db) = server().await;
    let large = vec![b'x'; 64 * 1024];
    let small_unread = br#"{"appId": 1}"#.to_vec();
    for (request, status, code) in [
        // Over the limit, announced by Content-Length: refused without reading.
        (
            post("/v1/attestations", "application/json", &large),
            413,
            "body_too_large",
        ),
        // Not JSON: refused before the body is read.
        (
            post("/v1/attestations", "text/plain", &small_unread),
            415,
            "unsupported_media_type",
        ),
        // No such route, with a body.
        (
            post("/v1/nowhere", "application/json", &small_unread),
            404,
            "not_found",
        ),
    ] {
        let mut stream = raw::connect(&server.base).await;
        // The server may answer and close before the whole body is sent.
        let _ = stream.write_all(&request).await;
        let response = read_response(&mut stream, GENEROUS).await;
        assert_json_error(&response, status, code);
        assert_eq!(
            response.header("connection"),
            Some("close"),
            "{status} {code}: {response:?}"
        );
        assert!(
            closed_within(&mut stream, GENEROUS).await,
            "{status} {code}: the connection stayed open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_whose_body_was_read_keep_the_connection() {
    let (server, _db) = server().await;
    let mut stream = raw::connect(&server.base).await;
    for _ in 0..3 {
        // Read in full: a 201, then a 400 after parsing, on one connection.
        let body = format!(r#"{{"appId": "{}"}}"#, common::APP);
        stream
            .write_all(&post("/v1/challenges", "application/json", body.as_bytes()))
            .await
            .expect("send");
        let response = read_response(&mut stream, GENEROUS).await;
        assert_eq!(response.status, 201, "{response:?}");
        assert_eq!(response.header("connection"), None, "{response:?}");
        stream
            .write_all(&post("/v1/challenges", "application/json", b"{"))
            .await
            .expect("send");
        let response = read_response(&mut stream, GENEROUS).await;
        assert_json_error(&response, 400, "malformed_request");
        assert_eq!(response.header("connection"), None, "{response:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_a_json_error_and_a_closed_connection() {
    let (server, _db) = server().await;
    let long_target = format!("/{}", "a".repeat(70_000));
    let huge_header = format!("X-Large: {}\r\n", "h".repeat(500 * 1024));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "garbage request line",
            b"THIS IS NOT HTTP\r\n\r\n".to_vec(),
            400,
            "malformed_http",
        ),
        (
            "header without a colon",
            b"GET /healthz HTTP/1.1\r\nHost: attestd.test\r\nNo colon here\r\n\r\n".to_vec(),
            400,
            "malformed_http",
        ),
        (
            "invalid header name",
            b"GET /healthz HTTP/1.1\r\nHost: attestd.test\r\nBad Name: x\r\n\r\n".to_vec(),
            400,
            "malformed_http",
        ),
        (
            "unknown HTTP version",
            b"GET /healthz HTTP/9.9\r\nHost: attestd.test\r\n\r\n".to_vec(),
            400,
            "malformed_http",
        ),
        (
            "request target over 64 KiB",
            format!("GET {long_target} HTTP/1.1\r\nHost: attestd.test\r\n\r\n").into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "headers over 400 KiB",
            format!("GET /healthz HTTP/1.1\r\nHost: attestd.test\r\n{huge_header}\r\n")
                .into_bytes(),
            431,
            "headers_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        let mut stream = raw::connect(&server.base).await;
        // The server may answer and close before the whole request is sent.
        let _ = stream.write_all(&request).await;
        let response = read_response(&mut stream, GENEROUS).await;
        assert_json_error(&response, status, code);
        assert_eq!(response.header("connection"), Some("close"), "{what}");
        assert!(closed_within(&mut stream, GENEROUS).await, "{what}");
    }

    // A bad request after good ones on the same connection is answered the same way.
    let mut stream = raw::connect(&server.base).await;
    stream.write_all(&raw::get("/healthz")).await.expect("send");
    let first = read_response(&mut stream, GENEROUS).await;
    assert_eq!(first.status, 200);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: attestd.test\r\nNo colon\r\n\r\n")
        .await
        .expect("send");
    let second = read_response(&mut stream, GENEROUS).await;
    assert_json_error(&second, 400, "malformed_http");
    assert!(closed_within(&mut stream, GENEROUS).await);
}
