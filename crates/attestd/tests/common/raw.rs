//! A raw HTTP/1.1 client on a TCP socket, for what an HTTP library hides: the exact bytes sent
//! (slowloris, malformed requests), `Connection` headers, and whether the server closed the
//! connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, values as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT`.
pub fn address(base: &str) -> &str {
    base.strip_prefix("http://").expect("an http:// base URL")
}

pub async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(address(base)).await.expect("connect")
}

/// `GET path` with `Host`, keep-alive.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: attestd.test\r\n\r\n").into_bytes()
}

/// Reads one response (head, then a `Content-Length` body) within `timeout`.
pub async fn read_response(stream: &mut TcpStream, timeout: Duration) -> RawResponse {
    tokio::time::timeout(timeout, read_response_inner(stream))
        .await
        .expect("a response in time")
}

async fn read_response_inner(stream: &mut TcpStream) -> RawResponse {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read the response");
        assert!(
            n > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).expect("UTF-8 head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().expect("content-length"));
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Sends `request` on a new connection and reads the answer.
pub async fn exchange(base: &str, request: &[u8]) -> (TcpStream, RawResponse) {
    let mut stream = connect(base).await;
    stream.write_all(request).await.expect("send the request");
    let response = read_response(&mut stream, Duration::from_secs(30)).await;
    (stream, response)
}

/// Waits up to `timeout` for the server to close `stream` (EOF or reset); whether it did.
/// Bytes the server sends meanwhile are skipped.
pub async fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Whether the server has already closed `stream` (EOF or reset pending), without waiting.
pub fn already_closed(stream: &TcpStream) -> bool {
    let mut chunk = [0u8; 1];
    match stream.try_read(&mut chunk) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}
