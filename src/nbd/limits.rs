//! Bounds that keep one client from hurting the others.

use super::consts::MAX_PAYLOAD;
use std::time::Duration;

/// Resource limits of an NBD listener. Worst-case buffer memory is about
/// `max_connections * in_flight_bytes`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Time a client has to finish the handshake, so idle sockets cannot
    /// hold connection slots forever before choosing an export.
    pub handshake_timeout: Duration,
    /// Options one handshake may send.
    pub max_options: u32,
    /// Requests one connection may have in flight (read but not yet
    /// answered); further requests wait in the socket.
    pub max_in_flight: usize,
    /// Payload bytes (READ and WRITE buffers) one connection may hold.
    /// Raised to at least the 32 MiB maximum request.
    pub in_flight_bytes: usize,
    /// When the server closes a connection (stop, restore, shutdown): how
    /// long replies already computed may take to reach a client that does
    /// not read them, before the socket is dropped.
    pub close_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 128,
            handshake_timeout: Duration::from_secs(30),
            max_options: 4096,
            max_in_flight: 64,
            in_flight_bytes: 64 << 20,
            close_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// At least one request in flight, or nothing would ever run.
    pub(crate) fn slots(&self) -> usize {
        self.max_in_flight.max(1)
    }

    /// Bytes budget in semaphore permits: never below one maximum request,
    /// or such a request could wait forever.
    pub(crate) fn byte_permits(&self) -> usize {
        self.in_flight_bytes
            .max(MAX_PAYLOAD as usize)
            .min(tokio::sync::Semaphore::MAX_PERMITS)
    }
}
