//! Running one admin command against a pool's service state.

use crate::fail::{CliError, CliResult};
use crate::session::with_pool;
use cowsnap::service::{Service, ServiceError};
use std::path::Path;

/// Open the pool and its service state, run `body`, close the pool.
pub fn with_service<T>(
    path: &Path,
    body: impl FnOnce(&Service) -> Result<T, ServiceError>,
) -> CliResult<T> {
    with_pool(path, |pool| {
        let svc = Service::open(pool.clone()).map_err(service_error)?;
        body(&svc).map_err(service_error)
    })
}

pub fn service_error(e: ServiceError) -> CliError {
    match e {
        ServiceError::Engine(e) => CliError::Engine(e),
        other => CliError::Message(other.to_string()),
    }
}
