//! Per-volume locks on ranges of logical blocks. Writers take a range
//! exclusively so two partial writes to one block cannot both copy the old
//! block and lose each other's bytes; readers take it shared so a block they
//! are reading cannot be freed and reused under them.

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
pub(crate) struct RangeLock {
    held: Mutex<Vec<Held>>,
    released: Condvar,
}

#[derive(Clone, Copy)]
struct Held {
    start: u64,
    end: u64,
    exclusive: bool,
    ticket: u64,
}

pub(crate) struct RangeGuard<'a> {
    lock: &'a RangeLock,
    ticket: u64,
}

static NEXT_TICKET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl RangeLock {
    /// Lock blocks `start..end`.
    pub fn lock(&self, start: u64, end: u64, exclusive: bool) -> RangeGuard<'_> {
        let ticket = NEXT_TICKET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut held = self.held.lock();
        loop {
            let conflict = held
                .iter()
                .any(|h| h.start < end && start < h.end && (h.exclusive || exclusive));
            if !conflict {
                break;
            }
            self.released.wait(&mut held);
        }
        held.push(Held {
            start,
            end,
            exclusive,
            ticket,
        });
        RangeGuard { lock: self, ticket }
    }
}

impl Drop for RangeGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.lock.held.lock();
        held.retain(|h| h.ticket != self.ticket);
        drop(held);
        self.lock.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn exclusive_waits_for_overlap_only() {
        let l = Arc::new(RangeLock::default());
        let g = l.lock(0, 10, true);
        let _other = l.lock(10, 20, true); // disjoint: does not block
        let done = Arc::new(AtomicBool::new(false));
        let (l2, d2) = (l.clone(), done.clone());
        let t = std::thread::spawn(move || {
            let _g = l2.lock(5, 6, false);
            d2.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!done.load(Ordering::SeqCst), "overlapping reader must wait");
        drop(g);
        t.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
    }

    #[test]
    fn shared_locks_coexist() {
        let l = RangeLock::default();
        let _a = l.lock(0, 10, false);
        let _b = l.lock(0, 10, false);
    }
}
