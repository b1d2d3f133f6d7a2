//! The HTTP listener: attestd's own accept loop around hyper's HTTP/1.1 connections, so that
//! every connection is bounded in time and their number is bounded.
//!
//! - **Header-read timeout.** A connection must deliver a complete request head (request line
//!   and headers) within `header_read_timeout`, counted from the moment it is accepted, or from
//!   its first byte after an idle pause. A client that sends nothing, or its headers a byte at a
//!   time (slowloris), is closed then.
//! - **Idle timeout.** A keep-alive connection with no request for `idle_timeout` is closed.
//!   While a request is served neither applies: `request_timeout` (middleware) bounds it.
//! - **Connection limit.** At most `max_connections` connections are served at once. When all
//!   are taken the listener stops accepting: new connections wait in the kernel's listen
//!   backlog ([`LISTEN_BACKLOG`]; beyond it clients retry their connection attempts) and are
//!   served as soon as timeouts free slots.
//!   The default is the open-file limit minus [`FD_HEADROOM`], at most
//!   [`DEFAULT_MAX_CONNECTIONS`], so that the limit is reached before the descriptors run out.
//! - **Accept errors.** If `accept` fails anyway (EMFILE: out of file descriptors; ENFILE,
//!   ENOBUFS, ENOMEM), the listener backs off (10 ms doubling to 1 s) and tries again: no busy
//!   loop, no crash. The failed connection stays in the backlog and is accepted later.
//! - **Graceful shutdown with a deadline.** On shutdown the listener stops accepting, closes
//!   idle connections and connections still sending a head, lets requests in flight finish and
//!   then closes their connections; whatever is still open after `shutdown_timeout` is dropped.
//! - **Parse errors answer JSON.** hyper answers a request it cannot parse with an empty
//!   400, 414 or 431 and closes. The connection wrapper (`Watched`) replaces that answer with
//!   the same status, a JSON error body with a stable code and `Connection: close` (see
//!   [`ApiError::HttpMalformed`]).
//! - **`Connection: close` when closing.** A response sent before its request's body was read
//!   (413 `body_too_large`, 415, 404 on a POST...) leaves the connection unusable: it says so
//!   with `Connection: close`, and hyper then closes it.
//!
//! HTTP/2 is not served (it was not before either: axum's `http2` feature is off); TLS and
//! HTTP/2 terminate at the proxy in front.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::config::Config;
use super::error::ApiError;

/// The connection limit when the open-file limit is high or unlimited: 4,096 connections of a
/// few KB each is modest memory, and far more than one instance serves at its throughput
/// (requests take about a millisecond).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but client connections: the database pool (SQLite
/// opens the database and its WAL per connection), the listener, the runtime's epoll and
/// event descriptors, Apple and webhook HTTP clients, the files read at startup.
pub const FD_HEADROOM: u64 = 128;
/// Connections the kernel queues until attestd accepts them: while every slot is taken, and in
/// bursts. The standard library's (and tokio's) 128 makes a burst beyond it wait for SYN
/// retries (1 s, 3 s, 7 s...); Linux caps the value at `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: u32 = 1024;
/// The smallest derived connection limit, for very low open-file limits.
const MIN_DERIVED_MAX_CONNECTIONS: usize = 16;
/// First and longest pause after a failed `accept`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The WARN that all connection slots are taken is repeated at most this often.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// The time and number bounds of the listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`Config::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// See [`Config::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`Config::shutdown_timeout`].
    pub shutdown_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits; an unset connection limit is derived from the open-file limit.
    pub fn of(config: &Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            shutdown_timeout: config.shutdown_timeout,
            max_connections: config
                .max_connections
                .unwrap_or_else(default_max_connections),
        }
    }
}

/// The open-file limit (soft) minus [`FD_HEADROOM`], between 16 and
/// [`DEFAULT_MAX_CONNECTIONS`].
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(open_files) => usize::try_from(open_files.saturating_sub(FD_HEADROOM))
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .clamp(MIN_DERIVED_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS),
    }
}

/// A listener on `address` with a [`LISTEN_BACKLOG`] queue.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted server can bind while old connections linger in
    // TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` completes, then shuts down gracefully within
/// `limits.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (draining, drain) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    let mut last_full_warning: Option<Instant> = None;
    loop {
        // A slot first: while every slot is taken, connections wait in the backlog.
        if slots.available_permits() == 0
            && last_full_warning.is_none_or(|at| at.elapsed() >= FULL_WARNING_INTERVAL)
        {
            last_full_warning = Some(Instant::now());
            tracing::warn!(
                max_connections = limits.max_connections,
                "every connection slot is taken: new connections wait until a request \
                 completes or an idle or slow connection times out (max_connections)"
            );
        }
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff.succeeded();
                connections.spawn(connection(
                    stream,
                    remote,
                    router.clone(),
                    limits,
                    drain.clone(),
                    slot,
                ));
            }
            Err(error) => {
                drop(slot);
                let Some(pause) = backoff.failed(&error) else {
                    continue;
                };
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut shutdown => break,
                }
            }
        }
        // Reap finished connections so that the set does not grow with every one served.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = draining.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            still_open = connections.len(),
            open_at_shutdown = open,
            timeout = ?limits.shutdown_timeout,
            "shutdown deadline reached: dropping the connections still open"
        );
        connections.shutdown().await;
    }
}

/// How an accept failure is handled: a pause for errors of the process or the system (out of
/// descriptors or memory), none for errors of one connection (the peer reset it while it
/// waited in the backlog).
#[derive(Debug)]
struct AcceptBackoff {
    next: Duration,
    failures: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            next: ACCEPT_BACKOFF_MIN,
            failures: 0,
        }
    }
}

impl AcceptBackoff {
    /// The pause before the next `accept`, or `None` to go on at once.
    fn failed(&mut self, error: &io::Error) -> Option<Duration> {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted
        ) {
            return None;
        }
        metrics::counter!("attestd_accept_errors_total").increment(1);
        if self.failures == 0 {
            tracing::warn!(
                %error,
                "cannot accept connections (out of file descriptors? raise `ulimit -n` or \
                 lower max_connections); retrying with a growing pause"
            );
        }
        self.failures += 1;
        let pause = self.next;
        self.next = (self.next * 2).min(ACCEPT_BACKOFF_MAX);
        Some(pause)
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
            *self = Self::default();
        }
    }
}

/// Why the listener closed a connection itself.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    HeaderRead,
    Idle,
}

impl Expiry {
    fn label(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read",
            Self::Idle => "idle",
        }
    }
}

/// Serves one connection until the client closes it, a timeout expires, or shutdown.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    mut drain: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _open = OpenConnection::new();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let exchange = activity.request_started();
            respond(router.clone(), remote, request, exchange)
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The listener's own deadlines replace hyper's header-read timeout, which would also cut
    // idle keep-alive connections after the header timeout.
    builder.header_read_timeout(None).keep_alive(true);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %remote, "connection ended with an error");
                }
                return;
            }
            expiry = activity.expiry(&limits) => {
                metrics::counter!(
                    "attestd_connections_timed_out_total",
                    "timeout" => expiry.label()
                )
                .increment(1);
                tracing::debug!(%remote, timeout = expiry.label(), "connection timed out");
                return;
            }
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_err() || !activity.is_busy() {
                    // Idle, or still sending a head: nothing is lost by closing it now.
                    return;
                }
                // Finish the request in flight, then close.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One request through the router: the connection's address for `ConnectInfo`, the request
/// body watched, `Connection: close` when the body was not read.
async fn respond(
    router: Router,
    remote: SocketAddr,
    request: Request<Incoming>,
    exchange: Exchange,
) -> Result<Response<ExchangeBody>, Infallible> {
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(remote));
    let consumed = Arc::new(AtomicBool::new(hyper::body::Body::is_end_stream(&body)));
    let body = Body::new(RequestBody {
        inner: body,
        consumed: Arc::clone(&consumed),
    });
    let mut response = router
        .oneshot(Request::from_parts(parts, body))
        .await
        .unwrap_or_else(|never| match never {});
    if !consumed.load(Ordering::Acquire) {
        // hyper cannot reuse a connection whose request body was left unread: it closes it.
        // Say so (and hyper then closes it for certain).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response.map(|body| ExchangeBody {
        inner: body,
        _exchange: exchange,
    }))
}

/// A request body that records whether it was read to its end.
#[derive(Debug)]
struct RequestBody {
    inner: Incoming,
    consumed: Arc<AtomicBool>,
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() || this.inner.is_end_stream() {
            this.consumed.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the connection's [`Activity`] when hyper is done with it
/// (dropped once its last byte is buffered for writing).
#[derive(Debug)]
struct ExchangeBody {
    inner: Body,
    _exchange: Exchange,
}

impl hyper::body::Body for ExchangeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts open connections in the `attestd_connections_open` gauge.
#[derive(Debug)]
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        metrics::gauge!("attestd_connections_open").increment(1.0);
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("attestd_connections_open").decrement(1.0);
    }
}

/// Where a connection is between requests, which decides the deadline that applies.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head, or the rest of one, since `since`: the header-read
    /// timeout applies.
    Head { since: Instant },
    /// Nothing received since the last response, at `since`: the idle timeout applies.
    Idle { since: Instant },
    /// A request is being served: no listener deadline.
    Busy,
}

/// What one connection is doing, shared by its reader/writer ([`Watched`]), its requests
/// ([`Exchange`]) and its deadline ([`Activity::expiry`]).
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
    /// Woken when the deadline may have moved earlier (idle → head) or appeared (busy → idle).
    changed: Notify,
}

#[derive(Debug)]
struct ActivityState {
    phase: Phase,
    /// Requests handed to the router whose response body hyper has not dropped yet.
    open_exchanges: usize,
    /// Every response has been written out (flushed) and no request was handed to the router
    /// since. hyper writes nothing of its own accord then, except its automatic answer to a
    /// request head it could not parse: what [`Watched`] replaces.
    written_out: bool,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                phase: Phase::Head {
                    since: Instant::now(),
                },
                open_exchanges: 0,
                written_out: true,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: after an idle pause, a new request head has begun.
    fn received(&self) {
        let mut state = self.lock();
        if let Phase::Idle { .. } = state.phase {
            state.phase = Phase::Head {
                since: Instant::now(),
            };
            drop(state);
            self.changed.notify_one();
        }
    }

    /// hyper parsed a request head and hands the request to the router.
    fn request_started(self: &Arc<Self>) -> Exchange {
        let mut state = self.lock();
        state.phase = Phase::Busy;
        state.open_exchanges += 1;
        state.written_out = false;
        Exchange(Arc::clone(self))
    }

    fn exchange_finished(&self) {
        let mut state = self.lock();
        state.open_exchanges = state.open_exchanges.saturating_sub(1);
        if state.open_exchanges == 0 {
            state.phase = Phase::Idle {
                since: Instant::now(),
            };
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Everything hyper buffered was written out and flushed.
    fn flushed(&self) {
        let mut state = self.lock();
        if state.open_exchanges == 0 {
            state.written_out = true;
        }
    }

    fn is_written_out(&self) -> bool {
        self.lock().written_out
    }

    fn is_busy(&self) -> bool {
        matches!(self.lock().phase, Phase::Busy)
    }

    /// Completes when the deadline of the current phase passes.
    async fn expiry(&self, limits: &Limits) -> Expiry {
        loop {
            let deadline = match self.lock().phase {
                Phase::Head { since } => {
                    Some((since + limits.header_read_timeout, Expiry::HeaderRead))
                }
                Phase::Idle { since } => Some((since + limits.idle_timeout, Expiry::Idle)),
                Phase::Busy => None,
            };
            match deadline {
                None => self.changed.notified().await,
                Some((deadline, expiry)) => {
                    if Instant::now() >= deadline {
                        return expiry;
                    }
                    tokio::select! {
                        () = self.changed.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
            }
        }
    }
}

/// One request in flight on a connection; dropped with its response body.
#[derive(Debug)]
struct Exchange(Arc<Activity>);

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.exchange_finished();
    }
}

/// A client connection as hyper reads and writes it: reads mark activity, and hyper's
/// automatic answer to an unparsable request is replaced with a JSON one. The replacement
/// fails safe: it needs both `written_out` and a bodyless 400/414/431 status line, so a
/// response of the router is never touched, and if the bookkeeping were ever off hyper's own
/// empty answer would go out unchanged.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// Our answer in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Watched {
    fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            replacement: None,
        }
    }

    /// Whether `head` (the start of what hyper writes) is its automatic answer to a request
    /// it could not parse; if so, prepares ours in its place.
    fn intercept(&mut self, head: &[u8]) -> bool {
        if self.replacement.is_none()
            && self.activity.is_written_out()
            && let Some(status) = automatic_error_status(head)
        {
            self.replacement = Some((malformed_answer(status), 0));
        }
        self.replacement.is_some()
    }

    /// Writes the rest of our answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((answer, written)) = &mut self.replacement else {
            return Poll::Ready(Ok(()));
        };
        while let Some(rest) = answer.get(*written..).filter(|rest| !rest.is_empty()) {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.activity.received();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.intercept(buf) {
            // hyper's bytes are dropped: ours go out instead.
            ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let head = bufs
            .iter()
            .find(|buf| !buf.is_empty())
            .map_or(&[][..], |buf| &buf[..]);
        if this.intercept(head) {
            ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.activity.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The status of hyper's automatic answer to an unparsable request head (`HTTP/1.1 400 `,
/// `414` or `431`, with no body): hyper 1's `Server::on_error`.
fn automatic_error_status(head: &[u8]) -> Option<StatusCode> {
    let status = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?
        .get(..4)?;
    match status {
        b"400 " => Some(StatusCode::BAD_REQUEST),
        b"414 " => Some(StatusCode::URI_TOO_LONG),
        b"431 " => Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        _ => None,
    }
}

/// The complete HTTP/1.1 answer to a request hyper could not parse: `status`, the JSON error
/// body of [`ApiError::HttpMalformed`], `Connection: close`.
fn malformed_answer(status: StatusCode) -> Vec<u8> {
    let error = ApiError::HttpMalformed { status };
    let body = serde_json::to_vec(&error.body()).unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("Bad Request");
    let mut answer = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        status.as_u16(),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodyless_parse_error_answers_are_recognised() {
        for (head, status) in [
            (&b"HTTP/1.1 400 Bad Request\r\n"[..], Some(400)),
            (b"HTTP/1.1 414 URI Too Long\r\n", Some(414)),
            (
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
                Some(431),
            ),
            (b"HTTP/1.1 404 Not Found\r\n", None),
            (b"HTTP/1.1 4", None),
            (b"", None),
            (b"{\"code\":\"x\"}", None),
        ] {
            assert_eq!(
                automatic_error_status(head).map(|s| s.as_u16()),
                status,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn the_json_answer_is_a_complete_response_that_closes() {
        let answer = String::from_utf8(malformed_answer(StatusCode::BAD_REQUEST)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "malformed_http");
    }

    #[test]
    fn the_derived_connection_limit_stays_in_bounds() {
        let limit = default_max_connections();
        assert!((MIN_DERIVED_MAX_CONNECTIONS..=DEFAULT_MAX_CONNECTIONS).contains(&limit));
    }
}
