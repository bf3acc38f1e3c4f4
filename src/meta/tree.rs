//! The copy-on-write radix tree: lookups, shadowing on write, and lazy
//! refcount push-down (Rodeh). A node's refcount counts the parents (or
//! roots) pointing at it; a data block's counts the leaves pointing at it.

use super::{MetaState, Table};
use crate::error::{Error, Result};
use crate::format::files;
use crate::format::node::{self, FANOUT};

/// Where a block write must land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteTarget {
    /// The block is owned by this map alone: overwrite it.
    InPlace(u64),
    /// Write a whole new block (merging `old`'s bytes, or zeros when `old`
    /// is 0, for a partial write), then link it with `publish_block`.
    Fresh { block: u64, old: u64 },
}

fn child_index(lblock: u64, level: u8) -> usize {
    ((lblock / node::entry_span(level)) % FANOUT as u64) as usize
}

impl MetaState {
    fn check_node_ptr(&self, page: u64, from: &str) -> Result<()> {
        if page == 0 || page >= self.catalog.counters.node_hw {
            return Err(Error::corrupt(
                format!(
                    "{from} points at map node {page}, outside 1..{}",
                    self.catalog.counters.node_hw
                ),
                files::NODES,
                page.saturating_mul(crate::format::PAGE_SIZE as u64),
            ));
        }
        Ok(())
    }

    fn check_data_ptr(&self, block: u64, leaf: u64) -> Result<()> {
        if block >= self.catalog.counters.data_hw {
            return Err(Error::corrupt(
                format!(
                    "map node {leaf} points at data block {block}, beyond the {} allocated",
                    self.catalog.counters.data_hw
                ),
                files::NODES,
                leaf.saturating_mul(crate::format::PAGE_SIZE as u64),
            ));
        }
        Ok(())
    }

    /// Read a node and check it sits at the level its parent implies.
    fn node_at(&mut self, page: u64, level: u8) -> Result<&node::Page> {
        self.check_node_ptr(page, "map")?;
        let p = self.nodes.get(page)?;
        if node::level(p) != level {
            return Err(Error::corrupt(
                format!(
                    "map node {page} has level {}, expected {level}",
                    node::level(p)
                ),
                files::NODES,
                page * crate::format::PAGE_SIZE as u64,
            ));
        }
        Ok(p)
    }

    /// The data block mapped at `lblock`, or 0 for a hole.
    pub fn lookup(&mut self, root: u64, levels: u8, lblock: u64) -> Result<u64> {
        let mut cur = root;
        for level in (0..levels).rev() {
            if cur == 0 {
                return Ok(0);
            }
            let page = self.node_at(cur, level)?;
            let next = node::entry(page, child_index(lblock, level));
            if level == 0 && next != 0 {
                self.check_data_ptr(next, cur)?;
            }
            cur = next;
        }
        Ok(cur)
    }

    // ---- refcounts ---------------------------------------------------------

    pub fn node_incref(&mut self, page: u64) -> Result<()> {
        let rc = self.node_refs.get(page)?;
        if rc == 0 {
            return Err(Error::corrupt(
                format!("map node {page} is in use but its refcount is 0"),
                files::NODE_REFS,
                page,
            ));
        }
        let next = rc.checked_add(1).ok_or_else(|| Error::LimitReached {
            what: format!("references to map node {page}"),
            limit: u32::MAX as u64,
        })?;
        self.node_refs.set(page, next)
    }

    pub fn data_incref(&mut self, block: u64) -> Result<()> {
        let rc = self.data_refs.get(block)?;
        if rc == 0 {
            return Err(Error::corrupt(
                format!("data block {block} is in use but its refcount is 0"),
                files::DATA_REFS,
                block,
            ));
        }
        let next = rc.checked_add(1).ok_or_else(|| Error::LimitReached {
            what: format!("references to data block {block}"),
            limit: u32::MAX as u64,
        })?;
        self.data_refs.set(block, next)
    }

    pub fn data_decref(&mut self, block: u64) -> Result<()> {
        let rc = self.data_refs.get(block)?;
        if rc == 0 {
            return Err(Error::corrupt(
                format!("data block {block} refcount would go below 0"),
                files::DATA_REFS,
                block,
            ));
        }
        self.data_refs.set(block, rc - 1)?;
        if rc == 1 {
            self.free_data_block(block);
        } else {
            self.mark_unstable(Table::Data, block);
        }
        Ok(())
    }

    /// Drop one reference to a node; at zero, free it and drop its children's.
    /// Cost is proportional to what was owned exclusively.
    pub fn node_decref(&mut self, page: u64, level: u8) -> Result<()> {
        self.check_node_ptr(page, "a parent")?;
        let rc = self.node_refs.get(page)?;
        if rc == 0 {
            return Err(Error::corrupt(
                format!("map node {page} refcount would go below 0"),
                files::NODE_REFS,
                page,
            ));
        }
        self.node_refs.set(page, rc - 1)?;
        if rc > 1 {
            self.mark_unstable(Table::Node, page);
            return Ok(());
        }
        let children: Vec<u64> = {
            let p = self.node_at(page, level)?;
            (0..FANOUT)
                .map(|i| node::entry(p, i))
                .filter(|&c| c != 0)
                .collect()
        };
        for child in children {
            if level == 0 {
                self.check_data_ptr(child, page)?;
                self.data_decref(child)?;
            } else {
                self.node_decref(child, level - 1)?;
            }
        }
        self.free_node_page(page);
        Ok(())
    }

    /// Make `page` exclusive to the caller's tree: if shared, copy it and
    /// move one reference from the original to each child. A count of 1 in
    /// memory is not enough: if the drop to 1 is not yet durable, a
    /// committed map still shares the node, and everything below it.
    fn shadow(&mut self, page: u64, level: u8) -> Result<u64> {
        self.check_node_ptr(page, "map")?;
        if self.node_refs.get(page)? == 1 && !self.is_unstable(Table::Node, page) {
            return Ok(page);
        }
        let src = *self.node_at(page, level)?;
        let copy = self.alloc_node(level)?;
        let mut children = Vec::new();
        {
            let dst = self.nodes.get_mut(copy)?;
            for i in 0..FANOUT {
                let c = node::entry(&src, i);
                if c != 0 {
                    node::set_entry(dst, i, c);
                    children.push(c);
                }
            }
        }
        for c in children {
            if level == 0 {
                self.check_data_ptr(c, page)?;
                self.data_incref(c)?;
            } else {
                self.check_node_ptr(c, "map")?;
                self.node_incref(c)?;
            }
        }
        self.node_decref(page, level)?;
        Ok(copy)
    }

    /// Walk a volume's map to the leaf for `lblock`, shadowing shared nodes
    /// and creating missing ones. Returns (leaf page, index in leaf).
    fn leaf_for_write(&mut self, volume_id: u64, lblock: u64) -> Result<(u64, usize)> {
        let vol = self
            .catalog
            .volumes
            .get(&volume_id)
            .ok_or_else(|| Error::not_found("volume", volume_id))?;
        let (root, levels) = (vol.root, vol.levels);
        let new_root = if root == 0 {
            self.alloc_node(levels - 1)?
        } else {
            self.shadow(root, levels - 1)?
        };
        if new_root != root {
            if let Some(v) = self.catalog.volumes.get_mut(&volume_id) {
                v.root = new_root;
            }
            self.mark_volume_dirty(volume_id);
        }
        let mut cur = new_root;
        for level in (1..levels).rev() {
            let idx = child_index(lblock, level);
            let child = node::entry(self.node_at(cur, level)?, idx);
            let next = if child == 0 {
                self.alloc_node(level - 1)?
            } else {
                self.shadow(child, level - 1)?
            };
            if next != child {
                node::set_entry(self.nodes.get_mut(cur)?, idx, next);
            }
            cur = next;
        }
        Ok((cur, child_index(lblock, 0)))
    }

    /// Decide where a write to `lblock` goes. A fresh block is reserved but
    /// not linked until its data is written.
    pub fn prepare_write(&mut self, volume_id: u64, lblock: u64) -> Result<WriteTarget> {
        let (leaf, idx) = self.leaf_for_write(volume_id, lblock)?;
        let cur = node::entry(self.node_at(leaf, 0)?, idx);
        if cur != 0 {
            self.check_data_ptr(cur, leaf)?;
            // Count 1 in memory is not enough: if a drop to 1 is not yet
            // durable, a committed map still shares the block.
            if self.data_refs.get(cur)? == 1 && !self.is_unstable(Table::Data, cur) {
                return Ok(WriteTarget::InPlace(cur));
            }
        }
        let block = self.alloc_data()?;
        Ok(WriteTarget::Fresh { block, old: cur })
    }

    /// Link a freshly written block at `lblock`, dropping the old mapping.
    pub fn publish_block(&mut self, volume_id: u64, lblock: u64, block: u64) -> Result<()> {
        let (leaf, idx) = self.leaf_for_write(volume_id, lblock)?;
        let old = node::entry(self.node_at(leaf, 0)?, idx);
        node::set_entry(self.nodes.get_mut(leaf)?, idx, block);
        self.reserved.remove(&block);
        if old != 0 {
            self.data_decref(old)?;
        } else if let Some(v) = self.catalog.volumes.get_mut(&volume_id) {
            v.allocated_blocks += 1;
        }
        self.mark_volume_dirty(volume_id);
        Ok(())
    }

    /// Unmap `lblock` (it reads as zeros); frees the block if nothing else uses it.
    pub fn unmap_block(&mut self, volume_id: u64, lblock: u64) -> Result<()> {
        let vol = self
            .catalog
            .volumes
            .get(&volume_id)
            .ok_or_else(|| Error::not_found("volume", volume_id))?;
        if self.lookup(vol.root, vol.levels, lblock)? == 0 {
            return Ok(());
        }
        let (leaf, idx) = self.leaf_for_write(volume_id, lblock)?;
        let old = node::entry(self.node_at(leaf, 0)?, idx);
        if old == 0 {
            return Ok(());
        }
        node::set_entry(self.nodes.get_mut(leaf)?, idx, 0);
        self.data_decref(old)?;
        if let Some(v) = self.catalog.volumes.get_mut(&volume_id) {
            v.allocated_blocks = v.allocated_blocks.saturating_sub(1);
        }
        self.mark_volume_dirty(volume_id);
        Ok(())
    }

    /// Data blocks that deleting a map rooted at `root` would free: walks
    /// only nodes referenced by this map alone.
    pub fn exclusive_blocks(&mut self, root: u64, level: u8) -> Result<u64> {
        if root == 0 || self.node_refs.get(root)? != 1 {
            return Ok(0);
        }
        let children: Vec<u64> = {
            let p = self.node_at(root, level)?;
            (0..FANOUT)
                .map(|i| node::entry(p, i))
                .filter(|&c| c != 0)
                .collect()
        };
        let mut n = 0;
        for c in children {
            if level == 0 {
                if self.data_refs.get(c)? == 1 {
                    n += 1;
                }
            } else {
                n += self.exclusive_blocks(c, level - 1)?;
            }
        }
        Ok(n)
    }
}
