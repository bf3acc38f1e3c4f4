//! The OpenAPI 3 document served at `/api/v1/schema/`. Tests check its paths
//! and methods against the router's, both ways, and each operation's
//! statuses and body shapes against what the service answers, both ways.

use serde_json::{json, Map, Value};

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn reply(description: &str, schema: Option<&str>) -> Value {
    match schema {
        Some(s) => json!({
            "description": description,
            "content": {"application/json": {"schema": schema_ref(s)}},
        }),
        None => json!({"description": description}),
    }
}

/// Where an operation's body comes from.
#[derive(Clone, Copy)]
enum Body {
    /// It reads none.
    Unread,
    /// A JSON object of this schema; `None`: an object with no fields, and
    /// optional.
    Json(Option<&'static str>),
}

/// What decides the statuses an operation can answer besides its own.
#[derive(Clone, Copy)]
struct Kind {
    /// For admin tokens only: 403 for others.
    admin: bool,
    body: Body,
    /// Commits to the pool: 500 when the engine fails, 503 once it refuses
    /// writes.
    writes: bool,
}

const READS: Kind = Kind {
    admin: false,
    body: Body::Unread,
    writes: false,
};
const WRITES: Kind = Kind {
    admin: false,
    body: Body::Unread,
    writes: true,
};

const fn with_body(schema: Option<&'static str>) -> Kind {
    Kind {
        admin: false,
        body: Body::Json(schema),
        writes: true,
    }
}

impl Kind {
    const fn admin(self) -> Kind {
        Kind {
            admin: true,
            ..self
        }
    }
}

/// Every status the operation can answer: its own, then those that follow
/// from its kind. Authentication comes first everywhere (401).
fn replies(kind: Kind, own: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (code, v) in own {
        m.insert(code.to_string(), v.clone());
    }
    let error = |description: &str| reply(description, Some("Error"));
    m.insert(
        "401".into(),
        error("Missing, malformed, unknown or revoked token (with WWW-Authenticate: Bearer)."),
    );
    if kind.admin {
        m.insert("403".into(), error("Not an admin token."));
    }
    if let Body::Json(_) = kind.body {
        m.entry("400").or_insert_with(|| {
            reply(
                "The body is not a JSON object, or is not JSON (code parse_error).",
                Some("BadRequest"),
            )
        });
        m.insert(
            "408".into(),
            error("The body did not arrive within 15 seconds (code request_timeout)."),
        );
        m.insert(
            "413".into(),
            error("Body over 64 KiB (code payload_too_large)."),
        );
        m.insert(
            "415".into(),
            error("A body that is not application/json (code unsupported_media_type)."),
        );
    }
    if kind.writes {
        m.insert(
            "500".into(),
            error("The engine failed; details are in the log (code server_error)."),
        );
        m.insert(
            "503".into(),
            error("Storage refuses writes after an I/O failure; restart the service (code storage_unavailable)."),
        );
    }
    Value::Object(m)
}

fn op(summary: &str, params: Value, kind: Kind, own: &[(&str, Value)]) -> Value {
    let mut o = json!({"summary": summary, "parameters": params, "responses": replies(kind, own)});
    match kind.body {
        Body::Unread => {}
        Body::Json(Some(schema)) => {
            o["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema_ref(schema)}},
            });
        }
        Body::Json(None) => {
            o["requestBody"] = json!({
                "required": false,
                "description": "Nothing is read from it, but a body that is sent must be a JSON object.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            });
        }
    }
    o
}

fn path_id(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer"}})
}

fn path_str(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query_int(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": {"type": "integer"}})
}

fn idempotency_key() -> Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
           "description": "Retries with the same key and request get the first success replayed (with Idempotent-Replayed: true). The same key with a different request: 422. While the first is running: 409.",
           "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
}

fn paging() -> Vec<Value> {
    vec![
        query_int("page", "1-based page number; a page past the end is 404."),
        query_int("page_size", "Default 50, at most 200."),
    ]
}

fn paths() -> Value {
    let bad = || {
        reply(
            "Invalid input: per-field messages, or detail and code.",
            Some("BadRequest"),
        )
    };
    let busy = || {
        reply(
            "A restore or another operation runs on the server (code server_busy).",
            Some("Error"),
        )
    };
    let not_found = || reply("No such object, or not the caller's.", Some("Error"));
    let invalid_page = || reply("Invalid page.", Some("Error"));
    let in_use = || reply("Idempotency key in use.", Some("Error"));
    let reused = || {
        reply(
            "Idempotency key reused for a different request.",
            Some("Error"),
        )
    };
    let mut list_params = paging();
    list_params.push(query_int(
        "server_id",
        "Only this server's snapshots. Not an integer: 400.",
    ));
    let admin_body = |schema| with_body(schema).admin();
    json!({
        "/api/v1/ping/": {"get": op("Authenticated no-op", json!([]), READS,
            &[("200", reply("Authenticated.", Some("Ping")))])},
        "/api/v1/schema/": {"get": op("This document", json!([]), READS,
            &[("200", reply("The OpenAPI document.", None))])},
        "/api/v1/snapshots/": {
            "get": op("List the caller's snapshots, newest first", Value::Array(list_params), READS,
                &[("200", reply("A page of snapshots.", Some("SnapshotPage"))),
                  ("400", bad()), ("404", invalid_page())]),
            "post": op("Create a snapshot", json!([idempotency_key()]), with_body(Some("SnapshotCreate")),
                &[("201", reply("Created.", Some("SnapshotCreated"))), ("400", bad()),
                  ("404", not_found()), ("409", in_use()), ("422", reused())]),
        },
        "/api/v1/snapshots/{id}/": {
            "get": op("Show a snapshot", json!([path_id("id")]), READS,
                &[("200", reply("The snapshot.", Some("Snapshot"))), ("404", not_found())]),
            "patch": op("Change a snapshot's name or description", json!([path_id("id")]),
                with_body(Some("SnapshotUpdate")),
                &[("200", reply("The snapshot.", Some("Snapshot"))), ("400", bad()),
                  ("404", not_found())]),
            "delete": op("Delete a snapshot and free its blocks", json!([path_id("id")]), WRITES,
                &[("204", reply("Deleted.", None)), ("400", busy()), ("404", not_found())]),
        },
        "/api/v1/snapshots/{id}/restore/": {
            "post": op("Stop the server and restore its disk from the snapshot; it stays stopped",
                json!([path_id("id"), idempotency_key()]), with_body(None),
                &[("200", reply("Restored.", Some("Restore"))), ("400", bad()),
                  ("404", not_found()), ("409", in_use()), ("422", reused())]),
        },
        "/api/v1/servers/": {"get": op("List the caller's servers", Value::Array(paging()), READS,
            &[("200", reply("A page of servers.", Some("ServerPage"))), ("404", invalid_page())])},
        "/api/v1/servers/{id}/": {"get": op("Show a server", json!([path_id("id")]), READS,
            &[("200", reply("The server.", Some("Server"))), ("404", not_found())])},
        "/api/v1/servers/{id}/start/": {"post": op("Start a server", json!([path_id("id")]),
            with_body(None),
            &[("200", reply("Running.", Some("PowerResult"))), ("400", bad()), ("404", not_found())])},
        "/api/v1/servers/{id}/stop/": {"post": op("Stop a server", json!([path_id("id")]),
            with_body(None),
            &[("200", reply("Stopped.", Some("PowerResult"))), ("400", bad()), ("404", not_found())])},
        "/api/v1/admin/accounts/": {
            "get": op("List accounts (admin)", json!([]), READS.admin(),
                &[("200", reply("Accounts.", Some("AccountList")))]),
            "post": op("Create an account (admin)", json!([]), admin_body(Some("AccountCreate")),
                &[("201", reply("Created.", Some("Account"))), ("400", bad())]),
        },
        "/api/v1/admin/accounts/{name}/tokens/": {
            "get": op("List an account's tokens (admin)", json!([path_str("name")]), READS.admin(),
                &[("200", reply("Tokens.", Some("TokenList"))), ("404", not_found())]),
            "post": op("Create a token; its secret is shown only here (admin)",
                json!([path_str("name")]), admin_body(None),
                &[("201", reply("Created.", Some("NewToken"))), ("404", not_found())]),
        },
        "/api/v1/admin/tokens/{id}/": {"delete": op("Revoke a token (admin)",
            json!([path_str("id")]), WRITES.admin(),
            &[("204", reply("Revoked.", None)), ("404", not_found())])},
        "/api/v1/admin/servers/": {
            "get": op("List all servers (admin)", json!([]), READS.admin(),
                &[("200", reply("Servers.", Some("AdminServerList")))]),
            "post": op("Create a server with an empty disk or from a raw image on the host (admin)",
                json!([]), admin_body(Some("ServerCreate")),
                &[("201", reply("Created.", Some("AdminServer"))), ("400", bad())]),
        },
        "/api/v1/admin/servers/{id}/": {"delete": op("Delete a server, its disk and snapshots (admin)",
            json!([path_id("id")]), WRITES.admin(),
            &[("204", reply("Deleted.", None)), ("400", busy()), ("404", not_found())])},
    })
}

fn page_of(item: &str) -> Value {
    json!({"type": "object", "required": ["count", "next", "previous", "results"], "properties": {
        "count": {"type": "integer"},
        "next": {"type": "string", "nullable": true},
        "previous": {"type": "string", "nullable": true},
        "results": {"type": "array", "items": schema_ref(item)},
    }})
}

fn schemas() -> Value {
    let int = || json!({"type": "integer"});
    let string = || json!({"type": "string"});
    let name = || json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
    let time = || json!({"type": "string", "format": "date-time"});
    let status = || json!({"type": "string", "enum": ["running", "stopped", "restoring"]});
    let server_props = json!({
        "id": int(), "name": string(), "status": status(), "disk_size_bytes": int(),
        "snapshot_count": int(), "snapshot_limit": int(),
    });
    let mut admin_server_props = server_props.clone();
    admin_server_props["account"] = string();
    admin_server_props["volume"] = string();
    let token_props = json!({"id": string(), "account": string(), "created_at": time(),
                             "revoked": {"type": "boolean"}});
    let mut new_token_props = token_props.clone();
    new_token_props["token"] = string();
    json!({
        "Error": {"type": "object", "required": ["detail"], "properties": {
            "detail": string(), "code": string(), "limit": int()}},
        "BadRequest": {"oneOf": [
            schema_ref("Error"),
            {"type": "object", "additionalProperties": {"type": "array", "items": string()}},
        ]},
        "Ping": {"type": "object", "properties": {"status": string(), "account": string()}},
        "ServerRef": {"type": "object", "properties": {"id": int(), "name": string()}},
        "Snapshot": {"type": "object", "properties": {
            "id": int(), "server": schema_ref("ServerRef"), "name": name(),
            "status": {"type": "string", "enum": ["completed"]},
            "size_mb": {"type": "integer", "nullable": true},
            "created_at": time(), "description": string()}},
        "SnapshotCreated": {"allOf": [schema_ref("Snapshot"),
            {"type": "object", "properties": {"message": string()}}]},
        "SnapshotPage": page_of("Snapshot"),
        "SnapshotCreate": {"type": "object", "required": ["server_id", "name"], "properties": {
            "server_id": int(), "name": name(), "description": {"type": "string", "maxLength": 4096}}},
        "SnapshotUpdate": {"type": "object", "properties": {
            "name": name(), "description": {"type": "string", "maxLength": 4096}}},
        "Restore": {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["success"]}, "message": string(),
            "snapshot": {"type": "object", "properties": {
                "id": int(), "name": string(), "created_at": time()}},
            "server": {"type": "object", "properties": {
                "id": int(), "name": string(), "status": status()}}}},
        "Server": {"type": "object", "properties": server_props},
        "ServerPage": page_of("Server"),
        "PowerResult": {"type": "object", "properties": {
            "status": string(), "message": string(), "server": schema_ref("Server")}},
        "Account": {"type": "object", "properties": {"name": name(), "created_at": time()}},
        "AccountCreate": {"type": "object", "required": ["name"], "properties": {"name": name()}},
        "AccountList": page_of("Account"),
        "Token": {"type": "object", "properties": token_props},
        "TokenList": page_of("Token"),
        "NewToken": {"type": "object", "properties": new_token_props},
        "AdminServer": {"type": "object", "properties": admin_server_props},
        "AdminServerList": page_of("AdminServer"),
        "ServerCreate": {"type": "object", "required": ["id", "name", "account"], "properties": {
            "id": int(), "name": name(), "account": name(),
            "size_bytes": {"type": "integer", "description": "An empty disk of this size; or:"},
            "image_path": {"type": "string", "description": "A raw image file on the service's host."}}},
    })
}

/// The whole document.
pub fn openapi() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cowsnap snapshot service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Snapshots of VPS disks. Errors follow Django REST framework: {\"detail\", \"code\"} or {\"field\": [messages]}. Trailing slashes are optional. Every request is authenticated first (401). A method a path does not serve gets 405 with an Allow header (after authentication); an unknown path gets 404.",
        },
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_resolves() {
        let doc = super::openapi();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "dangling $ref to {name}");
        }
    }
}
