//! The fixed newstyle handshake on a socket: greeting, client flags, then
//! options until the client picks an export (`GO` or `EXPORT_NAME`) or
//! leaves. The decisions are [`Negotiation`]'s; this drives it, answers
//! each option on a blocking thread (looking exports up takes the pool's
//! metadata lock), and tells the client when the server shuts down.

use super::admission::ExportSlot;
use super::control::Lease;
use super::export::{self, Export};
use super::listener::Ctx;
use super::negotiation::{option_len_ok, Catalog, Chosen, ExportInfo, Negotiation, Refused, Step};
use super::option as opt;
use std::future::pending;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// An export opened for transmission, with what keeps it open.
pub(crate) struct Opened {
    pub export: Export,
    /// Held for a read-write export, so stops and restores can close it.
    pub lease: Option<Lease>,
    /// The connection's place in the export's connection limit.
    pub _slot: ExportSlot,
}

/// What the client chose, ready for the transmission phase.
pub(crate) type Negotiated = Chosen<Opened>;

/// The pool's exports, as the handshake sees them.
struct Engine<'a>(&'a Ctx);

impl Catalog for Engine<'_> {
    type Opened = Opened;

    fn list(&mut self) -> Vec<String> {
        export::list(&self.0.pool, &self.0.control)
    }

    fn probe(&mut self, name: &str) -> Result<ExportInfo, Refused> {
        export::resolve(&self.0.pool, &self.0.control, name).map(|e| e.info())
    }

    /// Resolve, take a connection slot, and for a volume register the
    /// read-write connection (refused if it was disabled meanwhile).
    fn open(&mut self, name: &str) -> Result<(ExportInfo, Opened), Refused> {
        let export = export::resolve(&self.0.pool, &self.0.control, name)?;
        let slots = &self.0.export_slots;
        let slot = slots.take(name).ok_or_else(|| {
            Refused::Policy(format!(
                "export {name} already has {} connections, the most one export may have",
                slots.limit()
            ))
        })?;
        let lease = match &export {
            Export::Volume(v) => Some(self.0.control.lease(v.name()).ok_or_else(|| {
                Refused::Policy(format!("volume {name} is not exported read-write now"))
            })?),
            Export::Snapshot(_) => None,
        };
        let info = export.info();
        Ok((
            info,
            Opened {
                export,
                lease,
                _slot: slot,
            },
        ))
    }

    fn preferred_block_size(&self) -> u32 {
        self.0.pool.inner.block_size
    }
}

/// Run the handshake. None: the client left, broke the protocol and was
/// dropped (the spec's hard disconnect), or the server shut down.
pub(crate) async fn negotiate<S>(
    s: &mut S,
    ctx: &Arc<Ctx>,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Option<Negotiated>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(&opt::greeting()).await?;
    s.flush().await?;
    let Some(flags) = until_stopped(stop, s.read_u32()).await else {
        return Ok(None);
    };
    let Some(mut neg) = Negotiation::start(flags?) else {
        return Ok(None);
    };
    // Once the server stops, the client gets `close_grace` to take the
    // hint (NBD_REP_ERR_SHUTDOWN) and leave.
    let mut leave_by: Option<Instant> = None;
    for _ in 0..ctx.limits.max_options {
        let received = {
            // Kept across wake-ups: a stop must not lose half an option.
            let read = read_option(s);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    r = &mut read => break Some(r?),
                    _ = stop.wait_for(|&v| v), if leave_by.is_none() => {
                        leave_by = Some(Instant::now() + ctx.limits.close_grace);
                    }
                    _ = deadline(leave_by) => break None,
                }
            }
        };
        let Some(Some((code, data))) = received else {
            return Ok(None);
        };
        // A stop that came with the option's last bytes counts too.
        if leave_by.is_some() || *stop.borrow() {
            neg.shut_down();
        }
        let (back, out, step) = answer(neg, ctx.clone(), code, data).await?;
        neg = back;
        // A client that does not take its answer is dropped after
        // `close_grace`: a GO answer already holds the export's read-write
        // lease, which a server stop waits for.
        let written = tokio::time::timeout(ctx.limits.close_grace, async {
            s.write_all(&out).await?;
            s.flush().await
        })
        .await;
        match written {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client does not read its option replies",
                ))
            }
        }
        match step {
            Step::More => {}
            Step::Leave => return Ok(None),
            Step::Transmit(n) => return Ok(Some(n)),
        }
    }
    Ok(None)
}

/// One option's header and payload; None for a bad magic or an option too
/// long to read, which end the connection.
async fn read_option<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Option<(u32, Vec<u8>)>> {
    let mut header = [0u8; opt::OPTION_HEADER_LEN];
    s.read_exact(&mut header).await?;
    let Some((code, len)) = opt::decode_option_header(&header) else {
        return Ok(None);
    };
    if !option_len_ok(len) {
        return Ok(None);
    }
    let mut data = vec![0u8; len as usize];
    s.read_exact(&mut data).await?;
    Ok(Some((code, data)))
}

/// Answer one option on a blocking thread; the state comes back with it.
async fn answer(
    mut neg: Negotiation,
    ctx: Arc<Ctx>,
    code: u32,
    data: Vec<u8>,
) -> io::Result<(Negotiation, Vec<u8>, Step<Opened>)> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let step = neg.option(&mut Engine(&ctx), code, &data, &mut out);
        (neg, out, step)
    })
    .await
    // A panic here is a bug; the client cannot be answered, so it is dropped.
    .map_err(|e| io::Error::other(format!("answering option {code} failed: {e}")))
}

/// `f`, unless the server stops first.
async fn until_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        v = f => Some(v),
        _ = stop.wait_for(|&v| v) => None,
    }
}

async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}
