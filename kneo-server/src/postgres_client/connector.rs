//! tokio-postgres's TLS hooks over rustls: the handshake, and the `tls-server-end-point` channel
//! binding that SCRAM-SHA-256-PLUS authentication ties to the server's certificate.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::TlsConnector;

/// Opens TLS sessions with one client configuration; cheap to clone (the pool keeps one).
#[derive(Clone)]
pub struct RustlsConnector {
    config: Arc<ClientConfig>,
}

impl RustlsConnector {
    pub fn new(config: Arc<ClientConfig>) -> RustlsConnector {
        RustlsConnector { config }
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Handshake;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, io::Error> {
        let server_name = ServerName::try_from(host.to_string()).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a host name TLS can verify ({error})"),
            )
        })?;
        Ok(Handshake {
            connector: TlsConnector::from(self.config.clone()),
            server_name,
        })
    }
}

/// One pending handshake with a named server.
pub struct Handshake {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let session = self.connector.connect(self.server_name, stream).await?;
            Ok(TlsStream(session))
        })
    }
}

/// An established session.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let Some(certificate) = session.peer_certificates().and_then(|chain| chain.first()) else {
            return ChannelBinding::none();
        };
        match signature_hash(certificate) {
            Some(Hash::Sha256) => {
                ChannelBinding::tls_server_end_point(Sha256::digest(certificate).to_vec())
            }
            Some(Hash::Sha384) => {
                ChannelBinding::tls_server_end_point(Sha384::digest(certificate).to_vec())
            }
            Some(Hash::Sha512) => {
                ChannelBinding::tls_server_end_point(Sha512::digest(certificate).to_vec())
            }
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
    }
}

/// The hash `tls-server-end-point` uses for a certificate (RFC 5929 § 4.1).
#[derive(Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// The certificate's signature hash, with MD5 and SHA-1 raised to SHA-256 as the RFC says; `None`
/// for algorithms without one (Ed25519, RSA-PSS), where no binding is offered.
fn signature_hash(certificate: &[u8]) -> Option<Hash> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, … }
    let (certificate, _) = der_element(certificate, 0x30)?;
    let (_, after_tbs) = der_element(certificate, 0x30)?;
    let (algorithm, _) = der_element(after_tbs, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    match oid {
        // md5WithRSA, sha1WithRSA, sha256WithRSA; ecdsa-with-SHA1 is 1.2.840.10045.4.1.
        [prefix @ .., 0x04 | 0x05 | 0x0b] if prefix == RSA => Some(Hash::Sha256),
        [prefix @ .., 0x0c] if prefix == RSA => Some(Hash::Sha384),
        [prefix @ .., 0x0d] if prefix == RSA => Some(Hash::Sha512),
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => Some(Hash::Sha256),
        [prefix @ .., 0x02] if prefix == ECDSA => Some(Hash::Sha256),
        [prefix @ .., 0x03] if prefix == ECDSA => Some(Hash::Sha384),
        [prefix @ .., 0x04] if prefix == ECDSA => Some(Hash::Sha512),
        _ => None,
    }
}

/// The content of the DER element of type `tag` at the start of `input`, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, rest)
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal DER certificate shell: SEQUENCE { SEQUENCE {}, SEQUENCE { OID } }.
    fn certificate_with(oid: &[u8]) -> Vec<u8> {
        let mut algorithm = vec![0x06, oid.len() as u8];
        algorithm.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00, 0x30, algorithm.len() as u8];
        body.extend(algorithm);
        let mut certificate = vec![0x30, 0x81, body.len() as u8];
        certificate.extend(body);
        certificate
    }

    #[test]
    fn the_binding_hash_follows_the_signature_algorithm() {
        let rsa = |last: u8| {
            let mut oid = vec![0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
            oid.push(last);
            certificate_with(&oid)
        };
        assert_eq!(signature_hash(&rsa(0x0b)), Some(Hash::Sha256));
        assert_eq!(signature_hash(&rsa(0x05)), Some(Hash::Sha256));
        assert_eq!(signature_hash(&rsa(0x0c)), Some(Hash::Sha384));
        assert_eq!(signature_hash(&rsa(0x0d)), Some(Hash::Sha512));
        assert_eq!(
            signature_hash(&rsa(0x0a)),
            None,
            "RSA-PSS names its hash elsewhere"
        );
        let ecdsa_sha384 = certificate_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        assert_eq!(signature_hash(&ecdsa_sha384), Some(Hash::Sha384));
        let ed25519 = certificate_with(&[0x2b, 0x65, 0x70]);
        assert_eq!(signature_hash(&ed25519), None);
    }

    #[test]
    fn truncated_der_gives_no_hash_instead_of_a_panic() {
        let whole = certificate_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        for end in 0..whole.len() {
            assert_eq!(signature_hash(&whole[..end]), None, "cut at {end}");
        }
        assert_eq!(signature_hash(&whole), Some(Hash::Sha256));
    }
}
