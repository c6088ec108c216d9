//! The real `breakerbox` binary as a child process: started on a configuration file with none of
//! the test's `BREAKERBOX_*` variables, ready once `/health` answers 200, stopped by a signal,
//! killed on drop if a test failed before it stopped.

// Real servers and processes run in real time: waiting on them reads the system's clock.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_breakerbox");
/// Longest a start is waited for (2 busy CI cores).
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// `breakerbox` without the test's `BREAKERBOX_*` variables: the gateway reads each one as a
/// configuration override, so it gets only what the test sets.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BREAKERBOX_") {
            command.env_remove(name);
        }
    }
    command
}

/// Where the process's stdout and stderr go.
pub enum Output {
    Discard,
    /// Both into one file.
    Combined(PathBuf),
    /// stdout, stderr.
    Split(PathBuf, PathBuf),
}

/// How the test learns the address the gateway serves on.
pub enum Listen {
    /// The configuration listens on this loopback port.
    Port(u16),
    /// The address in the "breakerbox is serving" line of a JSON log (`Output::Combined` and
    /// `BREAKERBOX_LOG_FORMAT=json`): for a configuration that listens on port 0.
    FromJsonLog,
}

/// A `breakerbox serve` process.
pub struct GatewayProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    output: Output,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    /// Runs `breakerbox serve --config <config>` with `env` and returns once `/health` answers
    /// 200; panics (quoting the log) if it exits or is not ready within [`START_LIMIT`].
    pub async fn serve(
        config: &Path,
        listen: Listen,
        env: &[(&str, &str)],
        output: Output,
    ) -> GatewayProcess {
        let mut command = command();
        command
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied());
        let create = |path: &Path| std::fs::File::create(path).expect("log file");
        match &output {
            Output::Discard => command.stdout(Stdio::null()).stderr(Stdio::null()),
            Output::Combined(path) => {
                let file = create(path);
                command
                    .stdout(file.try_clone().expect("log file"))
                    .stderr(file)
            }
            Output::Split(out, err) => command.stdout(create(out)).stderr(create(err)),
        };
        let mut gateway = GatewayProcess {
            child: command.spawn().expect("the gateway starts"),
            base: match listen {
                Listen::Port(port) => format!("http://127.0.0.1:{port}"),
                Listen::FromJsonLog => String::new(),
            },
            output,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let started = Instant::now();
        loop {
            if gateway.base.is_empty()
                && let Some(addr) = gateway.serving_addr()
            {
                gateway.base = format!("http://{addr}");
            }
            if !gateway.base.is_empty()
                && let Ok(answer) = client.get(gateway.url("/health")).send().await
                && answer.status() == 200
            {
                return gateway;
            }
            let exited = gateway.child.try_wait().expect("wait");
            assert!(
                exited.is_none() && started.elapsed() < START_LIMIT,
                "the gateway never became ready ({exited:?})\n{}",
                gateway.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address in the JSON log's "breakerbox is serving" line.
    fn serving_addr(&self) -> Option<SocketAddr> {
        self.log_text()
            .lines()
            .filter(|line| line.contains("breakerbox is serving"))
            .find_map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                line["fields"]["addr"].as_str()?.parse().ok()
            })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything printed so far: stdout, then stderr (empty when discarded).
    pub fn log_text(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        match &self.output {
            Output::Discard => String::new(),
            Output::Combined(path) => read(path),
            Output::Split(out, err) => format!("{}{}", read(out), read(err)),
        }
    }

    /// The last 40 lines printed, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- gateway log (last 40 lines) ---\n{tail}")
    }

    /// Sends `SIG<name>` (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the process to exit; panics after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the gateway did not exit within {limit:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
