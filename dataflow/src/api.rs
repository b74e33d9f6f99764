//! The HTTP API (`[api]`): `/health`, `/ready` (once every source is running) and `/metrics`
//! (Prometheus text format), served by hyper on its own thread with a one-thread tokio
//! runtime, so it never competes with the shards for their cores' time beyond scrapes.

use crate::topology::RunState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("static response parts")
}

fn route(state: &RunState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
    }
    match req.uri().path() {
        "/health" => respond(StatusCode::OK, "application/json", "{\"status\":\"ok\"}\n"),
        "/ready" => {
            if state.ready.load(Ordering::Relaxed) && !state.lifecycle.is_draining() {
                respond(StatusCode::OK, "application/json", "{\"ready\":true}\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    "{\"ready\":false}\n",
                )
            }
        }
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.registry.render_prometheus(),
        ),
        "/" => respond(
            StatusCode::OK,
            "text/plain",
            "sluice: see /health, /ready, /metrics\n",
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /health, /ready or /metrics\n",
        ),
    }
}

/// Binds `address` now (so a busy port is a start-up error) and serves on a new thread.
pub fn start(address: SocketAddr, state: Arc<RunState>) -> anyhow::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(address)
        .map_err(|e| anyhow::anyhow!("api.address {address}: cannot listen: {e}"))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    std::thread::Builder::new()
        .name("sluice-api".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the API runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot serve the API");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let svc = hyper::service::service_fn(move |req| {
                            let resp = route(&state, &req);
                            async move { Ok::<_, std::convert::Infallible>(resp) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    });
                }
            });
        })?;
    Ok(local)
}
