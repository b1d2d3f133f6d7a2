//! Who a request is from, besides its key: the client address, and the user and device ids the
//! app's backend vouched for (a link token, see `server::link`). Ids a client merely names are
//! never in a context: they would let anyone join, supersede or score someone else's device.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::AppState;

/// The longest user or device id accepted.
pub const MAX_ID_CHARS: usize = 128;

/// What the server knows about the requester besides the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client address: the connection's, or the last `X-Forwarded-For` entry when the
    /// server is configured to trust it.
    pub client_ip: Option<IpAddr>,
    /// The user id the app's backend vouched for (attestation with a valid link token only).
    pub user_id: Option<String>,
    /// The device id the app's backend vouched for (same): a `deviceId` attestd returned for
    /// an earlier key, or a stable installation id of the app's own.
    pub device_id: Option<String>,
}

impl RequestContext {
    /// The context of a request from `client_ip`, with no user or device.
    pub fn from_ip(client_ip: Option<IpAddr>) -> Self {
        Self {
            client_ip,
            ..Self::default()
        }
    }

    /// This context with the ids `link` vouches for (none unless it is verified).
    pub fn linked(&self, link: &super::link::Link) -> Self {
        Self {
            client_ip: self.client_ip,
            user_id: link.user_id.clone(),
            device_id: link.device_id.clone(),
        }
    }

    /// The address as stored and compared.
    pub fn ip_text(&self) -> Option<String> {
        self.client_ip.map(|ip| ip.to_string())
    }
}

/// The client address of a request (never fails; `None` when unknown).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<Arc<AppState>> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Infallible> {
        let connection = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| forwarded_for(&parts.headers))
            .flatten();
        Ok(Self(forwarded.or(connection).map(|ip| ip.to_canonical())))
    }
}

/// The last entry of the last `X-Forwarded-For` header: the address the nearest proxy saw
/// (earlier entries are whatever the client wrote).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").into_iter().next_back()?;
    last.to_str()
        .ok()?
        .rsplit(',')
        .next()
        .and_then(|entry| entry.trim().parse().ok())
}

/// Checks an optional client-supplied id: at most [`MAX_ID_CHARS`] characters as sent, no
/// control characters; then trimmed. An absent, empty or blank id is `None`.
pub fn client_id(field: &'static str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    // Checked as sent, then trimmed: what the document says (`ClientId`: at most 128
    // characters, no control character) holds for the text on the wire.
    if value.chars().count() > MAX_ID_CHARS {
        return Err(ApiError::field(
            field,
            format!("{field} is longer than {MAX_ID_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            format!("{field} contains control characters"),
        ));
    }
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_bounded_and_printable() {
        assert_eq!(client_id("userId", None).unwrap(), None);
        assert_eq!(client_id("userId", Some("  ")).unwrap(), None);
        assert_eq!(
            client_id("userId", Some(" alice@example.com ")).unwrap(),
            Some("alice@example.com".to_owned())
        );
        let long = "x".repeat(MAX_ID_CHARS + 1);
        assert!(client_id("userId", Some(&long)).is_err());
        assert!(client_id("deviceId", Some("a\u{0}b")).is_err());
        assert!(client_id("deviceId", Some(&"é".repeat(MAX_ID_CHARS))).is_ok());
    }

    #[test]
    fn the_last_forwarded_entry_is_the_proxys() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        assert_eq!(forwarded_for(&headers), "198.51.100.7".parse().ok());
        headers.append("x-forwarded-for", "2001:db8::1".parse().unwrap());
        assert_eq!(forwarded_for(&headers), "2001:db8::1".parse().ok());
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(forwarded_for(&headers), None);
    }
}
