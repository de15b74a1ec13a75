//! The life of one open socket, as unkind as API Gateway: every frame's
//! invocation is a task of its own, with no order between two frames of one
//! connection (and a random delay, with `invoke_jitter`); `$disconnect` runs
//! once the socket is gone, whatever invocations are still running. Also the
//! limits API Gateway applies itself: idle and lifetime caps, frame and
//! message sizes; and a bound on invocations in flight and a bounded
//! outgoing queue. The message rate is not here: the backend applies it
//! (the signaling core decides, in-process or in the Lambdas), as on AWS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use rand::Rng as _;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::backend::{select_route, Backend, WsEvent};
use crate::gateway_state::{now_ms, GatewayState};
use crate::sockets::{CloseReason, Closer, SocketEntry};

/// Routes this API defines (all messages go to `$default`).
const ROUTES: [&str; 3] = ["$connect", "$disconnect", "$default"];

/// How long a close frame may take to go out before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

const CLIENT_CLOSED: CloseReason = CloseReason {
    code: 1000,
    reason: "Bye",
};
/// A close frame with no status code: API Gateway reports 1005 for it.
const CLIENT_CLOSED_NO_CODE: CloseReason = CloseReason {
    code: 1005,
    reason: "",
};
/// A close frame with another code: reported as the client sent it.
fn client_closed(code: Option<u16>) -> CloseReason {
    match code {
        None => CLIENT_CLOSED_NO_CODE,
        Some(1000) => CLIENT_CLOSED,
        Some(code) => CloseReason {
            code,
            reason: "Closed by the client",
        },
    }
}
const IDLE: CloseReason = CloseReason {
    code: 1001,
    reason: "Going away (idle)",
};
const LIFETIME: CloseReason = CloseReason {
    code: 1001,
    reason: "Going away (connection duration)",
};
const TOO_BIG: CloseReason = CloseReason {
    code: 1009,
    reason: "Message too big",
};
/// The client went without a close frame (a reset, EOF, a dead network):
/// API Gateway reports 1006 for such a drop.
const ABRUPT: CloseReason = CloseReason {
    code: 1006,
    reason: "Going away",
};
const BAD_UTF8: CloseReason = CloseReason {
    code: 1007,
    reason: "Invalid frame payload data",
};
const PROTOCOL: CloseReason = CloseReason {
    code: 1002,
    reason: "Protocol error",
};

/// What a read error on the socket was: over the frame or message limit
/// (1009, as API Gateway closes it), invalid UTF-8 (1007), another
/// protocol violation (1002), or the client gone without a close frame
/// (1006).
fn read_error_reason(err: axum::Error) -> CloseReason {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    let Ok(err) = err.into_inner().downcast::<Error>() else {
        return ABRUPT;
    };
    match *err {
        Error::Capacity(_) => TOO_BIG,
        Error::Utf8(_) => BAD_UTF8,
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ABRUPT,
        Error::Protocol(_) => PROTOCOL,
        _ => ABRUPT,
    }
}

/// What woke the socket's task.
enum Step {
    Frame(Utf8Bytes),
    Skip,
    IdleCheck,
    WriterDone,
    Close(CloseReason),
}

/// Serves one upgraded socket until it closes, then invokes `$disconnect`.
pub(crate) async fn run_socket(state: GatewayState, socket: WebSocket, event: WsEvent) {
    let _running = state.sockets.running();
    let id = event.connection_id.clone();
    let limits = state.limits;
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<String>(limits.outbound_queue);
    let (closer, mut closed) = Closer::new();
    let last_active = Arc::new(AtomicU64::new(event.connected_at_ms));
    state.sockets.insert(
        id.clone(),
        SocketEntry {
            tx: tx.clone(),
            closer: closer.clone(),
            connected_at_ms: event.connected_at_ms,
            last_active_ms: last_active.clone(),
            source_ip: event.source_ip.clone(),
            user_agent: event.user_agent.clone(),
        },
    );
    info!(connection_id = %id, "socket open");
    let mut writer = tokio::spawn(write_loop(sink, rx, closed.clone()));

    let per_socket = Arc::new(tokio::sync::Semaphore::new(limits.max_inflight_per_socket));
    let max_connection = tokio::time::sleep(limits.max_connection);
    tokio::pin!(max_connection);
    // The idle timer is armed once and moved only when it fires, not on
    // every frame: a frame just notes when it came.
    let mut last_frame = Instant::now();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut writer_done = false;
    let reason = loop {
        let step = tokio::select! {
            biased;
            _ = closed.changed() => Step::Close((*closed.borrow()).unwrap_or(CLIENT_CLOSED)),
            _ = &mut max_connection => Step::Close(LIFETIME),
            _ = &mut writer, if !writer_done => Step::WriterDone,
            _ = &mut idle => Step::IdleCheck,
            next = stream.next() => match next {
                Some(Ok(Message::Close(frame))) => {
                    Step::Close(client_closed(frame.map(|f| f.code)))
                }
                // The stream ended without a close frame.
                None => Step::Close(ABRUPT),
                Some(Err(err)) => {
                    debug!(connection_id = %id, error = %err, "socket error");
                    Step::Close(read_error_reason(err))
                }
                Some(Ok(Message::Text(text))) => Step::Frame(text),
                Some(Ok(Message::Binary(bytes))) => {
                    Step::Frame(String::from_utf8_lossy(&bytes).into_owned().into())
                }
                Some(Ok(_)) => Step::Skip,
            },
        };
        let body = match step {
            Step::Frame(body) => body,
            Step::Skip => continue,
            Step::IdleCheck => {
                let deadline = last_frame + limits.idle_timeout;
                if deadline <= Instant::now() {
                    break IDLE;
                }
                idle.as_mut().reset(deadline);
                continue;
            }
            // A write failed: the socket is broken, a drop.
            Step::WriterDone => {
                writer_done = true;
                break ABRUPT;
            }
            Step::Close(reason) => break reason,
        };
        let now = now_ms();
        last_frame = Instant::now();
        last_active.store(now, Ordering::Relaxed);
        // Bounded: when this socket (or the gateway) has as many
        // invocations running as allowed, stop reading until one ends.
        let permits = tokio::select! {
            biased;
            _ = closed.changed() => break (*closed.borrow()).unwrap_or(CLIENT_CLOSED),
            _ = &mut max_connection => break LIFETIME,
            permits = acquire(&state, &per_socket) => permits,
        };
        let Some(permits) = permits else {
            break ABRUPT;
        };
        let mut event = event.clone();
        event.now_ms = now;
        tokio::spawn(invoke(
            state.backend.clone(),
            limits.invoke_jitter,
            event,
            body,
            permits,
        ));
    };
    // Gone from the table first: from now on pushes answer Gone.
    state.sockets.remove(&id);
    closer.close(reason);
    drop(tx);
    if !writer_done
        && tokio::time::timeout(CLOSE_GRACE * 2, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    drop(stream);
    // As on API Gateway, $disconnect does not wait for the invocations of
    // earlier frames: they may still be running.
    let mut event = event;
    event.now_ms = now_ms();
    state
        .backend
        .disconnect(&event, reason.code, reason.reason)
        .await;
    info!(connection_id = %id, status = reason.code, reason = reason.reason, "socket closed");
}

/// A place among this socket's and the gateway's running invocations.
async fn acquire(
    state: &GatewayState,
    per_socket: &Arc<tokio::sync::Semaphore>,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let mine = per_socket.clone().acquire_owned().await.ok()?;
    let all = state.inflight.clone().acquire_owned().await.ok()?;
    Some((mine, all))
}

/// One `$default` invocation, on its own task.
async fn invoke(
    backend: Arc<dyn Backend>,
    jitter: Duration,
    event: WsEvent,
    body: Utf8Bytes,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
) {
    let jitter = jitter.as_millis() as u64;
    if jitter > 0 {
        let delay = rand::rng().random_range(0..=jitter);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let route = select_route(&body, &ROUTES);
    backend.message(&event, route, &body).await;
}

/// Sends queued frames until the socket is closed; a close jumps the queue.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<String>,
    mut closed: watch::Receiver<Option<CloseReason>>,
) {
    loop {
        let text = tokio::select! {
            biased;
            _ = closed.changed() => break,
            text = rx.recv() => match text {
                Some(text) => text,
                None => break,
            },
        };
        tokio::select! {
            biased;
            _ = closed.changed() => break,
            sent = sink.send(Message::Text(text.into())) => if sent.is_err() {
                return;
            },
        }
    }
    let reason = (*closed.borrow()).unwrap_or(CLIENT_CLOSED);
    // 1005 only reports a close frame that had no code; it is never sent.
    let code = if reason.code == CLIENT_CLOSED_NO_CODE.code {
        CLIENT_CLOSED.code
    } else {
        reason.code
    };
    let frame = CloseFrame {
        code,
        reason: reason.reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
}
