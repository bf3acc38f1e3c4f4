//! Bounds that keep one client from hurting the others.

use super::consts::MAX_PAYLOAD;
use std::time::Duration;

/// Resource limits of an NBD listener. Worst-case request memory is
/// `total_in_flight_bytes` plus 128 KiB per connection (its reserve, see
/// `docs/NBD.md`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Connections open at once on one export (a volume, or one snapshot);
    /// GO beyond it gets `NBD_REP_ERR_POLICY`. Keeps the clients of one
    /// export from taking every slot.
    pub max_connections_per_export: usize,
    /// Time a client has to finish the handshake, so idle sockets cannot
    /// hold connection slots forever before choosing an export.
    pub handshake_timeout: Duration,
    /// Options one handshake may send.
    pub max_options: u32,
    /// Requests one connection may have in flight (read but not yet
    /// answered); further requests wait in the socket.
    pub max_in_flight: usize,
    /// Payload bytes (READ and WRITE buffers, BLOCK_STATUS replies) one
    /// connection may hold. Raised to at least the 32 MiB maximum request.
    pub in_flight_bytes: usize,
    /// The same, across all connections together. Raised to at least the
    /// 32 MiB maximum request.
    pub total_in_flight_bytes: usize,
    /// When the server closes a connection (stop, restore, shutdown): how
    /// long its requests in flight, the final flush and replies already
    /// computed may take to reach a client that does not read them, before
    /// the socket is dropped. During the handshake, how long a client may
    /// take to leave after being told the server is shutting down.
    pub close_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 128,
            max_connections_per_export: 32,
            handshake_timeout: Duration::from_secs(30),
            max_options: 4096,
            max_in_flight: 64,
            in_flight_bytes: 64 << 20,
            total_in_flight_bytes: 512 << 20,
            close_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// At least one request in flight, or nothing would ever run.
    pub(crate) fn slots(&self) -> usize {
        self.max_in_flight.max(1)
    }

    /// Per-connection bytes in semaphore permits: never below one maximum
    /// request, or such a request could wait forever.
    pub(crate) fn byte_permits(&self) -> usize {
        permits(self.in_flight_bytes)
    }

    /// All connections' bytes in semaphore permits, likewise.
    pub(crate) fn total_byte_permits(&self) -> usize {
        permits(self.total_in_flight_bytes)
    }
}

fn permits(bytes: usize) -> usize {
    bytes
        .max(MAX_PAYLOAD as usize)
        .min(tokio::sync::Semaphore::MAX_PERMITS)
}
