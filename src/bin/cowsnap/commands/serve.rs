//! `cowsnap serve`: the REST snapshot service on one pool (and, with
//! `--nbd`, the block export), until Ctrl-C or SIGTERM. The first signal
//! drains requests in flight for up to 30 s, a second stops at once; either
//! way the pool is then flushed and closed.

use super::service_session::service_error;
use crate::fail::{CliError, CliResult};
use crate::output::print_text;
use cowsnap::service::run::{self, Ending, ServeOptions, StopRequests};
use cowsnap::service::Service;
use cowsnap::{ErrorKind, Pool};
use std::path::Path;
use std::sync::Arc;

pub fn run(path: &Path, listen: &str, demo: bool, nbd: Option<&str>) -> CliResult<()> {
    run::init_logging();
    let pool = open_or_create(path)?;
    let served = serve(&pool, listen, demo, nbd);
    let closed = pool.close();
    served?;
    closed?;
    eprintln!("cowsnap: pool {} closed cleanly", path.display());
    Ok(())
}

/// The pool at `path`, created when nothing is there yet. A second
/// instance fails here: the pool's lock names the holder.
fn open_or_create(path: &Path) -> CliResult<Pool> {
    match Pool::open_with(path, crate::session::data_cache()) {
        Ok(pool) => Ok(pool),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let empty = match std::fs::read_dir(path) {
                Ok(mut entries) => entries.next().is_none(),
                Err(_) => !path.exists(),
            };
            if !empty {
                return Err(CliError::Message(format!(
                    "{} exists and is not a cowsnap pool",
                    path.display()
                )));
            }
            let pool = Pool::create_with(
                path,
                cowsnap::DEFAULT_BLOCK_SIZE,
                crate::session::data_cache(),
            )?;
            eprintln!("cowsnap: created pool {}", path.display());
            Ok(pool)
        }
        Err(e) => Err(e.into()),
    }
}

fn serve(pool: &Pool, listen: &str, demo: bool, nbd: Option<&str>) -> CliResult<()> {
    // Bind before the first-run setup, so a busy port does not use up the
    // one showing of the admin token.
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| CliError::io(format!("listening on {listen}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::io("reading the bound address", e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    // Signal handlers go in before anything is printed: scripts wait for the
    // output and may stop us right after it.
    let stop = {
        let _in_runtime = runtime.enter();
        run::stop_on_signals().map_err(|e| CliError::io("installing signal handlers", e))?
    };
    let nbd_listener = nbd
        .map(|addr| runtime.block_on(super::nbd::bind(addr)))
        .transpose()?;
    let svc = Service::open(pool.clone()).map_err(service_error)?;
    // The demo first: if it is refused, nothing was set up, and the first
    // run's admin token has not been shown yet.
    let demo = demo
        .then(|| svc.ensure_demo())
        .transpose()
        .map_err(service_error)?;
    if let Some(admin) = svc.ensure_admin().map_err(service_error)? {
        print_text(&format!(
            "admin token (shown once, store it now): {}\n",
            admin.token
        ))?;
    }
    if let Some(d) = demo {
        print_text(&format!("demo token: {}\n", d.token.token))?;
        print_text(&format!(
            "demo server: {} (id {}, account {}){}\n",
            d.server.server.name,
            d.server.server.id,
            d.server.account,
            if d.server_created { ", created" } else { "" }
        ))?;
    }
    let ending = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| CliError::io(format!("listening on {listen}"), e))?;
        print_text(&format!("listening on http://{addr}\n"))?;
        let svc = Arc::new(svc);
        let rest = run::serve_with(svc.clone(), listener, stop.clone(), ServeOptions::default());
        let Some(nbd_listener) = nbd_listener else {
            return rest.await.map_err(|e| CliError::io("serving", e));
        };
        // One signal stops both listeners; the NBD export drains its own
        // connections, and a second signal ends that too.
        let first = {
            let stop = stop.clone();
            async move { stop.reached(1).await }
        };
        let export = super::nbd::serve(pool.clone(), nbd_listener, svc.exports().clone(), first);
        let export = stop_at_second(&stop, export);
        let (rest, export) = tokio::join!(rest, export);
        export?;
        rest.map_err(|e| CliError::io("serving", e))
    });
    match ending {
        // Operations still running on blocking threads are not waited for;
        // the pool's close below commits what they completed.
        Ok(Ending::StoppedAtOnce { .. }) => runtime.shutdown_background(),
        // Engine operations still running finish before the pool closes.
        _ => drop(runtime),
    }
    ending.map(|_| ())
}

/// `serving`, or nothing once a second stop is requested.
async fn stop_at_second(
    stop: &StopRequests,
    serving: impl std::future::Future<Output = CliResult<()>>,
) -> CliResult<()> {
    tokio::select! {
        served = serving => served,
        () = stop.reached(2) => Ok(()),
    }
}
