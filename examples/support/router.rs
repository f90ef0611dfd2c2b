//! A prefix router built only on discoverable's public [`Discovery`] API: it follows every
//! service's passing instances with one blocking query, and forwards each request to a
//! passing instance of the most specific matching route, rewriting the path as the route's
//! `strip=`/`prepend=` options say. That is Fabio's job in production: run Fabio against the
//! same Consul (`fabio -registry.consul.addr 127.0.0.1:8500`) and it routes by the same tags.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use discoverable::Discovery;
use discoverable::discovery::{Endpoint, Route, ServicesWatch};

/// Largest request body forwarded.
const BODY_LIMIT: usize = 8 << 20;

#[derive(Clone)]
pub struct PrefixRouter {
    services: ServicesWatch,
    http: reqwest::Client,
}

impl PrefixRouter {
    /// Starts following every service through `discovery`: one blocking query, as Fabio
    /// holds, however many services there are.
    pub fn new(discovery: Discovery) -> Self {
        PrefixRouter {
            services: discovery.services(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
        }
    }

    /// The routes and the instances behind each, most specific route first.
    pub fn table(&self) -> Vec<(Route, Endpoint)> {
        let mut table: Vec<(Route, Endpoint)> = self
            .services
            .current()
            .values()
            .flat_map(|instances| instances.to_vec())
            .flat_map(|e| e.routes().into_iter().map(move |r| (r, e.clone())))
            .filter(|(r, _)| r.tcp_port.is_none())
            .collect();
        table.sort_by_key(|(route, _)| std::cmp::Reverse(route.specificity()));
        table
    }

    /// The axum app that forwards every request.
    pub fn app(self) -> Router {
        Router::new().fallback(forward).with_state(self)
    }
}

async fn forward(State(router): State<PrefixRouter>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let path = request.uri().path().to_owned();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let table = router.table();
    let Some((best, _)) = table
        .iter()
        .find(|(r, _)| r.matches(host.as_deref(), &path))
    else {
        return (StatusCode::NOT_FOUND, format!("no route for {path}\n")).into_response();
    };
    let candidates: Vec<&(Route, Endpoint)> = table.iter().filter(|(r, _)| r == best).collect();
    let method = request.method().clone();
    let headers = request.headers().clone();
    let Ok(body) = to_bytes(request.into_body(), BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    };
    let idempotent = matches!(
        method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    let first = fastrand::usize(..candidates.len());
    let attempts = if idempotent {
        candidates.len().min(2)
    } else {
        1
    };
    let mut last_error = String::new();
    for attempt in 0..attempts {
        let (route, endpoint) = candidates[(first + attempt) % candidates.len()];
        let url = format!(
            "{}://{}{}{}",
            route.scheme(),
            endpoint.authority(),
            route.rewrite(&path),
            query
        );
        let sent = router
            .http
            .request(method.clone(), &url)
            .headers(forwarded_headers(&headers))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                for (k, v) in answer.headers() {
                    if k != header::TRANSFER_ENCODING && k != header::CONNECTION {
                        response = response.header(k, v);
                    }
                }
                let bytes = answer.bytes().await.unwrap_or_default();
                return response
                    .body(Body::from(bytes))
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
            }
            Err(e) => last_error = format!("{}: {e}", endpoint.id),
        }
    }
    (
        StatusCode::BAD_GATEWAY,
        format!("upstream failed: {last_error}\n"),
    )
        .into_response()
}

fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = incoming.clone();
    for hop in [
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ] {
        out.remove(hop);
    }
    out
}
