//! Machine callers authenticated by a client certificate (mTLS): a certificate of the client CA
//! whose common name is mapped acts as its tenant and roles with no bearer credential; an unmapped
//! name is refused with a reason; a certificate of another CA does not get through the handshake;
//! callers without a certificate still use bearer credentials.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sealtrail_api::auth::Role;
use sealtrail_api::auth::client_certs::ClientIdentities;

use super::Api;
use crate::harness::{shared, unique};

/// A CA for clients, written as `<dir>/<name>-ca.pem`; returns its issuer.
fn client_ca(dir: &Path, name: &str) -> (Issuer<'static, KeyPair>, std::path::PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} client CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let certificate = params.self_signed(&key).expect("CA");
    let path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&path, certificate.pem()).expect("CA written");
    (Issuer::new(params, key), path)
}

/// An HTTP client trusting the stack's CA that presents a certificate named `common_name` from
/// `issuer`, or none.
fn client(issuer: Option<(&Issuer<'static, KeyPair>, &str)>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    let stack_ca = shared()
        .endpoints
        .get("SEALTRAIL_CA_FILE")
        .expect("the stack's CA")
        .to_owned();
    for certificate in CertificateDer::pem_file_iter(&stack_ca).expect("CA file") {
        roots.add(certificate.expect("certificate")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(sealtrail_http::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match issuer {
        None => builder.with_no_client_auth(),
        Some((issuer, common_name)) => {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, common_name);
            let certificate = params.signed_by(&key, issuer).expect("certificate");
            let private = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
            builder
                .with_client_auth_cert(vec![certificate.der().clone()], private)
                .expect("a client certificate")
        }
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(Arc::unwrap_or_clone(Arc::new(config)))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_mapped_client_certificate_stands_for_its_tenant_and_others_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (issuer, ca_file) = client_ca(dir.path(), "machines");
    let (rogue, _) = client_ca(dir.path(), "rogue");
    let tenant = unique("machine");
    let identities = ClientIdentities::parse(&format!("exporter-1 {tenant} auditor\n")).expect("identities");
    let tls_dir = shared().data_dir.join("tls");
    let tls = sealtrail_http::ServerTls::load_with_client_ca(
        &sealtrail_http::ServerTlsFiles {
            cert: tls_dir.join("server.pem"),
            key: tls_dir.join("server.key"),
        },
        Some(&ca_file),
    )
    .expect("TLS with a client CA");
    let api = Api::with_client_certificates(tls, identities).await;
    let events = format!("{}/v1/events?limit=1", api.url);

    let response = client(Some((&issuer, "exporter-1")))
        .get(&events)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the mapped machine needs no bearer credential"
    );
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["events"], serde_json::json!([]), "its own (empty) tenant");

    let response = client(Some((&issuer, "stranger")))
        .get(&events)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not mapped"),
        "{body}"
    );

    let response = client(None).get(&events).send().await.expect("answers");
    assert_eq!(response.status().as_u16(), 401, "no certificate, no credential");
    let key = api.key(&api.alfa, Role::Auditor).await;
    let response = client(None)
        .get(&events)
        .bearer_auth(key)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 200, "bearer credentials still work");

    let refused = client(Some((&rogue, "exporter-1"))).get(&events).send().await;
    assert!(
        refused.is_err(),
        "a certificate of another CA fails the handshake: {refused:?}"
    );
}
