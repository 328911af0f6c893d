//! The one TLS choice of every process: rustls on ring. Cargo unifies reqwest's features across
//! the workspace, where `rustls-no-provider` leaves the choice to the process, so each binary
//! makes it before building an HTTP client (the OTLP exporter's, the identity provider's, the
//! benchmark's), or the client panics when it is built.

/// Installs ring as the process's rustls crypto provider. Only the first call does anything.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
