//! Plumbing shared by both clients: the HTTP client, bounded answers, status classification and
//! `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::error::Error;

/// The largest answer body read from Apple, in bytes. The biggest documented answer is a new
/// receipt: at most [`attest_core::apple::receipt::MAX_RECEIPT_LEN`] (64 KiB) once decoded, so
/// about 88 KiB as base64; 128 KiB leaves room for line breaks and keeps a misbehaving peer
/// from making us buffer more.
pub const MAX_ANSWER_LEN: usize = 128 * 1024;

/// How the token is put in the `Authorization` header.
///
/// DeviceCheck always takes `Bearer <jwt>`. For the receipt API Apple's documentation (and its
/// curl example) shows the bare token, `Authorization: <jwt>`, while some public clients send
/// `Bearer <jwt>`; [`Raw`](Self::Raw) follows the documentation and is the receipt client's
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizationScheme {
    /// `Authorization: <jwt>`.
    Raw,
    /// `Authorization: Bearer <jwt>`.
    Bearer,
}

impl AuthorizationScheme {
    /// The header value for `jwt`.
    pub fn header_value(self, jwt: &str) -> String {
        match self {
            Self::Raw => jwt.to_owned(),
            Self::Bearer => format!("Bearer {jwt}"),
        }
    }
}

/// Timeouts and proxy use of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Whole request, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// TCP + TLS connection set-up.
    pub connect_timeout: Duration,
    /// Honour `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` from the environment.
    pub use_env_proxy: bool,
}

impl Default for HttpOptions {
    /// 10 s per request, 5 s to connect, environment proxies honoured.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            use_env_proxy: true,
        }
    }
}

pub(crate) fn build_client(options: &HttpOptions) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .user_agent(concat!("attestd/", env!("CARGO_PKG_VERSION")));
    if !options.use_env_proxy {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|_| Error::InvalidConfiguration("the HTTP client (TLS set-up) failed to build"))
}

/// `base` without trailing slashes, checked to be an http(s) URL.
pub(crate) fn normalize_base_url(base: &str) -> Result<String, Error> {
    let trimmed = base.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|_| Error::InvalidConfiguration("base URL is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(Error::InvalidConfiguration(
            "base URL must be http(s)://host[:port]",
        ));
    }
    Ok(trimmed.to_owned())
}

/// An answer read in full (up to [`MAX_ANSWER_LEN`]).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text, for matching Apple's error texts (lossy: they are ASCII).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` and reads the whole answer.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Error> {
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len().saturating_add(chunk.len()) > MAX_ANSWER_LEN {
            return Err(Error::MalformedResponse("answer larger than 128 KiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// A transport failure as [`Error::Transport`]: what kind, then the cause chain.
pub(crate) fn transport(error: reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "answer interrupted"
    } else {
        "request failed"
    };
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::Transport(format!("{kind} ({detail})"))
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to
/// `now`. A date in the past means "now" (zero). Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is not a delay anyone means; treat as unreadable.
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Which API an answer came from (their 400 and 404 texts differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Receipt,
    DeviceCheck,
}

/// The error for a non-success answer.
pub(crate) fn error_for(api: Api, answer: &Answer) -> Error {
    let error = match (answer.status, api) {
        (400, Api::Receipt) => receipt_bad_request(&answer.text()),
        (400, Api::DeviceCheck) => device_check_bad_request(&answer.text()),
        (401, _) => Error::Unauthorized,
        (404, Api::Receipt) => Error::NoData,
        (429, _) => Error::RateLimited {
            retry_after: answer.retry_after,
        },
        (status @ 500..=599, _) => Error::ServerError { status },
        (status, _) => Error::UnexpectedStatus { status },
    };
    match &error {
        Error::BadRequest | Error::UnexpectedStatus { .. } => tracing::warn!(
            target: "attest_apple",
            status = answer.status,
            api = ?api,
            body = %truncated(&answer.text()),
            "unexpected answer from Apple"
        ),
        _ => tracing::debug!(
            target: "attest_apple",
            status = answer.status,
            api = ?api,
            body = %truncated(&answer.text()),
            "error answer from Apple"
        ),
    }
    error
}

/// 400 from the receipt API: "Incorrect Environment" or "Bad Payload" (Apple documents only
/// these two, so any other text is a bad payload too).
fn receipt_bad_request(text: &str) -> Error {
    if text.to_ascii_lowercase().contains("environment") {
        Error::IncorrectEnvironment
    } else {
        Error::BadPayload
    }
}

/// 400 from DeviceCheck, by its text ("Missing or incorrectly formatted device token payload",
/// "... bits", "... time stamp", "Invalid or missing transaction id").
fn device_check_bad_request(text: &str) -> Error {
    let text = text.to_ascii_lowercase();
    if text.contains("device token") || text.contains("device_token") {
        Error::InvalidDeviceToken
    } else if text.contains("transaction") {
        Error::InvalidTransactionId
    } else if text.contains("time stamp") || text.contains("timestamp") {
        Error::InvalidTimestamp
    } else if text.contains("bits") {
        Error::InvalidBits
    } else {
        Error::BadRequest
    }
}

/// At most 200 characters of `text`, for logs.
fn truncated(text: &str) -> &str {
    match text.char_indices().nth(200) {
        Some((end, _)) => text.get(..end).unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        // RFC 850 and asctime forms are HTTP dates too.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:47 1994", now),
            Some(Duration::from_secs(10))
        );
        // A date already past means "retry now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for unreadable in ["", "-5", "1.5", "soon", "99999999999999999999999"] {
            assert_eq!(parse_retry_after(unreadable, now), None, "{unreadable:?}");
        }
    }

    #[test]
    fn receipt_400s_are_told_apart_by_their_text() {
        assert_eq!(
            error_for(Api::Receipt, &answer(400, "Incorrect Environment")),
            Error::IncorrectEnvironment
        );
        assert_eq!(
            error_for(Api::Receipt, &answer(400, "Bad Payload")),
            Error::BadPayload
        );
        assert_eq!(error_for(Api::Receipt, &answer(400, "")), Error::BadPayload);
    }

    #[test]
    fn device_check_400s_are_told_apart_by_their_text() {
        let cases = [
            (
                "Missing or incorrectly formatted device token payload",
                Error::InvalidDeviceToken,
            ),
            ("Missing or incorrectly formatted bits", Error::InvalidBits),
            (
                "Missing or incorrectly formatted time stamp",
                Error::InvalidTimestamp,
            ),
            (
                "Invalid or missing transaction id",
                Error::InvalidTransactionId,
            ),
            ("Something new", Error::BadRequest),
        ];
        for (text, expected) in cases {
            assert_eq!(error_for(Api::DeviceCheck, &answer(400, text)), expected);
        }
    }

    #[test]
    fn other_statuses_map_the_same_for_both_apis() {
        for api in [Api::Receipt, Api::DeviceCheck] {
            assert_eq!(error_for(api, &answer(401, "")), Error::Unauthorized);
            assert_eq!(
                error_for(api, &answer(503, "")),
                Error::ServerError { status: 503 }
            );
            assert_eq!(
                error_for(api, &answer(405, "Method Not Allowed")),
                Error::UnexpectedStatus { status: 405 }
            );
        }
        assert_eq!(error_for(Api::Receipt, &answer(404, "")), Error::NoData);
        assert_eq!(
            error_for(Api::DeviceCheck, &answer(404, "")),
            Error::UnexpectedStatus { status: 404 }
        );
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(
            normalize_base_url("https://data.appattest.apple.com/").unwrap(),
            "https://data.appattest.apple.com"
        );
        assert!(normalize_base_url("data.appattest.apple.com").is_err());
        assert!(normalize_base_url("ftp://example.com").is_err());
    }
}
