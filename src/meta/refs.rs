//! A refcount table (one u32 per data block or node page) cached by page.
//! Changes are journaled as (index, value) pairs, so a commit costs bytes
//! proportional to the entries changed, not to the pages touched.

use crate::error::{Error, Result};
use crate::format::refpage::{self, Page, PER_PAGE};
use crate::format::PAGE_SIZE;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::nodes::PageImages;
use crate::storage::Storage;

pub(crate) struct RefTable {
    file: Arc<dyn Storage>,
    name: &'static str,
    pages: HashMap<u64, Box<Page>>,
    /// Entries changed since the last journal capture.
    pub(crate) dirty: BTreeSet<u64>,
    /// Pages that differ from the file.
    pub(crate) touched: BTreeSet<u64>,
    /// Handed to a checkpoint that is writing them home: not evictable
    /// until it has.
    writing: BTreeSet<u64>,
}

impl RefTable {
    pub fn new(file: Arc<dyn Storage>, name: &'static str) -> RefTable {
        RefTable {
            file,
            name,
            pages: HashMap::new(),
            dirty: BTreeSet::new(),
            touched: BTreeSet::new(),
            writing: BTreeSet::new(),
        }
    }

    /// The table's file name, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn page(&mut self, page_no: u64) -> Result<&mut Page> {
        if !self.pages.contains_key(&page_no) {
            let mut page = Box::new([0u8; PAGE_SIZE]);
            let offset = page_no.checked_mul(PAGE_SIZE as u64).ok_or_else(|| {
                Error::corrupt(
                    format!("refcount page {page_no} out of range"),
                    self.name,
                    0,
                )
            })?;
            self.file
                .read_at(&mut page[..], offset)
                .map_err(|e| Error::io(format!("reading {} page {page_no}", self.name), e))?;
            refpage::verify(&page, page_no, self.name)?;
            self.pages.insert(page_no, page);
        }
        Ok(self.pages.get_mut(&page_no).expect("inserted above"))
    }

    pub fn get(&mut self, index: u64) -> Result<u32> {
        let (p, at) = refpage::locate(index);
        Ok(refpage::get(self.page(p)?, at))
    }

    pub fn set(&mut self, index: u64, value: u32) -> Result<()> {
        let (p, at) = refpage::locate(index);
        refpage::set(self.page(p)?, at, value);
        self.dirty.insert(index);
        self.touched.insert(p);
        Ok(())
    }

    /// Apply a committed value from the journal (not dirty: it is already durable).
    pub fn set_replayed(&mut self, index: u64, value: u32) -> Result<()> {
        let (p, at) = refpage::locate(index);
        refpage::set(self.page(p)?, at, value);
        self.touched.insert(p);
        Ok(())
    }

    /// First index in `from..to` whose count is zero and that `skip` allows.
    pub fn find_zero(
        &mut self,
        from: u64,
        to: u64,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>> {
        let mut i = from;
        while i < to {
            let (p, _) = refpage::locate(i);
            let page_end = ((p + 1) * PER_PAGE as u64).min(to);
            let page = self.page(p)?;
            while i < page_end {
                let (_, at) = refpage::locate(i);
                if refpage::get(page, at) == 0 && !skip(i) {
                    return Ok(Some(i));
                }
                i += 1;
            }
        }
        Ok(None)
    }

    /// Take the entries changed since the last capture, with their values.
    /// Entries in `hold` stay dirty and are not returned.
    pub fn take_dirty(&mut self, hold: &HashSet<u64>) -> Result<Vec<(u64, u32)>> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for i in dirty {
            if hold.contains(&i) {
                self.dirty.insert(i);
            } else {
                out.push((i, self.get(i)?));
            }
        }
        Ok(out)
    }

    /// Checkpoint, under the metadata lock: sealed copies of every touched
    /// page, which count as clean from now on but stay cached until
    /// [`Self::finish_checkpoint`]. Entries in `hold` are imaged as zero:
    /// they are reserved in memory but not yet committed; pages holding
    /// them stay touched, so they are never evicted.
    pub fn take_checkpoint_images(&mut self, hold: &HashSet<u64>) -> PageImages {
        let held_pages: HashSet<u64> = hold.iter().map(|&i| refpage::locate(i).0).collect();
        let touched = std::mem::take(&mut self.touched);
        let mut images = Vec::with_capacity(touched.len());
        for &p in &touched {
            let mut copy = self.pages[&p].clone();
            if held_pages.contains(&p) {
                for &i in hold {
                    let (ip, at) = refpage::locate(i);
                    if ip == p {
                        refpage::set(&mut copy, at, 0);
                    }
                }
                self.touched.insert(p);
            }
            refpage::seal(&mut copy, p);
            images.push((p, copy));
        }
        self.writing.extend(touched);
        PageImages::new(self.file.clone(), self.name, images)
    }

    /// The checkpoint that took `images` is over; if it failed, the pages
    /// stay touched so they are never read back from a stale file.
    pub fn finish_checkpoint(&mut self, images: &PageImages, written: bool) {
        for (p, _) in &images.images {
            self.writing.remove(p);
            if !written {
                self.touched.insert(*p);
            }
        }
    }

    pub fn trim(&mut self, cap: usize) {
        if self.pages.len() > cap {
            let (touched, writing) = (&self.touched, &self.writing);
            self.pages
                .retain(|p, _| touched.contains(p) || writing.contains(p));
        }
    }
}
