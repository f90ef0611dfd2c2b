//! Test certificates made at run time with `rcgen`: a CA, server certificates signed by it, a
//! client certificate, and an unrelated CA. Written to a temporary directory that is removed
//! when the `Pki` is dropped.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// One certificate and its key, PEM, and where they were written.
pub struct Pair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// Where the certificate was written.
    pub cert: PathBuf,
    /// Where the key was written.
    pub key: PathBuf,
}

/// A CA and the certificates it signed, and an unrelated CA.
pub struct Pki {
    /// The directory they were written to, removed on drop.
    pub dir: PathBuf,
    /// The CA that signed `server`, `localhost_only` and `client`.
    pub ca_pem: String,
    /// Where `ca_pem` was written.
    pub ca: PathBuf,
    /// Another CA that signed nothing here.
    pub other_ca_pem: String,
    /// Where `other_ca_pem` was written.
    pub other_ca: PathBuf,
    /// For `localhost` and `127.0.0.1`.
    pub server: Pair,
    /// For the DNS name `localhost` only: connecting by IP needs a TLS server name.
    pub localhost_only: Pair,
    /// A client certificate (clientAuth).
    pub client: Pair,
    /// A client certificate signed by `other_ca`.
    pub stranger: Pair,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    dir: &Path,
    file: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'static, KeyPair>,
) -> Pair {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or(file));
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let cert = dir.join(format!("{file}.pem"));
    let key = dir.join(format!("{file}-key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    Pair {
        cert_pem,
        key_pem,
        cert,
        key,
    }
}

/// A fresh set of certificates in a directory of its own.
pub fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!(
        "discoverable-pki-{}-{}",
        std::process::id(),
        uuid_ish()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_pem, issuer) = ca("discoverable test CA");
    let (other_ca_pem, other_issuer) = ca("unrelated test CA");
    let ca = dir.join("ca.pem");
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    std::fs::write(&other_ca, &other_ca_pem).unwrap();
    let server = leaf(
        &dir,
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    );
    let localhost_only = leaf(
        &dir,
        "localhost-only",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    );
    let client = leaf(
        &dir,
        "client",
        &["client.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
        &issuer,
    );
    let stranger = leaf(
        &dir,
        "stranger",
        &["stranger.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
        &other_issuer,
    );
    Pki {
        dir,
        ca_pem,
        ca,
        other_ca_pem,
        other_ca,
        server,
        localhost_only,
        client,
        stranger,
    }
}

/// A name unique within this process's run.
fn uuid_ish() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
