//! Decoded op sequences run on a simulated disk with a power cut at a sync
//! or disk op chosen by the input; the recovered pool must honour the
//! durability contract (panics only on a real violation).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cowsnap::testkit::fuzz::fuzz_ops_with_crash(data);
});
