//! The fake's accept loop. Connections are served with hyper directly (the routes are an axum
//! `Router`) so that a scripted answer can close the connection without responding, which
//! `axum::serve` cannot do.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::handlers::{self, FakeApi, RiskOverride};
use super::{RecordedRequest, Scripted, Shared};

/// Largest request body the fake reads: a base64 receipt of
/// [`attest_core::apple::receipt::MAX_RECEIPT_LEN`] is ~88 KiB.
const MAX_REQUEST_BODY: usize = 256 * 1024;

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let router = handlers::router(Arc::clone(&shared));
    // Owned here so that aborting this task (dropping the FakeApple) ends every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    let router = router.clone();
                    let service = hyper::service::service_fn(move |request| {
                        answer(Arc::clone(&shared), router.clone(), request)
                    });
                    connections.spawn(async move {
                        // Errors are clients going away and scripted drops: nothing to report.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Records the request, applies the next scripted entry, else routes it.
async fn answer(
    shared: Arc<Shared>,
    mut router: Router,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(Body::new(body), MAX_REQUEST_BODY).await else {
        return Ok(reply(413, Vec::new(), b"Payload Too Large".to_vec()));
    };
    let path = parts.uri.path().to_owned();
    let api = FakeApi::of(&path);
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let scripted = {
        let mut state = shared.state();
        let counts = &mut state.counts;
        counts.total += 1;
        match path.as_str() {
            crate::ATTESTATION_DATA_PATH => counts.attestation_data += 1,
            crate::VALIDATE_DEVICE_TOKEN_PATH => counts.validate_device_token += 1,
            crate::QUERY_TWO_BITS_PATH => counts.query_two_bits += 1,
            crate::UPDATE_TWO_BITS_PATH => counts.update_two_bits += 1,
            _ => counts.other += 1,
        }
        state.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path,
            authorization: header(axum::http::header::AUTHORIZATION),
            content_type: header(axum::http::header::CONTENT_TYPE),
            body: body.to_vec(),
        });
        state.script.pop_front()
    };

    let mut request = Request::from_parts(parts, Body::from(body));
    match scripted {
        None => {}
        Some(Scripted::Drop) => {
            shared.state().counts.dropped += 1;
            // hyper closes the connection, without a response, when the service fails.
            return Err(std::io::Error::other("scripted: connection dropped"));
        }
        Some(Scripted::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Scripted::Status(status, retry_after)) => {
            return Ok(handlers::canned(api, status, retry_after));
        }
        Some(Scripted::Reply {
            status,
            headers,
            body,
        }) => return Ok(reply(status, headers, body)),
        Some(Scripted::RiskMetric(metric)) => {
            request.extensions_mut().insert(RiskOverride(metric));
        }
    }
    std::future::poll_fn(|cx| tower::Service::<Request<Body>>::poll_ready(&mut router, cx))
        .await
        .unwrap_or_else(|never| match never {});
    Ok(tower::Service::call(&mut router, request)
        .await
        .unwrap_or_else(|never| match never {}))
}

/// A response with exactly this status, headers (invalid ones skipped) and body.
pub(super) fn reply(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
