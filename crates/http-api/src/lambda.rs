//! The router as the `http-api` Lambda serves it: API Gateway's view of the
//! client address (`requestContext.http.sourceIp` of a payload v2 event, or
//! `identity.sourceIp` of v1) becomes a [`ClientAddr`], so the per-address
//! limits see the real client rather than nothing.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt as _;
use tincan_fleet::FleetIceServers;

use crate::{router_with_fleet, ApiState, ClientAddr};

/// The client address API Gateway saw, if the event carries one.
pub fn source_ip(req: &Request) -> Option<std::net::IpAddr> {
    let ip = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    ip?.parse().ok()
}

async fn client_addr(mut req: Request, next: Next) -> Response {
    if let Some(ip) = source_ip(&req) {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(req).await
}

/// [`crate::router_with_fleet`], with the client address from the event.
pub fn router(state: ApiState, fleet: Option<FleetIceServers>) -> Router {
    router_with_fleet(state, fleet).layer(middleware::from_fn(client_addr))
}
