//! `cowsnap token create|revoke|list`: API tokens. A token's secret is
//! printed once, at creation, and never stored.

use super::service_session::with_service;
use crate::fail::CliResult;
use crate::output::{print_json, print_text};
use std::path::Path;

/// Only the token goes to stdout, so scripts can capture it whole.
pub fn create(path: &Path, account: &str) -> CliResult<()> {
    let token = with_service(path, |svc| svc.create_token(account))?;
    eprintln!(
        "created token {} for account {} (shown once)",
        token.view.id, token.view.account
    );
    print_text(&format!("{}\n", token.token))
}

pub fn revoke(path: &Path, which: &str) -> CliResult<()> {
    let token = with_service(path, |svc| svc.revoke_token(which))?;
    print_text(&format!(
        "revoked token {} of account {}\n",
        token.id, token.account
    ))
}

pub fn list(path: &Path, account: Option<&str>, json: bool) -> CliResult<()> {
    let tokens = with_service(path, |svc| match account {
        Some(a) => svc.list_tokens(a),
        None => Ok(svc
            .list_accounts()
            .iter()
            .flat_map(|a| svc.list_tokens(&a.name).unwrap_or_default())
            .collect()),
    })?;
    if json {
        return print_json(&tokens);
    }
    let mut out = String::new();
    for t in &tokens {
        let state = if t.revoked { "revoked" } else { "active" };
        out.push_str(&format!(
            "{}  {:<16}  {}  {state}\n",
            t.id, t.account, t.created_at
        ));
    }
    print_text(&out)
}
