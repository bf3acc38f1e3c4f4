//! A plain in-memory model of a pool: the bytes of every volume and
//! snapshot, plus, per volume, what a power cut may leave of it (the bytes
//! as of its last durable point and every write since).

/// One live volume.
#[derive(Debug, Clone)]
pub struct VolumeModel {
    pub name: String,
    /// What reads must return now.
    pub data: Vec<u8>,
    /// Content as of the last point this volume was known durable.
    pub durable: Vec<u8>,
    /// Writes (offset, bytes) since `durable`, oldest first: after a crash
    /// each byte is its durable value or one of the values written over it.
    pub pending: Vec<(u64, Vec<u8>)>,
    /// An operation in flight at a crash may instead have left exactly
    /// this content (a restore that reached the disk).
    pub alternative: Option<Vec<u8>>,
    /// The volume may or may not exist after a crash (its create or delete
    /// was in flight).
    pub maybe: bool,
}

/// One live snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotModel {
    pub name: String,
    /// Name of the volume it was taken of.
    pub volume: String,
    /// The engine's id; 0 while unknown (a create in flight at a crash).
    pub id: u64,
    pub data: Vec<u8>,
    /// The snapshot may or may not exist after a crash.
    pub maybe: bool,
}

/// Volumes and snapshots in creation order.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub volumes: Vec<VolumeModel>,
    pub snapshots: Vec<SnapshotModel>,
    next_name: u64,
}

impl VolumeModel {
    /// A volume whose whole content is durable.
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> VolumeModel {
        VolumeModel {
            name: name.into(),
            durable: data.clone(),
            data,
            pending: Vec::new(),
            alternative: None,
            maybe: false,
        }
    }

    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// Apply a completed write; it is pending until [`Self::mark_durable`].
    pub fn write(&mut self, offset: u64, bytes: &[u8]) {
        let at = offset as usize;
        self.data[at..at + bytes.len()].copy_from_slice(bytes);
        self.pending.push((offset, bytes.to_vec()));
    }

    /// A write that failed (or was in flight) may still have reached the
    /// disk in part: it adds candidates without changing `data`.
    pub fn write_maybe(&mut self, offset: u64, bytes: &[u8]) {
        self.pending.push((offset, bytes.to_vec()));
    }

    /// Everything read now is durable.
    pub fn mark_durable(&mut self) {
        self.durable.clone_from(&self.data);
        self.pending.clear();
    }

    /// Whether `actual` is a content a crash could have left: each byte its
    /// durable value or one written since, or exactly the alternative.
    /// The error names the first byte that is neither.
    pub fn crash_explains(&self, actual: &[u8]) -> Result<(), String> {
        if actual.len() != self.durable.len() {
            return Err(format!(
                "has {} bytes, expected {}",
                actual.len(),
                self.durable.len()
            ));
        }
        if self.alternative.as_deref() == Some(actual) {
            return Ok(());
        }
        // Compare sector by sector first: one memcmp each (fuzz builds
        // instrument every byte comparison of a loop).
        const CHUNK: usize = 512;
        for (c, (ac, dc)) in actual
            .chunks(CHUNK)
            .zip(self.durable.chunks(CHUNK))
            .enumerate()
        {
            if ac == dc {
                continue;
            }
            self.explain_chunk(c * CHUNK, ac)?;
        }
        Ok(())
    }

    /// Byte by byte: each differing byte must be one written since.
    fn explain_chunk(&self, base: usize, actual: &[u8]) -> Result<(), String> {
        let durable = &self.durable[base..base + actual.len()];
        for (j, (&a, &d)) in actual.iter().zip(durable).enumerate() {
            let i = base + j;
            if a == d {
                continue;
            }
            let i64 = i as u64;
            let written = self.pending.iter().any(|(off, bytes)| {
                i64 >= *off && i64 < off + bytes.len() as u64 && bytes[(i64 - off) as usize] == a
            });
            if !written {
                let candidates: Vec<u8> = self
                    .pending
                    .iter()
                    .filter(|(off, bytes)| i64 >= *off && i64 < off + bytes.len() as u64)
                    .map(|(off, bytes)| bytes[(i64 - off) as usize])
                    .collect();
                let alt = if self.alternative.is_some() {
                    " (nor is the volume the in-flight restore's content)"
                } else {
                    ""
                };
                return Err(format!(
                    "byte {i} is {a:#04x}: durable value {d:#04x}, \
                     values written since {candidates:02x?}{alt}"
                ));
            }
        }
        Ok(())
    }
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// A fresh name (`prefix` + counter), never reused in this model.
    pub fn fresh_name(&mut self, prefix: &str) -> String {
        self.next_name += 1;
        format!("{prefix}{}", self.next_name)
    }

    /// Index of the live volume `pick` selects, if any.
    pub fn pick_volume(&self, pick: u8) -> Option<usize> {
        (!self.volumes.is_empty()).then(|| pick as usize % self.volumes.len())
    }

    /// Index of the live snapshot `pick` selects, if any.
    pub fn pick_snapshot(&self, pick: u8) -> Option<usize> {
        (!self.snapshots.is_empty()).then(|| pick as usize % self.snapshots.len())
    }

    pub fn volume(&self, name: &str) -> Option<&VolumeModel> {
        self.volumes.iter().find(|v| v.name == name)
    }

    pub fn volume_mut(&mut self, name: &str) -> Option<&mut VolumeModel> {
        self.volumes.iter_mut().find(|v| v.name == name)
    }

    /// Every volume is durable as it reads now (a pool-wide commit).
    pub fn mark_all_durable(&mut self) {
        for v in &mut self.volumes {
            v.mark_durable();
        }
    }

    /// Remove a volume and the snapshots taken of it.
    pub fn delete_volume(&mut self, name: &str) {
        self.volumes.retain(|v| v.name != name);
        self.snapshots.retain(|s| s.volume != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_explains_accepts_old_or_new_bytes_only() {
        let mut v = VolumeModel::new("v", vec![1; 2048]);
        v.write(100, &[2; 10]);
        v.write(105, &[3; 10]);
        v.write_maybe(1000, &[4; 600]);
        let mut after = vec![1; 2048];
        after[100] = 2; // first write
        after[106] = 3; // second write over the first
        after[104] = 1; // still old
        after[1500] = 4; // in-flight write, second sector
        assert_eq!(v.crash_explains(&after), Ok(()));
        after[107] = 2; // the first write's value survives under the second: allowed
        assert_eq!(v.crash_explains(&after), Ok(()));
        after[99] = 2; // outside every write
        let err = v.crash_explains(&after).unwrap_err();
        assert!(err.starts_with("byte 99 is 0x02"), "{err}");
        assert!(v.crash_explains(&after[..10]).is_err());
    }

    #[test]
    fn durable_points_and_alternatives() {
        let mut v = VolumeModel::new("v", vec![0; 1024]);
        v.write(0, &[9; 512]);
        v.mark_durable();
        assert!(
            v.crash_explains(&[0; 1024]).is_err(),
            "flushed bytes must survive"
        );
        let restored = vec![7; 1024];
        v.alternative = Some(restored.clone());
        assert_eq!(v.crash_explains(&restored), Ok(()));
        let mut mixed = restored;
        mixed[0] = 9;
        assert!(
            v.crash_explains(&mixed).is_err(),
            "a restore is all or nothing"
        );
    }
}
