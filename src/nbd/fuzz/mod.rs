//! The wire parsers and the option-negotiation state machine on arbitrary
//! bytes, for `fuzz/fuzz_targets/nbd_parser.rs` and the tests: no panic,
//! and everything accepted is consistent.

mod negotiation;

use super::consts::*;
use super::option::{decode_option_header, parse_option, ClientOption, OPTION_HEADER_LEN};
use super::request::{classify, Command, RequestHeader, Shape, REQUEST_LEN};

/// The low two bits of byte 0 pick the target:
/// - 0: the option parser, on a 16-byte header and its payload;
/// - 1: the request checks, on three shape bits (byte 0 bits 2..4: writable,
///   structured, block status), an export size and a 28-byte header;
/// - 2: the negotiation state machine, on client flags and a stream of
///   options (see [`negotiation::negotiate`]);
/// - 3: the same, with the server shutting down after `byte 0 >> 2` options.
///
/// Panics only when the code under test breaks an invariant.
pub fn wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode & 3 {
        0 => option(rest),
        1 => request(mode >> 2, rest),
        2 => drop(negotiation::negotiate(rest, None)),
        _ => drop(negotiation::negotiate(rest, Some(usize::from(mode >> 2)))),
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

fn request(shape_bits: u8, data: &[u8]) {
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
        writable: shape_bits & 1 != 0,
        structured: shape_bits & 2 != 0,
        block_status: shape_bits & 4 != 0,
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

/// Builders for the checked-in seeds (`fuzz/corpus/nbd_parser/seed-*`,
/// written by `fuzz/make_seeds.sh`): real option and request bytes, and
/// the handshakes real clients do.
mod seed {
    use super::*;
    use crate::nbd::option::OPTION_HEADER_LEN;

    pub fn string(s: &str) -> Vec<u8> {
        let mut d = (s.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(s.as_bytes());
        d
    }

    pub fn option(code: u32, payload: &[u8]) -> Vec<u8> {
        let mut d = Vec::with_capacity(OPTION_HEADER_LEN + payload.len());
        d.extend_from_slice(&OPT_MAGIC.to_be_bytes());
        d.extend_from_slice(&code.to_be_bytes());
        d.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        d.extend_from_slice(payload);
        d
    }

    pub fn info(name: &str, items: &[u16]) -> Vec<u8> {
        let mut d = string(name);
        d.extend_from_slice(&(items.len() as u16).to_be_bytes());
        for i in items {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    pub fn meta(export: &str, queries: &[&str]) -> Vec<u8> {
        let mut d = string(export);
        d.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            d.extend_from_slice(&string(q));
        }
        d
    }

    pub fn request(shape_bits: u8, size: u64, h: RequestHeader) -> Vec<u8> {
        let mut d = vec![(shape_bits << 2) | 1];
        d.extend_from_slice(&size.to_be_bytes());
        d.extend_from_slice(&h.encode());
        d
    }

    /// Mode byte, client flags, then the options.
    pub fn handshake(mode: u8, flags: u32, options: &[Vec<u8>]) -> Vec<u8> {
        let mut d = vec![mode];
        d.extend_from_slice(&flags.to_be_bytes());
        options.iter().for_each(|o| d.extend_from_slice(o));
        d
    }
}

/// The seed corpus of the `nbd_parser` target: (name, bytes).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use seed::*;
    let rw = 0b111; // writable, structured, block status
    let h = |kind, flags, offset, length| RequestHeader {
        flags,
        kind,
        cookie: 7,
        offset,
        length,
    };
    let base = META_BASE_ALLOCATION;
    vec![
        (
            "option-go",
            [vec![0], option(OPT_GO, &info("vol", &[INFO_BLOCK_SIZE]))].concat(),
        ),
        (
            "option-set-meta",
            [vec![0], option(OPT_SET_META_CONTEXT, &meta("vol", &[base]))].concat(),
        ),
        (
            "request-read",
            request(rw, 1 << 20, h(CMD_READ, CMD_FLAG_DF, 4096, 65536)),
        ),
        (
            "request-write-fua",
            request(rw, 1 << 20, h(CMD_WRITE, CMD_FLAG_FUA, 0, 512)),
        ),
        (
            "request-fast-zero",
            request(
                rw,
                1 << 20,
                h(
                    CMD_WRITE_ZEROES,
                    CMD_FLAG_FAST_ZERO | CMD_FLAG_NO_HOLE,
                    100,
                    8192,
                ),
            ),
        ),
        (
            "request-block-status",
            request(
                rw,
                1 << 30,
                h(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 0, u32::MAX),
            ),
        ),
        (
            "handshake-qemu",
            handshake(
                2,
                3,
                &[
                    option(OPT_STRUCTURED_REPLY, &[]),
                    option(OPT_SET_META_CONTEXT, &meta("vol", &[base])),
                    option(OPT_GO, &info("vol", &[INFO_BLOCK_SIZE])),
                ],
            ),
        ),
        (
            "handshake-nbdinfo-list",
            handshake(
                2,
                3,
                &[
                    option(OPT_STRUCTURED_REPLY, &[]),
                    option(OPT_LIST, &[]),
                    option(OPT_LIST_META_CONTEXT, &meta("vol", &[])),
                    option(OPT_LIST_META_CONTEXT, &meta("vol@1", &["base:"])),
                    option(OPT_INFO, &info("vol@1", &[INFO_NAME, INFO_DESCRIPTION])),
                    option(OPT_ABORT, &[]),
                ],
            ),
        ),
        (
            "handshake-refusals",
            handshake(
                2,
                3,
                &[
                    option(OPT_STARTTLS, &[]),
                    option(OPT_SET_META_CONTEXT, &meta("vol", &[base])),
                    option(OPT_GO, &info("off", &[])),
                    option(OPT_GO, &info("busy", &[])),
                    option(OPT_INFO, &info("nope", &[])),
                    option(OPT_LIST, b"junk"),
                    option(OPT_GO, &info("vol@1", &[])),
                ],
            ),
        ),
        (
            "handshake-context-elsewhere",
            handshake(
                2,
                3,
                &[
                    option(OPT_STRUCTURED_REPLY, &[]),
                    option(OPT_SET_META_CONTEXT, &meta("vol", &[base])),
                    option(OPT_GO, &info("vol@1", &[])),
                ],
            ),
        ),
        (
            "handshake-export-name",
            handshake(
                2,
                1,
                &[
                    option(OPT_STRUCTURED_REPLY, &[]),
                    option(OPT_EXPORT_NAME, b"vol"),
                ],
            ),
        ),
        (
            "handshake-shutdown",
            handshake(
                3 | (1 << 2),
                3,
                &[
                    option(OPT_STRUCTURED_REPLY, &[]),
                    option(OPT_GO, &info("vol", &[])),
                    option(OPT_LIST, &[]),
                    option(OPT_ABORT, &[]),
                ],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The handshake seeds reach what they are named for.
    #[test]
    fn handshake_seeds_reach_their_outcomes() {
        let outcome = |name: &str| {
            let (_, bytes) = seeds().into_iter().find(|s| s.0 == name).unwrap();
            let shutdown = (bytes[0] & 3 == 3).then(|| usize::from(bytes[0] >> 2));
            negotiation::negotiate(&bytes[1..], shutdown)
        };
        let transmit = |name: &str, block_status| negotiation::Outcome::Transmit {
            name: name.into(),
            block_status,
        };
        assert_eq!(outcome("handshake-qemu"), transmit("vol", true));
        assert_eq!(
            outcome("handshake-nbdinfo-list"),
            negotiation::Outcome::Left
        );
        // Without structured replies the SET was refused: no block status.
        assert_eq!(outcome("handshake-refusals"), transmit("vol@1", false));
        // The context was set on vol, so a GO on vol@1 has none.
        assert_eq!(
            outcome("handshake-context-elsewhere"),
            transmit("vol@1", false)
        );
        assert_eq!(outcome("handshake-export-name"), transmit("vol", false));
        assert_eq!(outcome("handshake-shutdown"), negotiation::Outcome::Left);
        for (_, bytes) in seeds() {
            wire(&bytes);
        }
    }

    fn option_strategy() -> impl Strategy<Value = Vec<u8>> {
        let name = prop::sample::select(vec!["vol", "vol@1", "busy", "off", "nope", ""]);
        let query = prop::sample::select(vec![META_BASE_ALLOCATION, "base:", "qemu:x", "nope"]);
        let items = proptest::collection::vec(0u16..5, 0..4);
        let queries = proptest::collection::vec(query, 0..3);
        prop_oneof![
            Just(seed::option(OPT_STRUCTURED_REPLY, &[])),
            Just(seed::option(OPT_LIST, &[])),
            Just(seed::option(OPT_ABORT, &[])),
            Just(seed::option(OPT_STARTTLS, &[])),
            (name.clone(), items.clone())
                .prop_map(|(n, i)| seed::option(OPT_INFO, &seed::info(n, &i))),
            (name.clone(), items).prop_map(|(n, i)| seed::option(OPT_GO, &seed::info(n, &i))),
            (name.clone(), queries.clone())
                .prop_map(|(n, q)| seed::option(OPT_SET_META_CONTEXT, &seed::meta(n, &q))),
            (name.clone(), queries)
                .prop_map(|(n, q)| seed::option(OPT_LIST_META_CONTEXT, &seed::meta(n, &q))),
            name.prop_map(|n| seed::option(OPT_EXPORT_NAME, n.as_bytes())),
            proptest::collection::vec(any::<u8>(), 0..24)
                .prop_map(|junk| seed::option(OPT_GO, &junk)),
        ]
    }

    proptest! {
        /// Well-framed option sequences reach every state; the harness's
        /// checks hold in each.
        #[test]
        fn option_sequences_keep_the_negotiation_consistent(
            flags in 0u32..4,
            shutdown in proptest::option::of(0usize..6),
            options in proptest::collection::vec(option_strategy(), 0..8),
        ) {
            let mut data = flags.to_be_bytes().to_vec();
            options.iter().for_each(|o| data.extend_from_slice(o));
            negotiation::negotiate(&data, shutdown);
        }

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
            let mut data = vec![(mode & !3) | 1];
            data.extend_from_slice(&size.to_be_bytes());
            data.extend_from_slice(&h.encode());
            wire(&data);
        }
    }
}
