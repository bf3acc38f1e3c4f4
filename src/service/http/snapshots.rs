//! `/api/v1/snapshots/`: list, create, show, change, delete and restore.

use super::extract::{Auth, Id, JsonBody};
use super::form::Form;
use super::idem::{claim, send};
use super::paging::{absolute, param, query_params, PageRequest};
use super::{blocking, json, App};
use crate::service::{Answer, Caller, IdemTicket, Keyed, Restored, ServiceError, SnapshotView};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

const SNAPSHOTS: &str = "/api/v1/snapshots/";

#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    snapshot: SnapshotView,
    message: String,
}

fn answer(r: Result<Response, ServiceError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

pub async fn list(
    State(app): State<App>,
    Auth(caller): Auth,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let params = query_params(&uri)?;
    // An empty value means no filter, as django-filter reads it.
    let server = match param(&params, "server_id").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ServiceError::field("server_id", "A valid integer is required."))?,
        ),
    };
    let req = PageRequest::parse(&params)?;
    let page = app
        .svc
        .list_snapshots(&caller.account, server, req.offset(), req.size);
    let keep: Vec<(&str, String)> = server
        .map(|s| ("server_id", s.to_string()))
        .into_iter()
        .collect();
    let body = req.envelope(&absolute(&headers, SNAPSHOTS), &keep, page)?;
    Ok(json(StatusCode::OK, &body))
}

pub async fn create(
    State(app): State<App>,
    Auth(caller): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Response {
    match claim(&app, &caller, &headers, SNAPSHOTS, body.as_ref()) {
        Ok(ticket) => answer(create_now(&app, &caller, body.as_ref(), ticket).await),
        Err(done) => done.into_response(),
    }
}

async fn create_now(
    app: &App,
    caller: &Caller,
    body: Option<&Value>,
    ticket: Option<IdemTicket>,
) -> Result<Response, ServiceError> {
    let mut form = Form::new(body)?;
    let server_id = form.int("server_id", true);
    let name = form.string("name", true);
    let description = form.string("description", false).unwrap_or_default();
    form.finish()?;
    let (Some(server_id), Some(name)) = (server_id, name) else {
        return Err(ServiceError::Internal("validated fields missing".into()));
    };
    let account = caller.account.clone();
    // The ticket lives in the blocking task: the key stays claimed until the
    // snapshot and its recorded answer are committed, even if the client
    // has gone.
    let snapshot = blocking(app, move |svc| {
        let keyed = ticket.as_ref().map(|ticket| Keyed {
            ticket,
            answer: created_answer,
        });
        svc.create_snapshot_keyed(&account, server_id, &name, &description, keyed)
    })
    .await?;
    Ok(send(created_answer(&snapshot)?, false))
}

fn created_answer(snapshot: &SnapshotView) -> Result<Answer, ServiceError> {
    let message = format!(
        "Snapshot {} of server {} created.",
        snapshot.name, snapshot.server.name
    );
    let created = Created {
        snapshot: snapshot.clone(),
        message,
    };
    Answer::json(StatusCode::CREATED.as_u16(), &created)
}

pub async fn show(
    State(app): State<App>,
    Auth(caller): Auth,
    Id(id): Id,
) -> Result<Response, ServiceError> {
    let snapshot = app.svc.snapshot(&caller.account, id)?;
    Ok(json(StatusCode::OK, &snapshot))
}

pub async fn update(
    State(app): State<App>,
    Auth(caller): Auth,
    Id(id): Id,
    JsonBody(body): JsonBody,
) -> Result<Response, ServiceError> {
    let mut form = Form::new(body.as_ref())?;
    let name = form.string("name", false);
    let description = form.string("description", false);
    form.finish()?;
    let account = caller.account;
    let snapshot = blocking(&app, move |svc| {
        svc.update_snapshot(&account, id, name.as_deref(), description.as_deref())
    })
    .await?;
    Ok(json(StatusCode::OK, &snapshot))
}

pub async fn delete(
    State(app): State<App>,
    Auth(caller): Auth,
    Id(id): Id,
) -> Result<Response, ServiceError> {
    let account = caller.account;
    blocking(&app, move |svc| svc.delete_snapshot(&account, id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn restore(
    State(app): State<App>,
    Auth(caller): Auth,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Response {
    // The body carries nothing, but if sent it must be an object.
    if let Err(e) = Form::new(body.as_ref()) {
        return e.into_response();
    }
    let route = format!("{SNAPSHOTS}{id}/restore/");
    match claim(&app, &caller, &headers, &route, body.as_ref()) {
        Ok(ticket) => answer(restore_now(&app, &caller, id, ticket).await),
        Err(done) => done.into_response(),
    }
}

async fn restore_now(
    app: &App,
    caller: &Caller,
    id: u64,
    ticket: Option<IdemTicket>,
) -> Result<Response, ServiceError> {
    let account = caller.account.clone();
    // As for create: the ticket is released only once the restore and its
    // answer are committed.
    let restored = blocking(app, move |svc| {
        let keyed = ticket.as_ref().map(|ticket| Keyed {
            ticket,
            answer: restored_answer,
        });
        svc.restore_snapshot_keyed(&account, id, keyed)
    })
    .await?;
    Ok(send(restored_answer(&restored)?, false))
}

fn restored_answer(r: &Restored) -> Result<Answer, ServiceError> {
    let message = format!(
        "Server {} was restored from snapshot {}. It is {}: start it to boot the restored disk.",
        r.server.name, r.snapshot.name, r.server.status
    );
    let reply = RestoreReply {
        status: "success",
        message,
        snapshot: SnapshotBrief {
            id: r.snapshot.id,
            name: r.snapshot.name.clone(),
            created_at: r.snapshot.created_at.clone(),
        },
        server: ServerBrief {
            id: r.server.id,
            name: r.server.name.clone(),
            status: r.server.status,
        },
    };
    Answer::json(StatusCode::OK.as_u16(), &reply)
}

#[derive(Serialize)]
struct RestoreReply {
    status: &'static str,
    message: String,
    snapshot: SnapshotBrief,
    server: ServerBrief,
}

#[derive(Serialize)]
struct SnapshotBrief {
    id: u64,
    name: String,
    created_at: String,
}

#[derive(Serialize)]
struct ServerBrief {
    id: u64,
    name: String,
    status: &'static str,
}
