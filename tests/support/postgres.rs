//! A throwaway PostgreSQL server from Debian's package: `initdb` into a temporary folder (as the
//! `postgres` user, since initdb refuses root), listening on a free 127.0.0.1 port, stopped and
//! removed on drop. `stop()` and `start()` on the same data folder simulate an outage.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ports::free_port;
use super::temp_dir::TempDir;

/// A PostgreSQL server owned by one test.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    running: bool,
}

impl PgServer {
    /// Creates a cluster in a fresh temporary folder and starts it. Panics (failing the test)
    /// with what to do if the server binaries are missing or the server does not start.
    pub fn new() -> PgServer {
        let bin = find_bin();
        let dir = TempDir::new();
        run(Command::new("chown").arg("postgres").arg(&dir.0));
        let data = dir.0.join("data");
        run(as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "breakerbox",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        let mut server = PgServer {
            bin,
            dir,
            port: free_port(),
            running: false,
        };
        server.start();
        server
    }

    /// The URL the store connects with.
    pub fn url(&self) -> String {
        format!("postgres://breakerbox@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on its data folder and port (again, after [`stop`](Self::stop)).
    pub fn start(&mut self) {
        if self.running {
            return;
        }
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.0.display()
        );
        run(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .arg("-l")
            .arg(self.dir.0.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
        self.running = true;
    }

    /// Stops the server (fast shutdown: open connections are cut, as in an outage).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        run(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-m", "fast", "-w", "stop"]));
        self.running = false;
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            // Not `run`: panicking in drop during a failing test would abort the whole binary.
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.0.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        // `dir` (a TempDir) is removed after this, once the server has stopped.
    }
}

/// `/usr/lib/postgresql/<highest version>/bin`.
fn find_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb); \
             run scripts/test, which installs Debian's `postgresql` package, or \
             scripts/install-test-deps"
        ),
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
