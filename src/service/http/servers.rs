//! `/api/v1/servers/`: the caller's servers and their power state.

use super::extract::{Auth, Id, JsonBody};
use super::form::Form;
use super::paging::{absolute, query_params, PageRequest};
use super::{blocking, json, App};
use crate::service::{Page, ServiceError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

pub async fn list(
    State(app): State<App>,
    Auth(caller): Auth,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let req = PageRequest::parse(&query_params(&uri)?)?;
    let all = app.svc.list_servers(&caller.account);
    let page = Page {
        count: all.len(),
        items: all.into_iter().skip(req.offset()).take(req.size).collect(),
    };
    let body = req.envelope(&absolute(&headers, "/api/v1/servers/"), &[], page)?;
    Ok(json(StatusCode::OK, &body))
}

pub async fn show(
    State(app): State<App>,
    Auth(caller): Auth,
    Id(id): Id,
) -> Result<Response, ServiceError> {
    Ok(json(StatusCode::OK, &app.svc.server(&caller.account, id)?))
}

pub async fn start(
    State(app): State<App>,
    auth: Auth,
    Id(id): Id,
    JsonBody(body): JsonBody,
) -> Result<Response, ServiceError> {
    power(app, auth, id, body, true).await
}

pub async fn stop(
    State(app): State<App>,
    auth: Auth,
    Id(id): Id,
    JsonBody(body): JsonBody,
) -> Result<Response, ServiceError> {
    power(app, auth, id, body, false).await
}

async fn power(
    app: App,
    Auth(caller): Auth,
    id: u64,
    body: Option<serde_json::Value>,
    running: bool,
) -> Result<Response, ServiceError> {
    // No fields, but a body that is sent must be an object.
    Form::new(body.as_ref())?;
    let account = caller.account;
    let server = blocking(&app, move |svc| svc.set_power(&account, id, running)).await?;
    let message = format!("Server {} is {}.", server.name, server.status);
    Ok(json(
        StatusCode::OK,
        &json!({"status": "success", "message": message, "server": server}),
    ))
}
