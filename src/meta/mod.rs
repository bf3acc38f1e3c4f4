//! In-memory metadata state: the catalog, the map-node cache, both refcount
//! tables and the block allocators. Everything here changes under the pool's
//! metadata mutex; no data-block I/O happens while it is held.

mod nodes;
pub(crate) mod ops;
mod refs;
mod tree;

pub(crate) use nodes::NodeStore;
pub(crate) use ops::MAX_VOLUME_SIZE;
pub(crate) use refs::RefTable;
pub(crate) use tree::WriteTarget;

use crate::catalog::{Catalog, CatalogOp, Counters, MAX_CATALOG_BYTES};
use crate::error::{Error, Result};
use crate::format::journal::RecordKind;
use crate::format::{files, node, PAGE_SIZE};
use crate::storage::Storage;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Clean pages kept cached per store before trimming (16 MiB each).
const CACHE_PAGES: usize = 4096;

/// Which refcount table a journal record addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Data = 0,
    Node = 1,
}

pub(crate) struct MetaState {
    pub block_size: u32,
    pub catalog: Catalog,
    pub nodes: NodeStore,
    pub node_refs: RefTable,
    pub data_refs: RefTable,
    /// Catalog changes not yet captured into a transaction.
    pending_ops: Vec<CatalogOp>,
    /// Volumes whose root or allocated count changed since the last capture.
    dirty_volumes: BTreeSet<u64>,
    /// Counters as last captured, to emit them only when they change.
    captured_counters: Counters,
    /// Data blocks handed to a writer but not yet linked into a map.
    pub(crate) reserved: HashSet<u64>,
    /// Data blocks freed but not reusable until the freeing commit is durable
    /// and their space is punched out.
    pending_free: HashSet<u64>,
    /// Freed since the last capture (a subset of `pending_free`).
    freed_since_capture: Vec<u64>,
    /// Data blocks and map nodes whose refcount dropped in a transaction
    /// that is not yet durable, with how many such drops are outstanding.
    /// The committed maps may still share them, so they must not be changed
    /// in place even when their in-memory count is 1: a data block would be
    /// overwritten under a committed snapshot, and below a node the blocks
    /// it reaches would look exclusive.
    unstable: HashMap<(Table, u64), u32>,
    /// Drops since the last capture (each also counted in `unstable`).
    unstable_since_capture: Vec<(Table, u64)>,
    data_hint: u64,
    node_hint: u64,
    /// Clean pages kept cached per store before trimming.
    pub cache_pages: usize,
    /// An upper bound on the encoded catalog's length, and whether it is
    /// exact (None: not yet known, as after replay); see
    /// [`MetaState::ensure_catalog_room`].
    catalog_bound: Option<(u64, bool)>,
    /// [`MAX_CATALOG_BYTES`], smaller in tests.
    pub(crate) catalog_limit: u64,
}

/// A journal record decoded and validated, waiting for its Commit.
pub(crate) enum Replayed {
    Base(Box<Catalog>),
    Op(CatalogOp),
    Node(u64, Box<node::Page>),
    Refs(Table, Vec<(u64, u32)>),
    Extend(u64),
    Commit,
}

/// One captured transaction: journal payloads plus the blocks it frees.
pub(crate) struct Txn {
    pub records: Vec<(RecordKind, Vec<u8>)>,
    pub freed: Vec<u64>,
    /// Blocks and nodes whose refcount drops this transaction makes durable.
    pub stabilized: Vec<(Table, u64)>,
}

impl MetaState {
    pub fn new(
        block_size: u32,
        catalog: Catalog,
        nodes: Arc<dyn Storage>,
        node_refs: Arc<dyn Storage>,
        data_refs: Arc<dyn Storage>,
    ) -> MetaState {
        let captured_counters = catalog.counters.clone();
        MetaState {
            block_size,
            catalog,
            nodes: NodeStore::new(nodes),
            node_refs: RefTable::new(node_refs, files::NODE_REFS),
            data_refs: RefTable::new(data_refs, files::DATA_REFS),
            pending_ops: Vec::new(),
            dirty_volumes: BTreeSet::new(),
            captured_counters,
            reserved: HashSet::new(),
            pending_free: HashSet::new(),
            freed_since_capture: Vec::new(),
            unstable: HashMap::new(),
            unstable_since_capture: Vec::new(),
            data_hint: 1,
            node_hint: 1,
            cache_pages: CACHE_PAGES,
            catalog_bound: None,
            catalog_limit: MAX_CATALOG_BYTES,
        }
    }

    pub fn push_op(&mut self, op: CatalogOp) {
        // An op's own encoding, plus a map key, bounds what applying it adds
        // to the catalog (the op carries a 4-byte tag, a map entry an
        // 8-byte key).
        if let Some((bound, exact)) = &mut self.catalog_bound {
            *bound += crate::codec::encoded_len(&op) + 16;
            *exact = false;
        }
        self.catalog.apply(op.clone());
        self.pending_ops.push(op);
    }

    /// Refuse, before anything changes, an operation that would add up to
    /// `extra` bytes to a catalog already near [`MAX_CATALOG_BYTES`]. The
    /// running bound makes this O(1); the exact O(catalog) length is taken
    /// only when the bound says the catalog may be full.
    pub fn ensure_catalog_room(&mut self, extra: u64) -> Result<()> {
        let limit = self.catalog_limit;
        let fits = |len: u64| len.saturating_add(extra) <= limit;
        let exact = match self.catalog_bound {
            Some((bound, _)) if fits(bound) => return Ok(()),
            // Refused attempts near the limit do not pay for a new count.
            Some((bound, true)) => bound,
            _ => crate::codec::encoded_len(&self.catalog),
        };
        self.catalog_bound = Some((exact, true));
        if fits(exact) {
            Ok(())
        } else {
            Err(Error::LimitReached {
                what: format!("catalog bytes ({exact} used, {extra} more asked)"),
                limit,
            })
        }
    }

    pub fn mark_volume_dirty(&mut self, id: u64) {
        self.dirty_volumes.insert(id);
    }

    // ---- allocation -------------------------------------------------------

    /// A free data block, reserved for a writer (refcount 1, not yet mapped).
    pub fn alloc_data(&mut self) -> Result<u64> {
        let hw = self.catalog.counters.data_hw;
        let pending = &self.pending_free;
        let found = self
            .data_refs
            .find_zero(self.data_hint.max(1), hw, |i| pending.contains(&i))?;
        let block = match found {
            Some(b) => b,
            None => {
                let limit = crate::catalog::max_data_blocks(self.block_size);
                if hw >= limit {
                    return Err(Error::LimitReached {
                        what: "data blocks".into(),
                        limit,
                    });
                }
                self.catalog.counters.data_hw = hw + 1;
                hw
            }
        };
        self.data_hint = block + 1;
        self.catalog.counters.data_used += 1;
        self.data_refs.set(block, 1)?;
        self.reserved.insert(block);
        Ok(block)
    }

    /// Give back a reserved block that was never linked (a failed write).
    pub fn abandon_reserved(&mut self, block: u64) -> Result<()> {
        if self.reserved.remove(&block) {
            self.catalog.counters.data_used -= 1;
            self.data_refs.set(block, 0)?;
            self.data_hint = self.data_hint.min(block);
        }
        Ok(())
    }

    /// A fresh map node at `level` with refcount 1. Node pages never hold
    /// durable data of their own before a commit, so they are reusable at once.
    pub fn alloc_node(&mut self, level: u8) -> Result<u64> {
        let hw = self.catalog.counters.node_hw;
        let found = self
            .node_refs
            .find_zero(self.node_hint.max(1), hw, |_| false)?;
        let page = match found {
            Some(p) => p,
            None => {
                if hw >= crate::catalog::MAX_UNITS {
                    return Err(Error::LimitReached {
                        what: "map nodes".into(),
                        limit: crate::catalog::MAX_UNITS,
                    });
                }
                self.catalog.counters.node_hw = hw + 1;
                hw
            }
        };
        self.node_hint = page + 1;
        self.catalog.counters.nodes_used += 1;
        self.node_refs.set(page, 1)?;
        self.nodes.fresh(page, level);
        Ok(page)
    }

    fn free_node_page(&mut self, page: u64) {
        self.catalog.counters.nodes_used = self.catalog.counters.nodes_used.saturating_sub(1);
        self.node_hint = self.node_hint.min(page);
    }

    fn free_data_block(&mut self, block: u64) {
        self.catalog.counters.data_used = self.catalog.counters.data_used.saturating_sub(1);
        self.pending_free.insert(block);
        self.freed_since_capture.push(block);
    }

    /// A block's or node's refcount dropped in memory: until that is
    /// durable, the committed maps may still point at it.
    pub(crate) fn mark_unstable(&mut self, table: Table, index: u64) {
        *self.unstable.entry((table, index)).or_insert(0) += 1;
        self.unstable_since_capture.push((table, index));
    }

    pub(crate) fn is_unstable(&self, table: Table, index: u64) -> bool {
        self.unstable.contains_key(&(table, index))
    }

    /// The transaction that carried these drops is durable.
    pub fn release_stabilized(&mut self, drops: &[(Table, u64)]) {
        for key in drops {
            if let Some(n) = self.unstable.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    self.unstable.remove(key);
                }
            }
        }
    }

    /// After the commit that freed `blocks` is durable and their space is
    /// punched out, they may be reused.
    pub fn release_freed(&mut self, blocks: &[u64]) {
        for b in blocks {
            self.pending_free.remove(b);
            self.data_hint = self.data_hint.min(*b);
        }
    }

    // ---- transactions ----------------------------------------------------

    pub fn has_changes(&self) -> bool {
        !self.pending_ops.is_empty()
            || !self.dirty_volumes.is_empty()
            || !self.nodes.dirty.is_empty()
            || self
                .data_refs
                .dirty
                .iter()
                .any(|i| !self.reserved.contains(i))
            || !self.node_refs.dirty.is_empty()
            || self.durable_counters() != self.captured_counters
    }

    /// The catalog as a checkpoint records it.
    pub fn durable_catalog(&self) -> Catalog {
        let mut c = self.catalog.clone();
        c.counters = self.durable_counters();
        c
    }

    /// Counters as a commit records them: reserved blocks are not yet in use.
    fn durable_counters(&self) -> Counters {
        let mut c = self.catalog.counters.clone();
        c.data_used = c.data_used.saturating_sub(self.reserved.len() as u64);
        c
    }

    /// Collect everything changed since the last capture into one transaction.
    pub fn capture(&mut self) -> Result<Txn> {
        let mut records = Vec::new();
        for &p in &std::mem::take(&mut self.nodes.dirty) {
            let sealed = self.nodes.sealed(p);
            let mut payload = Vec::with_capacity(8 + PAGE_SIZE);
            payload.extend_from_slice(&p.to_le_bytes());
            payload.extend_from_slice(&sealed[..]);
            records.push((RecordKind::NodeImage, payload));
        }
        let no_hold = HashSet::new();
        let node_refs = self.node_refs.take_dirty(&no_hold)?;
        let data_refs = self.data_refs.take_dirty(&self.reserved)?;
        for (table, entries) in [(Table::Node, node_refs), (Table::Data, data_refs)] {
            // Bound each record so a huge delete does not make one giant payload.
            for chunk in entries.chunks(65536) {
                records.push((RecordKind::RefcountSet, encode_refcounts(table, chunk)));
            }
        }
        let mut ops = std::mem::take(&mut self.pending_ops);
        for id in std::mem::take(&mut self.dirty_volumes) {
            if let Some(v) = self.catalog.volumes.get(&id) {
                ops.push(CatalogOp::PutVolume(v.clone()));
            }
        }
        if self.durable_counters() != self.captured_counters {
            self.captured_counters = self.durable_counters();
            ops.push(CatalogOp::SetCounters(self.captured_counters.clone()));
        }
        for op in &ops {
            records.push((RecordKind::CatalogOp, crate::codec::encode(op)));
        }
        let freed = std::mem::take(&mut self.freed_since_capture);
        let stabilized = std::mem::take(&mut self.unstable_since_capture);
        Ok(Txn {
            records,
            freed,
            stabilized,
        })
    }

    /// Decode and validate one journal record as soon as it is read, so a
    /// record whose length field is wrong is caught even if its checksum
    /// was forged to match.
    pub fn parse_record(
        kind: RecordKind,
        payload: &[u8],
        file: &'static str,
        at: u64,
    ) -> Result<Replayed> {
        Ok(match kind {
            RecordKind::Base => {
                Replayed::Base(Box::new(crate::codec::decode(payload).map_err(|e| {
                    Error::corrupt(format!("catalog does not decode: {e}"), file, at)
                })?))
            }
            RecordKind::CatalogOp => Replayed::Op(crate::codec::decode(payload).map_err(|e| {
                Error::corrupt(format!("catalog change does not decode: {e}"), file, at)
            })?),
            RecordKind::NodeImage => {
                if payload.len() != 8 + PAGE_SIZE {
                    return Err(Error::corrupt("node image has wrong length", file, at));
                }
                let page_no = crate::format::get_u64(payload, 0);
                let mut page = Box::new([0u8; PAGE_SIZE]);
                page.copy_from_slice(&payload[8..]);
                node::verify(&page, page_no, file)?;
                Replayed::Node(page_no, page)
            }
            RecordKind::RefcountSet => {
                let (table, entries) = decode_refcounts(payload)
                    .ok_or_else(|| Error::corrupt("refcount record is malformed", file, at))?;
                Replayed::Refs(table, entries)
            }
            RecordKind::Extend => {
                let bytes: [u8; 8] = payload
                    .try_into()
                    .map_err(|_| Error::corrupt("journal extend record is malformed", file, at))?;
                Replayed::Extend(u64::from_le_bytes(bytes))
            }
            RecordKind::Commit => {
                if !payload.is_empty() {
                    return Err(Error::corrupt("commit record carries a payload", file, at));
                }
                Replayed::Commit
            }
        })
    }

    /// Apply one committed record during journal replay.
    pub fn apply_replayed(&mut self, record: Replayed) -> Result<()> {
        match record {
            Replayed::Base(catalog) => self.catalog = *catalog,
            Replayed::Op(op) => self.catalog.apply(op),
            Replayed::Node(page_no, page) => self.nodes.install_replayed(page_no, page),
            Replayed::Refs(table, entries) => {
                let t = match table {
                    Table::Data => &mut self.data_refs,
                    Table::Node => &mut self.node_refs,
                };
                for (i, v) in entries {
                    t.set_replayed(i, v)?;
                }
            }
            Replayed::Extend(_) | Replayed::Commit => {}
        }
        Ok(())
    }

    /// After replay: check what the journal installed lies inside the
    /// pool's bounds, then start capturing from the recovered state.
    pub fn finish_replay(&mut self, file: &'static str) -> Result<()> {
        let node_hw = self.catalog.counters.node_hw;
        if let Some(&p) = self.nodes.touched.iter().next_back() {
            if p == 0 || p >= node_hw {
                return Err(Error::corrupt(
                    format!("journal holds map node {p}, outside 1..{node_hw}"),
                    file,
                    0,
                ));
            }
        }
        // Refcount entries past the high-water marks would make a checkpoint
        // write pages far beyond the tables' ends.
        let data_hw = self.catalog.counters.data_hw;
        for (table, hw) in [(&self.data_refs, data_hw), (&self.node_refs, node_hw)] {
            let last_page = refpage_of(hw.saturating_sub(1));
            if let Some(&p) = table.touched.iter().next_back() {
                if p > last_page {
                    return Err(Error::corrupt(
                        format!(
                            "journal sets {} entries on page {p}, past the {hw} the catalog counts",
                            table.name()
                        ),
                        file,
                        0,
                    ));
                }
            }
        }
        self.captured_counters = self.catalog.counters.clone();
        Ok(())
    }

    /// Forget every clean cached page, so the next reads verify what is
    /// on disk now (the integrity check).
    pub fn drop_clean_caches(&mut self) {
        self.nodes.trim(0);
        self.node_refs.trim(0);
        self.data_refs.trim(0);
    }

    pub fn trim_caches(&mut self) {
        self.nodes.trim(self.cache_pages);
        self.node_refs.trim(self.cache_pages);
        self.data_refs.trim(self.cache_pages);
    }

    /// Pages that differ from their files (memory pinned until a checkpoint).
    pub fn touched_pages(&self) -> usize {
        self.nodes.touched.len() + self.node_refs.touched.len() + self.data_refs.touched.len()
    }

    /// Checkpoint, under the metadata lock: images of every page that
    /// differs from its home file, and the catalog as of now. The caller
    /// has captured all changes first, so only reserved entries are
    /// uncommitted (they are imaged as free).
    pub fn take_checkpoint(&mut self) -> CheckpointImages {
        let reserved = self.reserved.clone();
        CheckpointImages {
            pages: [
                self.nodes.take_checkpoint_images(),
                self.node_refs.take_checkpoint_images(&HashSet::new()),
                self.data_refs.take_checkpoint_images(&reserved),
            ],
            catalog: self.durable_catalog(),
        }
    }

    /// The checkpoint that took `images` wrote them (or failed).
    pub fn finish_checkpoint(&mut self, images: &CheckpointImages, written: bool) {
        let [nodes, node_refs, data_refs] = &images.pages;
        self.nodes.finish_checkpoint(nodes, written);
        self.node_refs.finish_checkpoint(node_refs, written);
        self.data_refs.finish_checkpoint(data_refs, written);
    }
}

/// What a checkpoint writes, taken under the metadata lock and written
/// without it, so reads and writes go on meanwhile.
pub(crate) struct CheckpointImages {
    /// Node pages, node refcount pages, data refcount pages.
    pages: [nodes::PageImages; 3],
    /// The catalog the next generation's journal starts from.
    pub catalog: Catalog,
}

impl CheckpointImages {
    /// Write every page home and sync each file.
    pub fn write_pages(&self) -> Result<()> {
        for p in &self.pages {
            p.write_and_sync()?;
        }
        Ok(())
    }
}

/// The refcount page holding entry `index`.
fn refpage_of(index: u64) -> u64 {
    crate::format::refpage::locate(index).0
}

pub(crate) fn encode_refcounts(table: Table, entries: &[(u64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + entries.len() * 12);
    out.push(table as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (i, v) in entries {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_refcounts(payload: &[u8]) -> Option<(Table, Vec<(u64, u32)>)> {
    let table = match *payload.first()? {
        0 => Table::Data,
        1 => Table::Node,
        _ => return None,
    };
    let count = u32::from_le_bytes(payload.get(4..8)?.try_into().ok()?) as usize;
    let body = payload.get(8..)?;
    if body.len() != count.checked_mul(12)? {
        return None;
    }
    let entries = body
        .chunks_exact(12)
        .map(|c| {
            let mut i = [0u8; 8];
            i.copy_from_slice(&c[..8]);
            let mut v = [0u8; 4];
            v.copy_from_slice(&c[8..]);
            (u64::from_le_bytes(i), u32::from_le_bytes(v))
        })
        .collect();
    Some((table, entries))
}

impl MetaState {
    /// `check --repair`: lower a leaked data block's refcount to what is referenced.
    pub fn repair_data_refcount(&mut self, block: u64, refs: u32) -> Result<()> {
        self.data_refs.set(block, refs)?;
        if refs == 0 {
            self.pending_free.insert(block);
            self.freed_since_capture.push(block);
        }
        Ok(())
    }

    pub fn repair_node_refcount(&mut self, page: u64, refs: u32) -> Result<()> {
        self.node_refs.set(page, refs)?;
        if refs == 0 {
            self.node_hint = self.node_hint.min(page);
        }
        Ok(())
    }

    /// After a repair, set the usage counters to what the tables now hold.
    pub fn recount_usage(
        &mut self,
        data_used: u64,
        nodes_used: u64,
        repaired: &[(bool, u64, u64)],
    ) {
        let freed_data = repaired.iter().filter(|(d, _, r)| *d && *r == 0).count() as u64;
        let freed_nodes = repaired.iter().filter(|(d, _, r)| !*d && *r == 0).count() as u64;
        self.catalog.counters.data_used = data_used - freed_data;
        self.catalog.counters.nodes_used = nodes_used - freed_nodes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_records_round_trip_and_reject_garbage() {
        let e = vec![(1u64, 2u32), (u64::MAX, 7)];
        let b = encode_refcounts(Table::Node, &e);
        assert_eq!(decode_refcounts(&b), Some((Table::Node, e)));
        assert_eq!(decode_refcounts(&b[..b.len() - 1]), None);
        assert_eq!(decode_refcounts(&[9, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(decode_refcounts(&[]), None);
    }
}
