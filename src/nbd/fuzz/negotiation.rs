//! The option-negotiation state machine driven by arbitrary bytes, as the
//! server drives it from a socket: client flags, then options framed by
//! their headers, each answered against a small fixed catalog. Every answer
//! is checked against the spec's shape, and what a client chose against
//! what it negotiated.

use crate::nbd::consts::*;
use crate::nbd::negotiation::{
    option_len_ok, transmission_flags, Catalog, ExportInfo, Negotiation, Refused, Step,
};
use crate::nbd::option::{decode_option_header, parse_option, ClientOption, OPTION_HEADER_LEN};

/// Size of every export in the catalog.
const SIZE: u64 = 1 << 20;

/// `vol` (read-write) and `vol@1` (read-only) open; `busy` exists but is
/// at its connection limit; `off` is refused by policy; nothing else exists.
struct Fixed;

impl Catalog for Fixed {
    type Opened = String;

    fn list(&mut self) -> Vec<String> {
        vec!["vol".into(), "vol@1".into(), "busy".into()]
    }

    fn probe(&mut self, name: &str) -> Result<ExportInfo, Refused> {
        match name {
            "vol" | "vol@1" | "busy" => Ok(ExportInfo {
                size: SIZE,
                writable: name != "vol@1",
                description: format!("fuzz export {name}"),
            }),
            "off" => Err(Refused::Policy("disabled".into())),
            _ => Err(Refused::Unknown(format!("no export {name:?}"))),
        }
    }

    fn open(&mut self, name: &str) -> Result<(ExportInfo, String), Refused> {
        let info = self.probe(name)?;
        if name == "busy" {
            return Err(Refused::Policy("too many connections".into()));
        }
        Ok((info, name.to_string()))
    }

    fn preferred_block_size(&self) -> u32 {
        4096
    }
}

/// How a fuzzed handshake ended, so tests can tell what a seed reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Client flags we never offered.
    BadFlags,
    /// The input ran out, or stopped framing options.
    Ended,
    /// The server ended the handshake (ABORT, a refused EXPORT_NAME,
    /// EXPORT_NAME or ABORT while shutting down).
    Left,
    /// The client chose an export.
    Transmit { name: String, block_status: bool },
}

/// What the harness expects, tracked from the options it sent.
#[derive(Default)]
struct Expect {
    structured: bool,
    /// The export a SET_META_CONTEXT last selected `base:allocation` for.
    selected: Option<String>,
}

/// Bytes 0..4: client flags. Then options back to back (16-byte header,
/// payload), as long as they frame. `shutdown_after`: the number of options
/// answered before the server starts shutting down.
pub(super) fn negotiate(data: &[u8], shutdown_after: Option<usize>) -> Outcome {
    let Some((flags, mut rest)) = data.split_first_chunk::<4>() else {
        return Outcome::Ended;
    };
    let flags = u32::from_be_bytes(*flags);
    let Some(mut neg) = Negotiation::start(flags) else {
        assert!(flags & !3 != 0, "valid client flags refused");
        return Outcome::BadFlags;
    };
    let no_zeroes = flags & FLAG_C_NO_ZEROES != 0;
    let mut expect = Expect::default();
    for n in 0.. {
        let Some(header) = rest.first_chunk::<OPTION_HEADER_LEN>() else {
            return Outcome::Ended;
        };
        // A bad magic or an oversized option ends the connection unread.
        let Some((code, len)) = decode_option_header(header) else {
            return Outcome::Ended;
        };
        let Some(payload) = rest
            .get(OPTION_HEADER_LEN..)
            .and_then(|r| r.get(..len as usize))
            .filter(|_| option_len_ok(len))
        else {
            return Outcome::Ended;
        };
        rest = &rest[OPTION_HEADER_LEN + payload.len()..];
        if shutdown_after == Some(n) {
            neg.shut_down();
        }
        let mut out = Vec::new();
        let step = neg.option(&mut Fixed, code, payload, &mut out);
        let parsed = parse_option(code, payload).ok();
        if neg.is_shutting_down() {
            check_shutting_down(code, &out, &step);
            if !matches!(step, Step::More) {
                return Outcome::Left;
            }
            continue;
        }
        if code == OPT_EXPORT_NAME {
            return check_export_name(&out, step, no_zeroes, &expect);
        }
        let replies = split_replies(code, &out);
        let last = replies.last().map(|r| r.0);
        assert!(
            last.is_some_and(|t| t == REP_ACK || t & 0x8000_0000 != 0),
            "option {code}: no final reply"
        );
        for r in &replies[..replies.len() - 1] {
            assert!(
                matches!(r.0, REP_SERVER | REP_INFO | REP_META_CONTEXT),
                "option {code}: reply type {:#x} before the final one",
                r.0
            );
        }
        follow(&mut expect, code, parsed.as_ref(), &replies);
        match step {
            Step::More => assert!(
                !(code == OPT_GO && last == Some(REP_ACK)),
                "GO acknowledged without transmission"
            ),
            Step::Leave => {
                assert_eq!(code, OPT_ABORT, "only ABORT leaves after a reply");
                return Outcome::Left;
            }
            Step::Transmit(chosen) => {
                assert_eq!(code, OPT_GO);
                assert_eq!(last, Some(REP_ACK));
                assert!(chosen.opened == "vol" || chosen.opened == "vol@1");
                assert_eq!(chosen.structured, expect.structured);
                let wanted =
                    expect.structured && expect.selected.as_deref() == Some(chosen.name.as_str());
                assert_eq!(
                    chosen.block_status, wanted,
                    "block status for {:?}",
                    chosen.name
                );
                let flags = transmission_flags(chosen.info.writable, chosen.structured);
                let export = info_item(&replies, INFO_EXPORT).expect("NBD_INFO_EXPORT");
                assert_eq!(export.len(), 10);
                assert_eq!(
                    u64::from_be_bytes(export[..8].try_into().unwrap_or([0; 8])),
                    SIZE
                );
                assert_eq!(u16::from_be_bytes([export[8], export[9]]), flags);
                return Outcome::Transmit {
                    name: chosen.name,
                    block_status: chosen.block_status,
                };
            }
        }
    }
    Outcome::Ended
}

/// Update the model from an option the server answered normally.
fn follow(expect: &mut Expect, code: u32, parsed: Option<&ClientOption>, replies: &[(u32, &[u8])]) {
    let acked = replies.last().is_some_and(|r| r.0 == REP_ACK);
    let contexts = replies.iter().filter(|r| r.0 == REP_META_CONTEXT).count();
    match parsed {
        Some(ClientOption::StructuredReply) => {
            assert!(acked);
            expect.structured = true;
        }
        Some(ClientOption::SetMetaContext(req)) => {
            expect.selected = None;
            assert!(contexts <= 1, "one context at most");
            if contexts == 1 {
                assert!(acked && expect.structured);
                let id = replies[0]
                    .1
                    .get(..4)
                    .map(|b| u32::from_be_bytes(b.try_into().unwrap_or([0; 4])));
                assert_ne!(id, Some(0), "SET gives a real context id");
                expect.selected = Some(req.export.clone());
            }
        }
        Some(ClientOption::ListMetaContext(_)) => {
            assert!(contexts <= 1);
            if contexts == 1 {
                assert!(expect.structured);
                assert_eq!(&replies[0].1[..4], &[0; 4], "LIST ids are zero");
            }
        }
        Some(ClientOption::List) => {
            assert!(acked);
            assert_eq!(replies.len(), 4, "three exports, then the ACK");
        }
        Some(ClientOption::Info(_)) | Some(ClientOption::Go(_)) if acked => {
            assert!(info_item(replies, INFO_BLOCK_SIZE).is_some_and(|b| b.len() == 12));
        }
        None => assert_eq!(replies.len(), 1, "an invalid option gets one reply"),
        _ => {}
    }
    if code == OPT_ABORT {
        assert!(acked);
    }
}

fn check_shutting_down(code: u32, out: &[u8], step: &Step<String>) {
    match code {
        OPT_ABORT => {
            assert_eq!(split_replies(code, out).first().map(|r| r.0), Some(REP_ACK));
            assert!(matches!(step, Step::Leave));
        }
        OPT_EXPORT_NAME => {
            assert!(out.is_empty() && matches!(step, Step::Leave));
        }
        _ => {
            let replies = split_replies(code, out);
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].0, REP_ERR_SHUTDOWN);
            assert!(matches!(step, Step::More));
        }
    }
}

fn check_export_name(out: &[u8], step: Step<String>, no_zeroes: bool, expect: &Expect) -> Outcome {
    match step {
        Step::Transmit(chosen) => {
            assert_eq!(out.len(), if no_zeroes { 10 } else { 134 });
            assert!(out[10..].iter().all(|&b| b == 0));
            assert_eq!(out[..8], SIZE.to_be_bytes());
            let flags = transmission_flags(chosen.info.writable, expect.structured);
            assert_eq!(out[8..10], flags.to_be_bytes());
            Outcome::Transmit {
                name: chosen.name,
                block_status: chosen.block_status,
            }
        }
        Step::Leave => {
            assert!(out.is_empty(), "a refused EXPORT_NAME sends nothing");
            Outcome::Left
        }
        Step::More => panic!("EXPORT_NAME never continues the negotiation"),
    }
}

/// Option replies in `out`: (type, payload). Panics unless `out` is a
/// sequence of well-formed replies to `code`.
fn split_replies(code: u32, mut out: &[u8]) -> Vec<(u32, &[u8])> {
    let mut replies = Vec::new();
    while !out.is_empty() {
        assert!(out.len() >= 20, "truncated option reply");
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        assert_eq!(out[..8], OPT_REPLY_MAGIC.to_be_bytes());
        assert_eq!(be32(&out[8..]), code, "reply names the option");
        let len = be32(&out[16..]) as usize;
        assert!(out.len() >= 20 + len, "reply length past the end");
        let kind = be32(&out[12..]);
        if kind & 0x8000_0000 != 0 {
            assert!(len <= MAX_STRING, "error message too long");
        }
        replies.push((kind, &out[20..20 + len]));
        out = &out[20 + len..];
    }
    replies
}

/// The payload of an `NBD_REP_INFO` reply carrying `item`, after its type.
fn info_item<'a>(replies: &[(u32, &'a [u8])], item: u16) -> Option<&'a [u8]> {
    replies
        .iter()
        .filter(|r| r.0 == REP_INFO && r.1.len() >= 2)
        .find(|r| u16::from_be_bytes([r.1[0], r.1[1]]) == item)
        .map(|r| &r.1[2..])
}
