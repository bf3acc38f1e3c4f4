//! The integrity check: recount every reference from the catalog's roots and
//! compare with the refcount tables; verify every node's checksum, level and
//! bounds; reconcile the catalog's counters with the maps.

use crate::error::Result;
use crate::format::node::{self, FANOUT};
use crate::info::CheckReport;
use crate::meta::MetaState;
use crate::pool::Pool;
use std::collections::HashMap;

struct Counts {
    nodes: HashMap<u64, u64>,
    data: HashMap<u64, u64>,
}

impl Pool {
    /// Verify every invariant. With `repair`, reclaim leaked blocks; real
    /// corruption is reported, never "repaired".
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        if repair {
            self.inner.check_writable()?;
        }
        // Quiesce: commit pending state so the check sees what is durable too.
        self.inner.commit()?;
        let mut m = self.inner.meta.lock();
        // Pages cached since they were read may have rotted on disk since:
        // read and verify them again. (Pages changed since the last
        // checkpoint are newer than their home copies; the journal that
        // holds them was verified record by record at open.)
        m.drop_clean_caches();
        let mut report = CheckReport::default();
        let mut counts = Counts {
            nodes: HashMap::new(),
            data: HashMap::new(),
        };
        let roots: Vec<(String, u64, u8, u64, u64)> = m
            .catalog
            .volumes
            .values()
            .map(|v| {
                (
                    format!("volume {} ({})", v.id, v.name),
                    v.root,
                    v.levels,
                    v.allocated_blocks,
                    v.size_bytes,
                )
            })
            .chain(m.catalog.snapshots.values().map(|s| {
                (
                    format!("snapshot {} ({})", s.id, s.name),
                    s.root,
                    s.levels,
                    s.size_blocks,
                    s.size_bytes,
                )
            }))
            .collect();
        let bs = m.block_size as u64;
        for (what, root, levels, allocated, size) in roots {
            if root == 0 {
                if allocated != 0 {
                    report.errors.push(format!(
                        "{what}: reports {allocated} allocated blocks but has no map"
                    ));
                }
                continue;
            }
            let mut mapped = 0u64;
            visit(
                &mut m,
                &mut counts,
                &mut report,
                &what,
                root,
                levels - 1,
                0,
                size.div_ceil(bs),
                &mut mapped,
            );
            if mapped != allocated {
                report.errors.push(format!(
                    "{what}: reports {allocated} allocated blocks, its map holds {mapped}"
                ));
            }
        }
        let hw_data = m.catalog.counters.data_hw;
        let hw_node = m.catalog.counters.node_hw;
        let mut leaked = Vec::new();
        let mut used_data = 0u64;
        for b in 1..hw_data {
            let rc = match m.data_refs.get(b) {
                Ok(rc) => rc as u64,
                Err(e) => {
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            let refs = counts.data.get(&b).copied().unwrap_or(0);
            if rc > 0 {
                used_data += 1;
            }
            if rc < refs {
                report.errors.push(format!("data block {b}: refcount {rc} but {refs} references (would be freed while in use)"));
            } else if rc > refs && !m.reserved.contains(&b) {
                leaked.push((true, b, refs));
            }
        }
        let mut used_nodes = 0u64;
        for p in 1..hw_node {
            let rc = match m.node_refs.get(p) {
                Ok(rc) => rc as u64,
                Err(e) => {
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            let refs = counts.nodes.get(&p).copied().unwrap_or(0);
            if rc > 0 {
                used_nodes += 1;
            }
            if rc < refs {
                report
                    .errors
                    .push(format!("map node {p}: refcount {rc} but {refs} references"));
            } else if rc > refs {
                leaked.push((false, p, refs));
            }
        }
        // Both sides count every nonzero refcount (a leaked block's too, and
        // a block reserved by a write in flight), so they always agree.
        if used_data != m.catalog.counters.data_used || used_nodes != m.catalog.counters.nodes_used
        {
            let c = &m.catalog.counters;
            report.errors.push(format!(
                "usage counters say {} data blocks and {} nodes, tables hold {used_data} and {used_nodes}",
                c.data_used, c.nodes_used
            ));
        }
        for (&b, _) in counts.data.iter().filter(|(&b, _)| b >= hw_data) {
            report.errors.push(format!(
                "data block {b} referenced beyond the data file's {hw_data} blocks"
            ));
        }
        report.leaked_blocks = leaked.len() as u64;
        report.ok = report.errors.is_empty();
        if repair && report.ok && !leaked.is_empty() {
            for &(is_data, idx, refs) in &leaked {
                if is_data {
                    m.repair_data_refcount(idx, refs as u32)?;
                } else {
                    m.repair_node_refcount(idx, refs as u32)?;
                }
            }
            report.repaired = leaked.len() as u64;
            let (d, n) = (used_data, used_nodes);
            m.recount_usage(d, n, &leaked);
            drop(m);
            self.inner.commit()?;
        }
        Ok(report)
    }
}

#[allow(clippy::too_many_arguments)]
fn visit(
    m: &mut MetaState,
    counts: &mut Counts,
    report: &mut CheckReport,
    what: &str,
    page: u64,
    level: u8,
    base: u64,
    blocks: u64,
    mapped: &mut u64,
) {
    let seen = counts.nodes.entry(page).or_insert(0);
    *seen += 1;
    if *seen > 1 {
        // Shared subtree: its children were counted on the first visit.
        let span = node::entry_span(level + 1);
        *mapped += subtree_mapped(m, page, level, base, blocks, span);
        return;
    }
    if page >= m.catalog.counters.node_hw {
        report
            .errors
            .push(format!("{what}: map node {page} is beyond the nodes file"));
        return;
    }
    let entries: Vec<u64> = match m.nodes.get(page) {
        Ok(p) if node::level(p) == level => (0..FANOUT).map(|i| node::entry(p, i)).collect(),
        Ok(p) => {
            report.errors.push(format!(
                "{what}: map node {page} has level {}, expected {level}",
                node::level(p)
            ));
            return;
        }
        Err(e) => {
            report.errors.push(format!("{what}: {e}"));
            return;
        }
    };
    let span = node::entry_span(level);
    for (i, c) in entries.into_iter().enumerate() {
        if c == 0 {
            continue;
        }
        let lb = base + i as u64 * span;
        if lb >= blocks {
            report.errors.push(format!(
                "{what}: map node {page} entry {i} maps block {lb}, beyond the volume's {blocks}"
            ));
            continue;
        }
        if level == 0 {
            *counts.data.entry(c).or_insert(0) += 1;
            *mapped += 1;
        } else {
            visit(m, counts, report, what, c, level - 1, lb, blocks, mapped);
        }
    }
}

/// Count mapped blocks under an already-verified shared subtree.
fn subtree_mapped(
    m: &mut MetaState,
    page: u64,
    level: u8,
    base: u64,
    blocks: u64,
    _span: u64,
) -> u64 {
    let entries: Vec<u64> = match m.nodes.get(page) {
        Ok(p) => (0..FANOUT).map(|i| node::entry(p, i)).collect(),
        Err(_) => return 0,
    };
    let span = node::entry_span(level);
    let mut n = 0;
    for (i, c) in entries.into_iter().enumerate() {
        let lb = base + i as u64 * span;
        if c == 0 || lb >= blocks {
            continue;
        }
        n += if level == 0 {
            1
        } else {
            subtree_mapped(m, c, level - 1, lb, blocks, span)
        };
    }
    n
}
