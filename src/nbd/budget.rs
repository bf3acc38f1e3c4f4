//! Memory held for requests in flight: READ buffers, WRITE payloads and
//! BLOCK_STATUS replies, from when a request is read until its reply is
//! written. A client that never reads its replies holds its charges
//! forever, so the bounds are what keeps it from taking the host's memory:
//!
//! - per connection, `Limits::max_in_flight` requests and
//!   `Limits::in_flight_bytes`;
//! - across all connections, `Limits::total_in_flight_bytes`;
//! - and each connection has a small reserve of its own, [`RESERVE_BYTES`],
//!   used for small requests before the shared budget, so that it keeps
//!   being served (one small request after another) even while hostile
//!   connections hold the whole shared budget.
//!
//! Worst case: `total_in_flight_bytes + connections * RESERVE_BYTES`.

use super::limits::Limits;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes each connection may hold outside the shared budget: a few 4 KiB
/// guest I/Os, or one 128 KiB one.
pub(crate) const RESERVE_BYTES: u32 = 128 << 10;

/// The budget all connections share.
pub(crate) struct Budget {
    shared: Arc<Semaphore>,
    /// Bytes charged now, reserves included.
    held: Arc<AtomicUsize>,
}

/// One connection's bounds, over the shared budget.
pub(crate) struct ConnBudget {
    shared: Arc<Budget>,
    slots: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
}

/// What one request holds until its reply is written.
pub(crate) struct Charge {
    _slot: Option<OwnedSemaphorePermit>,
    _own: Option<OwnedSemaphorePermit>,
    _memory: Option<OwnedSemaphorePermit>,
    bytes: usize,
    held: Option<Arc<AtomicUsize>>,
}

impl Budget {
    pub fn new(limits: &Limits) -> Arc<Budget> {
        Arc::new(Budget {
            shared: Arc::new(Semaphore::new(limits.total_byte_permits())),
            held: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Bytes held for requests in flight now, across all connections.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

impl ConnBudget {
    pub fn new(shared: &Arc<Budget>, limits: &Limits) -> ConnBudget {
        ConnBudget {
            shared: shared.clone(),
            slots: Arc::new(Semaphore::new(limits.slots())),
            bytes: Arc::new(Semaphore::new(limits.byte_permits())),
            reserve: Arc::new(Semaphore::new(RESERVE_BYTES as usize)),
        }
    }

    /// Wait for a request slot and `bytes` of memory. Taken before a
    /// request's payload is read, so a connection over its budget stops
    /// being read and its client waits.
    pub async fn charge(&self, bytes: u32) -> io::Result<Charge> {
        let closed = |_| io::Error::other("request budget closed");
        let slot = self.slots.clone().acquire_owned().await.map_err(closed)?;
        let own = self
            .bytes
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(closed)?;
        let shared = self.shared.shared.clone();
        let memory = if bytes == 0 {
            None
        } else if bytes <= RESERVE_BYTES {
            let reserve = self.reserve.clone();
            let p = tokio::select! {
                biased;
                p = reserve.acquire_many_owned(bytes) => p,
                p = shared.acquire_many_owned(bytes) => p,
            };
            Some(p.map_err(closed)?)
        } else {
            Some(shared.acquire_many_owned(bytes).await.map_err(closed)?)
        };
        let held = self.shared.held.clone();
        held.fetch_add(bytes as usize, Ordering::SeqCst);
        Ok(Charge {
            _slot: Some(slot),
            _own: Some(own),
            _memory: memory,
            bytes: bytes as usize,
            held: Some(held),
        })
    }
}

impl Charge {
    /// For the few small replies sent while a connection closes, which
    /// must not wait for a budget that a non-reading client may hold.
    pub fn none() -> Charge {
        Charge {
            _slot: None,
            _own: None,
            _memory: None,
            bytes: 0,
            held: None,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(held) = &self.held {
            held.fetch_sub(self.bytes, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(total: usize) -> Limits {
        Limits {
            total_in_flight_bytes: total,
            ..Limits::default()
        }
    }

    async fn times_out(c: &ConnBudget, bytes: u32) -> bool {
        tokio::time::timeout(Duration::from_millis(50), c.charge(bytes))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn connections_share_one_budget_but_keep_their_reserve() {
        let l = limits(32 << 20);
        let budget = Budget::new(&l);
        let (a, b) = (ConnBudget::new(&budget, &l), ConnBudget::new(&budget, &l));
        let big = a.charge(32 << 20).await.unwrap();
        assert_eq!(budget.held(), 32 << 20);
        // The shared budget is gone: b cannot take a large request...
        assert!(times_out(&b, 1 << 20).await);
        // ...but small ones go through its reserve, one reserve's worth.
        let small = b.charge(RESERVE_BYTES).await.unwrap();
        assert!(times_out(&b, 4096).await);
        drop(small);
        let _again = b.charge(4096).await.unwrap();
        drop(big);
        let _now = b.charge(1 << 20).await.unwrap();
        assert_eq!(budget.held(), (1 << 20) + 4096);
    }

    #[tokio::test]
    async fn a_budget_below_one_maximum_request_is_raised_to_it() {
        let l = limits(1);
        let budget = Budget::new(&l);
        let c = ConnBudget::new(&budget, &l);
        let _max = c.charge(32 << 20).await.unwrap();
        assert_eq!(budget.held(), 32 << 20);
    }
}
