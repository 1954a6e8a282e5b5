//! The floor of an edge decision: a bare tonic server whose Envoy `Authorization/Check`
//! decodes the `CheckRequest` (envoy-types' generated server) and makes the same POST
//! the gateway makes, with a plain reqwest client, then answers an empty OK: nothing
//! read from the request, converted, judged or counted. Health is served too.
//! Usage: bare_authz ADDR UPSTREAM_URL BODY_FILE

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use tonic::{Request, Response, Status};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    client: reqwest::Client,
    url: reqwest::Url,
    body: bytes::Bytes,
}

#[tonic::async_trait]
impl Authorization for Floor {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        std::hint::black_box(request.into_inner());
        let answer = async {
            self.client
                .post(self.url.clone())
                .header("content-type", "application/json")
                .header("authorization", "Bearer bench-key")
                .body(self.body.clone())
                .send()
                .await?
                .bytes()
                .await
        }
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
        std::hint::black_box(answer);
        Ok(Response::new(CheckResponse {
            status: Some(Default::default()),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or("ADDR")?.parse()?;
    let url = args.next().ok_or("UPSTREAM_URL")?.parse()?;
    let body = std::fs::read(args.next().ok_or("BODY_FILE")?)?.into();
    let (_, health) = tonic_health::server::health_reporter();
    let floor = Floor {
        client: reqwest::Client::new(),
        url,
        body,
    };
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(AuthorizationServer::new(floor))
        .serve(addr)
        .await?;
    Ok(())
}
