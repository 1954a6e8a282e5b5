//! The deployment in `deploy/`: it renders, validates against the Kubernetes schemas,
//! passes checkov but for the checks docs/deploying.md justifies, its Dockerfile passes
//! hadolint, and it agrees with the binary (settings, ports, probes, drain timing).
//!
//! Needs kubectl and the Python tools of tests/requirements.txt (`.ci/install`): the
//! tests are `#[ignore]`d, and fail when run without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, path::Path, process::Command, time::Duration};

use common::process::{require_tool, run_ok};
use fingerprint_gateway::config::{Config, SETTINGS};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LAYOUTS: [&str; 2] = ["deploy/base", "deploy/overlays/redis"];

fn tools() {
    let install = "pip install -r tests/requirements.txt";
    require_tool(
        "kubectl",
        Command::new("kubectl").args(["version", "--client"]),
        install,
    );
    require_tool(
        "kubernetes-validate",
        Command::new("kubernetes-validate").arg("--version"),
        install,
    );
    require_tool(
        "PyYAML",
        Command::new("python3").args(["-c", "import yaml"]),
        install,
    );
}

fn render(layout: &str) -> String {
    let out = run_ok(
        "kubectl kustomize",
        Command::new("kubectl").args(["kustomize", layout]),
        Path::new(ROOT),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered objects, as JSON.
fn objects(yaml: &str) -> Vec<Value> {
    let dir = tempfile_dir();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = run_ok(
        "yaml to json",
        Command::new("python3").args([
            "-c",
            "import sys, yaml, json; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            file.to_str().unwrap(),
        ]),
        Path::new(ROOT),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fpgw-deploy-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "needs kubectl, kubernetes-validate, checkov, hadolint and PyYAML (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
fn manifests_render_validate_and_pass_the_policy_checks() {
    tools();
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/deploying.md")).unwrap();
    // The checkov checks docs/deploying.md justifies, from its table.
    let justified: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `CKV_"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect();
    assert!(!justified.is_empty(), "docs/deploying.md's checkov table");
    require_tool(
        "checkov",
        Command::new("checkov").arg("--version"),
        "pip install -r tests/requirements.txt",
    );
    for layout in LAYOUTS {
        let dir = tempfile_dir();
        let file = dir.join("rendered.yaml");
        std::fs::write(&file, render(layout)).unwrap();
        run_ok(
            "kubernetes-validate",
            Command::new("kubernetes-validate")
                .args(["--strict", "--quiet"])
                .arg(&file),
            Path::new(ROOT),
        );
        run_ok(
            "checkov (a failed check docs/deploying.md does not justify)",
            Command::new("checkov")
                .args(["--framework", "kubernetes", "--compact", "--quiet"])
                .args(["--skip-check", &justified.join(",")])
                .arg("-f")
                .arg(&file),
            Path::new(ROOT),
        );
    }
    require_tool(
        "hadolint",
        Command::new("hadolint").arg("--version"),
        "pip install -r tests/requirements.txt",
    );
    run_ok(
        "hadolint",
        Command::new("hadolint").arg("deploy/Dockerfile"),
        Path::new(ROOT),
    );
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn seconds(text: &str) -> Duration {
    humantime::parse_duration(text)
        .or_else(|_| text.parse::<u64>().map(Duration::from_secs))
        .unwrap()
}

#[test]
#[ignore = "needs kubectl, kubernetes-validate, checkov, hadolint and PyYAML (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
fn manifests_agree_with_the_binary() {
    tools();
    let known: HashMap<&str, Option<&str>> = SETTINGS.iter().map(|s| (s.name, s.default)).collect();
    for layout in LAYOUTS {
        let objects = objects(&render(layout));
        let deployment = find(&objects, "Deployment", "fingerprint-gateway");
        let pod = &deployment["spec"]["template"];
        let container = &pod["spec"]["containers"][0];
        // Every variable set is a setting the binary reads, and the binary accepts them.
        let dir = tempfile_dir();
        let mut env: HashMap<String, String> = HashMap::new();
        for var in container["env"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap();
            assert!(known.contains_key(name), "{layout}: {name} is no setting");
            let value = match var["value"].as_str() {
                Some(v) => v.to_owned(),
                // From a Secret: a stand-in of the right shape.
                None if name == "GATEWAY_REDIS_ENCRYPTION_KEY" => {
                    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()
                }
                None => "stand-in".to_owned(),
            };
            env.insert(name.to_owned(), value);
        }
        if let Some(path) = env.get("GATEWAY_REDIS_PASSWORD_FILE").cloned() {
            // Mounted from the Secret at that path.
            let mounts = container["volumeMounts"].as_array().unwrap();
            assert!(
                mounts
                    .iter()
                    .any(|m| path.starts_with(m["mountPath"].as_str().unwrap())),
                "{layout}: {path} is not mounted"
            );
            let local = dir.join("password");
            std::fs::write(&local, "stand-in\n").unwrap();
            env.insert(
                "GATEWAY_REDIS_PASSWORD_FILE".to_owned(),
                local.to_str().unwrap().to_owned(),
            );
        }
        // envFrom the Secret: the credentials docs/deploying.md says to put there.
        env.insert("FINGERPRINT_SECRET_API_KEY".into(), "stand-in".into());
        env.insert("STYTCH_PROJECT_ID".into(), "project-test-stand-in".into());
        env.insert("STYTCH_SECRET".into(), "secret-test-stand-in".into());
        let config = Config::from_lookup(&|name| env.get(name).cloned()).unwrap_or_else(|e| {
            panic!("{layout}: the binary refuses the manifest's settings: {e}")
        });
        let setting = |name: &str| -> String {
            env.get(name)
                .cloned()
                .or_else(|| known[name].map(str::to_owned))
                .unwrap()
        };

        // Ports: the listener, the container port, the probes and the Service agree.
        let ports = container["ports"].as_array().unwrap();
        let named = |n: &str| {
            ports
                .iter()
                .find(|p| p["name"] == n)
                .unwrap_or_else(|| panic!("port {n}"))["containerPort"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(named("grpc"), u64::from(config.listen.port()), "{layout}");
        let metrics = config.metrics_listen.expect("metrics on");
        assert_eq!(named("metrics"), u64::from(metrics.port()), "{layout}");
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/port"],
            metrics.port().to_string(),
            "{layout}: the scrape annotation"
        );
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(
                container[probe]["grpc"]["port"].as_u64(),
                Some(named("grpc")),
                "{layout}: {probe} is a native gRPC probe on the gRPC port"
            );
        }
        let service = find(&objects, "Service", "fingerprint-gateway");
        let grpc = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "grpc")
            .unwrap();
        assert_eq!(grpc["appProtocol"], "grpc", "{layout}");
        assert_eq!(grpc["targetPort"], "grpc", "{layout}");
        assert_eq!(port_of(&setting("GATEWAY_LISTEN")), named("grpc"));

        // Drain: endpoints go first (preStop), then the grace, inside the pod's grace.
        let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .expect("a preStop sleep");
        assert!(pre_stop >= 5, "{layout}: endpoints need time to go");
        let drain = seconds(&setting("GATEWAY_SHUTDOWN_GRACE"));
        let pod_grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        assert!(
            Duration::from_secs(pod_grace)
                >= Duration::from_secs(pre_stop) + drain + Duration::from_secs(5),
            "{layout}: terminationGracePeriodSeconds {pod_grace} must exceed preStop {pre_stop}s + GATEWAY_SHUTDOWN_GRACE {drain:?} + a flush"
        );
        assert_eq!(config.shutdown_grace, drain);

        // Locked down.
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{layout}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{layout}");
        assert_eq!(security["capabilities"]["drop"][0], "ALL", "{layout}");
        assert_eq!(
            pod["spec"]["securityContext"]["runAsNonRoot"], true,
            "{layout}"
        );

        // The HPA scales this Deployment; the PDB and Service select its pods.
        let hpa = find(&objects, "HorizontalPodAutoscaler", "fingerprint-gateway");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "fingerprint-gateway");
        let labels = pod["metadata"]["labels"].as_object().unwrap();
        let selects = |selector: &Value| {
            selector
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        };
        let pdb = find(&objects, "PodDisruptionBudget", "fingerprint-gateway");
        assert!(
            selects(&pdb["spec"]["selector"]["matchLabels"]),
            "{layout}: PDB"
        );
        assert!(selects(&service["spec"]["selector"]), "{layout}: Service");
        if layout.ends_with("redis") {
            assert!(config.redis.is_some(), "{layout}: Redis configured");
        }
    }
}

/// The mesh examples of deploy/edge point at the gateway as deploy/base serves it, and
/// let every decision header through.
#[test]
#[ignore = "needs kubectl and PyYAML (.ci/install: tests/requirements.txt): cargo test -- --include-ignored"]
fn the_edge_examples_name_the_gateway_as_deployed() {
    tools();
    let base = objects(&render("deploy/base"));
    let service = find(&base, "Service", "fingerprint-gateway");
    let namespace = service["metadata"]["namespace"].as_str().unwrap();
    let grpc = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .unwrap()["port"]
        .as_u64()
        .unwrap();
    let host = format!("fingerprint-gateway.{namespace}.svc.cluster.local");
    let headers = fingerprint_gateway::screen::HEADERS;

    // Istio: the mesh config's provider, and a CUSTOM policy that uses it.
    let istio =
        objects(&std::fs::read_to_string(format!("{ROOT}/deploy/edge/istio.yaml")).unwrap());
    let mesh_text = find(&istio, "ConfigMap", "istio")["data"]["mesh"]
        .as_str()
        .unwrap()
        .to_owned();
    let mesh = &objects(&mesh_text)[0];
    let provider = &mesh["extensionProviders"][0];
    let grpc_provider = &provider["envoyExtAuthzGrpc"];
    assert_eq!(grpc_provider["service"], host.as_str());
    assert_eq!(grpc_provider["port"].as_u64(), Some(grpc));
    let allowed: Vec<&str> = grpc_provider["headersToUpstreamOnAllow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    for h in headers {
        assert!(allowed.contains(&h), "istio: {h} does not reach the app");
    }
    let policy = find(&istio, "AuthorizationPolicy", "bot-defense");
    assert_eq!(policy["spec"]["action"], "CUSTOM");
    assert_eq!(policy["spec"]["provider"]["name"], provider["name"]);
    let paths = &policy["spec"]["rules"][0]["to"][0]["operation"]["paths"];
    assert!(paths.as_array().unwrap().iter().any(|p| p == "/login"));

    // Plain Envoy: the ext_authz filter before the router, over gRPC to that cluster.
    let envoy =
        objects(&std::fs::read_to_string(format!("{ROOT}/deploy/edge/envoy.yaml")).unwrap());
    let envoy = &envoy[0];
    let filters = envoy["http_filters"].as_array().unwrap();
    assert_eq!(filters[0]["name"], "envoy.filters.http.ext_authz");
    assert_eq!(
        filters[0]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
    );
    assert_eq!(filters.last().unwrap()["name"], "envoy.filters.http.router");
    let cluster_name = filters[0]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
        .as_str()
        .unwrap();
    let cluster = envoy["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster_name)
        .expect("the cluster the filter names");
    let socket = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(socket["address"], host.as_str());
    assert_eq!(socket["port_value"].as_u64(), Some(grpc));
    assert!(
        cluster["typed_extension_protocol_options"]
            .to_string()
            .contains("http2_protocol_options"),
        "gRPC needs HTTP/2 to the gateway"
    );
}
