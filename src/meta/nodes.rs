//! Cache of map-node pages. Pages that differ from the nodes file stay
//! pinned until a checkpoint writes them; clean pages may be evicted.

use crate::error::{Error, Result};
use crate::format::node::{self, Page};
use crate::format::{files, PAGE_SIZE};
use crate::storage::Storage;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub(crate) struct NodeStore {
    file: Arc<dyn Storage>,
    pages: HashMap<u64, Box<Page>>,
    /// Changed since the last journal capture.
    pub(crate) dirty: BTreeSet<u64>,
    /// Differ from the nodes file (committed or not); written by checkpoint.
    pub(crate) touched: BTreeSet<u64>,
}

impl NodeStore {
    pub fn new(file: Arc<dyn Storage>) -> NodeStore {
        NodeStore {
            file,
            pages: HashMap::new(),
            dirty: BTreeSet::new(),
            touched: BTreeSet::new(),
        }
    }

    fn load(&mut self, page_no: u64) -> Result<()> {
        if self.pages.contains_key(&page_no) {
            return Ok(());
        }
        let mut page = Box::new([0u8; PAGE_SIZE]);
        let offset = page_no.checked_mul(PAGE_SIZE as u64).ok_or_else(|| {
            Error::corrupt(format!("node page {page_no} out of range"), files::NODES, 0)
        })?;
        self.file
            .read_at(&mut page[..], offset)
            .map_err(|e| Error::io(format!("reading map node {page_no}"), e))?;
        node::verify(&page, page_no, files::NODES)?;
        self.pages.insert(page_no, page);
        Ok(())
    }

    pub fn get(&mut self, page_no: u64) -> Result<&Page> {
        self.load(page_no)?;
        Ok(&self.pages[&page_no])
    }

    pub fn get_mut(&mut self, page_no: u64) -> Result<&mut Page> {
        self.load(page_no)?;
        self.dirty.insert(page_no);
        self.touched.insert(page_no);
        Ok(self.pages.get_mut(&page_no).expect("loaded above"))
    }

    /// A brand-new node at `page_no`; its old bytes are never read.
    pub fn fresh(&mut self, page_no: u64, level: u8) -> &mut Page {
        self.dirty.insert(page_no);
        self.touched.insert(page_no);
        let page = self
            .pages
            .entry(page_no)
            .or_insert_with(|| Box::new([0u8; PAGE_SIZE]));
        node::init(page, page_no, level);
        page
    }

    /// Install a committed page image found during journal replay.
    pub fn install_replayed(&mut self, page_no: u64, page: Box<Page>) {
        self.touched.insert(page_no);
        self.pages.insert(page_no, page);
    }

    /// Sealed copy of a page, for the journal or a checkpoint.
    pub fn sealed(&self, page_no: u64) -> Box<Page> {
        let mut copy = self.pages[&page_no].clone();
        node::seal(&mut copy);
        copy
    }

    /// Write every touched page in place (checkpoint). The caller syncs.
    pub fn write_touched(&mut self) -> Result<()> {
        for &p in &self.touched {
            let sealed = self.sealed(p);
            self.file
                .write_at(&sealed[..], p * PAGE_SIZE as u64)
                .map_err(|e| Error::io("checkpoint: writing map node", e))?;
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        self.file
            .sync()
            .map_err(|e| Error::io("checkpoint: syncing nodes", e))
    }

    pub fn mark_all_clean(&mut self) {
        self.touched.clear();
    }

    /// Drop clean pages once the cache grows past `cap` pages.
    pub fn trim(&mut self, cap: usize) {
        if self.pages.len() > cap {
            let touched = &self.touched;
            self.pages.retain(|p, _| touched.contains(p));
        }
    }
}
