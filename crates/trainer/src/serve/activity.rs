//! What a held connection is doing, as its watchdog and the shedding at the cap see
//! it: requests under way, when the last one ended, when the next one's head began,
//! and whether the client has stopped sending; and the socket wrapper that notes it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};

use super::ServeConfig;

/// An end of input this soon after a request's last byte is a client that shut down
/// its sending side with the request and waits for the answer; one after a longer
/// silence is a client that gave up waiting.
const HALF_CLOSE_GRACE: Duration = Duration::from_millis(500);

/// What a connection is doing, as its watchdog sees it: requests under way, when the
/// last one ended, when the bytes of the next one began to arrive, and whether the
/// client has stopped sending.
#[derive(Debug)]
pub(super) struct Activity {
    pub(super) peer: SocketAddr,
    pub(super) started: Instant,
    /// Milliseconds after `started`.
    pub(super) last_done: AtomicU64,
    /// Milliseconds after `started`, plus one; 0 while no byte of a next request came.
    /// It starts at 1: the first request's head is awaited from accept.
    pub(super) head_started: AtomicU64,
    /// Milliseconds after `started` of the last byte read.
    pub(super) last_read: AtomicU64,
    pub(super) busy: AtomicUsize,
    /// The client shut down its sending side after its request: close once answered.
    pub(super) done_sending: AtomicBool,
    /// Picked to make room for a new connection.
    pub(super) shed: AtomicBool,
    /// The connection admitted in its place, to be handed its permit: through the
    /// semaphore, another accept could take it first.
    pub(super) heir: Mutex<Option<oneshot::Sender<OwnedSemaphorePermit>>>,
    /// Wakes the connection to close it.
    pub(super) close: Notify,
}

/// How long a connection with no request under way has been quiet.
#[derive(Debug, Clone, Copy)]
pub(super) enum Quiet {
    /// Waiting for a complete request head, since accept or since its first byte.
    Head(Duration),
    /// Idle since its last answer.
    Idle(Duration),
}

impl Quiet {
    pub(super) fn duration(self) -> Duration {
        match self {
            Self::Head(quiet) | Self::Idle(quiet) => quiet,
        }
    }
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Head(quiet) => write!(f, "no request head for {:.1} s", quiet.as_secs_f64()),
            Self::Idle(quiet) => write!(f, "idle for {:.1} s", quiet.as_secs_f64()),
        }
    }
}

/// What the watchdog makes of a connection.
pub(super) enum Verdict {
    Fine,
    /// A request's head has been arriving for too long: close at once.
    SlowHead,
    /// No request for too long, or the client sends no more: close once nothing is
    /// under way.
    Done,
}

impl Activity {
    pub(super) fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            started: Instant::now(),
            last_done: AtomicU64::new(0),
            head_started: AtomicU64::new(1),
            last_read: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            done_sending: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            heir: Mutex::new(None),
            close: Notify::new(),
        }
    }

    /// Gives the connection's permit to the one admitted in its place, if any, or back.
    pub(super) fn hand_over(&self, permit: OwnedSemaphorePermit) {
        let heir = self.heir.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(heir) = heir {
            // An heir that gave up waiting drops the permit, which returns it.
            let _ = heir.send(permit);
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn since(&self, ms: u64) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(ms))
    }

    /// How long the connection has been quiet; `None` while a request is under way.
    pub(super) fn quiet(&self) -> Option<Quiet> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(match self.head_started.load(Ordering::SeqCst) {
            0 => Quiet::Idle(self.since(self.last_done.load(Ordering::SeqCst))),
            started => Quiet::Head(self.since(started - 1)),
        })
    }

    pub(super) fn verdict(&self, config: &ServeConfig) -> Verdict {
        match self.quiet() {
            Some(Quiet::Head(quiet)) if quiet >= config.header_timeout => Verdict::SlowHead,
            Some(Quiet::Idle(quiet)) if quiet >= config.idle_timeout => Verdict::Done,
            Some(_) if self.done_sending.load(Ordering::SeqCst) => Verdict::Done,
            _ => Verdict::Fine,
        }
    }
}

/// The client's socket, noting when the bytes of a request begin to arrive: hyper's own
/// header timer costs a timer per request, this one an atomic per read.
pub(super) struct Watched {
    pub(super) stream: TcpStream,
    pub(super) activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let Self { stream, activity } = self.get_mut();
        if activity.done_sending.load(Ordering::SeqCst) {
            // The watchdog closes the connection once the answer is out.
            return std::task::Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(stream).poll_read(cx, buf);
        if !matches!(polled, std::task::Poll::Ready(Ok(()))) {
            return polled;
        }
        let now = activity.now_ms();
        if buf.filled().len() > before {
            activity.last_read.store(now, Ordering::SeqCst);
            if activity.busy.load(Ordering::SeqCst) == 0 {
                let _ = activity.head_started.compare_exchange(
                    0,
                    now.saturating_add(1),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
        } else if buf.remaining() > 0
            && activity.busy.load(Ordering::SeqCst) > 0
            && activity.since(activity.last_read.load(Ordering::SeqCst)) < HALF_CLOSE_GRACE
        {
            // The end of input right behind the request: the client shut down its
            // sending side and reads the answer. Passed on, it would make hyper drop
            // the request as abandoned.
            activity.done_sending.store(true, Ordering::SeqCst);
            return std::task::Poll::Pending;
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
