//! `fingerprint-gateway`: loads config, starts telemetry, binds, serves until a signal.

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use fingerprint_gateway::{
    config::{Config, Sources},
    sandbox::{self, Credentials, Sandbox},
    server, telemetry,
};
use tokio::net::TcpListener;

// mimalloc: a miss allocates for every JSON member it reads; with glibc's malloc,
// allocation was a third of a miss's instructions (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad configuration (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// gRPC gateway in front of the fingerprint.com Server API and Stytch Device Fingerprinting.
///
/// Settings come from flags, then the environment, then the TOML file given by
/// --config (or GATEWAY_CONFIG); docs/configuration.md has the full table.
#[derive(Debug, Parser)]
#[command(version, after_long_help = fingerprint_gateway::config::settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Serve against the embedded upstream emulator (no credentials, no network).
    #[arg(long)]
    sandbox: bool,
    /// gRPC listen address [default: 0.0.0.0:50051].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// fingerprint.com API generation: v4 or v3.
    #[arg(long, value_name = "VERSION")]
    fingerprint_api_version: Option<String>,
    /// fingerprint.com region: global, eu or ap.
    #[arg(long, value_name = "REGION")]
    fingerprint_region: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run only the upstream emulator, for pointing other clients at it.
    Sandbox {
        /// HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// Fault rules to start with: a JSON list, or @FILE (see docs/sandbox.md);
        /// change them at run time on /__sandbox/faults.
        #[arg(long, value_name = "RULES", env = "SANDBOX_FAULTS")]
        faults: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fingerprint-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Some(Command::Sandbox { listen, faults }) = cli.command {
        return run_sandbox(&listen, faults.as_deref()).await;
    }
    let mut flags = HashMap::new();
    if cli.sandbox {
        flags.insert("GATEWAY_SANDBOX", "true".to_owned());
    }
    for (name, value) in [
        ("GATEWAY_LISTEN", cli.listen),
        ("FINGERPRINT_API_VERSION", cli.fingerprint_api_version),
        ("FINGERPRINT_REGION", cli.fingerprint_region),
        ("GATEWAY_LOG_FORMAT", cli.log_format),
    ] {
        if let Some(v) = value {
            flags.insert(name, v);
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    let file = cli
        .config
        .or_else(|| std::env::var_os("GATEWAY_CONFIG").map(PathBuf::from));
    let config = match Config::load(&Sources {
        flags,
        env: &env,
        file,
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fingerprint-gateway: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if config.sandbox
        && let Err(e) = server::sandbox_faults(&config)
    {
        eprintln!("fingerprint-gateway: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let _telemetry = match telemetry::init(&config.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("fingerprint-gateway: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        listen = %config.listen,
        sandbox = config.sandbox,
        fingerprint = config.fingerprint.is_some() || config.sandbox,
        fingerprint_api_version = %config.fingerprint_generation,
        stytch = config.stytch.is_some() || config.sandbox,
        "fingerprint-gateway serving"
    );
    match server::serve(listener, config, signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn run_sandbox(listen: &str, faults: Option<&str>) -> ExitCode {
    let _ = tracing_subscriber::fmt().try_init();
    let rules = match faults.map(sandbox::faults::load_rules).transpose() {
        Ok(rules) => rules.unwrap_or_default(),
        Err(e) => {
            eprintln!("fingerprint-gateway sandbox: --faults: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fingerprint-gateway sandbox: cannot bind {listen}: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let creds = Credentials::default();
    let sandbox = match Sandbox::start(listener, creds.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fingerprint-gateway sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = sandbox.control.faults.set(rules) {
        eprintln!("fingerprint-gateway sandbox: --faults: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    println!(
        "sandbox upstreams at {} (fingerprint secret key {:?}, Stytch project {:?} secret {:?})",
        sandbox.base_url(),
        creds.fingerprint_secret,
        creds.stytch_project_id,
        creds.stytch_secret
    );
    signal().await;
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}

/// Completes on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
