//! The HTTP server: routes, limits, request logging, TLS, graceful shutdown.

pub mod access_log;
pub mod api;
pub mod errors;
pub mod health;
pub mod limits;
pub mod malformed;
pub mod rate;

use std::sync::Arc;

use actix_web::{HttpServer, web};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::app::App;
use crate::config::{Config, ConfigError};
use errors::ApiError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad listen address.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The certificate or key could not be used.
    #[error("server.tls: {0}")]
    Tls(String),
    /// `metrics.token_file` cannot be used.
    #[error("metrics.token_file: {0}")]
    MetricsToken(String),
    /// `[smtp]` cannot be used (a CA or password file).
    #[error(transparent)]
    Smtp(#[from] crate::notify::sender::SendError),
    /// Binding or running failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Loads the TLS certificate chain and key: TLS 1.2 and 1.3 only.
pub fn tls_config(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<rustls::ServerConfig, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect())
        .map_err(|e| {
            ServeError::Tls(format!(
                "cannot read certificates from {}: {e}",
                cert_path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "no certificate in {}",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        ServeError::Tls(format!(
            "cannot read private key from {}: {e}",
            key_path.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))
}

/// Registers every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize, body_timeout: std::time::Duration) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .error_handler(move |err, _req| errors::json_error(err, max_body, body_timeout)),
    )
    .app_data(web::PayloadConfig::new(max_body))
    .app_data(web::PathConfig::default().error_handler(|err, _req| errors::path_error(err)))
    .configure(health::configure)
    .configure(api::configure)
    .configure(crate::console::configure)
    .default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::NotFound)
    }));
}

/// What `serve` needs from files and the config beyond the application: read before the
/// database is opened, so a bad certificate, token or relay setting stops the start with
/// nothing written.
pub struct Startup {
    tls: Option<rustls::ServerConfig>,
    metrics_token: Option<String>,
    jobs: Vec<Arc<dyn crate::jobs::Job>>,
}

impl Startup {
    /// Reads the TLS certificate and key, the metrics token and the job settings.
    pub fn prepare(config: &Config) -> Result<Self, ServeError> {
        config.listen_addr()?;
        let tls = match config.tls_files() {
            Some((cert, key)) => Some(tls_config(&cert, &key)?),
            None => None,
        };
        Ok(Self {
            tls,
            metrics_token: metrics_token(config)?,
            jobs: crate::jobs::standard(config)?,
        })
    }
}

/// Runs the server and the background jobs until SIGTERM/SIGINT. Must run inside an actix
/// system.
pub async fn serve(app: Arc<App>, startup: Startup) -> Result<(), ServeError> {
    let addr = app.config.listen_addr()?;
    let Startup {
        tls,
        metrics_token,
        jobs: job_list,
    } = startup;
    let server_config = &app.config.server;
    let max_body = server_config.max_body_bytes;
    let body_timeout = server_config.body_timeout;
    let workers = match server_config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let max_connections = limits::raise_fd_limit(server_config.max_connections);
    // actix counts connections per worker; the setting is for the whole process.
    let per_worker = (max_connections / workers).max(1);
    let limits = web::Data::new(limits::Limits::new(
        body_timeout,
        server_config.max_requests_per_client,
    ));
    let trusted_proxies = server_config
        .trusted_proxies
        .iter()
        .map(|c| c.parse::<rate::Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ServeError::Config(ConfigError::Invalid(format!("server.trusted_proxies: {e}")))
        })?;
    let connection_cap = Arc::new(limits::ConnectionCap::new(
        server_config.max_connections_per_client,
        trusted_proxies.clone(),
    ));
    let rate = web::Data::new(rate::RateLimiter::new(
        server_config.rate_limit_per_second,
        server_config.rate_limit_burst,
        trusted_proxies,
    ));
    let metrics_access = web::Data::new(health::MetricsAccess::new(metrics_token));
    let data = web::Data::from(Arc::clone(&app));
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(metrics_access.clone())
            .app_data(limits.clone())
            .app_data(rate.clone())
            .wrap(actix_web::middleware::from_fn(rate::limit_rate))
            .wrap(actix_web::middleware::from_fn(limits::body_deadline))
            .wrap(actix_web::middleware::from_fn(limits::limit_per_client))
            .wrap(actix_web::middleware::from_fn(access_log::log_request))
            .configure(|cfg| configure(cfg, max_body, body_timeout))
    })
    .on_connect(move |io, ext| {
        malformed::on_connect(io, ext);
        connection_cap.on_connect(io, ext);
    })
    .workers(workers)
    .max_connections(per_worker)
    .backlog(1024)
    .shutdown_timeout(server_config.shutdown_timeout.as_secs());
    let (server, scheme) = match tls {
        Some(tls) => (server.bind_rustls_0_23(addr, tls)?, "https"),
        None => {
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "serving plain HTTP on a non-loopback address: set server.tls or put a TLS proxy in front");
            }
            (server.bind(addr)?, "http")
        }
    };
    for bound in server.addrs() {
        // Tests and scripts read the bound port from this line when listening on port 0.
        tracing::info!(url = %format!("{scheme}://{bound}"), server_id = app.identity.id(), "listening");
    }
    if !app.config.smtp.enabled() {
        tracing::info!("smtp.host is empty: notifications are recorded, not emailed");
    }
    let jobs = crate::jobs::JobRunner::start(&app, job_list);
    let served = server.run().await;
    jobs.shutdown().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// The bearer token for `/metrics`, when `metrics.token_file` names one.
fn metrics_token(config: &Config) -> Result<Option<String>, ServeError> {
    let file = &config.metrics.token_file;
    if file.as_os_str().is_empty() {
        return Ok(None);
    }
    let path = config.resolve(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ServeError::MetricsToken(format!("cannot read {}: {e}", path.display())))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(ServeError::MetricsToken(format!(
            "{}: the token must be at least 16 characters",
            path.display()
        )));
    }
    Ok(Some(token.to_owned()))
}
