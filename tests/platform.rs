//! What platforms expect: health, reflection, graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use fingerprint_gateway::{config::Generation, proto::v1::GetEventRequest};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn health(h: &Harness, service: &str) -> Result<i32, tonic::Status> {
    let mut client = HealthClient::new(h.channel.clone());
    client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn health_is_serving_overall_and_per_service() {
    let h = Harness::start().await;
    assert_eq!(health(&h, "").await.unwrap(), ServingStatus::Serving as i32);
    for s in fingerprint_gateway::server::SERVICE_NAMES {
        assert_eq!(
            health(&h, s).await.unwrap(),
            ServingStatus::Serving as i32,
            "{s}"
        );
    }
    assert_eq!(
        health(&h, "no.such.Service").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    h.stop().await;
}

#[tokio::test]
async fn unconfigured_service_reports_not_serving() {
    let sandbox = fingerprint_gateway::sandbox::Sandbox::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Default::default(),
    )
    .unwrap();
    let settings: Vec<_> = common::sandbox_settings(&sandbox, Generation::V4)
        .into_iter()
        .filter(|(k, _)| *k != "FINGERPRINT_SECRET_API_KEY")
        .collect();
    let h = Harness::start_config(sandbox, common::config(&settings)).await;
    let fp = fingerprint_gateway::server::SERVICE_NAMES[0];
    assert_eq!(
        health(&h, fp).await.unwrap(),
        ServingStatus::NotServing as i32
    );
    h.stop().await;
}

async fn reflect_v1(
    h: &Harness,
    req: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    };
    let mut client = ServerReflectionClient::new(h.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(req),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    stream
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_describe_the_api_and_error_details() {
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let h = Harness::start().await;
    let MessageResponse::ListServicesResponse(list) =
        reflect_v1(&h, MessageRequest::ListServices(String::new())).await
    else {
        panic!("list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "fingerprint.gateway.v1.FingerprintService",
        "fingerprint.gateway.v1.StytchService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    // grpcurl needs google.rpc details to print error details.
    let MessageResponse::FileDescriptorResponse(files) = reflect_v1(
        &h,
        MessageRequest::FileContainingSymbol("google.rpc.BadRequest".into()),
    )
    .await
    else {
        panic!("symbol")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // v1alpha, which grpcurl 1.8 speaks.
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request, server_reflection_response,
    };
    let mut client = ServerReflectionClient::new(h.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1alpha list")
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "fingerprint.gateway.v1.FingerprintService")
    );
    h.stop().await;
}

#[tokio::test]
async fn shutdown_turns_health_off_and_drains_in_flight_calls() {
    let mut h = Harness::start().await;
    h.sandbox.control.set_delay(Duration::from_millis(800));
    let mut fp = h.fingerprint();
    let in_flight = tokio::spawn(async move {
        fp.get_event(GetEventRequest {
            event_id: "drain-me".into(),
            ..Default::default()
        })
        .await
    });
    // Let the call reach the upstream before the signal.
    while h.upstream_requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut watch = HealthClient::new(h.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    let server = h.signal_stop().unwrap();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    let answer = in_flight.await.unwrap();
    assert!(answer.is_ok(), "the in-flight call finished: {answer:?}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let mut h = Harness::start_with(
        Generation::V4,
        &[("GATEWAY_SHUTDOWN_GRACE", "300ms".into())],
    )
    .await;
    h.sandbox.control.set_delay(Duration::from_secs(30));
    let mut fp = h.fingerprint();
    let _stuck = tokio::spawn(async move {
        fp.get_event(GetEventRequest {
            event_id: "stuck".into(),
            ..Default::default()
        })
        .await
    });
    while h.upstream_requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = h.signal_stop().unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("stopped long before the stuck call could end")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn metrics_count_rpcs_cache_outcomes_and_upstream_calls() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = Harness::start_with(
        Generation::V4,
        &[("GATEWAY_METRICS_LISTEN", addr.to_string())],
    )
    .await;
    let mut fp = h.fingerprint();
    fp.get_event(GetEventRequest {
        event_id: "metrics-1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    fp.get_event(GetEventRequest {
        event_id: "metrics-1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    fp.get_event(GetEventRequest {
        event_id: "a/b".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    let scrape = || async {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let body = scrape().await;
    // The registry is this server's own: counts are exact.
    for series in [
        r#"fpgw_rpc_total{rpc="fingerprint.gateway.v1.FingerprintService/GetEvent",code="Ok"} 2"#,
        r#"fpgw_rpc_total{rpc="fingerprint.gateway.v1.FingerprintService/GetEvent",code="InvalidArgument"} 1"#,
        r#"fpgw_cache_total{rpc="GetEvent",result="hit"} 1"#,
        r#"fpgw_cache_total{rpc="GetEvent",result="miss"} 2"#,
        r#"fpgw_upstream_requests_total{upstream="fingerprint",status="200"} 1"#,
        r#"fpgw_rpc_duration_seconds_count{rpc="fingerprint.gateway.v1.FingerprintService/GetEvent"} 3"#,
        r#"fpgw_upstream_duration_seconds_count{upstream="fingerprint"} 1"#,
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    // Made-up method paths cannot create series: they all count as `unknown`.
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let before = series(&scrape().await);
    let mut grpc = tonic::client::Grpc::new(h.channel.clone());
    for i in 0..500 {
        grpc.ready().await.unwrap();
        let path =
            http::uri::PathAndQuery::try_from(format!("/made.up.Service/Method{i}")).unwrap();
        let err = grpc
            .unary::<_, (), _>(
                tonic::Request::new(()),
                path,
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
    }
    let body = scrape().await;
    assert!(
        body.contains(r#"fpgw_rpc_total{rpc="unknown",code="Unimplemented"} 500"#),
        "{body}"
    );
    // The `unknown` series exist from the start: not one series is added.
    assert_eq!(
        series(&body),
        before,
        "500 made-up paths added series:\n{body}"
    );
    h.stop().await;
}

#[tokio::test]
async fn old_connections_are_recycled_and_the_client_reconnects_without_failing_a_call() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = Harness::start_with(
        Generation::V4,
        &[
            ("GATEWAY_METRICS_LISTEN", addr.to_string()),
            ("GATEWAY_MAX_CONNECTION_AGE", "300ms".into()),
            ("GATEWAY_MAX_CONNECTION_AGE_GRACE", "5s".into()),
        ],
    )
    .await;
    let fp = h.fingerprint();
    // Calls for 2 s over one channel: its connection is recycled several times.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut calls = 0;
    let mut resent = 0;
    while std::time::Instant::now() < until {
        let call = || {
            let mut fp = fp.clone();
            let id = format!("recycled-{calls}");
            async move {
                fp.get_event(GetEventRequest {
                    event_id: id,
                    ..Default::default()
                })
                .await
            }
        };
        match call().await {
            Ok(_) => {}
            // A call sent on a connection in the instant it closes never reached the
            // server: gRPC clients (grpc-go, grpc-java) resend it transparently; tonic
            // does not, so this client does what they do, once.
            Err(e)
                if e.code() == tonic::Code::Cancelled || e.code() == tonic::Code::Unavailable =>
            {
                resent += 1;
                call().await.unwrap();
            }
            Err(e) => panic!("{e:?}"),
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        resent * 10 <= calls,
        "{resent} of {calls} calls met a closing connection"
    );
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let accepted: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("fpgw_connections_accepted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(
        accepted >= 3,
        "{calls} calls, {accepted} connections accepted:\n{body}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_connection_held_past_its_age_and_grace_is_closed() {
    // A call whose request body never ends keeps its stream, and so its connection,
    // open after the GOAWAY at GATEWAY_MAX_CONNECTION_AGE: the gateway must close the
    // connection at age + grace rather than let one caller pin it forever.
    let h = Harness::start_with(
        Generation::V4,
        &[
            ("GATEWAY_MAX_CONNECTION_AGE", "300ms".into()),
            ("GATEWAY_MAX_CONNECTION_AGE_GRACE", "700ms".into()),
            ("GATEWAY_DEFAULT_DEADLINE", "60s".into()),
        ],
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let never_ends = tokio_stream::pending::<GetEventRequest>();
    let call = grpc.client_streaming::<_, GetEventRequest, fingerprint_gateway::proto::v1::GetEventResponse, _>(
        tonic::Request::new(never_ends),
        http::uri::PathAndQuery::from_static(
            "/fingerprint.gateway.v1.FingerprintService/GetEvent",
        ),
        tonic_prost::ProstCodec::default(),
    );
    // A safety net against a hang, far above age + grace; not a timing assertion.
    let outcome = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the held connection was never closed");
    let status = outcome.expect_err("a call without its body cannot succeed");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Internal
                | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_burst_of_cancelled_calls_does_not_close_the_connection() {
    // A client whose queued calls all reach their deadline at once cancels them
    // together: HEADERS then RST_STREAM for each, often before the server has accepted
    // the stream. h2's default tolerates 20 such streams pending at once, then sends
    // GOAWAY (its guard against "rapid reset"), and every other call on that
    // connection fails with a transport error. The gateway bounds them by the streams
    // a connection may hold instead.
    let h = Harness::start().await;
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = || {
        http::Request::post(format!(
            "http://{}/fingerprint.gateway.v1.FingerprintService/GetEvent",
            h.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
    };
    for _ in 0..200 {
        client = client.ready().await.unwrap();
        let (_response, mut stream) = client.send_request(request(), false).unwrap();
        stream.send_reset(h2::Reason::CANCEL);
    }
    // The same connection still answers a whole call.
    client = client.ready().await.unwrap();
    let (response, mut stream) = client.send_request(request(), false).unwrap();
    let message = prost::Message::encode_to_vec(&GetEventRequest {
        event_id: "after-the-resets".to_owned(),
        ..Default::default()
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    stream.send_data(frame.into(), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer")
        .expect("the connection was closed after the cancelled calls");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        received += chunk.len();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "{trailers:?}"
    );
    assert!(received > 5, "an answer, not just a frame header");
    drop(client);
    driver.abort();
    h.stop().await;
}
