//! Secrets never reach the logs: the `breakerbox` binary runs at the most verbose level
//! (`BREAKERBOX_LOG=trace`, a superset of debug) in both log formats, is sent right, wrong and
//! viewer tokens on admin and proxy routes, and neither stdout nor stderr may contain a token.
//! At the default level (`info`) the same run logs no per-request span: recording one formats
//! its fields on every request.
//! Runtime: three gateway starts, about 2 s each (readiness is polled, up to 20 s).

mod proxy_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use proxy_support::TestUpstream;
use support::gateway_process::{BIN, GatewayProcess, Listen, Output};
use support::ports::free_port;
use support::temp_dir::TempDir;

const ADMIN: &str = "adm-7f3c9e1b5d2a4c6e8f0a1b3c";
const VIEWER: &str = "vw-2b4d6f8a0c1e3a5c7e9b1d3f";
const WRONG: &str = "wr-9e8d7c6b5a4f3e2d1c0b9a8f";
const UPSTREAM_SECRET: &str = "up-5a6b7c8d9e0f1a2b3c4d5e6f";
/// Sent in the query, as TMDB's `api_key` and Plex's `X-Plex-Token` are.
const QUERY_SECRET: &str = "qs-8c7b6a5f4e3d2c1b0a9f8e7d";

fn write_config(dir: &Path, port: u16, upstream: &TestUpstream) -> PathBuf {
    let path = dir.join("breakerbox.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[store]
url = "sqlite://{db}"

[[admin.tokens]]
name = "ops"
token = "{ADMIN}"
role = "admin"

[[admin.tokens]]
name = "dashboard"
token = "{VIEWER}"
role = "viewer"

[upstreams.echo]
url = "http://{addr}"
"#,
        db = dir.join("gateway.db").display(),
        addr = upstream.addr,
    );
    std::fs::write(&path, text).expect("config written");
    path
}

/// Every request shape that carries a token: admin reads and actions with each token, a token
/// in odd spelling, and a proxied call whose Authorization goes to the upstream.
async fn exercise(base: &str) -> Vec<u16> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for token in [ADMIN, VIEWER, WRONG] {
        let requests = [
            client.get(format!("{base}/admin/breakers")),
            client.get(format!("{base}/admin/breakers/echo")),
            client.post(format!("{base}/admin/breakers/echo/reset")),
            client.get(format!("{base}/proxy/echo/items")),
        ];
        for request in requests {
            let response = request.bearer_auth(token).send().await.expect("answers");
            statuses.push(response.status().as_u16());
        }
    }
    let odd = client
        .get(format!("{base}/admin/breakers"))
        .header("authorization", format!("bearer   {ADMIN}  "))
        .send()
        .await
        .expect("answers");
    statuses.push(odd.status().as_u16());
    let proxied = client
        .get(format!(
            "{base}/proxy/echo/secret?api_key={QUERY_SECRET}&page=2"
        ))
        .bearer_auth(UPSTREAM_SECRET)
        .send()
        .await
        .expect("answers");
    statuses.push(proxied.status().as_u16());
    statuses
}

/// Failing calls until the breaker turns them away: its trip is logged inside a request.
async fn trip(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let response = client
            .get(format!("{base}/proxy/echo/fail"))
            .send()
            .await
            .expect("answers");
        if response.status().as_u16() == 503 {
            return;
        }
    }
    panic!("the breaker never opened");
}

/// Runs the gateway at `level` with `format` (`None`: human-readable) and returns everything
/// it printed.
async fn logs_of_a_run(level: &str, format: Option<&str>) -> String {
    let upstream = TestUpstream::start().await;
    let dir = TempDir::new();
    let port = free_port();
    let config = write_config(&dir.0, port, &upstream);
    let output = Output::Split(dir.0.join("stdout.log"), dir.0.join("stderr.log"));
    let mut env = vec![("BREAKERBOX_LOG", level)];
    if let Some(format) = format {
        env.push(("BREAKERBOX_LOG_FORMAT", format));
    }
    let mut gateway = GatewayProcess::serve(&config, Listen::Port(port), &env, output).await;
    let statuses = exercise(&gateway.base).await;
    assert_eq!(
        statuses,
        [
            200, 200, 200, 200, 200, 200, 403, 200, 401, 401, 401, 200, 200, 200
        ],
        "admin acts, viewer reads, a wrong token gets 401; proxied calls pass"
    );
    assert!(
        upstream.seen().iter().any(|s| s
            .headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {UPSTREAM_SECRET}").as_bytes())),
        "the proxied Authorization reached the upstream (so it went through the logged path)"
    );
    assert!(
        upstream
            .seen()
            .iter()
            .any(|s| s.query.as_deref() == Some(&format!("api_key={QUERY_SECRET}&page=2"))),
        "the query's secret reached the upstream as sent"
    );
    trip(&gateway.base).await;
    // SIGTERM: the gateway drains and flushes its logs.
    gateway.signal("TERM");
    gateway.wait_exit(Duration::from_secs(20)).await;
    gateway.log_text()
}

fn assert_no_secret(logs: &str, format: &str) {
    // The logs are really verbose (so the check means something): per-request spans are in.
    assert!(logs.contains("breakerbox is serving"), "{format}: {logs}");
    assert!(
        logs.contains("/proxy/echo"),
        "{format}: request spans are logged"
    );
    assert!(logs.lines().count() > 20, "{format}: trace level is on");
    for secret in [ADMIN, VIEWER, WRONG, UPSTREAM_SECRET, QUERY_SECRET] {
        // Also a fragment, in case a line were cut or a value partly masked.
        for needle in [secret, &secret[..12]] {
            if let Some(line) = logs.lines().find(|line| line.contains(needle)) {
                panic!("{format}: a token reached the logs: {line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs_in_either_format() {
    let human = logs_of_a_run("trace", None).await;
    assert_no_secret(&human, "human");
    let json = logs_of_a_run("trace", Some("json")).await;
    assert!(
        json.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "json format prints JSON lines"
    );
    assert_no_secret(&json, "json");
}

#[test]
fn check_config_never_prints_a_token() {
    let dir = TempDir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(
        &good,
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"),
    )
    .expect("write");
    let broken = [
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\" junk\n"),
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\n"),
        format!("[admin]\ntokens = [{{ name = \"ops\", token = \"{ADMIN}\" role = \"admin\" }}]\n"),
        format!("[[admin.tokens]]\nname = \"ops\"\ntoken = \"\"\"\n{ADMIN}\n"),
        format!("[store]\nurl = \"postgres://app:{ADMIN}@127.0.0.1/db\n"),
        format!("[store]\nurl = \"postgres://app:{ADMIN}@127.0.0.1/db\" x\n"),
    ];
    let mut files = vec![good];
    for (i, text) in broken.iter().enumerate() {
        let path = dir.0.join(format!("broken-{i}.toml"));
        std::fs::write(&path, text).expect("write");
        files.push(path);
    }
    for (i, file) in files.iter().enumerate() {
        let output = std::process::Command::new(BIN)
            .arg("check-config")
            .arg(file)
            .output()
            .expect("runs");
        assert_eq!(output.status.success(), i == 0, "{}", file.display());
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!printed.trim().is_empty());
        assert!(
            !printed.contains(&ADMIN[..12]),
            "{}: the secret was printed: {printed}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_stay_out_of_the_logs_at_info() {
    let logs = logs_of_a_run("info", None).await;
    assert!(logs.contains("breakerbox is serving"), "{logs}");
    assert!(
        logs.contains("operator action"),
        "info events are in: {logs}"
    );
    for span_field in [
        "/proxy/echo",
        "http.request.method",
        "breakerbox.breaker.state",
    ] {
        assert!(
            !logs.contains(span_field),
            "no request span at info ({span_field}): {logs}"
        );
    }
}

/// Every way a URL can carry a credential, each holding its own secret: a password in the
/// userinfo (with `@`, `/`, `?` or `%`-encoding inside), and the query parameters drivers and
/// services read secrets from (plain and with a `%`-encoded name).
const URL_SECRETS: [(&str, &str); 9] = [
    (
        "postgres://app@127.0.0.1:{port}/db?password=Qp1sWx7Lm2Zr",
        "Qp1sWx7Lm2Zr",
    ),
    (
        "postgres://app@127.0.0.1:{port}/db?sslmode=disable&passwd=Ht5nBv8Kc3Jy",
        "Ht5nBv8Kc3Jy",
    ),
    (
        "postgres://app@127.0.0.1:{port}/db?sslpassword=Fd9gTs4Wq6Xe",
        "Fd9gTs4Wq6Xe",
    ),
    (
        "postgres://app@127.0.0.1:{port}/db?Pass%77ord=Rk2mNc7Vb5Ly",
        "Rk2mNc7Vb5Ly",
    ),
    (
        "postgres://app@127.0.0.1:{port}/db?api_key=Ux4hPz1Gd8Wn&token=Ux4hPz1Gd8Wn",
        "Ux4hPz1Gd8Wn",
    ),
    (
        "postgres://app:Jw6q@Ye3tBn9s@127.0.0.1:{port}/db",
        "Ye3tBn9s",
    ),
    (
        "postgres://app:Mv8c/Kd2rPx5h@127.0.0.1:{port}/db",
        "Kd2rPx5h",
    ),
    (
        "postgres://app:Zt3y?Lb7wQc1g@127.0.0.1:{port}/db",
        "Lb7wQc1g",
    ),
    (
        "postgres://app:Gn5x%2FSr9kHm4@127.0.0.1:{port}/db",
        "Sr9kHm4",
    ),
];

fn store_config(dir: &Path, name: &str, url: &str, port: u16) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[store]\nurl = \"{url}\"\n\n[upstreams.echo]\nurl = \"http://127.0.0.1:9\"\n"
    );
    std::fs::write(&path, text).expect("write");
    path
}

fn check_config_output(file: &Path) -> String {
    let output = std::process::Command::new(BIN)
        .arg("check-config")
        .arg(file)
        .output()
        .expect("runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_config_never_prints_a_url_credential() {
    let dir = TempDir::new();
    for (i, (form, secret)) in URL_SECRETS.iter().enumerate() {
        let url = form.replace("{port}", "5432");
        let file = store_config(&dir.0, &format!("store-{i}.toml"), &url, 8080);
        let printed = check_config_output(&file);
        assert!(printed.contains("store"), "{url}: {printed}");
        assert!(
            !printed.contains(secret),
            "{url}: the secret was printed: {printed}"
        );
        // The same line broken: a syntax error quotes its line.
        let broken = dir.0.join(format!("broken-{i}.toml"));
        std::fs::write(&broken, format!("[store]\nurl = \"{url}\" junk\n")).expect("write");
        let printed = check_config_output(&broken);
        assert!(printed.contains("invalid TOML"), "{url}: {printed}");
        assert!(
            !printed.contains(secret),
            "{url}: the secret was printed: {printed}"
        );
    }
    // The same from the environment, over a file without a store URL.
    let file = dir.0.join("plain.toml");
    std::fs::write(&file, "[upstreams.svc]\nurl = \"http://127.0.0.1:8081\"\n").expect("write");
    for (form, secret) in URL_SECRETS {
        let url = form.replace("{port}", "5432");
        let output = support::gateway_process::command()
            .arg("check-config")
            .arg(&file)
            .env("BREAKERBOX_STORE_URL", &url)
            .output()
            .expect("runs");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.contains("127.0.0.1"), "{url}: {printed}");
        assert!(
            !printed.contains(secret),
            "{url}: the secret was printed: {printed}"
        );
    }
    // An upstream URL with credentials is refused; the refusal does not repeat the password,
    // nor does a query secret (also refused: an upstream URL has no query).
    for (i, (url, secret)) in [
        ("http://svc:Wb4kNq8Tz1Ds@127.0.0.1:8081", "Wb4kNq8Tz1Ds"),
        (
            "http://127.0.0.1:8081/api?api_key=Pe6rVm3Hx9Ga",
            "Pe6rVm3Hx9Ga",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = dir.0.join(format!("upstream-{i}.toml"));
        std::fs::write(&file, format!("[upstreams.svc]\nurl = \"{url}\"\n")).expect("write");
        let printed = check_config_output(&file);
        assert!(printed.contains("upstreams.svc.url"), "{url}: {printed}");
        assert!(
            !printed.contains(secret),
            "{url}: the secret was printed: {printed}"
        );
    }
}

/// A PostgreSQL store that cannot be reached: the gateway starts degraded and logs its store
/// on every attempt; neither the logs nor `/health/detailed` may show a credential of its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_urls_are_redacted_in_logs_and_detailed_health() {
    // Nothing listens there: every connection attempt fails at once.
    let closed = free_port();
    // The forms a start accepts: a `/` or `?` left in a password, and a parameter the driver
    // does not read (which it would log with its value), are refused at load.
    let forms = [0, 5, 8];
    for i in forms {
        let (form, secret) = URL_SECRETS[i];
        let url = form.replace("{port}", &closed.to_string());
        let dir = TempDir::new();
        let port = free_port();
        let config = store_config(&dir.0, "breakerbox.toml", &url, port);
        let output = Output::Combined(dir.0.join("gateway.log"));
        let env = [("BREAKERBOX_LOG", "debug")];
        let mut gateway = GatewayProcess::serve(&config, Listen::Port(port), &env, output).await;
        let detailed = reqwest::get(format!("{}/health/detailed", gateway.base))
            .await
            .expect("answers")
            .text()
            .await
            .expect("body");
        assert!(detailed.contains("database"), "{detailed}");
        assert!(!detailed.contains(secret), "{url}: {detailed}");
        gateway.signal("TERM");
        gateway.wait_exit(Duration::from_secs(20)).await;
        let logs = gateway.log_text();
        assert!(
            logs.contains("127.0.0.1"),
            "{url}: the store is logged: {logs}"
        );
        if let Some(line) = logs.lines().find(|line| line.contains(secret)) {
            panic!("{url}: a credential reached the logs: {line}");
        }
    }
}
