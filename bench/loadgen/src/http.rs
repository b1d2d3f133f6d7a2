//! One keep-alive HTTP/1.1 connection to a loopback server.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// No single request may take longer than this (the server's own default timeout is 10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server: a loopback address.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    host: String,
}

impl Target {
    /// Parses `http://127.0.0.1:PORT` (an IP literal); refuses anything but loopback.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--server {url}: only http:// is supported"))?;
        let authority = rest.trim_end_matches('/');
        let addr: SocketAddr = authority.parse().map_err(|_| {
            format!("--server {url}: expected http://IP:PORT with an IP literal, e.g. http://127.0.0.1:8080")
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--server {url}: refusing a non-loopback address (this benchmark is loopback only)"
            ));
        }
        Ok(Self {
            addr,
            host: authority.to_owned(),
        })
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug)]
pub enum HttpError {
    /// Connecting, sending or reading failed.
    Io(String),
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "{error}"),
            Self::Timeout => write!(f, "no answer within {REQUEST_TIMEOUT:?}"),
        }
    }
}

/// A keep-alive connection; requests on it are strictly sequential.
#[derive(Debug)]
pub struct Conn {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects (TCP_NODELAY) and starts the connection's driver task.
    pub async fn open(target: &Target) -> Result<Self, HttpError> {
        let connect = async {
            let stream = TcpStream::connect(target.addr)
                .await
                .map_err(|error| HttpError::Io(format!("connect {}: {error}", target.addr)))?;
            stream
                .set_nodelay(true)
                .map_err(|error| HttpError::Io(error.to_string()))?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| HttpError::Io(format!("handshake: {error}")))?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the server closes the connection; a
                // failure shows up as an error on the next request.
                let _ = connection.await;
            });
            Ok(sender)
        };
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| HttpError::Timeout)??;
        Ok(Self {
            target: target.clone(),
            sender,
        })
    }

    /// Opens a fresh connection in place of this one (after an I/O error).
    pub async fn reopen(&mut self) -> Result<(), HttpError> {
        *self = Self::open(&self.target.clone()).await?;
        Ok(())
    }

    /// `POST path` with a JSON body; the status and the whole answer body.
    pub async fn post(
        &mut self,
        path: &'static str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.post_inner(path, body))
            .await
            .map_err(|_| HttpError::Timeout)?
    }

    async fn post_inner(
        &mut self,
        path: &'static str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let io = |error: hyper::Error| HttpError::Io(error.to_string());
        self.sender.ready().await.map_err(io)?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.target.host.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|error| HttpError::Io(error.to_string()))?;
        let response = self.sender.send_request(request).await.map_err(io)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(io)?.to_bytes();
        Ok((status, body))
    }
}
