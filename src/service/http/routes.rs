//! The route table: one place that says what the API serves. Every route
//! also answers without its trailing slash.

use super::{admin, auth, errors, log, misc, servers, snapshots, App};
use crate::service::run::ServeOptions;
use crate::service::Service;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

fn table() -> Vec<(&'static str, MethodRouter<App>)> {
    vec![
        ("/api/v1/ping/", get(misc::ping)),
        ("/api/v1/schema/", get(misc::schema)),
        (
            "/api/v1/snapshots/",
            get(snapshots::list).post(snapshots::create),
        ),
        (
            "/api/v1/snapshots/{id}/",
            get(snapshots::show)
                .patch(snapshots::update)
                .delete(snapshots::delete),
        ),
        ("/api/v1/snapshots/{id}/restore/", post(snapshots::restore)),
        ("/api/v1/servers/", get(servers::list)),
        ("/api/v1/servers/{id}/", get(servers::show)),
        ("/api/v1/servers/{id}/start/", post(servers::start)),
        ("/api/v1/servers/{id}/stop/", post(servers::stop)),
        (
            "/api/v1/admin/accounts/",
            get(admin::list_accounts).post(admin::create_account),
        ),
        (
            "/api/v1/admin/accounts/{name}/tokens/",
            get(admin::list_tokens).post(admin::create_token),
        ),
        ("/api/v1/admin/tokens/{id}/", delete(admin::revoke_token)),
        (
            "/api/v1/admin/servers/",
            get(admin::list_servers).post(admin::create_server),
        ),
        ("/api/v1/admin/servers/{id}/", delete(admin::delete_server)),
    ]
}

/// Every route's path as documented (with its trailing slash).
pub fn route_paths() -> Vec<&'static str> {
    table().into_iter().map(|(path, _)| path).collect()
}

/// The whole API over `svc`, with the default options.
pub fn router(svc: Arc<Service>) -> Router {
    router_with(svc, ServeOptions::default())
}

/// The whole API over `svc`.
pub fn router_with(svc: Arc<Service>, options: ServeOptions) -> Router {
    let app = App {
        svc,
        body_read_timeout: options.body_read_timeout,
    };
    let mut r = Router::new();
    for (path, methods) in table() {
        r = r
            .route(path, methods.clone())
            .route(path.trim_end_matches('/'), methods);
    }
    // The 405 fallback first, so that the authentication layer wraps it too;
    // the 404 fallback after, so that unknown routes stay 404 for everyone.
    r.method_not_allowed_fallback(errors::method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ))
        .fallback(errors::not_found)
        .layer(axum::middleware::from_fn(log::log_request))
        .with_state(app)
}
