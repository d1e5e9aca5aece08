//! The application: state, schema, routes and jobs, bound to a port.

use std::{future::Future, net::SocketAddr, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, AcceptorExt, BoxAcceptor, Listener, TcpAcceptor, TcpListener},
};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::{
    graphql::{SchemaOptions, build_schema},
    http::HttpState,
    settings::{DatabaseKind, Settings},
    state::{AppState, Overrides, StateError},
};

/// A built service, listening but not yet serving.
pub struct Application {
    state: AppState,
    http: HttpState,
    acceptor: BoxAcceptor,
    addr: SocketAddr,
    /// The `/metrics` listener, when `CUSTOS_METRICS_BIND` asks for one.
    metrics: Option<(TcpAcceptor, SocketAddr)>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The shared state could not be built: settings, database, keys, mail
    /// or the hashing threads.
    #[error(transparent)]
    State(#[from] StateError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
    /// The erasures the journal records could not be re-applied, so a
    /// restored database might serve someone who was erased.
    #[error("re-applying recorded erasures: {0}")]
    Reapply(#[source] crate::erasure::service::ErasureError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds `addr`, answering the address actually bound.
async fn bind(addr: SocketAddr) -> Result<(TcpAcceptor, SocketAddr), StartError> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    Ok((acceptor, bound))
}

impl Application {
    /// Connects, migrates, re-applies the erasures the journal records
    /// (see [`crate::erasure::reapply`]) and binds the listener.
    pub async fn build(settings: Settings, overrides: Overrides) -> Result<Self, StartError> {
        let main_bind = settings.http.bind;
        let metrics_bind = settings.http.metrics_bind;
        // Read before anything else starts, so a bad file stops the start.
        let tls = match &settings.http.tls {
            Some(files) => Some(crate::http::tls::server_config(&files.cert, &files.key)?),
            None => None,
        };
        let state = AppState::build(settings, overrides).await?;
        // Before anything is served: a restored database must not answer
        // for a person erased since its backup was taken.
        let reapplied = crate::erasure::reapply::run(&state)
            .await
            .map_err(StartError::Reapply)?;
        state.count_reapplied(reapplied);
        let (tcp, addr) = bind(main_bind).await?;
        let acceptor = match tls {
            Some(config) => crate::http::tls::TlsAcceptor::new(tcp, config).boxed(),
            None => tcp.boxed(),
        };
        let metrics = match metrics_bind {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self {
            state,
            http: HttpState::default(),
            acceptor,
            addr,
            metrics,
        })
    }

    /// The address `/metrics` is served on alone, when it has a listener
    /// of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// The port actually bound (useful with `:0`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for jobs and tests.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The HTTP layer's own data (its metrics and parsed documents).
    pub fn http(&self) -> &HttpState {
        &self.http
    }

    /// Serves HTTP and runs the background jobs until `shutdown` resolves;
    /// then stops taking requests, lets in-flight ones finish (up to 10 s)
    /// and waits for the job tick in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let schema = build_schema(
            Some(self.state.clone()),
            SchemaOptions {
                introspection: self.state.settings().http.introspection,
            },
        );
        let (stop_jobs, jobs_stopped) = watch::channel(false);
        let jobs = self
            .state
            .settings()
            .jobs
            .run
            .then(|| crate::jobs::spawn(self.state.clone(), jobs_stopped));
        let settings = self.state.settings();
        // On PostgreSQL the listener runs even with the session cache off:
        // the policy kept in memory and the account-key cache need to hear of
        // publications and erasures too.
        let change_listener = (settings.database.kind == DatabaseKind::Postgres).then(|| {
            AbortOnDrop(tokio::spawn(crate::changes::listen(
                crate::changes::Listeners {
                    sessions: self.state.session_cache().clone(),
                    policy: self.state.policy().clone(),
                    keys: self.state.keys().clone(),
                },
                settings.database.url.expose_secret().to_owned(),
            )))
        });
        // The metrics listener lives as long as the main one.
        let metrics_server = self.metrics.map(|(acceptor, addr)| {
            tracing::info!(addr = %addr, "serving metrics at http://{addr}/metrics");
            let routes = crate::http::metrics_routes(self.state.clone(), self.http.clone());
            AbortOnDrop(tokio::spawn(async move {
                if let Err(err) = Server::new_with_acceptor(acceptor).run(routes).await {
                    tracing::error!(error = %err, "metrics listener stopped");
                }
            }))
        });
        // Named by the public URL, the origin mailed links use: a browser
        // keeps one cookie jar per host, so opening `127.0.0.1` while links
        // say `localhost` would sign people in twice.
        let public_url = &settings.http.public_url;
        if settings.http.account_console {
            tracing::info!(
                addr = %self.addr,
                "serving the account console at {public_url}/ and GraphQL at {public_url}/graphql (listening on {})", self.addr
            );
        } else {
            tracing::info!(addr = %self.addr, "serving GraphQL at {public_url}/graphql (listening on {})", self.addr);
        }
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                crate::http::routes(self.state.clone(), self.http.clone(), schema),
                shutdown,
                Some(Duration::from_secs(10)),
            )
            .await;
        drop(metrics_server);
        drop(change_listener);
        let _ = stop_jobs.send(true);
        if let Some(jobs) = jobs
            && jobs.await.is_err()
        {
            tracing::error!("job runner ended abnormally");
        }
        served
    }
}

/// A task that ends with its owner, even when the owner is itself dropped
/// (a server future aborted by its caller).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested");
}
