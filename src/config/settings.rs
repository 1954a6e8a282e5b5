//! The settings table: one row per setting, from which parsing, `--help` and the
//! configuration table in docs/configuration.md are derived (see [`super`]).

/// How a setting's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `host:port`.
    Address,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// `500ms`, `30s`, `5m`; a bare number means seconds.
    Duration,
    /// A whole number.
    Count,
    /// An `http` or `https` base URL, without credentials, query or fragment.
    Url,
    /// Any text.
    Text,
    /// A secret: any text, never shown.
    Secret,
    /// Comma-separated secrets (in TOML, an array or a string).
    Secrets,
    /// One of these words (any case).
    Choice(&'static [&'static str]),
    /// A number from 0 to 1.
    Ratio,
    /// Comma-separated rate rules `N/unit` (unit `s`, `m`, `h` or `d`), each optionally
    /// `:B` for a burst of B calls at once (default 1: evenly spaced).
    Rates,
    /// A duration for every RPC, then optional `Rpc=duration` overrides, comma
    /// separated: `1h,SearchEvents=5m`.
    PerRpc,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The environment variable; the TOML key is this in lower case.
    pub name: &'static str,
    /// The value when unset; `None` when unset means off or absent.
    pub default: Option<&'static str>,
    /// How the text is read.
    pub kind: Kind,
    /// The command-line flag, when there is one.
    pub flag: Option<&'static str>,
    /// What it means.
    pub help: &'static str,
}

const fn setting(
    name: &'static str,
    default: Option<&'static str>,
    kind: Kind,
    help: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        kind,
        flag: None,
        help,
    }
}

const fn flag(mut s: Setting, flag: &'static str) -> Setting {
    s.flag = Some(flag);
    s
}

const TTL: Kind = Kind::Duration;

/// Every setting, in the order docs/configuration.md lists them.
pub const SETTINGS: &[Setting] = &[
    flag(
        setting(
            "GATEWAY_LISTEN",
            Some("0.0.0.0:50051"),
            Kind::Address,
            "gRPC listen address",
        ),
        "--listen",
    ),
    setting(
        "GATEWAY_METRICS_LISTEN",
        None,
        Kind::Address,
        "address serving Prometheus metrics at `/metrics`, e.g. `0.0.0.0:9464`; unset disables",
    ),
    flag(
        setting(
            "GATEWAY_SANDBOX",
            Some("false"),
            Kind::Bool,
            "serve against the embedded upstream emulator",
        ),
        "--sandbox",
    ),
    setting(
        "GATEWAY_SANDBOX_LISTEN",
        Some("127.0.0.1:0"),
        Kind::Address,
        "where the embedded sandbox serves its HTTP upstreams and its fault controls (`/__sandbox/faults`); port 0 picks a free one, logged at start-up",
    ),
    setting(
        "GATEWAY_SANDBOX_FAULTS",
        None,
        Kind::Text,
        "fault rules the embedded sandbox starts with: a JSON list, or `@FILE` naming a file holding one (see docs/sandbox.md)",
    ),
    setting(
        "FINGERPRINT_SECRET_API_KEY",
        None,
        Kind::Secret,
        "fingerprint.com secret API key; unset disables FingerprintService",
    ),
    flag(
        setting(
            "FINGERPRINT_API_VERSION",
            Some("v4"),
            Kind::Choice(&["v4", "v3"]),
            "fingerprint.com Server API generation: v4 or v3",
        ),
        "--fingerprint-api-version",
    ),
    flag(
        setting(
            "FINGERPRINT_REGION",
            Some("global"),
            Kind::Choice(&["global", "eu", "ap"]),
            "fingerprint.com region: global, eu or ap",
        ),
        "--fingerprint-region",
    ),
    setting(
        "FINGERPRINT_API_BASE_URL",
        None,
        Kind::Url,
        "overrides the region's base URL (proxy, tests)",
    ),
    setting(
        "FINGERPRINT_SEALED_RESULT_KEYS",
        None,
        Kind::Secrets,
        "comma-separated base64 AES-256 keys for UnsealEvent, tried in order (TOML: a string or an array)",
    ),
    setting(
        "FINGERPRINT_WEBHOOK_SECRETS",
        None,
        Kind::Secrets,
        "comma-separated secrets for VerifyWebhookSignature (TOML: a string or an array)",
    ),
    setting(
        "STYTCH_PROJECT_ID",
        None,
        Kind::Text,
        "Stytch project id; unset disables StytchService",
    ),
    setting(
        "STYTCH_SECRET",
        None,
        Kind::Secret,
        "Stytch secret; unset disables StytchService",
    ),
    setting(
        "STYTCH_API_BASE_URL",
        Some("https://telemetry.stytch.com"),
        Kind::Url,
        "Stytch DFP base URL",
    ),
    setting(
        "GATEWAY_DEFAULT_DEADLINE",
        Some("15s"),
        Kind::Duration,
        "deadline of a call that sets none (`grpc-timeout`); it bounds attempts, backoff, quota and coalescing waits. 15s: a hung attempt plus two retries of a vendor that answers in well under a second",
    ),
    setting(
        "GATEWAY_UPSTREAM_CONNECT_TIMEOUT",
        Some("1s"),
        Kind::Duration,
        "time allowed to open a connection to an upstream. 1s: a vendor's edge answers a handshake in tens of milliseconds; longer means the route is broken, and the call still has time to retry",
    ),
    setting(
        "GATEWAY_UPSTREAM_TIMEOUT",
        Some("5s"),
        Kind::Duration,
        "time allowed for one upstream attempt, answer body included (never past the call's deadline). 5s: far above the vendors' usual answer time, yet a hung attempt leaves the default deadline room for a retry",
    ),
    setting(
        "GATEWAY_RETRY_MAX_ATTEMPTS",
        Some("5"),
        Kind::Count,
        "attempts per read, the first included (1 disables retries; writes are never retried, but UpdateEvent's `state_not_ready`). 5: past a 30% failure rate 99.8% of the time; the retry budget, not this, bounds the load on a vendor in trouble, and the deadline bounds the wait",
    ),
    setting(
        "GATEWAY_RETRY_BACKOFF",
        Some("50ms"),
        Kind::Duration,
        "backoff before the first retry; it doubles per retry, with full jitter (a random wait from zero to it). 50ms: about one vendor round trip",
    ),
    setting(
        "GATEWAY_RETRY_BACKOFF_MAX",
        Some("1s"),
        Kind::Duration,
        "longest backoff between attempts. 1s: keeps retries inside typical deadlines",
    ),
    setting(
        "GATEWAY_RETRY_BUDGET",
        Some("0.2"),
        Kind::Ratio,
        "retries allowed per upstream, as a fraction of its calls over the last 10 s, so a failing vendor sees at most (1 + this) times its normal traffic. 0.2: linkerd's default",
    ),
    setting(
        "GATEWAY_RETRY_BUDGET_MIN_PER_SECOND",
        Some("10"),
        Kind::Count,
        "retries allowed per upstream per second regardless of the budget, so quiet services still retry. 10: linkerd's default",
    ),
    setting(
        "GATEWAY_BREAKER_FAILURE_RATIO",
        Some("0.5"),
        Kind::Ratio,
        "failure rate over the window that opens an upstream's circuit breaker (failures: connect errors, resets, timeouts, 5xx). 0.5: a vendor failing half its calls is down for callers too",
    ),
    setting(
        "GATEWAY_BREAKER_WINDOW",
        Some("10s"),
        Kind::Duration,
        "sliding window the breaker's failure rate is measured over. 10s: long enough to see a trend, short enough to react within seconds",
    ),
    setting(
        "GATEWAY_BREAKER_MIN_CALLS",
        Some("20"),
        Kind::Count,
        "calls the window must hold before the breaker judges (0 disables the breaker). 20: a handful of failures on a quiet gateway is not an outage",
    ),
    setting(
        "GATEWAY_BREAKER_OPEN_FOR",
        Some("5s"),
        Kind::Duration,
        "how long an open breaker fails calls fast before it lets probes through. 5s: a vendor's incident is rarely shorter, and callers learn when to retry",
    ),
    setting(
        "GATEWAY_BREAKER_PROBES",
        Some("3"),
        Kind::Count,
        "calls let through at once while half-open; this many successes close the breaker, one failure reopens it. 3: one lucky answer does not close it",
    ),
    setting(
        "FINGERPRINT_RATE_LIMIT",
        None,
        Kind::Rates,
        "the gateway's limit on fingerprint.com calls, e.g. `50/s:50` (rules `N/unit[:burst]`, comma-separated); calls wait for room within their deadline, then fail RESOURCE_EXHAUSTED. Unset: no limit, as plans differ; set your plan's",
    ),
    setting(
        "FINGERPRINT_DELETE_RATE_LIMIT",
        Some("30/h,500/d"),
        Kind::Rates,
        "the limit on DeleteVisitorData calls, on top of FINGERPRINT_RATE_LIMIT. Default: fingerprint.com's documented quota (30 an hour, 500 a day), evenly spaced so no rolling hour exceeds it",
    ),
    setting(
        "STYTCH_RATE_LIMIT",
        None,
        Kind::Rates,
        "the gateway's limit on Stytch calls, like FINGERPRINT_RATE_LIMIT. Unset: no limit",
    ),
    setting(
        "GATEWAY_MAX_IN_FLIGHT",
        Some("256"),
        Kind::Count,
        "RPCs the services work on at once (cache hits, health and reflection are not counted); past it, calls fail RESOURCE_EXHAUSTED at once instead of queueing. 256: what two cores serve without queueing, a bound on memory when a vendor stalls",
    ),
    setting(
        "GATEWAY_MAX_CONNECTIONS",
        Some("1024"),
        Kind::Count,
        "client connections served at once; past it, new ones wait in the kernel's accept queue. gRPC clients multiplex their calls over a few connections each: 1024 serves a large mesh, and bounds the memory that connections hold",
    ),
    setting(
        "GATEWAY_MAX_STREAMS_PER_CONNECTION",
        Some("250"),
        Kind::Count,
        "concurrent calls one client connection may open (HTTP/2 MAX_CONCURRENT_STREAMS); clients queue the rest. 250: Go's HTTP/2 server default, what gRPC clients expect; with GATEWAY_MAX_CONNECTIONS, it bounds the calls the gateway holds at once",
    ),
    setting(
        "GATEWAY_MAX_CONNECTION_AGE",
        Some("5m"),
        Kind::Duration,
        "a client connection older than this is asked to go (HTTP/2 GOAWAY) and reconnects, to a replica the balancer picks afresh: without it, replicas added by the autoscaler get no traffic from callers already connected. 5m: the mesh rebalances within minutes at the cost of one reconnect per caller per 5 minutes",
    ),
    setting(
        "GATEWAY_MAX_CONNECTION_AGE_GRACE",
        Some("30s"),
        Kind::Duration,
        "how long calls on a connection asked to go may still finish before it is closed; above GATEWAY_DEFAULT_DEADLINE so that no call is cut",
    ),
    setting(
        "GATEWAY_MAX_BODY_BYTES",
        Some("8388608"),
        Kind::Count,
        "largest upstream answer body accepted (at least 1024)",
    ),
    setting(
        "FINGERPRINT_SECRET_API_KEY_FILE",
        None,
        Kind::Text,
        "file holding FINGERPRINT_SECRET_API_KEY (a mounted Secret); re-read on change and SIGHUP, the new key used from the next upstream call",
    ),
    setting(
        "STYTCH_SECRET_FILE",
        None,
        Kind::Text,
        "file holding STYTCH_SECRET; re-read on change and SIGHUP",
    ),
    setting(
        "FINGERPRINT_SEALED_RESULT_KEYS_FILE",
        None,
        Kind::Text,
        "file holding FINGERPRINT_SEALED_RESULT_KEYS; re-read on change and SIGHUP",
    ),
    setting(
        "FINGERPRINT_WEBHOOK_SECRETS_FILE",
        None,
        Kind::Text,
        "file holding FINGERPRINT_WEBHOOK_SECRETS; re-read on change and SIGHUP",
    ),
    setting(
        "GATEWAY_REDIS_ENCRYPTION_KEY_FILE",
        None,
        Kind::Text,
        "file holding GATEWAY_REDIS_ENCRYPTION_KEY (read at start-up: every replica must change it together)",
    ),
    setting(
        "GATEWAY_AUTH",
        Some("false"),
        Kind::Bool,
        "refuse calls without an identity (UNAUTHENTICATED) or without the policy's permission (PERMISSION_DENIED). Off by default for the sandbox; **a production deployment should turn it on**",
    ),
    setting(
        "GATEWAY_POLICY_FILE",
        None,
        Kind::Text,
        "the callers (name, bearer-token SHA-256, mTLS/mesh identities), what each may call, and their own limits (TOML; see docs/security.md); re-read on change and SIGHUP",
    ),
    setting(
        "GATEWAY_MESH_IDENTITY",
        Some("none"),
        Kind::Choice(&["none", "envoy", "linkerd"]),
        "trust the mesh's forwarded caller identity: envoy (Istio's `x-forwarded-client-cert` URI) or linkerd (`l5d-client-id`), only from GATEWAY_MESH_TRUSTED_PEERS",
    ),
    setting(
        "GATEWAY_MESH_TRUSTED_PEERS",
        Some("127.0.0.1/32,::1/128"),
        Kind::Text,
        "CIDRs the mesh headers are trusted from: the sidecar, which connects from loopback",
    ),
    setting(
        "FINGERPRINT_EDGE_BLANK_HEADERS",
        None,
        Kind::Text,
        "comma-separated header names whose values AnalyzeRequest and the edge decisions send to `/v4/edge` as empty strings, besides `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` and `X-Api-Key` (any case)",
    ),
    setting(
        "GATEWAY_EDGE_POLICY_FILE",
        None,
        Kind::Text,
        "the edge bot-defense policy (scope, rules, default; TOML, see docs/edge.md); set, it turns on Envoy's `envoy.service.auth.v3.Authorization/Check` on the gRPC port and forward-auth on GATEWAY_HTTP_LISTEN; re-read on change and SIGHUP",
    ),
    setting(
        "GATEWAY_EDGE_BUDGET",
        Some("100ms"),
        Kind::Duration,
        "longest an edge decision waits for fingerprint.com (never past the caller's own deadline); past it, GATEWAY_EDGE_ON_FAILURE decides",
    ),
    setting(
        "GATEWAY_EDGE_ON_FAILURE",
        Some("open"),
        Kind::Choice(&["open", "closed"]),
        "when fingerprint.com is slow, failing, its breaker open or its quota spent: open lets the request pass (`x-fingerprint-decision: unavailable`), closed refuses it",
    ),
    setting(
        "GATEWAY_EDGE_DENY_STATUS",
        Some("403"),
        Kind::Count,
        "the HTTP status of a refused request (400 to 599)",
    ),
    setting(
        "GATEWAY_EDGE_TRUSTED_PROXIES",
        Some("127.0.0.1/32,::1/128"),
        Kind::Text,
        "CIDRs of the proxies whose forwarded client address (`x-forwarded-for`, `x-real-ip`) and forwarded request headers are believed; from any other peer its own address is the client's",
    ),
    setting(
        "GATEWAY_HTTP_LISTEN",
        None,
        Kind::Address,
        "address of the HTTP/1.1 listener for nginx `auth_request`, Caddy `forward_auth` and Traefik `ForwardAuth` (`/auth`); needs GATEWAY_EDGE_POLICY_FILE; unset disables",
    ),
    setting(
        "GATEWAY_REFLECTION",
        Some("true"),
        Kind::Bool,
        "serve gRPC server reflection (what grpcurl uses); it describes the API, never data",
    ),
    setting(
        "GATEWAY_TLS_CERT_FILE",
        None,
        Kind::Text,
        "PEM certificate chain: serve gRPC over TLS (with GATEWAY_TLS_KEY_FILE); re-read on change and SIGHUP",
    ),
    setting(
        "GATEWAY_TLS_KEY_FILE",
        None,
        Kind::Text,
        "PEM private key of GATEWAY_TLS_CERT_FILE",
    ),
    setting(
        "GATEWAY_TLS_CLIENT_CA_FILE",
        None,
        Kind::Text,
        "PEM CA bundle: require client certificates that chain to it (mTLS); a certificate's SPIFFE URI, else its CN, names the caller",
    ),
    setting(
        "GATEWAY_AUDIT_LOG",
        Some("stderr"),
        Kind::Text,
        "where the audit trail of mutations goes, one JSON line each: stderr (apart from the logs on stdout), stdout, or a file appended to",
    ),
    setting(
        "GATEWAY_REDIS_URL",
        None,
        Kind::Secret,
        "Redis (or Valkey) shared by the replicas: `redis://[user@]host:port[/db]`, or `rediss://` for TLS. Unset: each replica keeps its own cache and quota, as one process needs. Never logged (it may hold a password)",
    ),
    setting(
        "GATEWAY_REDIS_PASSWORD_FILE",
        None,
        Kind::Text,
        "file holding the Redis ACL password (a mounted Secret; one line, trailing newline ignored); overrides a password in the URL",
    ),
    setting(
        "GATEWAY_REDIS_CA_FILE",
        None,
        Kind::Text,
        "PEM file of the CA certificates that sign the Redis server's certificate, for a `rediss://` Redis whose certificate no public CA signs (Memorystore's per-instance CA, a self-hosted Redis); unset: the public web roots. Read at start-up",
    ),
    setting(
        "GATEWAY_REDIS_PREFIX",
        Some("fpgw"),
        Kind::Text,
        "first part of every Redis key and channel, so several deployments can share one Redis",
    ),
    setting(
        "GATEWAY_REDIS_ENCRYPTION_KEY",
        None,
        Kind::Secret,
        "base64 of 32 bytes: answers are encrypted and authenticated (AES-256-GCM, bound to their key) before they reach Redis. Cached events hold IP addresses and places; set it unless Redis is yours alone",
    ),
    setting(
        "GATEWAY_REDIS_TIMEOUT",
        Some("50ms"),
        Kind::Duration,
        "longest wait for one Redis operation; past it the call goes on without Redis. 50ms: a same-zone Redis answers in under 1 ms, and a call must never wait on a sick one for long",
    ),
    setting(
        "GATEWAY_REDIS_LEASE",
        Some("1s"),
        Kind::Duration,
        "how long a replica trusts its in-memory cache after it last confirmed it hears invalidations; the bound on serving a pre-write answer when Redis or the subscription fails. 1s: a write is seen everywhere within it at the price of a heartbeat every 250ms",
    ),
    setting(
        "GATEWAY_REDIS_LOCAL_QUOTA_SHARE",
        Some("0.5"),
        Kind::Ratio,
        "share of each configured rate limit a replica allows itself while Redis is down (the shared limiter is then out of reach). 0.5: two replicas stay within the quota; use 1/replicas to be exact",
    ),
    setting(
        "GATEWAY_CACHE_MAX_BYTES",
        Some("67108864"),
        Kind::Count,
        "cache size bound in bytes, counting what entries really occupy (0 disables the cache)",
    ),
    setting(
        "GATEWAY_CACHE_TTL_GET_EVENT",
        Some("300s"),
        TTL,
        "cache TTL of GetEvent answers",
    ),
    setting(
        "GATEWAY_CACHE_TTL_GET_VISITS",
        Some("30s"),
        TTL,
        "cache TTL of GetVisits answers",
    ),
    setting(
        "GATEWAY_CACHE_TTL_SEARCH_EVENTS",
        Some("30s"),
        TTL,
        "cache TTL of SearchEvents answers",
    ),
    setting(
        "GATEWAY_CACHE_TTL_LOOKUP_TELEMETRY",
        Some("60s"),
        TTL,
        "cache TTL of LookupTelemetry answers",
    ),
    setting(
        "GATEWAY_CACHE_TTL_LIST_RULES",
        Some("30s"),
        TTL,
        "cache TTL of ListRules answers",
    ),
    setting(
        "GATEWAY_CACHE_TTL_LIST_VERDICT_REASONS",
        Some("60s"),
        TTL,
        "cache TTL of ListVerdictReasons answers",
    ),
    setting(
        "GATEWAY_CACHE_TTL_NOT_FOUND",
        Some("5s"),
        TTL,
        "cache TTL of NOT_FOUND answers",
    ),
    setting(
        "GATEWAY_CACHE_STALE_IF_ERROR",
        Some("1h"),
        Kind::PerRpc,
        "how long past its TTL a cached answer may still be served, marked `x-cache: stale`, when the upstream fails or its breaker is open; `1h,SearchEvents=0s` sets it per RPC. 1h: outlasts most vendor incidents, and callers can refuse stale answers (`cache-control: max-stale=0`)",
    ),
    setting(
        "GATEWAY_SHUTDOWN_GRACE",
        Some("20s"),
        Kind::Duration,
        "time in-flight RPCs get to finish after SIGTERM/SIGINT",
    ),
    flag(
        setting(
            "GATEWAY_LOG_FORMAT",
            Some("text"),
            Kind::Choice(&["text", "json"]),
            "log format: text or json (filter with RUST_LOG)",
        ),
        "--log-format",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        Kind::Text,
        "OTLP/gRPC collector; unset disables trace export",
    ),
    setting(
        "OTEL_SERVICE_NAME",
        Some("fingerprint-gateway"),
        Kind::Text,
        "service.name of exported spans",
    ),
    setting(
        "OTEL_TRACES_SAMPLER",
        Some("parentbased_always_on"),
        Kind::Choice(&[
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        ]),
        "which traces are exported: always_on, always_off, traceidratio, or parentbased_ with one of these",
    ),
    setting(
        "OTEL_TRACES_SAMPLER_ARG",
        Some("1.0"),
        Kind::Ratio,
        "the ratio of traceidratio samplers, 0 to 1",
    ),
];

// === impl Setting ===

impl Setting {
    /// The TOML key: the name in lower case.
    pub fn toml_key(&self) -> String {
        self.name.to_ascii_lowercase()
    }
}

/// The row of a setting.
pub fn setting_named(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The settings as docs/configuration.md's table (a test compares the two).
pub fn settings_table() -> String {
    let mut out =
        String::from("| environment | TOML key | default | meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = s
            .default
            .map_or_else(|| "—".to_owned(), |d| format!("`{d}`"));
        let flag = s.flag.map(|f| format!(" (flag `{f}`)")).unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | `{}` | {default} | {}{flag} |\n",
            s.name,
            s.toml_key(),
            s.help
        ));
    }
    out
}

/// The settings for `--help`.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings (environment variable; TOML key in lower case; flags above win over both):\n",
    );
    for s in SETTINGS {
        let default = s
            .default
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}{default}\n      {}\n",
            s.name,
            s.help.replace('`', "")
        ));
    }
    out
}
