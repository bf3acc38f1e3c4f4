//! The NBD server's option and request parsers, and its option-negotiation
//! state machine, on arbitrary bytes: no panic, whatever they accept is in
//! range and round-trips, and every handshake answer has the spec's shape
//! and agrees with what was negotiated.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cowsnap::nbd::fuzz::wire(data);
});
