//! The NBD server's option and request parsers on arbitrary bytes: no
//! panic, and whatever they accept is in range and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cowsnap::nbd::fuzz::wire(data);
});
