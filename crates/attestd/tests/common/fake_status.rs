//! A local stand-in for `https://android.googleapis.com/attestation/status` on 127.0.0.1:0:
//! serves a list (with an ETag, answering 304 to a matching `If-None-Match`), 500s, garbage,
//! or a slow answer, as the test sets it, and records the `If-None-Match` of every request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

/// Google's test copy of the list (5 entries), from tests/data/android/revocation.
pub fn google_test_list() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/android/revocation/google-android-key-attestation-status.json"),
    )
    .expect("Google's test status list")
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 with the body and this ETag (`None`: no ETag), 304 when `If-None-Match` matches.
    List { body: Vec<u8>, etag: Option<String> },
    /// 500.
    Error,
    /// 200 with bytes that are not a status list.
    Garbage,
    /// The list, after this long.
    Slow(Duration),
}

#[derive(Debug)]
struct Shared {
    mode: Mode,
    requests: Vec<Option<String>>,
}

/// A running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeStatus {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeStatus {
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shared = Arc::new(Mutex::new(Shared {
            mode,
            requests: Vec::new(),
        }));
        let router = Router::new()
            .route("/attestation/status", get(answer))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url: format!("http://{address}/attestation/status"),
            shared,
            task,
        }
    }

    /// The list with ETag `etag`.
    pub async fn serving_list(etag: &str) -> Self {
        Self::start(Mode::List {
            body: google_test_list(),
            etag: Some(etag.to_owned()),
        })
        .await
    }

    pub fn set(&self, mode: Mode) {
        self.shared.lock().expect("fake").mode = mode;
    }

    /// The `If-None-Match` of every request so far (`None`: not sent).
    pub fn requests(&self) -> Vec<Option<String>> {
        self.shared.lock().expect("fake").requests.clone()
    }
}

impl Drop for FakeStatus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap) -> Response {
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mode = {
        let mut shared = shared.lock().expect("fake");
        shared.requests.push(if_none_match.clone());
        shared.mode.clone()
    };
    match mode {
        Mode::List { body, etag } => list(body, etag, if_none_match),
        Mode::Error => (StatusCode::INTERNAL_SERVER_ERROR, "backend error").into_response(),
        Mode::Garbage => (StatusCode::OK, "<html>captive portal</html>").into_response(),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            list(google_test_list(), None, None)
        }
    }
}

fn list(body: Vec<u8>, etag: Option<String>, if_none_match: Option<String>) -> Response {
    match etag {
        Some(etag) if if_none_match.as_deref() == Some(etag.as_str()) => {
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
        }
        Some(etag) => (
            StatusCode::OK,
            [
                (header::ETAG, etag),
                (header::CONTENT_TYPE, "application/json".to_owned()),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::OK, body).into_response(),
    }
}
