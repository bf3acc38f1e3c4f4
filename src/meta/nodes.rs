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
    /// Handed to a checkpoint that is writing them home: not evictable
    /// until it has, or the file would be read back older than the cache.
    writing: BTreeSet<u64>,
}

impl NodeStore {
    pub fn new(file: Arc<dyn Storage>) -> NodeStore {
        NodeStore {
            file,
            pages: HashMap::new(),
            dirty: BTreeSet::new(),
            touched: BTreeSet::new(),
            writing: BTreeSet::new(),
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

    /// Checkpoint, under the metadata lock: sealed copies of every touched
    /// page, which count as clean from now on (a later change touches a
    /// page again) but stay cached until [`Self::finish_checkpoint`].
    pub fn take_checkpoint_images(&mut self) -> PageImages {
        let pages = std::mem::take(&mut self.touched);
        let images = pages.iter().map(|&p| (p, self.sealed(p))).collect();
        self.writing.extend(pages);
        PageImages {
            file: self.file.clone(),
            what: files::NODES,
            images,
        }
    }

    /// The checkpoint that took `images` is over. If it failed, the home
    /// file may be stale or torn: the pages stay touched, so they are never
    /// read back from it.
    pub fn finish_checkpoint(&mut self, images: &PageImages, written: bool) {
        for (p, _) in &images.images {
            self.writing.remove(p);
            if !written {
                self.touched.insert(*p);
            }
        }
    }

    /// Drop clean pages once the cache grows past `cap` pages.
    pub fn trim(&mut self, cap: usize) {
        if self.pages.len() > cap {
            let (touched, writing) = (&self.touched, &self.writing);
            self.pages
                .retain(|p, _| touched.contains(p) || writing.contains(p));
        }
    }
}

/// Pages a checkpoint writes to their home file, copied under the metadata
/// lock so the writing happens without it.
pub(crate) struct PageImages {
    file: Arc<dyn Storage>,
    what: &'static str,
    pub(crate) images: Vec<(u64, Box<Page>)>,
}

impl PageImages {
    pub fn new(file: Arc<dyn Storage>, what: &'static str, images: Vec<(u64, Box<Page>)>) -> Self {
        PageImages { file, what, images }
    }

    /// Write every page home and sync the file.
    pub fn write_and_sync(&self) -> Result<()> {
        for (p, page) in &self.images {
            self.file
                .write_at(&page[..], p * PAGE_SIZE as u64)
                .map_err(|e| Error::io(format!("checkpoint: writing {}", self.what), e))?;
        }
        self.file
            .sync()
            .map_err(|e| Error::io(format!("checkpoint: syncing {}", self.what), e))
    }
}
