//! `meshc webhook`: the sidecar injector as a mutating admission webhook, served over
//! HTTPS. The API server posts an `AdmissionReview` to `/inject` for every pod created in a
//! namespace labelled `mesh/inject=enabled`; the answer (decided by
//! [`mesh_kube::webhook`]) adds what `meshc inject` adds, as a JSON patch. `GET /ready` is
//! the readiness probe.
//!
//! The serving certificate is read again when its files change (a Secret volume updated
//! by `meshc apply` or cert-manager swaps them), at the next handshake; a pair that does
//! not load leaves the last good one in use. Bodies over [`MAX_BODY`] and requests that
//! are not reviews get `400` with the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_compiler::report::Style;
use mesh_identity::rustls::crypto::CryptoProvider;
use mesh_identity::rustls::pki_types::pem::PemObject;
use mesh_identity::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use mesh_identity::rustls::server::{ClientHello, ResolvesServerCert};
use mesh_identity::rustls::sign::CertifiedKey;
use mesh_identity::rustls::{self, ServerConfig};
use mesh_kube::MeshInput;
use mesh_kube::inject::Options;
use mesh_kube::webhook::{self, Outcome};

use super::{Exit, mesh_input};

/// The largest review body read: a pod spec is a few KiB; the API server's own limit on
/// an object is 1.5 MiB, plus the review around it.
pub const MAX_BODY: usize = 3 << 20;
/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `meshc webhook` serves.
pub struct Serve {
    /// The mesh sources.
    pub mesh: Vec<PathBuf>,
    /// How pods are injected.
    pub options: Options,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The serving certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

pub fn run(serve: Serve, style: Style) -> Exit {
    let mesh = match mesh_input::load(&serve.mesh, style, "served") {
        Ok(mesh) => Arc::new(mesh),
        Err(exit) => return exit,
    };
    let provider = mesh_identity::crypto_provider();
    let certs = match ReloadingCert::new(serve.cert.clone(), serve.key.clone(), provider.clone()) {
        Ok(certs) => certs,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let tls =
        match ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(builder) => {
                let mut config = builder
                    .with_no_client_auth()
                    .with_cert_resolver(Arc::new(certs));
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(config)
            }
            Err(err) => {
                eprintln!("error: TLS setup: {err}");
                return Exit::Trouble;
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return Exit::Trouble;
        }
    };
    runtime.block_on(serve_until_signal(
        serve.listen,
        tls,
        Arc::new((mesh, serve.options)),
    ))
}

type State = Arc<(Arc<MeshInput>, Options)>;

async fn serve_until_signal(listen: SocketAddr, tls: Arc<ServerConfig>, state: State) -> Exit {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {listen}: {err}");
            return Exit::Trouble;
        }
    };
    let local = listener.local_addr().unwrap_or(listen);
    eprintln!("meshc webhook: serving https://{local}/inject");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(err) => {
                eprintln!("error: cannot watch for SIGTERM: {err}");
                return Exit::Trouble;
            }
        };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    eprintln!("meshc webhook: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return Exit::Ok,
            _ = terminate.recv() => return Exit::Ok,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        eprintln!("meshc webhook: TLS handshake with {peer} failed: {err}");
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(request, &state).await) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("meshc webhook: connection from {peer}: {err}");
            }
        });
    }
}

async fn handle(request: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/ready") => text(StatusCode::OK, "ok\n".into()),
        (&Method::POST, "/inject") => {
            let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(err) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the body (at most {MAX_BODY} bytes): {err}\n"),
                    );
                }
            };
            let (mesh, options) = &**state;
            match webhook::review(&body, mesh, options) {
                Ok((answer, outcome)) => {
                    log(&outcome);
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(answer)))
                        .unwrap_or_else(|_| Response::new(Full::default()))
                }
                Err(err) => text(StatusCode::BAD_REQUEST, format!("{err}\n")),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: POST /inject or GET /ready\n".into(),
        ),
    }
}

fn log(outcome: &Outcome) {
    match outcome {
        Outcome::Injected(operations) => {
            eprintln!("meshc webhook: injected ({operations} patch operations)");
        }
        Outcome::Skipped(why) => eprintln!("meshc webhook: allowed unchanged: {why}"),
        Outcome::Refused(why) => eprintln!("meshc webhook: refused: {why}"),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The serving certificate, read again when either file's modification time changes.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamps: (Option<SystemTime>, Option<SystemTime>),
    key: Arc<CertifiedKey>,
}

impl ReloadingCert {
    fn new(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingCert, String> {
        let stamps = (modified(&cert), modified(&key));
        let loaded = load_pair(&cert, &key, &provider)?;
        Ok(ReloadingCert {
            cert,
            key,
            provider,
            current: Mutex::new(Loaded {
                stamps,
                key: loaded,
            }),
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().ok()?;
        let stamps = (modified(&self.cert), modified(&self.key));
        if stamps != current.stamps {
            match load_pair(&self.cert, &self.key, &self.provider) {
                Ok(key) => {
                    eprintln!("meshc webhook: serving certificate reloaded");
                    current.key = key;
                    current.stamps = stamps;
                }
                // A half-written pair: keep serving the last good one, try again later.
                Err(err) => eprintln!("meshc webhook: keeping the last certificate: {err}"),
            }
        }
        Some(current.key.clone())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("{}: unusable private key: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e: rustls::Error| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(certified))
}
