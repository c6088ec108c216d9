//! A `Gateway` served on 127.0.0.1:0 inside the test process until [`ServedGateway::stop`]
//! (the binary as a child process is `gateway_process`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use breakerbox::config::Config;
use breakerbox::gateway::Gateway;
use breakerbox::server::ServeError;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A gateway serving on a loopback port of its own.
pub struct ServedGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: oneshot::Sender<()>,
    served: JoinHandle<Result<(), ServeError>>,
}

impl ServedGateway {
    /// Starts a gateway on `config` (`path`: the file it came from, for hot reload) and serves it.
    pub async fn start(config: Config, path: Option<PathBuf>) -> ServedGateway {
        let gateway = Gateway::start(config, path).await.expect("starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(breakerbox::server::serve(
            Arc::clone(&gateway),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        ServedGateway {
            addr,
            gateway,
            stop,
            served,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; panics unless serving ends cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.served
            .await
            .expect("the serve task joins")
            .expect("serve ends cleanly");
    }
}
