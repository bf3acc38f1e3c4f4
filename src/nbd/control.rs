//! [`ExportControl`]: which volumes may be exported read-write, and the
//! read-write connections open on each, so that the service can close them
//! before a server stops or its disk is restored.

use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;

/// Shared between the NBD listener and whoever decides what is exported
/// (the REST service). Cheap to clone; clones share state.
///
/// Every volume is exported read-write unless disabled. Snapshot exports
/// are read-only and never affected.
#[derive(Clone, Default)]
pub struct ExportControl {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a read-write connection ends.
    ended: Condvar,
}

#[derive(Default)]
struct State {
    disabled: HashSet<String>,
    live: HashMap<u64, Live>,
    next_id: u64,
}

struct Live {
    volume: String,
    close: watch::Sender<bool>,
}

/// Held by a read-write connection for its whole life. Dropping it (the
/// connection has ended) wakes [`ExportControl::disable_rw`].
pub(crate) struct Lease {
    shared: Arc<Shared>,
    id: u64,
    /// Becomes true when the connection must flush and close.
    pub close: watch::Receiver<bool>,
}

impl ExportControl {
    pub fn new() -> ExportControl {
        ExportControl::default()
    }

    /// Stop exporting `volume` read-write: new connections are refused, and
    /// each open one stops reading requests, finishes those in flight,
    /// flushes and closes. Returns once all of them are closed, so no write
    /// through NBD is in flight on the volume afterwards.
    ///
    /// Blocks: call it from a thread that may block, never from an async
    /// task. Connections end within the listener's `close_grace`.
    pub fn disable_rw(&self, volume: &str) {
        let mut st = self.shared.state.lock();
        st.disabled.insert(volume.to_string());
        for live in st.live.values().filter(|l| l.volume == volume) {
            // A send fails only once the connection is gone already.
            let _ = live.close.send(true);
        }
        while st.live.values().any(|l| l.volume == volume) {
            self.shared.ended.wait(&mut st);
        }
    }

    /// Export `volume` read-write again.
    pub fn enable_rw(&self, volume: &str) {
        self.shared.state.lock().disabled.remove(volume);
    }

    pub fn is_rw_enabled(&self, volume: &str) -> bool {
        !self.shared.state.lock().disabled.contains(volume)
    }

    /// Read-write connections open on `volume`.
    pub fn rw_connections(&self, volume: &str) -> usize {
        let st = self.shared.state.lock();
        st.live.values().filter(|l| l.volume == volume).count()
    }

    /// Register a read-write connection, unless the volume is disabled.
    /// Checked and registered under one lock, so a connection can never
    /// slip in while [`disable_rw`](Self::disable_rw) runs.
    pub(crate) fn lease(&self, volume: &str) -> Option<Lease> {
        let mut st = self.shared.state.lock();
        if st.disabled.contains(volume) {
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        let (tx, rx) = watch::channel(false);
        st.live.insert(
            id,
            Live {
                volume: volume.to_string(),
                close: tx,
            },
        );
        Some(Lease {
            shared: self.shared.clone(),
            id,
            close: rx,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.state.lock().live.remove(&self.id);
        self.shared.ended.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_volumes_get_no_lease_until_enabled() {
        let c = ExportControl::new();
        c.disable_rw("a");
        assert!(c.lease("a").is_none());
        assert!(c.lease("b").is_some());
        c.enable_rw("a");
        assert!(c.lease("a").is_some());
    }

    #[test]
    fn disable_waits_for_open_connections_and_tells_them_to_close() {
        let c = ExportControl::new();
        let mut lease = c.lease("a").unwrap();
        let other = c.lease("b").unwrap();
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.disable_rw("a"))
        };
        // The connection sees the request, then ends.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(lease.close.wait_for(|&v| v))
            .unwrap();
        assert_eq!(c.rw_connections("a"), 1);
        drop(lease);
        waiter.join().unwrap();
        assert_eq!(c.rw_connections("a"), 0);
        assert!(!c.is_rw_enabled("a"));
        // Other volumes' connections are untouched.
        assert!(!*other.close.borrow());
        assert_eq!(c.rw_connections("b"), 1);
    }
}
