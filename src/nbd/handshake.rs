//! The fixed newstyle handshake: greeting, client flags, then options until
//! the client picks an export (`GO` or `EXPORT_NAME`) or leaves.

use super::consts::*;
use super::control::Lease;
use super::export::{self, Export, Refused};
use super::listener::Ctx;
use super::option::{self as opt, ClientOption, InfoRequest, MetaRequest};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The id our one metadata context gets.
pub(crate) const ALLOCATION_CONTEXT: u32 = 1;

/// What the client chose, ready for the transmission phase.
pub(crate) struct Negotiated {
    pub export: Export,
    pub name: String,
    pub structured: bool,
    /// `base:allocation` was selected for this export.
    pub block_status: bool,
    /// Held for a read-write export, so stops and restores can close it.
    pub lease: Option<Lease>,
}

struct Handshake<'a> {
    ctx: &'a Ctx,
    structured: bool,
    no_zeroes: bool,
    /// The export `base:allocation` was last selected for.
    meta_export: Option<String>,
}

/// Run the handshake. None: the client left, or broke the protocol and was
/// dropped (the spec's hard disconnect).
pub(crate) async fn negotiate<S>(s: &mut S, ctx: &Ctx) -> io::Result<Option<Negotiated>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(&opt::greeting()).await?;
    s.flush().await?;
    let client_flags = s.read_u32().await?;
    // The spec requires dropping a client that sets flags we never offered.
    if client_flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Ok(None);
    }
    let mut hs = Handshake {
        ctx,
        structured: false,
        no_zeroes: client_flags & FLAG_C_NO_ZEROES != 0,
        meta_export: None,
    };
    for _ in 0..ctx.limits.max_options {
        let mut header = [0u8; opt::OPTION_HEADER_LEN];
        s.read_exact(&mut header).await?;
        let Some((code, len)) = opt::decode_option_header(&header) else {
            return Ok(None);
        };
        if len > MAX_OPTION_LEN {
            return Ok(None);
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data).await?;
        let mut out = Vec::new();
        let step = hs.option(code, &data, &mut out);
        s.write_all(&out).await?;
        s.flush().await?;
        match step {
            Step::More => {}
            Step::Leave => return Ok(None),
            Step::Transmit(n) => return Ok(Some(n)),
        }
    }
    Ok(None)
}

enum Step {
    More,
    Leave,
    Transmit(Negotiated),
}

impl Handshake<'_> {
    /// Answer one option into `out`.
    fn option(&mut self, code: u32, data: &[u8], out: &mut Vec<u8>) -> Step {
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
            ClientOption::ExportName(name) => match self.open(&name, true) {
                Ok((export, lease)) => {
                    out.extend(opt::export_name_reply(
                        export.size(),
                        export.flags(self.structured),
                        self.no_zeroes,
                    ));
                    let n = self.negotiated(name, export, lease, self.structured);
                    return Step::Transmit(n);
                }
                Err(_) => return Step::Leave,
            },
            ClientOption::Abort => {
                out.extend(opt::option_reply(code, REP_ACK, &[]));
                return Step::Leave;
            }
            ClientOption::List => {
                for name in export::list(&self.ctx.pool, &self.ctx.control) {
                    out.extend(opt::server_reply(code, &name));
                }
                out.extend(opt::option_reply(code, REP_ACK, &[]));
            }
            ClientOption::StructuredReply => {
                self.structured = true;
                out.extend(opt::option_reply(code, REP_ACK, &[]));
            }
            ClientOption::Info(req) => {
                let _ = self.info(code, &req, false, out);
            }
            ClientOption::Go(req) => {
                if let Some(n) = self.info(code, &req, true, out) {
                    return Step::Transmit(n);
                }
            }
            ClientOption::SetMetaContext(req) => self.meta(code, &req, true, out),
            ClientOption::ListMetaContext(req) => self.meta(code, &req, false, out),
            ClientOption::Unsupported(_) => out.extend(opt::error_reply(
                code,
                REP_ERR_UNSUP,
                "option not supported by cowsnap",
            )),
        }
        Step::More
    }

    /// Resolve a name; with `take_lease`, also register the read-write
    /// connection (refused if the volume was disabled meanwhile).
    fn open(&self, name: &str, take_lease: bool) -> Result<(Export, Option<Lease>), Refused> {
        let export = export::resolve(&self.ctx.pool, &self.ctx.control, name)?;
        let lease = match (&export, take_lease) {
            (Export::Volume(v), true) => {
                Some(self.ctx.control.lease(v.name()).ok_or_else(|| {
                    Refused::Disabled(format!("volume {name} is not exported read-write now"))
                })?)
            }
            _ => None,
        };
        Ok((export, lease))
    }

    fn negotiated(
        &self,
        name: String,
        export: Export,
        lease: Option<Lease>,
        structured: bool,
    ) -> Negotiated {
        let block_status = structured && self.meta_export.as_deref() == Some(name.as_str());
        Negotiated {
            export,
            name,
            structured,
            block_status,
            lease,
        }
    }

    /// INFO and GO; Some when GO succeeded.
    fn info(
        &mut self,
        code: u32,
        req: &InfoRequest,
        go: bool,
        out: &mut Vec<u8>,
    ) -> Option<Negotiated> {
        let (export, lease) = match self.open(&req.name, go) {
            Ok(x) => x,
            Err(refused) => {
                out.extend(refusal(code, refused));
                return None;
            }
        };
        out.extend(opt::info_export(
            code,
            export.size(),
            export.flags(self.structured),
        ));
        // Byte-granular I/O works (minimum 1); a pool block is the size
        // that avoids read-modify-write on copy-on-write.
        out.extend(opt::info_block_size(
            code,
            1,
            self.ctx.pool.inner.block_size,
            MAX_PAYLOAD,
        ));
        if req.items.contains(&INFO_NAME) {
            out.extend(opt::info_text(code, INFO_NAME, &req.name));
        }
        if req.items.contains(&INFO_DESCRIPTION) {
            out.extend(opt::info_text(code, INFO_DESCRIPTION, &export.describe()));
        }
        out.extend(opt::option_reply(code, REP_ACK, &[]));
        go.then(|| self.negotiated(req.name.clone(), export, lease, self.structured))
    }

    /// SET_META_CONTEXT (`set`) and LIST_META_CONTEXT.
    fn meta(&mut self, code: u32, req: &MetaRequest, set: bool, out: &mut Vec<u8>) {
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
        if let Err(refused) = export::resolve(&self.ctx.pool, &self.ctx.control, &req.export) {
            out.extend(refusal(code, refused));
            return;
        }
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
            out.extend(opt::meta_context(code, 0, META_BASE_ALLOCATION));
        }
        out.extend(opt::option_reply(code, REP_ACK, &[]));
    }
}

fn refusal(code: u32, refused: Refused) -> Vec<u8> {
    match refused {
        Refused::Unknown(msg) => opt::error_reply(code, REP_ERR_UNKNOWN, &msg),
        Refused::Disabled(msg) => opt::error_reply(code, REP_ERR_POLICY, &msg),
    }
}
