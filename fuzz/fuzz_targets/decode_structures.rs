//! Every on-disk decoder (superblock slot, map node, refcount page, journal
//! header and records) on arbitrary bytes: no panic, and sealed structures
//! verify and round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cowsnap::testkit::fuzz::fuzz_decode_structures(data);
});
