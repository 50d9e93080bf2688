use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The one cryptography provider of every TLS connection: ring, which the workspace already
/// builds for signatures (aws-lc-rs would add a C build that needs cmake).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            #[expect(
                deprecated,
                reason = "ring's provider lacks post-quantum key exchange; aws-lc-rs, which has it, needs cmake"
            )]
            let provider = rustls::crypto::ring::default_provider();
            Arc::new(provider)
        })
        .clone()
}
