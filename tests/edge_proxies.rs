//! nginx (`auth_request`) and Caddy (`forward_auth`) in front of a tiny app that records
//! what reaches it, each asking the gateway's forward-auth. Both run the very configs of
//! `deploy/edge/`, with free ports put in. The tools come from Debian (`.ci/install`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, routing::any};
use common::{Harness, process::free_port};
use fingerprint_gateway::config::Generation;

const POLICY: &str = r#"
default = "allow"
[scope]
paths = ["/login"]
[[rule]]
name = "known-bots"
action = "deny"
bot = true
"#;

/// The app behind the proxy: records the headers of every request it gets.
#[derive(Clone, Default)]
struct App {
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl App {
    async fn start() -> (Self, SocketAddr) {
        let app = App::default();
        let router = Router::new()
            .fallback(any(
                |State(app): State<App>, uri: axum::http::Uri, headers: HeaderMap| async move {
                    app.seen.lock().unwrap().push((uri.to_string(), headers));
                    "hello from the app"
                },
            ))
            .with_state(app.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (app, addr)
    }

    fn take(&self) -> Vec<(String, HeaderMap)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A proxy process, killed when dropped.
struct Proxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn workdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fpgw-{what}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The deploy/edge config with free ports.
fn config(file: &str, proxy: SocketAddr, auth: SocketAddr, app: SocketAddr) -> String {
    std::fs::read_to_string(format!("{}/deploy/edge/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("127.0.0.1:8080", &proxy.to_string())
        .replace("127.0.0.1:8081", &auth.to_string())
        .replace("127.0.0.1:9000", &app.to_string())
}

fn nginx(proxy: SocketAddr, auth: SocketAddr, app: SocketAddr) -> Proxy {
    common::process::require_tool(
        "nginx",
        Command::new("nginx").arg("-v"),
        "apt-get install nginx (.ci/install-packages)",
    );
    let dir = workdir("nginx");
    let d = dir.display();
    let server = config("nginx.conf", proxy, auth, app);
    let conf = format!(
        "worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{server}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new("nginx")
        .args([
            "-p",
            &d.to_string(),
            "-c",
            "nginx.conf",
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::process::wait_for_listener(&mut child, proxy, "nginx", Duration::from_secs(20));
    Proxy { child, dir }
}

fn caddy(proxy: SocketAddr, auth: SocketAddr, app: SocketAddr) -> Proxy {
    common::process::require_tool(
        "caddy",
        Command::new("caddy").arg("version"),
        "apt-get install caddy (.ci/install-packages)",
    );
    let dir = workdir("caddy");
    std::fs::write(dir.join("Caddyfile"), config("Caddyfile", proxy, auth, app)).unwrap();
    let mut child = Command::new("caddy")
        .args(["run", "--config", "Caddyfile", "--adapter", "caddyfile"])
        .current_dir(&dir)
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::process::wait_for_listener(&mut child, proxy, "caddy", Duration::from_secs(20));
    Proxy { child, dir }
}

async fn gateway(auth: SocketAddr, extra: &[(&'static str, String)]) -> (Harness, PathBuf) {
    let file = workdir("edge-policy").join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let mut settings = vec![
        ("GATEWAY_EDGE_POLICY_FILE", file.display().to_string()),
        ("GATEWAY_HTTP_LISTEN", auth.to_string()),
    ];
    settings.extend(extra.iter().cloned());
    (Harness::start_with(Generation::V4, &settings).await, file)
}

fn edge_calls(h: &Harness) -> usize {
    h.upstream_requests()
        .iter()
        .filter(|r| r.path == "/v4/edge")
        .count()
}

async fn get(proxy: SocketAddr, path: &str, ua: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://{proxy}{path}"))
        .header("User-Agent", ua)
        .header("X-Fingerprint-Decision", "allow")
        .header("X-Fingerprint-Event-Id", "forged")
        .send()
        .await
        .unwrap()
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
const BOT: &str = "GPTBot/1.1";

/// The two cases both proxies must get right: a bot refused before the app, a browser
/// passed with the analysis's event id (and no forged header).
async fn bot_refused_and_browser_passed(proxy: SocketAddr, app: &App, h: &Harness) {
    let r = get(proxy, "/login", BOT).await;
    assert_eq!(r.status(), 403, "{:?}", r.text().await);
    assert!(app.take().is_empty(), "the app never sees the bot");

    let r = get(proxy, "/login?next=%2F", BROWSER).await;
    assert_eq!(r.status(), 200);
    let seen = app.take();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0].1;
    assert_eq!(headers["x-fingerprint-decision"], "allow");
    let event = headers["x-fingerprint-event-id"].to_str().unwrap();
    assert!(!event.is_empty() && event != "forged", "{event}");
    assert_eq!(headers.get_all("x-fingerprint-event-id").iter().count(), 1);
    let sent: serde_json::Value =
        serde_json::from_str(&h.upstream_requests().last().unwrap().body).unwrap();
    assert!(
        sent["url"].as_str().unwrap().ends_with("/login?next=%2F"),
        "{sent}"
    );
}

#[tokio::test]
#[ignore = "needs nginx (Debian package nginx; .ci/install-packages): cargo test -- --include-ignored"]
async fn nginx_auth_request_refuses_bots_passes_browsers_and_skips_the_out_of_scope() {
    let (auth, proxy) = (free_port(), free_port());
    let (app, app_addr) = App::start().await;
    let (h, file) = gateway(auth, &[("GATEWAY_EDGE_BUDGET", "200ms".into())]).await;
    let _nginx = nginx(proxy, auth, app_addr);
    bot_refused_and_browser_passed(proxy, &app, &h).await;

    let before = edge_calls(&h);
    let r = get(proxy, "/static/app.js", BOT).await;
    assert_eq!(r.status(), 200);
    let seen = app.take();
    assert_eq!(seen[0].1["x-fingerprint-decision"], "out_of_scope");
    assert_eq!(edge_calls(&h), before, "0 vendor calls out of scope");

    // The vendor stuck: fail-open passes, marked, within the budget.
    reqwest::Client::new()
        .put(format!("{}/__sandbox/faults", h.sandbox.base_url()))
        .json(&serde_json::json!([{"path": "/v4/edge", "fault": "outage"}]))
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = get(proxy, "/login", BOT).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.take()[0].1["x-fingerprint-decision"], "unavailable");
    h.stop().await;

    // Fail-closed refuses.
    let auth = free_port();
    let (h, file2) = gateway(
        auth,
        &[
            ("GATEWAY_EDGE_BUDGET", "200ms".into()),
            ("GATEWAY_EDGE_ON_FAILURE", "closed".into()),
        ],
    )
    .await;
    let proxy = free_port();
    let _nginx2 = nginx(proxy, auth, app_addr);
    reqwest::Client::new()
        .put(format!("{}/__sandbox/faults", h.sandbox.base_url()))
        .json(&serde_json::json!([{"path": "/v4/edge", "fault": "outage"}]))
        .send()
        .await
        .unwrap();
    let r = get(proxy, "/login", BROWSER).await;
    assert_eq!(r.status(), 403);
    assert!(app.take().is_empty());
    h.stop().await;
    for f in [file, file2] {
        let _ = std::fs::remove_dir_all(f.parent().unwrap());
    }
}

#[tokio::test]
#[ignore = "needs caddy (Debian package caddy; .ci/install-packages): cargo test -- --include-ignored"]
async fn caddy_forward_auth_refuses_bots_and_passes_browsers() {
    let (auth, proxy) = (free_port(), free_port());
    let (app, app_addr) = App::start().await;
    let (h, file) = gateway(auth, &[]).await;
    let _caddy = caddy(proxy, auth, app_addr);
    bot_refused_and_browser_passed(proxy, &app, &h).await;
    h.stop().await;
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
