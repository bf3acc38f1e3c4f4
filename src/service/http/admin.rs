//! `/api/v1/admin/`: accounts, tokens and servers, for admin tokens only.

use super::extract::{Admin, Id, JsonBody, Name};
use super::form::Form;
use super::{blocking, json, App};
use crate::service::{Disk, NewServer, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;

fn listing<T: Serialize>(items: Vec<T>) -> Response {
    json(
        StatusCode::OK,
        &json!({"count": items.len(), "next": null, "previous": null, "results": items}),
    )
}

pub async fn list_accounts(State(app): State<App>, _: Admin) -> Response {
    listing(app.svc.list_accounts())
}

pub async fn create_account(
    State(app): State<App>,
    _: Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, ServiceError> {
    let mut form = Form::new(body.as_ref())?;
    let name = form.string("name", true);
    form.finish()?;
    let name = name.unwrap_or_default();
    let account = blocking(&app, move |svc| svc.create_account(&name)).await?;
    Ok(json(StatusCode::CREATED, &account))
}

pub async fn list_tokens(
    State(app): State<App>,
    _: Admin,
    Name(account): Name,
) -> Result<Response, ServiceError> {
    Ok(listing(app.svc.list_tokens(&account)?))
}

pub async fn create_token(
    State(app): State<App>,
    _: Admin,
    Name(account): Name,
    JsonBody(body): JsonBody,
) -> Result<Response, ServiceError> {
    Form::new(body.as_ref())?;
    let token = blocking(&app, move |svc| svc.create_token(&account)).await?;
    Ok(json(StatusCode::CREATED, &token))
}

/// Revoke by exact id only: prefixes are a CLI convenience.
pub async fn revoke_token(
    State(app): State<App>,
    _: Admin,
    Name(id): Name,
) -> Result<Response, ServiceError> {
    let exact =
        id.len() == 12 && id.starts_with("tok_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if !exact {
        return Err(ServiceError::not_found("Token"));
    }
    blocking(&app, move |svc| svc.revoke_token(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_servers(State(app): State<App>, _: Admin) -> Response {
    listing(app.svc.list_all_servers())
}

pub async fn create_server(
    State(app): State<App>,
    _: Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, ServiceError> {
    let mut form = Form::new(body.as_ref())?;
    let id = form.int("id", true);
    let name = form.string("name", true);
    let account = form.string("account", true);
    let size = form.int("size_bytes", false);
    let image = form.string("image_path", false);
    let both_or_neither = form.has("size_bytes") == form.has("image_path");
    form.finish()?;
    if both_or_neither {
        return Err(ServiceError::field(
            "non_field_errors",
            "Give exactly one of size_bytes and image_path.",
        ));
    }
    let disk = match (size, image) {
        (Some(size), None) => Disk::Size(size),
        (None, Some(path)) => Disk::Image(PathBuf::from(path)),
        _ => return Err(ServiceError::Internal("validated disk missing".into())),
    };
    let (Some(id), Some(name), Some(account)) = (id, name, account) else {
        return Err(ServiceError::Internal("validated fields missing".into()));
    };
    let new = NewServer {
        id,
        name,
        account,
        disk,
    };
    let server = blocking(&app, move |svc| svc.create_server(new)).await?;
    Ok(json(StatusCode::CREATED, &server))
}

pub async fn delete_server(
    State(app): State<App>,
    _: Admin,
    Id(id): Id,
) -> Result<Response, ServiceError> {
    blocking(&app, move |svc| svc.delete_server(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
