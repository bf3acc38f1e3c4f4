//! The wire parsers on arbitrary bytes, for `fuzz/fuzz_targets/nbd_parser.rs`
//! and the unit tests: no panic, and everything accepted is consistent.

use super::consts::*;
use super::option::{decode_option_header, parse_option, ClientOption, OPTION_HEADER_LEN};
use super::request::{classify, Command, RequestHeader, Shape, REQUEST_LEN};

/// Byte 0 picks the parser. Option: 16-byte header, then its payload.
/// Request: three shape bits, an export size, then a 28-byte header.
/// Panics only when a parser breaks an invariant.
pub fn wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        option(rest);
    } else {
        request(mode, rest);
    }
}

fn option(data: &[u8]) {
    let (code, payload) = match data.first_chunk::<OPTION_HEADER_LEN>() {
        Some(h) => match decode_option_header(h) {
            Some((code, _)) => (code, &data[OPTION_HEADER_LEN..]),
            None => return,
        },
        // Short inputs still reach the payload parser, under GO.
        None => (OPT_GO, data),
    };
    let Ok(parsed) = parse_option(code, payload) else {
        return;
    };
    match parsed {
        ClientOption::Info(r) | ClientOption::Go(r) => {
            // What was accepted re-encodes to exactly the input.
            let mut again = (r.name.len() as u32).to_be_bytes().to_vec();
            again.extend_from_slice(r.name.as_bytes());
            again.extend_from_slice(&(r.items.len() as u16).to_be_bytes());
            for i in &r.items {
                again.extend_from_slice(&i.to_be_bytes());
            }
            assert_eq!(again, payload, "INFO/GO payload round trip");
        }
        ClientOption::SetMetaContext(r) | ClientOption::ListMetaContext(r) => {
            let strings = std::iter::once(&r.export).chain(&r.queries);
            let len: usize = strings.map(|s| 4 + s.len()).sum::<usize>() + 4;
            assert_eq!(len, payload.len(), "meta context payload fully used");
        }
        ClientOption::ExportName(name) => assert!(name.len() <= MAX_STRING),
        ClientOption::List | ClientOption::StructuredReply => assert!(payload.is_empty()),
        ClientOption::Abort | ClientOption::Unsupported(_) => {}
    }
}

fn request(mode: u8, data: &[u8]) {
    let Some((size, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some(header) = rest.first_chunk::<REQUEST_LEN>() else {
        return;
    };
    let Some(h) = RequestHeader::decode(header) else {
        return;
    };
    assert_eq!(&h.encode(), header, "request header round trip");
    let shape = Shape {
        size: u64::from_be_bytes(*size),
        writable: mode & 2 != 0,
        structured: mode & 4 != 0,
        block_status: mode & 8 != 0,
    };
    let Ok(cmd) = classify(&h, &shape) else {
        return;
    };
    let within = |offset: u64, len: u32| {
        assert!(offset
            .checked_add(u64::from(len))
            .is_some_and(|e| e <= shape.size));
    };
    match cmd {
        Command::Read { offset, len } => {
            assert!(len <= MAX_PAYLOAD);
            within(offset, len);
        }
        Command::Write { offset, len, .. } => {
            assert!(shape.writable && len <= MAX_PAYLOAD && len == h.payload_len());
            within(offset, len);
        }
        Command::Trim { offset, len, .. } | Command::WriteZeroes { offset, len, .. } => {
            assert!(shape.writable);
            within(offset, len);
        }
        Command::BlockStatus { offset, len, .. } => {
            assert!(shape.block_status && len > 0);
            within(offset, len);
        }
        Command::Flush => assert!(h.offset == 0 && h.length == 0),
        Command::Disconnect => assert_eq!(h.kind, CMD_DISC),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_break_the_parsers(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            wire(&data);
        }

        #[test]
        fn valid_requests_with_arbitrary_fields_are_consistent(
            mode in any::<u8>(), size in any::<u64>(), flags in any::<u16>(),
            kind in 0u16..10, offset in any::<u64>(), length in any::<u32>(),
        ) {
            let h = RequestHeader { flags, kind, cookie: 1, offset, length };
            let mut data = vec![mode | 1];
            data.extend_from_slice(&size.to_be_bytes());
            data.extend_from_slice(&h.encode());
            wire(&data);
        }
    }
}
