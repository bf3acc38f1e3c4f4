//! `cowsnap account create`: service accounts.

use super::service_session::with_service;
use crate::fail::CliResult;
use crate::output::print_text;
use std::path::Path;

pub fn create(path: &Path, name: &str) -> CliResult<()> {
    let account = with_service(path, |svc| svc.create_account(name))?;
    print_text(&format!("created account {}\n", account.name))
}
