//! A valid small pool with one file damaged as the input says (raw overlay,
//! splice, or re-sealed catalog / journal records / node and refcount
//! pages): opening may fail, but nothing may panic, and a pool that opens
//! must survive check, reads and a write.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cowsnap::testkit::fuzz::fuzz_open_pool(data);
});
