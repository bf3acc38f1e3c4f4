//! The option phase of the fixed newstyle handshake as a state machine with
//! no I/O: each option's code and payload in, its reply bytes out. The
//! exports come from a [`Catalog`], so the fuzzer and the unit tests drive
//! the same code the server runs, without a pool or a socket.

use super::consts::*;
use super::option::{self as opt, ClientOption, InfoRequest, MetaRequest};

/// The id our one metadata context, `base:allocation`, gets.
pub const ALLOCATION_CONTEXT: u32 = 1;

/// What a client may learn about an export before choosing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    pub size: u64,
    pub writable: bool,
    pub description: String,
}

/// Why a name cannot be opened; the text goes to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such export (`NBD_REP_ERR_UNKNOWN`).
    Unknown(String),
    /// It exists, but may not be opened now (`NBD_REP_ERR_POLICY`): a
    /// stopped server's disk, or an export at its connection limit.
    Policy(String),
}

/// The exports a handshake can see and open.
pub trait Catalog {
    /// What an opened export carries into the transmission phase.
    type Opened;
    /// Every name a client may open now, for `NBD_OPT_LIST`.
    fn list(&mut self) -> Vec<String>;
    /// Look a name up without opening it (INFO, meta contexts).
    fn probe(&mut self, name: &str) -> Result<ExportInfo, Refused>;
    /// Open a name for transmission (GO, EXPORT_NAME).
    fn open(&mut self, name: &str) -> Result<(ExportInfo, Self::Opened), Refused>;
    /// The I/O size that avoids read-modify-write.
    fn preferred_block_size(&self) -> u32;
}

/// The export the client chose, ready for transmission.
pub struct Chosen<T> {
    pub opened: T,
    pub name: String,
    pub info: ExportInfo,
    pub structured: bool,
    /// `base:allocation` was selected for this export.
    pub block_status: bool,
}

/// What the handshake does after one option.
pub enum Step<T> {
    More,
    /// End the connection (after sending what the option produced).
    Leave,
    Transmit(Chosen<T>),
}

/// Negotiation state between options.
#[derive(Debug, Clone, Default)]
pub struct Negotiation {
    structured: bool,
    no_zeroes: bool,
    /// The export `base:allocation` was last selected for.
    meta_export: Option<String>,
    shutting_down: bool,
}

/// Transmission flags for an export.
pub fn transmission_flags(writable: bool, structured: bool) -> u16 {
    // Every connection shares the pool, and a flush commits the whole pool,
    // so flush and FUA are visible across connections: multi-conn is safe
    // (docs/NBD.md).
    let mut f = TF_HAS_FLAGS | TF_CAN_MULTI_CONN;
    if structured {
        // A READ is always one OFFSET_DATA chunk, so DF holds.
        f |= TF_SEND_DF;
    }
    if writable {
        f |= TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES | TF_SEND_FAST_ZERO;
    } else {
        f |= TF_READ_ONLY;
    }
    f
}

/// Whether an option of `len` payload bytes is read at all; a longer one
/// is treated as an attack and the connection dropped, which the spec
/// allows for denial of service.
pub fn option_len_ok(len: u32) -> bool {
    len <= MAX_OPTION_LEN
}

impl Negotiation {
    /// Start after the client's flags; None when it set flags we never
    /// offered, which the spec answers by dropping the connection.
    pub fn start(client_flags: u32) -> Option<Negotiation> {
        if client_flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
            return None;
        }
        Some(Negotiation {
            no_zeroes: client_flags & FLAG_C_NO_ZEROES != 0,
            ..Negotiation::default()
        })
    }

    /// The server is going down: every further option but ABORT gets
    /// `NBD_REP_ERR_SHUTDOWN`, so the client knows to leave.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Answer one option into `out`.
    pub fn option<C: Catalog>(
        &mut self,
        catalog: &mut C,
        code: u32,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Step<C::Opened> {
        if self.shutting_down {
            return refuse_shutting_down(code, out);
        }
        let parsed = match opt::parse_option(code, data) {
            Ok(p) => p,
            // EXPORT_NAME has no way to report an error but hanging up.
            Err(_) if code == OPT_EXPORT_NAME => return Step::Leave,
            Err(opt::Invalid(why)) => {
                out.extend(opt::error_reply(code, REP_ERR_INVALID, why));
                return Step::More;
            }
        };
        match parsed {
            ClientOption::ExportName(name) => match catalog.open(&name) {
                Ok((info, opened)) => {
                    let flags = transmission_flags(info.writable, self.structured);
                    out.extend(opt::export_name_reply(info.size, flags, self.no_zeroes));
                    return Step::Transmit(self.chosen(name, info, opened));
                }
                Err(_) => return Step::Leave,
            },
            ClientOption::Abort => {
                out.extend(opt::option_reply(code, REP_ACK, &[]));
                return Step::Leave;
            }
            ClientOption::List => {
                for name in catalog.list() {
                    out.extend(opt::server_reply(code, &name));
                }
                out.extend(opt::option_reply(code, REP_ACK, &[]));
            }
            ClientOption::StructuredReply => {
                self.structured = true;
                out.extend(opt::option_reply(code, REP_ACK, &[]));
            }
            ClientOption::Info(req) => self.info(catalog, code, &req, out),
            ClientOption::Go(req) => {
                if let Some(chosen) = self.go(catalog, code, req, out) {
                    return Step::Transmit(chosen);
                }
            }
            ClientOption::SetMetaContext(req) => self.meta(catalog, code, &req, true, out),
            ClientOption::ListMetaContext(req) => self.meta(catalog, code, &req, false, out),
            ClientOption::Unsupported(_) => out.extend(opt::error_reply(
                code,
                REP_ERR_UNSUP,
                "option not supported by cowsnap",
            )),
        }
        Step::More
    }

    fn chosen<T>(&self, name: String, info: ExportInfo, opened: T) -> Chosen<T> {
        let block_status = self.structured && self.meta_export.as_deref() == Some(name.as_str());
        Chosen {
            opened,
            name,
            info,
            structured: self.structured,
            block_status,
        }
    }

    fn info<C: Catalog>(&self, catalog: &mut C, code: u32, req: &InfoRequest, out: &mut Vec<u8>) {
        match catalog.probe(&req.name) {
            Ok(info) => self.describe(catalog, code, req, &info, out),
            Err(refused) => out.extend(refusal(code, refused)),
        }
    }

    fn go<C: Catalog>(
        &self,
        catalog: &mut C,
        code: u32,
        req: InfoRequest,
        out: &mut Vec<u8>,
    ) -> Option<Chosen<C::Opened>> {
        match catalog.open(&req.name) {
            Ok((info, opened)) => {
                self.describe(catalog, code, &req, &info, out);
                Some(self.chosen(req.name, info, opened))
            }
            Err(refused) => {
                out.extend(refusal(code, refused));
                None
            }
        }
    }

    /// The `NBD_REP_INFO` replies of INFO and GO, then the ACK.
    fn describe<C: Catalog>(
        &self,
        catalog: &C,
        code: u32,
        req: &InfoRequest,
        info: &ExportInfo,
        out: &mut Vec<u8>,
    ) {
        let flags = transmission_flags(info.writable, self.structured);
        out.extend(opt::info_export(code, info.size, flags));
        // Byte-granular I/O works (minimum 1); a pool block is the size
        // that avoids read-modify-write on copy-on-write.
        out.extend(opt::info_block_size(
            code,
            1,
            catalog.preferred_block_size(),
            MAX_PAYLOAD,
        ));
        if req.items.contains(&INFO_NAME) {
            out.extend(opt::info_text(code, INFO_NAME, &req.name));
        }
        if req.items.contains(&INFO_DESCRIPTION) {
            out.extend(opt::info_text(code, INFO_DESCRIPTION, &info.description));
        }
        out.extend(opt::option_reply(code, REP_ACK, &[]));
    }

    /// SET_META_CONTEXT (`set`) and LIST_META_CONTEXT.
    fn meta<C: Catalog>(
        &mut self,
        catalog: &mut C,
        code: u32,
        req: &MetaRequest,
        set: bool,
        out: &mut Vec<u8>,
    ) {
        if set {
            // A SET replaces the selection even when it fails.
            self.meta_export = None;
        }
        if !self.structured {
            out.extend(opt::error_reply(
                code,
                REP_ERR_INVALID,
                "negotiate structured replies first",
            ));
            return;
        }
        if let Err(refused) = catalog.probe(&req.export) {
            out.extend(refusal(code, refused));
            return;
        }
        // LIST may use the namespace alone as a wildcard; SET needs the
        // full name. Queries in other namespaces are ignored, as required.
        let wanted = |q: &String| q == META_BASE_ALLOCATION || (!set && q == "base:");
        if set {
            if req.queries.iter().any(wanted) {
                out.extend(opt::meta_context(
                    code,
                    ALLOCATION_CONTEXT,
                    META_BASE_ALLOCATION,
                ));
                self.meta_export = Some(req.export.clone());
            }
        } else if req.queries.is_empty() || req.queries.iter().any(wanted) {
            // The spec reserves the id in LIST replies: zero.
            out.extend(opt::meta_context(code, 0, META_BASE_ALLOCATION));
        }
        out.extend(opt::option_reply(code, REP_ACK, &[]));
    }
}

/// While shutting down: ABORT is acknowledged, EXPORT_NAME (which cannot
/// carry an error) hangs up, anything else gets `NBD_REP_ERR_SHUTDOWN`.
fn refuse_shutting_down<T>(code: u32, out: &mut Vec<u8>) -> Step<T> {
    match code {
        OPT_ABORT => {
            out.extend(opt::option_reply(code, REP_ACK, &[]));
            Step::Leave
        }
        OPT_EXPORT_NAME => Step::Leave,
        _ => {
            out.extend(opt::error_reply(
                code,
                REP_ERR_SHUTDOWN,
                "the server is shutting down",
            ));
            Step::More
        }
    }
}

fn refusal(code: u32, refused: Refused) -> Vec<u8> {
    match refused {
        Refused::Unknown(msg) => opt::error_reply(code, REP_ERR_UNKNOWN, &msg),
        Refused::Policy(msg) => opt::error_reply(code, REP_ERR_POLICY, &msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vol` read-write, `vol@1` read-only, `off` refused by policy.
    struct Two;

    impl Catalog for Two {
        type Opened = ();
        fn list(&mut self) -> Vec<String> {
            vec!["vol".into(), "vol@1".into()]
        }
        fn probe(&mut self, name: &str) -> Result<ExportInfo, Refused> {
            match name {
                "vol" | "vol@1" => Ok(ExportInfo {
                    size: 1 << 20,
                    writable: name == "vol",
                    description: format!("test {name}"),
                }),
                "off" => Err(Refused::Policy("stopped".into())),
                _ => Err(Refused::Unknown(format!("no {name}"))),
            }
        }
        fn open(&mut self, name: &str) -> Result<(ExportInfo, ()), Refused> {
            self.probe(name).map(|i| (i, ()))
        }
        fn preferred_block_size(&self) -> u32 {
            4096
        }
    }

    fn name_payload(name: &str, tail: &[u8]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(tail);
        d
    }

    fn meta_payload(export: &str, queries: &[&str]) -> Vec<u8> {
        let mut d = name_payload(export, &(queries.len() as u32).to_be_bytes());
        for q in queries {
            d.extend_from_slice(&(q.len() as u32).to_be_bytes());
            d.extend_from_slice(q.as_bytes());
        }
        d
    }

    /// Reply types in `out`, in order.
    fn reply_types(mut out: &[u8]) -> Vec<u32> {
        let mut types = Vec::new();
        while out.len() >= 20 {
            let len = u32::from_be_bytes(out[16..20].try_into().unwrap()) as usize;
            types.push(u32::from_be_bytes(out[12..16].try_into().unwrap()));
            out = &out[20 + len..];
        }
        types
    }

    fn answer(n: &mut Negotiation, code: u32, data: &[u8]) -> (Vec<u32>, Step<()>) {
        let mut out = Vec::new();
        let step = n.option(&mut Two, code, data, &mut out);
        (reply_types(&out), step)
    }

    #[test]
    fn flags_we_never_offered_end_the_handshake() {
        assert!(Negotiation::start(FLAG_C_FIXED_NEWSTYLE | 4).is_none());
        assert!(Negotiation::start(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).is_some());
    }

    #[test]
    fn block_status_is_only_for_the_export_the_context_was_set_on() {
        let mut n = Negotiation::start(3).unwrap();
        answer(&mut n, OPT_STRUCTURED_REPLY, &[]);
        let set = meta_payload("vol@1", &["base:allocation"]);
        let (types, _) = answer(&mut n, OPT_SET_META_CONTEXT, &set);
        assert_eq!(types, [REP_META_CONTEXT, REP_ACK]);
        let Step::Transmit(c) = answer(&mut n, OPT_GO, &name_payload("vol", &[0, 0])).1 else {
            panic!("GO vol");
        };
        assert!(c.structured && !c.block_status);
        let Step::Transmit(c) = answer(&mut n, OPT_GO, &name_payload("vol@1", &[0, 0])).1 else {
            panic!("GO vol@1");
        };
        assert!(c.block_status && !c.info.writable);
    }

    #[test]
    fn a_failed_set_clears_the_selection() {
        let mut n = Negotiation::start(3).unwrap();
        answer(&mut n, OPT_STRUCTURED_REPLY, &[]);
        answer(
            &mut n,
            OPT_SET_META_CONTEXT,
            &meta_payload("vol", &["base:allocation"]),
        );
        let (types, _) = answer(
            &mut n,
            OPT_SET_META_CONTEXT,
            &meta_payload("nope", &["base:allocation"]),
        );
        assert_eq!(types, [REP_ERR_UNKNOWN]);
        let Step::Transmit(c) = answer(&mut n, OPT_GO, &name_payload("vol", &[0, 0])).1 else {
            panic!("GO vol");
        };
        assert!(!c.block_status);
    }

    #[test]
    fn after_shutdown_only_abort_is_answered_normally() {
        let mut n = Negotiation::start(3).unwrap();
        n.shut_down();
        let (types, step) = answer(&mut n, OPT_GO, &name_payload("vol", &[0, 0]));
        assert_eq!(types, [REP_ERR_SHUTDOWN]);
        assert!(matches!(step, Step::More));
        assert_eq!(answer(&mut n, OPT_LIST, &[]).0, [REP_ERR_SHUTDOWN]);
        assert_eq!(answer(&mut n, OPT_LIST, b"malformed").0, [REP_ERR_SHUTDOWN]);
        assert!(matches!(
            answer(&mut n, OPT_EXPORT_NAME, b"vol").1,
            Step::Leave
        ));
        let (types, step) = answer(&mut n, OPT_ABORT, &[]);
        assert_eq!(types, [REP_ACK]);
        assert!(matches!(step, Step::Leave));
    }

    #[test]
    fn refusals_map_to_the_specs_errors() {
        let mut n = Negotiation::start(3).unwrap();
        let go = |name| name_payload(name, &[0, 0]);
        assert_eq!(answer(&mut n, OPT_GO, &go("off")).0, [REP_ERR_POLICY]);
        assert_eq!(answer(&mut n, OPT_INFO, &go("nope")).0, [REP_ERR_UNKNOWN]);
        assert!(matches!(
            answer(&mut n, OPT_EXPORT_NAME, b"nope").1,
            Step::Leave
        ));
    }

    #[test]
    fn flags_follow_writability_and_structured_replies() {
        let rw = transmission_flags(true, false);
        assert_eq!(rw & (TF_READ_ONLY | TF_SEND_DF), 0);
        assert_ne!(rw & TF_SEND_FAST_ZERO, 0);
        let ro = transmission_flags(false, true);
        assert_ne!(ro & TF_READ_ONLY, 0);
        assert_ne!(ro & TF_SEND_DF, 0);
        assert_eq!(
            ro & (TF_SEND_FLUSH | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES),
            0
        );
    }
}
