//! The rkube API server: core v1 (and the groups kubectl reads beside it) served as
//! upstream kube-apiserver serves them, over HTTPS, on a [`storage::Store`].
//!
//! The server knows storage only through the `Store` trait; resources are described once
//! in [`resources`] and handled generically, with per-kind behaviour in [`admission`],
//! [`defaults`], [`validation`], [`printers`] and [`patch`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use storage::Store;

pub mod admission;
mod bootstrap;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod events;
pub mod handlers;
pub mod kubelet;
pub mod managed;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod openapiv2;
pub mod patch;
pub mod patching;
pub mod pki;
pub mod printers;
pub mod proto;
pub mod proxy;
pub mod request;
pub mod resources;
pub mod selector;
pub mod serve;
pub mod streaming;
pub mod table;
pub mod validation;

use error::ApiError;
use handlers::json_response;
use request::Route;
use serve::Identity;

/// How the server is set up (from `rkube server`'s flags).
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// The address other components and the `kubernetes` service use to reach us.
    pub advertise_address: IpAddr,
    pub service_cidr: admission::Cidr,
    pub cluster_cidr: String,
    pub cluster_dns: IpAddr,
    pub node_port_range: (u16, u16),
    pub tls_sans: Vec<String>,
}

/// Shared state of the running server.
pub struct App {
    pub store: Arc<dyn Store>,
    pub cfg: Config,
    pub metrics: metrics::Metrics,
    /// Bearer tokens accepted, with the user each authenticates.
    pub tokens: Vec<(String, Identity)>,
    /// Serializes service creates and updates (IP and port allocation).
    pub service_lock: tokio::sync::Mutex<()>,
    /// Becomes true once the bootstrap objects exist.
    pub ready: tokio::sync::watch::Sender<bool>,
    /// Relays `pods/log` (and the streaming subresources) to kubelets.
    pub kubelets: kubelet::KubeletClient,
}

/// A server bound to its port, ready to serve.
pub struct Server {
    pub app: Arc<App>,
    pub pki: pki::Pki,
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    router: axum::Router,
}

impl Server {
    /// Generates or loads the PKI, binds the port and bootstraps the cluster's objects.
    pub async fn new(cfg: Config, store: Arc<dyn Store>) -> Result<Server> {
        let mut sans = cfg.tls_sans.clone();
        sans.push(cfg.advertise_address.to_string());
        sans.push(cfg.service_cidr.nth(1).to_string());
        let pki = pki::Pki::ensure(&cfg.data_dir, &sans)?;
        let tls = serve::tls_config(&pki)?;
        let addr = SocketAddr::new(cfg.bind_address, cfg.port);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}: is another server running? (--https-listen-port)")
        })?;
        let token = pki.read_token()?;
        let admin = Identity::admin();
        let mut tokens = vec![(token.clone(), admin.clone())];
        if let Some((_, secret)) = token.split_once("::server:") {
            tokens.push((secret.to_string(), admin));
        }
        let kubelets = kubelet::KubeletClient::new(
            &std::fs::read(&pki.kubelet_client_cert)?,
            &std::fs::read(&pki.kubelet_client_key)?,
        )
        .context("loading the API server's kubelet client certificate")?;
        let app = Arc::new(App {
            kubelets,
            store,
            cfg,
            metrics: metrics::Metrics::default(),
            tokens,
            service_lock: tokio::sync::Mutex::new(()),
            ready: tokio::sync::watch::channel(false).0,
        });
        let router = axum::Router::new()
            .fallback(dispatch)
            .with_state(app.clone());
        Ok(Server {
            app,
            pki,
            listener,
            tls,
            router,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The API for clients in this process (see [`serve::LocalService`]).
    pub fn local_service(&self) -> serve::LocalService {
        serve::LocalService::new(self.router.clone())
    }

    /// Serves until `shutdown` fires.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let app = self.app.clone();
        let serving = tokio::spawn(serve::serve(self.listener, self.tls, self.router, shutdown));
        bootstrap::run(&app).await?;
        app.ready.send_replace(true);
        tracing::info!("API server ready");
        serving.await??;
        Ok(())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn dispatch(State(app): State<Arc<App>>, req: http::Request<Body>) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let mut identity = parts
        .extensions
        .get::<Identity>()
        .cloned()
        .unwrap_or(Identity::Anonymous);
    if let Some(tok) = bearer(&parts.headers) {
        identity = app
            .tokens
            .iter()
            .find(|(t, _)| t == tok)
            .map(|(_, id)| id.clone())
            .unwrap_or(Identity::Anonymous);
    }
    let route = request::route(parts.uri.path());
    let public = matches!(route, Route::Health(_) | Route::Version | Route::CaCerts);
    let labels = metrics::labels(&parts.method, &route);
    let resp = if identity == Identity::Anonymous && !public {
        ApiError::unauthorized().into_response()
    } else if let Some(p) = proxy::parse(parts.uri.path()) {
        let upgrade = parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
        proxy::serve(
            &app,
            p,
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            upgrade,
        )
        .await
        .unwrap_or_else(IntoResponse::into_response)
    } else if streaming::wanted(&route) {
        let upgrade = parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
        streaming::serve(
            &app,
            &parts.method,
            route,
            &parts.uri,
            &parts.headers,
            upgrade,
        )
        .await
        .unwrap_or_else(IntoResponse::into_response)
    } else {
        let log_ws = streaming::wants_log_websocket(&parts.method, &route, &parts.headers);
        let resp = match axum::body::to_bytes(body, request::MAX_BODY).await {
            Err(_) => ApiError::too_large().into_response(),
            Ok(bytes) => route_request(
                &app,
                &parts.method,
                route,
                &parts.uri,
                &parts.headers,
                bytes,
            )
            .await
            .unwrap_or_else(IntoResponse::into_response),
        };
        if log_ws {
            let upgrade = parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
            streaming::log_over_websocket(resp, &parts.headers, upgrade)
        } else {
            resp
        }
    };
    app.metrics
        .observe(labels, resp.status().as_u16(), start.elapsed());
    resp
}

async fn route_request(
    app: &Arc<App>,
    method: &Method,
    route: Route,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let q = request::Query::parse(uri.query());
    let get_only = || -> Result<(), ApiError> {
        if *method == Method::GET || *method == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {})",
                uri.path()
            )))
        }
    };
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    match route {
        Route::Object(t) => app.serve_object(method, t, q, headers, body).await,
        Route::Version => {
            get_only()?;
            Ok(json_response(StatusCode::OK, &discovery::version()))
        }
        Route::Health(which) => {
            let ready = *app.ready.borrow();
            if which == "readyz" && !ready {
                return Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[-]poststarthook/rkube-bootstrap failed: not finished\nreadyz check failed\n",
                )
                    .into_response());
            }
            Ok((StatusCode::OK, "ok").into_response())
        }
        Route::Metrics => Ok(app.metrics.render().into_response()),
        Route::CaCerts => {
            get_only()?;
            let pem = std::fs::read(pki::Pki::at(&app.cfg.data_dir).ca_cert)
                .map_err(|e| ApiError::internal(format!("cannot read the cluster CA: {e}")))?;
            Ok((StatusCode::OK, pem).into_response())
        }
        Route::Api | Route::Apis => {
            get_only()?;
            let core = matches!(route, Route::Api);
            if let Some(v) = discovery::aggregated_version(headers) {
                let mut r = json_response(StatusCode::OK, &discovery::aggregated(core, v));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_str(&discovery::aggregated_content_type(v))
                        .expect("valid header"),
                );
                return Ok(r);
            }
            let doc = if core {
                discovery::api_versions(
                    &SocketAddr::new(app.cfg.advertise_address, app.cfg.port).to_string(),
                )
            } else {
                discovery::api_group_list()
            };
            Ok(json_response(StatusCode::OK, &doc))
        }
        Route::ApiVersion => {
            get_only()?;
            Ok(json_response(
                StatusCode::OK,
                &discovery::resource_list("", "v1").ok_or_else(not_found)?,
            ))
        }
        Route::Group(g) => {
            get_only()?;
            Ok(json_response(
                StatusCode::OK,
                &discovery::api_group(&g).ok_or_else(not_found)?,
            ))
        }
        Route::GroupVersion(g, v) => {
            get_only()?;
            Ok(json_response(
                StatusCode::OK,
                &discovery::resource_list(&g, &v).ok_or_else(not_found)?,
            ))
        }
        Route::OpenApiV3 => {
            get_only()?;
            let mut r = (StatusCode::OK, openapi::docs().index.clone()).into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        Route::OpenApiV3Doc(gv) => {
            get_only()?;
            let (hash, doc) = openapi::docs().docs.get(&gv).ok_or_else(not_found)?;
            let mut r = (StatusCode::OK, doc.clone()).into_response();
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{hash}\"")) {
                h.insert(http::header::ETAG, etag);
            }
            if q.get("hash") == Some(hash.as_str()) {
                h.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("public, immutable"),
                );
            }
            Ok(r)
        }
        Route::OpenApiV2 => {
            get_only()?;
            let wants_pb = headers
                .get(http::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("protobuf"));
            let (ct, body) = if wants_pb {
                (
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    openapi::v2_protobuf().clone(),
                )
            } else {
                ("application/json", openapi::v2_json().clone())
            };
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(ct),
            );
            Ok(r)
        }
        Route::NotFound => Err(not_found()),
    }
}

/// A JSON value for tests and tools.
pub fn status_ok() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}
