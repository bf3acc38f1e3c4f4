//! Connection slots per export. The listener bounds all connections; this
//! bounds those open on one export, so the clients of one export (a
//! snapshot anyone may copy, say) cannot take every slot and lock a running
//! server's disk out.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Connections in transmission on each export name.
pub(crate) struct ExportSlots {
    per_export: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One connection's place on an export; freed when dropped.
pub(crate) struct ExportSlot {
    slots: Arc<ExportSlots>,
    name: String,
}

impl ExportSlots {
    pub fn new(per_export: usize) -> Arc<ExportSlots> {
        Arc::new(ExportSlots {
            per_export,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot on `name`, unless it already has `per_export` connections.
    /// Names are exact: each volume and each snapshot has one export name.
    pub fn take(self: &Arc<Self>, name: &str) -> Option<ExportSlot> {
        let mut open = self.open.lock();
        let n = open.entry(name.to_string()).or_insert(0);
        if *n >= self.per_export {
            return None;
        }
        *n += 1;
        Some(ExportSlot {
            slots: self.clone(),
            name: name.to_string(),
        })
    }

    pub fn limit(&self) -> usize {
        self.per_export
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock();
        if let Some(n) = open.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                // No entry per name ever opened: the map stays small.
                open.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_export_has_its_own_bound_and_slots_come_back() {
        let slots = ExportSlots::new(2);
        let a1 = slots.take("vol@7").unwrap();
        let _a2 = slots.take("vol@7").unwrap();
        assert!(slots.take("vol@7").is_none());
        let _b = slots.take("vol").expect("another export is unaffected");
        drop(a1);
        assert!(slots.take("vol@7").is_some());
    }

    #[test]
    fn the_map_forgets_exports_with_no_connections() {
        let slots = ExportSlots::new(1);
        drop(slots.take("x").unwrap());
        assert!(slots.open.lock().is_empty());
    }
}
