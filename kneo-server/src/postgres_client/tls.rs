//! The rustls client configuration for a connection's TLS settings: which roots are trusted, how
//! much of the server's certificate is checked, and the client certificate, with libpq's rules.
//!
//! | `sslmode` | certificate check |
//! |---|---|
//! | `disable` | no TLS at all |
//! | `prefer`, `require` | none, unless a root certificate is given (or `~/.postgresql/root.crt` exists): then the chain |
//! | `verify-ca` | the chain, against `sslrootcert` (or `~/.postgresql/root.crt`), which must exist |
//! | `verify-full` | the chain and the host name (or IP address) connected to |
//!
//! One difference on purpose: a root certificate file that is *named* (`sslrootcert`,
//! `PGSSLROOTCERT`) and does not exist is an error in every mode; libpq ignores it below
//! `verify-ca`, which silently turns a typo into an unverified connection.
//!
//! The crypto provider is aws-lc-rs, the one reqwest's rustls already brings; it is passed
//! explicitly, so no process-wide default is installed or needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::TargetError;
use super::settings::{Setting, SslMode, TlsSettings};

/// How much of the server's certificate a connection checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Encryption only (`prefer`/`require` without a root certificate): anyone in the middle can
    /// present any certificate.
    None,
    /// The chain up to a trusted root, not the name (`verify-ca`, or `require` with a root).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndHost,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::None => "none",
            Verification::Chain => "chain",
            Verification::ChainAndHost => "chain_and_host",
        }
    }
}

/// The client configuration and what it checks.
pub struct Client {
    pub config: Arc<ClientConfig>,
    pub verification: Verification,
}

/// Builds the client configuration for `tls`; `home` is where the `~/.postgresql/` defaults are
/// looked for. Every file is read here, so a missing or unreadable one is reported at once, by name.
pub fn client(tls: &TlsSettings, home: Option<&Path>) -> Result<Client, TargetError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = trusted_roots(tls, home)?;
    let verification = match (&roots, tls.mode) {
        (_, SslMode::VerifyFull) => Verification::ChainAndHost,
        (_, SslMode::VerifyCa) | (Some(_), _) => Verification::Chain,
        (None, _) => Verification::None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Some(roots) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|error| {
                        TargetError::new(
                            "sslrootcert",
                            None,
                            &format!("cannot be used to verify servers ({error})"),
                            "a PEM file of CA certificates",
                        )
                    })?;
            if verification == Verification::ChainAndHost {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        None => Arc::new(EncryptionOnly(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| {
            TargetError::new(
                "sslmode",
                None,
                &format!("TLS cannot be set up ({error})"),
                "a kneo build with TLS 1.2 and 1.3",
            )
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_identity(tls, home)? {
        Some((chain, key, source)) => {
            builder.with_client_auth_cert(chain, key).map_err(|error| {
                TargetError::new(
                    &source,
                    None,
                    &format!("the client certificate and key do not go together ({error})"),
                    "sslcert and sslkey from the same certificate request",
                )
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = tls.server_name_indication;
    Ok(Client {
        config: Arc::new(config),
        verification,
    })
}

/// The default files libpq looks for under `~/.postgresql/`.
fn default_file(home: Option<&Path>, name: &str) -> Option<PathBuf> {
    home.map(|home| home.join(".postgresql").join(name))
        .filter(|path| path.is_file())
}

fn trusted_roots(
    tls: &TlsSettings,
    home: Option<&Path>,
) -> Result<Option<RootCertStore>, TargetError> {
    let (path, source) = match &tls.root_cert {
        Some(setting) if setting.value == "system" => return system_roots(tls, setting).map(Some),
        Some(setting) => (PathBuf::from(&setting.value), setting.source.clone()),
        None => match default_file(home, "root.crt") {
            Some(path) => (path, "~/.postgresql/root.crt".to_string()),
            None if tls.mode.verifies_chain() => {
                let setting = tls.mode_source.as_deref().unwrap_or("sslmode");
                return Err(TargetError::new(
                    setting,
                    Some(tls.mode.as_str()),
                    "checks the server's certificate, but no root certificate is given (sslrootcert, PGSSLROOTCERT or ~/.postgresql/root.crt)",
                    "sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate), sslrootcert=system for the host's trust store, or sslmode=require to encrypt without checking",
                ));
            }
            None => return Ok(None),
        },
    };
    let pem = read_file(&path, &source)?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate =
            certificate.map_err(|error| not_pem(&path, &source, &error.to_string()))?;
        roots.add(certificate).map_err(|error| {
            not_pem(
                &path,
                &source,
                &format!("a certificate in it is unusable ({error})"),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(not_pem(&path, &source, "it holds no CERTIFICATE block"));
    }
    Ok(Some(roots))
}

/// `sslrootcert=system`: the host's trust store. libpq (16) accepts it with `verify-full` only,
/// since any public CA can sign a certificate for any name (and makes that the default mode).
fn system_roots(tls: &TlsSettings, setting: &Setting) -> Result<RootCertStore, TargetError> {
    if tls.mode != SslMode::VerifyFull {
        return Err(TargetError::new(
            &setting.source,
            Some("system"),
            &format!(
                "trusts every public CA, which is too weak with sslmode={}",
                tls.mode.as_str()
            ),
            "sslmode=verify-full with sslrootcert=system, or a root certificate file of your own CA",
        ));
    }
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if roots.is_empty() {
        return Err(TargetError::new(
            &setting.source,
            Some("system"),
            "found no certificates in the host's trust store",
            "install the ca-certificates package, or give the CA file (sslrootcert=/path/to/ca.pem)",
        ));
    }
    Ok(roots)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

/// The client certificate and key: named ones, or libpq's default `~/.postgresql/postgresql.crt`
/// and `postgresql.key` when they exist.
fn client_identity(
    tls: &TlsSettings,
    home: Option<&Path>,
) -> Result<Option<Identity>, TargetError> {
    let named = |setting: &Option<Setting>| {
        setting
            .as_ref()
            .map(|setting| (PathBuf::from(&setting.value), setting.source.clone()))
    };
    let certificate = named(&tls.client_cert).or_else(|| {
        default_file(home, "postgresql.crt")
            .map(|path| (path, "~/.postgresql/postgresql.crt".to_string()))
    });
    let key = named(&tls.client_key).or_else(|| {
        default_file(home, "postgresql.key")
            .map(|path| (path, "~/.postgresql/postgresql.key".to_string()))
    });
    let (certificate_path, certificate_source) = match (certificate, &tls.client_key) {
        (Some(certificate), _) => certificate,
        (None, Some(key)) => {
            return Err(TargetError::new(
                &key.source,
                Some(&key.value),
                "names a client key but there is no client certificate",
                "sslcert (or PGSSLCERT) with the certificate of that key, or remove the key setting",
            ));
        }
        (None, None) => return Ok(None),
    };
    let Some((key_path, key_source)) = key else {
        return Err(TargetError::new(
            &certificate_source,
            Some(&certificate_path.display().to_string()),
            "is a client certificate without its private key",
            "sslkey (or PGSSLKEY) naming the key file, or ~/.postgresql/postgresql.key",
        ));
    };
    let pem = read_file(&certificate_path, &certificate_source)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| not_pem(&certificate_path, &certificate_source, &error.to_string()))?;
    if chain.is_empty() {
        return Err(not_pem(
            &certificate_path,
            &certificate_source,
            "it holds no CERTIFICATE block",
        ));
    }
    check_key_permissions(&key_path, &key_source)?;
    let pem = read_file(&key_path, &key_source)?;
    // Not named in the error: a mangled key file may still hold most of the key.
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        TargetError::new(
            &key_source,
            Some(&key_path.display().to_string()),
            "holds no unencrypted PEM private key",
            "a PEM key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY); decrypt an encrypted one with openssl pkey",
        )
    })?;
    Ok(Some((chain, key, certificate_source)))
}

/// libpq's rule: a key readable by others is refused (mode 0600 or less; 0640 when owned by root).
fn check_key_permissions(path: &Path, source: &str) -> Result<(), TargetError> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(path, source, &error))?;
    let allowed = if metadata.uid() == 0 { 0o640 } else { 0o600 };
    let mode = metadata.mode() & 0o777;
    if mode & !allowed != 0 {
        return Err(TargetError::new(
            source,
            Some(&path.display().to_string()),
            &format!("is a private key that others can read (mode {mode:o})"),
            &format!(
                "chmod 600 {} (0640 is accepted when root owns it)",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn read_file(path: &Path, source: &str) -> Result<Vec<u8>, TargetError> {
    std::fs::read(path).map_err(|error| unreadable(path, source, &error))
}

fn unreadable(path: &Path, source: &str, error: &std::io::Error) -> TargetError {
    TargetError::new(
        source,
        Some(&path.display().to_string()),
        &format!("cannot be read ({error})"),
        "a readable PEM file; check the path and that the service's user may read it",
    )
}

fn not_pem(path: &Path, source: &str, problem: &str) -> TargetError {
    TargetError::new(
        source,
        Some(&path.display().to_string()),
        &format!("is not a usable PEM certificate file: {problem}"),
        "a PEM file with -----BEGIN CERTIFICATE----- blocks",
    )
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not
/// compared with the host (the chain is checked before the name, so only a name mismatch passes).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a root certificate, as libpq does them: the certificate is not
/// checked at all, but the handshake signatures still are, so the session key is the server's.
#[derive(Debug)]
struct EncryptionOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
