//! The `breakerbox` command: thin on purpose. It parses the command line, loads the
//! configuration and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use breakerbox::config::{self, Config};
use breakerbox::{demo, gateway, server, status, telemetry};
use clap::{Parser, Subcommand};

// The binary's allocator, not the library's: about 12 % fewer instructions per proxied call
// and 16 % per rejection than glibc's (docs/benchmarks.md). Without transparent huge pages
// (feature `no_thp`) its idle RSS stays near glibc's instead of doubling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The example configuration, built in so `breakerbox demo` runs from anywhere.
const EXAMPLE_CONFIG: &str = include_str!("../examples/breakerbox.toml");

#[derive(Debug, Parser)]
#[command(
    name = "breakerbox",
    version,
    about = "A resilience gateway: a circuit breaker per dependency, with fallbacks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file.
        #[arg(long, short, env = "BREAKERBOX_CONFIG")]
        config: PathBuf,
    },
    /// Print the effective configuration (after environment overrides), or the first error.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Run the gateway on the example configuration with built-in misbehaving upstreams.
    Demo,
    /// Print every breaker's state and figures from a running gateway.
    Status {
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "BREAKERBOX_URL")]
        url: String,
        /// A viewer or admin token.
        #[arg(long, env = "BREAKERBOX_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => {
            telemetry::init();
            let loaded = match config::load(&config) {
                Ok(loaded) => loaded,
                Err(error) => return fail(&error),
            };
            runtime(async move {
                let served = server::run(loaded, Some(config)).await;
                telemetry::shutdown_traces().await;
                served
            })
        }
        Command::Demo => {
            telemetry::init();
            let loaded = match config::load_from_str(
                EXAMPLE_CONFIG,
                "examples/breakerbox.toml",
                std::env::vars(),
            ) {
                Ok(loaded) => loaded,
                Err(error) => return fail(&error),
            };
            runtime(demo_run(loaded))
        }
        Command::Status { url, token } => runtime(async move {
            let rows = status::fetch(&url, token.as_deref()).await?;
            print!("{}", status::render(&rows));
            Ok::<(), status::StatusError>(())
        }),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(loaded) => {
            println!(
                "# {}: valid; the effective configuration follows",
                file.display()
            );
            print!("{}", loaded.to_toml());
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

async fn demo_run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let upstreams = demo::start(&config).await?;
    println!("{}", demo::banner(&config));
    let base = format!("http://{}", config.server.listen);
    let gateway = gateway::Gateway::start(config.clone(), None).await?;
    let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
    let stop = gateway.shutdown_signal();
    let targets = demo::targets(&config);
    let driver = tokio::spawn(async move { demo::drive(&base, targets, stop).await });
    server::serve(gateway, listener, server::termination()).await?;
    let _ = driver.await;
    upstreams.shutdown().await;
    telemetry::shutdown_traces().await;
    Ok(())
}

fn runtime<E: std::fmt::Display>(work: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("breakerbox: {error}");
    ExitCode::FAILURE
}
