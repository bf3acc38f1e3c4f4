//! The OpenAPI document matches the service: every route and method the
//! router serves is documented and nothing else is; every status code an
//! operation documents is one a probe here draws from it, and every status
//! a probe draws is documented for that operation, with a body of the
//! documented shape.

mod service_support;

use cowsnap::service::run::ServeOptions;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use service_support::{wait_until, Api, Setup, SyncHold};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// Every route the router serves is in the schema with exactly the methods
/// it answers, and the schema documents nothing the router lacks. The
/// router's own `Allow` header says which methods it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_router() {
    let api = Api::start().await;
    let r = api.get(&api.admin, "/api/v1/schema/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.0.3");
    let paths = r.body["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let served: BTreeSet<&str> = cowsnap::service::http::route_paths().into_iter().collect();
    assert_eq!(documented, served);

    for (path, ops) in paths {
        let doc_methods: BTreeSet<String> = ops
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        let concrete = path.replace("{id}", "1").replace("{name}", "admin");
        // No route serves PUT, so it always draws the 405 and its Allow list.
        let r = api
            .call(Method::PUT, Some(&api.admin), &concrete, None, &[])
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allowed: BTreeSet<String> = r
            .header("allow")
            .unwrap()
            .split(',')
            .filter(|m| *m != "HEAD")
            .map(str::to_string)
            .collect();
        assert_eq!(allowed, doc_methods, "{path}");
    }
    // Each documented schema reference exists.
    let schemas = r.body["components"]["schemas"].as_object().unwrap();
    let text = r.body.to_string();
    for piece in text.split("#/components/schemas/").skip(1) {
        let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(schemas.contains_key(&name), "dangling {name}");
    }
    api.stop().await;
}

/// How a probe sends its body.
enum Send {
    Nothing,
    Json(Value),
    /// A JSON text labelled `text/plain`.
    NotJson,
    /// `Content-Length` over the limit, over a raw connection.
    TooLarge,
    /// Part of the body, then nothing, over a raw connection.
    Stalled,
    /// JSON with extra headers.
    Keyed(Option<Value>, &'static str),
}

/// An operation: method and documented path.
type OpKey = (String, String);

/// Sends requests, checks each answer's status and body against the
/// document, and remembers which statuses each operation gave.
struct Prober {
    url: String,
    http: Client,
    doc: Value,
    seen: BTreeMap<OpKey, BTreeSet<String>>,
    failures: Vec<String>,
}

impl Prober {
    async fn new(api: &Api) -> Prober {
        let http = Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let doc = http
            .get(format!("{}/api/v1/schema/", api.url))
            .bearer_auth(&api.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Prober {
            url: api.url.clone(),
            http,
            doc,
            seen: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    fn operations(&self) -> Vec<OpKey> {
        let mut out = Vec::new();
        for (path, ops) in self.doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    /// Send `send` to `op` at `path` and expect `expect`.
    async fn probe(
        &mut self,
        op: (&str, &str),
        path: &str,
        token: Option<&str>,
        send: Send,
        expect: u16,
    ) {
        let (status, body) = self.send(op.0, path, token, send).await;
        let what = format!("{} {path} (as {} {})", op.0, op.0, op.1);
        if status != expect {
            self.failures
                .push(format!("{what}: expected {expect}, got {status}: {body}"));
        }
        self.record(op, status, &body, &what);
    }

    /// Check an answer against the document and remember its status.
    fn record(&mut self, op: (&str, &str), status: u16, body: &Value, what: &str) {
        let key = (op.0.to_string(), op.1.to_string());
        self.seen.entry(key).or_default().insert(status.to_string());
        let reply = &self.doc["paths"][op.1][op.0.to_lowercase()]["responses"][status.to_string()];
        if reply.is_null() {
            self.failures.push(format!(
                "{what}: answered {status}, which is not documented: {body}"
            ));
            return;
        }
        let schema = &reply["content"]["application/json"]["schema"];
        if schema.is_null() {
            if status == 204 && !body.is_null() {
                self.failures
                    .push(format!("{what}: 204 with a body {body}"));
            }
            return;
        }
        if let Err(e) = conforms(&self.doc, schema, body) {
            self.failures.push(format!(
                "{what}: {status} body {body} is not as documented: {e}"
            ));
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        send: Send,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let raw_head = |extra: &str| {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
                 Connection: close\r\n{extra}\r\n"
            )
        };
        let mut req = self.http.request(method.parse::<Method>().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let req = match send {
            Send::Nothing => req,
            Send::Json(v) => req.json(&v),
            Send::Keyed(v, key) => {
                let req = req.header("Idempotency-Key", key);
                match v {
                    Some(v) => req.json(&v),
                    None => req,
                }
            }
            Send::NotJson => req
                .header("Content-Type", "text/plain")
                .body(r#"{"name": "x"}"#),
            Send::TooLarge => {
                return raw(&self.url, raw_head("Content-Length: 70000\r\n") + "{").await;
            }
            Send::Stalled => {
                return raw(&self.url, raw_head("Content-Length: 100\r\n") + "{").await;
            }
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }
}

/// Send `request` over a new connection and read the answer to its end.
async fn raw(base: &str, request: String) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer before reading all of an oversized body.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::String(b.to_string())))
        .unwrap_or(Value::Null);
    (status, body)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Whether `v` has the shape `schema` describes: the subset of JSON Schema
/// the document uses ($ref, oneOf, allOf, type, nullable, enum, required,
/// properties, additionalProperties, items).
fn conforms(doc: &Value, schema: &Value, v: &Value) -> Result<(), String> {
    if schema.get("$ref").is_some() {
        return conforms(doc, resolve(doc, schema), v);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|s| conforms(doc, s, v).is_ok())
            .count();
        return match matching {
            1 => Ok(()),
            n => Err(format!("matches {n} of oneOf {schema}")),
        };
    }
    if let Some(all) = schema["allOf"].as_array() {
        // One object with every part's properties, so that each part's
        // fields count as documented for the others.
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in all {
            let part = resolve(doc, part);
            for (k, s) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][k] = s.clone();
            }
            for r in part["required"].as_array().into_iter().flatten() {
                merged["required"].as_array_mut().unwrap().push(r.clone());
            }
        }
        return conforms(doc, &merged, v);
    }
    if v.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    let type_ok = match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_u64() || v.is_i64(),
        Some("boolean") => v.is_boolean(),
        Some(other) => return Err(format!("unknown type {other}")),
    };
    if !type_ok {
        return Err(format!("{v} is not of type {}", schema["type"]));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            return Err(format!("{v} is not one of {schema}"));
        }
    }
    if let Some(object) = v.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{key} is missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (key, value) in object {
            match props.and_then(|p| p.get(key)) {
                Some(s) => conforms(doc, s, value).map_err(|e| format!("{key}: {e}"))?,
                None if schema["additionalProperties"].is_object() => {
                    conforms(doc, &schema["additionalProperties"], value)
                        .map_err(|e| format!("{key}: {e}"))?
                }
                None if props.is_some() => return Err(format!("{key} is not documented")),
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), v.as_array()) {
        for item in array {
            conforms(doc, items, item)?;
        }
    }
    Ok(())
}

fn ops_reading_a_body(p: &Prober) -> Vec<OpKey> {
    p.operations()
        .into_iter()
        .filter(|(method, _)| method == "POST" || method == "PATCH")
        .collect()
}

/// The concrete path for an operation in the shared fixture: server 1 and
/// snapshot `snap` of account acme.
fn concrete(template: &str, snap: u64) -> String {
    template
        .replace("snapshots/{id}", &format!("snapshots/{snap}"))
        .replace("servers/{id}", "servers/1")
        .replace("tokens/{id}", "tokens/tok_00000000")
        .replace("{name}", "acme")
}

/// Every operation's statuses, drawn by probes, are exactly those it
/// documents, each with a body of the documented shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_status_is_served_and_every_served_status_documented() {
    let api = Api::start_with(Setup {
        sim: true,
        options: Some(ServeOptions {
            body_read_timeout: Duration::from_millis(200),
            ..ServeOptions::default()
        }),
        ..Setup::default()
    })
    .await;
    let t = api.account("acme");
    api.server("acme", 1, "web", MIB);
    api.server("acme", 2, "db", MIB);
    let a = api.admin.clone();
    let snap = api.snapshot(&t, 1, "s").await;
    let mut p = Prober::new(&api).await;
    let ops = p.operations();

    // What follows from each operation's kind: authentication, admin, body.
    for (method, template) in &ops {
        let path = concrete(template, snap);
        let op = (method.as_str(), template.as_str());
        p.probe(op, &path, None, Send::Nothing, 401).await;
        if template.starts_with("/api/v1/admin/") {
            p.probe(op, &path, Some(&t), Send::Nothing, 403).await;
        }
    }
    for (method, template) in ops_reading_a_body(&p) {
        let path = concrete(&template, snap);
        let token = if template.starts_with("/api/v1/admin/") {
            &a
        } else {
            &t
        };
        let op = (method.as_str(), template.as_str());
        p.probe(op, &path, Some(token), Send::TooLarge, 413).await;
        p.probe(op, &path, Some(token), Send::NotJson, 415).await;
        p.probe(op, &path, Some(token), Send::Stalled, 408).await;
        p.probe(op, &path, Some(token), Send::Json(json!([])), 400)
            .await;
    }

    // Each operation's own statuses.
    let snaps = ("GET", "/api/v1/snapshots/");
    p.probe(
        ("GET", "/api/v1/ping/"),
        "/api/v1/ping/",
        Some(&t),
        Send::Nothing,
        200,
    )
    .await;
    p.probe(
        ("GET", "/api/v1/schema/"),
        "/api/v1/schema/",
        Some(&t),
        Send::Nothing,
        200,
    )
    .await;
    p.probe(
        snaps,
        "/api/v1/snapshots/?server_id=1",
        Some(&t),
        Send::Nothing,
        200,
    )
    .await;
    p.probe(
        snaps,
        "/api/v1/snapshots/?server_id=x",
        Some(&t),
        Send::Nothing,
        400,
    )
    .await;
    p.probe(
        snaps,
        "/api/v1/snapshots/?page=9",
        Some(&t),
        Send::Nothing,
        404,
    )
    .await;

    let create = ("POST", "/api/v1/snapshots/");
    let body = |server: u64, name: &str| Some(json!({"server_id": server, "name": name}));
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Keyed(body(2, "k"), "k1"),
        201,
    )
    .await;
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Keyed(body(2, "k"), "k1"),
        201,
    )
    .await;
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Keyed(body(2, "other"), "k1"),
        422,
    )
    .await;
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Json(json!({"server_id": 2})),
        400,
    )
    .await;
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Json(json!({"server_id": 9, "name": "x"})),
        404,
    )
    .await;
    for i in 0..4 {
        let name = format!("fill{i}");
        p.probe(
            create,
            create.1,
            Some(&t),
            Send::Json(body(2, &name).unwrap()),
            201,
        )
        .await;
    }
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Json(body(2, "sixth").unwrap()),
        400,
    )
    .await;

    let one = ("GET", "/api/v1/snapshots/{id}/");
    let s = format!("/api/v1/snapshots/{snap}/");
    p.probe(one, &s, Some(&t), Send::Nothing, 200).await;
    p.probe(one, "/api/v1/snapshots/999/", Some(&t), Send::Nothing, 404)
        .await;
    let patch = ("PATCH", "/api/v1/snapshots/{id}/");
    p.probe(
        patch,
        &s,
        Some(&t),
        Send::Json(json!({"description": "d"})),
        200,
    )
    .await;
    p.probe(
        patch,
        &s,
        Some(&t),
        Send::Json(json!({"name": "no spaces"})),
        400,
    )
    .await;
    p.probe(
        patch,
        "/api/v1/snapshots/999/",
        Some(&t),
        Send::Json(json!({})),
        404,
    )
    .await;
    let delete = ("DELETE", "/api/v1/snapshots/{id}/");
    let doomed = api.snapshot(&t, 1, "doomed").await;
    p.probe(
        delete,
        &format!("/api/v1/snapshots/{doomed}/"),
        Some(&t),
        Send::Nothing,
        204,
    )
    .await;
    p.probe(
        delete,
        &format!("/api/v1/snapshots/{doomed}/"),
        Some(&t),
        Send::Nothing,
        404,
    )
    .await;

    let restore = ("POST", "/api/v1/snapshots/{id}/restore/");
    let r = format!("{s}restore/");
    p.probe(restore, &r, Some(&t), Send::Keyed(None, "r1"), 200)
        .await;
    p.probe(restore, &r, Some(&t), Send::Keyed(None, "r1"), 200)
        .await;
    p.probe(restore, &r, Some(&t), Send::Keyed(None, "k1"), 422)
        .await;
    p.probe(restore, &r, Some(&t), Send::Keyed(None, " "), 400)
        .await;
    p.probe(
        restore,
        "/api/v1/snapshots/999/restore/",
        Some(&t),
        Send::Nothing,
        404,
    )
    .await;

    let servers = ("GET", "/api/v1/servers/");
    p.probe(servers, servers.1, Some(&t), Send::Nothing, 200)
        .await;
    p.probe(
        servers,
        "/api/v1/servers/?page=0",
        Some(&t),
        Send::Nothing,
        404,
    )
    .await;
    let server = ("GET", "/api/v1/servers/{id}/");
    p.probe(server, "/api/v1/servers/1/", Some(&t), Send::Nothing, 200)
        .await;
    p.probe(server, "/api/v1/servers/9/", Some(&t), Send::Nothing, 404)
        .await;
    for action in ["start", "stop"] {
        let template = format!("/api/v1/servers/{{id}}/{action}/");
        let op = ("POST", template.as_str());
        p.probe(
            op,
            &format!("/api/v1/servers/1/{action}/"),
            Some(&t),
            Send::Nothing,
            200,
        )
        .await;
        p.probe(
            op,
            &format!("/api/v1/servers/9/{action}/"),
            Some(&t),
            Send::Nothing,
            404,
        )
        .await;
    }

    let accounts = "/api/v1/admin/accounts/";
    p.probe(("GET", accounts), accounts, Some(&a), Send::Nothing, 200)
        .await;
    p.probe(
        ("POST", accounts),
        accounts,
        Some(&a),
        Send::Json(json!({"name": "newco"})),
        201,
    )
    .await;
    p.probe(
        ("POST", accounts),
        accounts,
        Some(&a),
        Send::Json(json!({"name": "newco"})),
        400,
    )
    .await;
    let tokens = "/api/v1/admin/accounts/{name}/tokens/";
    let acme_tokens = "/api/v1/admin/accounts/acme/tokens/";
    let ghost_tokens = "/api/v1/admin/accounts/ghost/tokens/";
    p.probe(("GET", tokens), acme_tokens, Some(&a), Send::Nothing, 200)
        .await;
    p.probe(("GET", tokens), ghost_tokens, Some(&a), Send::Nothing, 404)
        .await;
    p.probe(("POST", tokens), ghost_tokens, Some(&a), Send::Nothing, 404)
        .await;
    p.probe(("POST", tokens), acme_tokens, Some(&a), Send::Nothing, 201)
        .await;
    let spare = api.svc.create_token("newco").unwrap().view.id;
    let revoke = ("DELETE", "/api/v1/admin/tokens/{id}/");
    p.probe(
        revoke,
        &format!("/api/v1/admin/tokens/{spare}/"),
        Some(&a),
        Send::Nothing,
        204,
    )
    .await;
    p.probe(
        revoke,
        "/api/v1/admin/tokens/tok_00000000/",
        Some(&a),
        Send::Nothing,
        404,
    )
    .await;
    let all = "/api/v1/admin/servers/";
    let new = json!({"id": 50, "name": "x", "account": "newco", "size_bytes": MIB});
    p.probe(("GET", all), all, Some(&a), Send::Nothing, 200)
        .await;
    p.probe(("POST", all), all, Some(&a), Send::Json(new.clone()), 201)
        .await;
    p.probe(("POST", all), all, Some(&a), Send::Json(new), 400)
        .await;
    let remove = ("DELETE", "/api/v1/admin/servers/{id}/");
    p.probe(
        remove,
        "/api/v1/admin/servers/50/",
        Some(&a),
        Send::Nothing,
        204,
    )
    .await;
    p.probe(
        remove,
        "/api/v1/admin/servers/50/",
        Some(&a),
        Send::Nothing,
        404,
    )
    .await;

    // 409: a keyed create waits on a held server; its key is in use.
    let hold = api.svc.hold_server(1).unwrap();
    let first = {
        let (http, url, t) = (p.http.clone(), p.url.clone(), t.clone());
        tokio::spawn(async move {
            let r = http
                .post(format!("{url}/api/v1/snapshots/"))
                .bearer_auth(t)
                .header("Idempotency-Key", "slow")
                .json(&json!({"server_id": 1, "name": "slow"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    wait_until(|| api.svc.idempotency_keys_in_flight() == 1).await;
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Keyed(body(1, "slow"), "slow"),
        409,
    )
    .await;
    p.probe(restore, &r, Some(&t), Send::Keyed(None, "slow"), 409)
        .await;
    drop(hold);
    let (status, created) = first.await.unwrap();
    p.record(create, status, &created, "the held create");

    // 400 server_busy on everything that acts on a server being restored.
    api.call(Method::POST, Some(&t), "/api/v1/servers/1/stop/", None, &[])
        .await;
    let held = SyncHold::arm(api.disk.as_ref().unwrap());
    let restoring = {
        let (http, url, t) = (p.http.clone(), p.url.clone(), t.clone());
        let r = r.clone();
        tokio::spawn(async move {
            let r = http
                .post(format!("{url}{r}"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    wait_until(|| held.holding()).await;
    p.probe(
        create,
        create.1,
        Some(&t),
        Send::Json(body(1, "busy").unwrap()),
        400,
    )
    .await;
    p.probe(
        patch,
        &s,
        Some(&t),
        Send::Json(json!({"name": "busy"})),
        400,
    )
    .await;
    p.probe(delete, &s, Some(&t), Send::Nothing, 400).await;
    p.probe(restore, &r, Some(&t), Send::Nothing, 400).await;
    for action in ["start", "stop"] {
        let template = format!("/api/v1/servers/{{id}}/{action}/");
        let path = format!("/api/v1/servers/1/{action}/");
        p.probe(
            ("POST", template.as_str()),
            &path,
            Some(&t),
            Send::Nothing,
            400,
        )
        .await;
    }
    p.probe(
        remove,
        "/api/v1/admin/servers/1/",
        Some(&a),
        Send::Nothing,
        400,
    )
    .await;
    drop(held);
    let (status, restored) = restoring.await.unwrap();
    p.record(restore, status, &restored, "the held restore");

    let mut seen = std::mem::take(&mut p.seen);
    let mut failures = std::mem::take(&mut p.failures);
    api.stop().await;

    // 500 then 503 from every operation that writes, each on a fresh pool
    // whose next sync fails.
    for (method, template) in &ops {
        if let Some(statuses) = engine_failures(method, template).await {
            let key = (method.clone(), template.clone());
            failures.extend(statuses.1);
            seen.entry(key).or_default().extend(statuses.0);
        }
    }

    for (method, template) in &ops {
        let documented: BTreeSet<String> = p.doc["paths"][template][method.to_lowercase()]
            ["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let drawn = seen
            .get(&(method.clone(), template.clone()))
            .cloned()
            .unwrap_or_default();
        if documented != drawn {
            failures.push(format!(
                "{method} {template}: documents {documented:?} but probes drew {drawn:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// On a fresh service whose next sync fails, `method template` answers 500
/// (the engine failed, and the pool now refuses writes), then 503. Returns
/// the statuses seen and any failures; None for an operation that does not
/// write.
async fn engine_failures(method: &str, template: &str) -> Option<(Vec<String>, Vec<String>)> {
    let api = Api::on_sim().await;
    let t = api.account("acme");
    api.server("acme", 1, "web", MIB);
    let snap = api.snapshot(&t, 1, "s").await;
    let spare = api.svc.create_token("acme").unwrap().view.id;
    let a = api.admin.clone();
    let (token, path, body) = match (method, template) {
        ("POST", "/api/v1/snapshots/") => (
            &t,
            template.to_string(),
            json!({"server_id": 1, "name": "n"}),
        ),
        ("PATCH", "/api/v1/snapshots/{id}/") => {
            (&t, concrete(template, snap), json!({"name": "n"}))
        }
        ("DELETE", "/api/v1/snapshots/{id}/") => (&t, concrete(template, snap), Value::Null),
        ("POST", "/api/v1/snapshots/{id}/restore/") => (&t, concrete(template, snap), Value::Null),
        // Stop a running server; start one stopped first.
        ("POST", "/api/v1/servers/{id}/stop/") => (&t, concrete(template, snap), Value::Null),
        ("POST", "/api/v1/servers/{id}/start/") => {
            api.svc.set_power("acme", 1, false).unwrap();
            (&t, concrete(template, snap), Value::Null)
        }
        ("POST", "/api/v1/admin/accounts/") => (&a, template.to_string(), json!({"name": "n"})),
        ("POST", "/api/v1/admin/accounts/{name}/tokens/") => {
            (&a, concrete(template, snap), Value::Null)
        }
        ("DELETE", "/api/v1/admin/tokens/{id}/") => {
            (&a, format!("/api/v1/admin/tokens/{spare}/"), Value::Null)
        }
        ("POST", "/api/v1/admin/servers/") => (
            &a,
            template.to_string(),
            json!({"id": 9, "name": "n", "account": "acme", "size_bytes": MIB}),
        ),
        ("DELETE", "/api/v1/admin/servers/{id}/") => (&a, concrete(template, snap), Value::Null),
        _ => {
            api.stop().await;
            return None;
        }
    };
    let body = (!body.is_null()).then_some(body);
    let m: Method = method.parse().unwrap();
    api.pool.flush().unwrap();
    api.disk.as_ref().unwrap().fail_next_sync();
    let mut seen = Vec::new();
    let mut failures = Vec::new();
    for (expect, code) in [(500, "server_error"), (503, "storage_unavailable")] {
        let r = api
            .call(m.clone(), Some(token), &path, body.as_ref(), &[])
            .await;
        seen.push(r.status.as_u16().to_string());
        if r.status.as_u16() != expect || r.body["code"] != code {
            failures.push(format!(
                "{method} {path} on failing storage: expected {expect} {code}, got {} {}",
                r.status, r.body
            ));
        }
    }
    api.stop().await;
    Some((seen, failures))
}
