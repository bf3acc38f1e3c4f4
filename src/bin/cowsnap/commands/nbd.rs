//! `cowsnap nbd`: the pool's volumes and snapshots over NBD, without the
//! REST API, until Ctrl-C or SIGTERM; then connections flush and close (a
//! second signal stops at once) and the pool is closed.

use super::service_session::service_error;
use crate::fail::{CliError, CliResult};
use crate::output::print_text;
use crate::session::with_pool;
use cowsnap::nbd::{self, Listener};
use cowsnap::service::{run, Service};
use std::path::Path;

pub fn run(path: &Path, listen: &str) -> CliResult<()> {
    run::init_logging();
    with_pool(path, |pool| {
        let runtime = runtime()?;
        let stop = {
            let _in_runtime = runtime.enter();
            run::stop_on_signals().map_err(|e| CliError::io("installing signal handlers", e))?
        };
        // The service's view of the pool: a stopped server's disk stays
        // unexported here too.
        let svc = Service::open(pool.clone()).map_err(service_error)?;
        let served = runtime.block_on(async {
            let listener = bind(listen).await?;
            let first = {
                let stop = stop.clone();
                async move { stop.reached(1).await }
            };
            tokio::select! {
                served = serve(pool.clone(), listener, svc.exports().clone(), first) => served.map(|()| false),
                () = stop.reached(2) => Ok(true),
            }
        });
        // After a second signal, work left on blocking threads is not
        // waited for; the pool's close commits what it completed.
        if served.as_ref().is_ok_and(|&at_once| at_once) {
            runtime.shutdown_background();
        }
        served.map(|_| ())
    })?;
    eprintln!("cowsnap: pool {} closed cleanly", path.display());
    Ok(())
}

pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))
}

/// Bind the NBD address; inside the runtime.
pub async fn bind(addr: &str) -> CliResult<Listener> {
    Listener::bind(addr)
        .await
        .map_err(|e| CliError::io(format!("listening for NBD on {addr}"), e))
}

/// Print the bound address (scripts wait for the line) and serve.
pub async fn serve(
    pool: cowsnap::Pool,
    listener: Listener,
    control: nbd::ExportControl,
    shutdown: impl std::future::Future<Output = ()>,
) -> CliResult<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::io("reading the bound NBD address", e))?;
    print_text(&format!("nbd listening on {addr}\n"))?;
    nbd::serve(pool, listener, control, shutdown)
        .await
        .map_err(|e| CliError::io("serving NBD", e))
}
