//! TLS for the PostgreSQL store, with libpq's `sslmode` and `sslrootcert` URL parameters:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default, as libpq's) | when the server offers TLS | no |
//! | `require` | always | no; with `sslrootcert`, as `verify-ca` (libpq's rule) |
//! | `verify-ca` | always | signed by a trusted authority |
//! | `verify-full` | always | signed by a trusted authority, and issued for the URL's host |
//!
//! The trusted authorities are the PEM file `sslrootcert` names, or the system's (`sslrootcert=system`,
//! and the default). tokio-postgres reads `disable`/`prefer`/`require` itself; the two `verify-*` modes
//! and `sslrootcert` are taken off the URL here, and the connection is made with `require` plus the
//! checking verifier. Client certificates (`sslcert`/`sslkey`) are not supported.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What a URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// How the certificate is checked.
    pub(crate) check: Check,
    /// `sslrootcert`: a PEM file of trusted authorities; `None` for the system's.
    pub(crate) root_cert: Option<PathBuf>,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Not at all (`disable`, `prefer`, `require` without `sslrootcert`).
    None,
    /// Signed by a trusted authority (`verify-ca`, `require` with `sslrootcert`).
    Authority,
    /// Signed by a trusted authority and issued for the host (`verify-full`).
    Full,
}

/// Take `sslmode=verify-ca|verify-full` and `sslrootcert=…` off `url` (tokio-postgres knows neither);
/// returns the URL to parse, and the `sslmode` it should get instead (`require`) when one was taken.
///
/// Errors: a URL whose `sslmode` appears twice, or is empty (the message names it).
pub(crate) fn split_url(url: &str) -> Result<(String, Option<Check>, Option<PathBuf>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let mut kept = Vec::new();
    let mut verify = None;
    let mut root = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("sslmode", "verify-ca") => verify = Some(Check::Authority),
            ("sslmode", "verify-full") => verify = Some(Check::Full),
            ("sslrootcert", "") => return Err("`sslrootcert` is empty: name a PEM file, or `system`".into()),
            ("sslrootcert", "system") => root = None,
            ("sslrootcert", path) => root = Some(PathBuf::from(percent_decode(path))),
            _ => kept.push(pair),
        }
    }
    if verify.is_some() {
        if kept.iter().any(|p| p.starts_with("sslmode=")) {
            return Err("`sslmode` is given twice".into());
        }
        kept.push("sslmode=require");
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, verify, root))
}

/// The options for a parsed config: the `verify-*` mode taken off the URL, else what its `sslmode`
/// implies (`require` with a root certificate checks the authority, as libpq does).
pub(crate) fn options(mode: SslMode, verify: Option<Check>, root_cert: Option<PathBuf>) -> TlsOptions {
    let check = match (verify, mode) {
        (Some(check), _) => check,
        (None, SslMode::Require) if root_cert.is_some() => Check::Authority,
        _ => Check::None,
    };
    TlsOptions { check, root_cert }
}

/// The connector for `options`.
///
/// Errors: the root certificate file unreadable or holding no certificate, or no system authorities
/// (the message names the file and the fix).
pub(crate) fn connector(options: &TlsOptions) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS could not be set up: {e}"))?;
    let config = match options.check {
        Check::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
        Check::Authority | Check::Full => {
            let roots = Arc::new(roots(options.root_cert.as_ref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS could not be set up: {e}"))?;
            let verifier: Arc<dyn ServerCertVerifier> = if options.check == Check::Full {
                webpki
            } else {
                Arc::new(AuthorityOnly(webpki))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// How to fix a failed TLS connection, by its cause: the server without TLS, an authority not trusted, a
/// certificate for another name.
pub(crate) fn hint(e: &tokio_postgres::Error) -> Option<&'static str> {
    let text = rvbbit_core::error_chain(e);
    if !text.contains("TLS handshake") {
        return None;
    }
    Some(if text.contains("does not support TLS") {
        "turn on `ssl` in the server's configuration, or connect without TLS (`sslmode=prefer` or `disable`)"
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "name the authority that signed the server's certificate with `sslrootcert=PATH` (a PEM file)"
    } else if text.contains("not valid for name") {
        "connect to a host name the certificate was issued for, or check only the authority (`sslmode=verify-ca`)"
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "the server's certificate is outside its validity period: renew it"
    } else {
        "check the server's TLS setup, or the `sslmode`/`sslrootcert` parameters of the URL"
    })
}

/// The trusted authorities: the PEM file, or the system's.
fn roots(file: Option<&PathBuf>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "the root certificate `{}` (sslrootcert) could not be read: {e}; name a readable PEM file",
                        path.display()
                    )
                })?;
            for cert in certs {
                store.add(cert).map_err(|e| {
                    format!(
                        "the root certificate `{}` (sslrootcert) is not usable: {e}",
                        path.display()
                    )
                })?;
            }
            if store.is_empty() {
                return Err(format!(
                    "the root certificate `{}` (sslrootcert) holds no certificate; name a PEM file",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no trusted authorities were found on this system for sslmode=verify-ca/verify-full: \
                     name a PEM file with `sslrootcert=PATH`"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// Decode `%XX` escapes (a path in a URL); anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `require`/`prefer` without a root certificate: encrypted, the certificate not checked (libpq's
/// rule), the handshake's signatures still verified.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted authority; the name it was issued for is not checked.
#[derive(Debug)]
struct AuthorityOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AuthorityOnly {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_and_root_certs_come_off_the_url_and_the_rest_stays() {
        let (url, verify, root) =
            split_url("postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(url, "postgres://u@h/db?application_name=x&sslmode=require");
        assert_eq!(verify, Some(Check::Full));
        assert_eq!(root, Some(PathBuf::from("/tmp/ca.pem")));

        let (url, verify, root) = split_url("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(
            (url.as_str(), verify, root),
            ("postgres://u@h/db?sslmode=require", None, None)
        );
        let (url, ..) = split_url("postgres://u@h/db?sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert!(split_url("postgres://u@h/db?sslmode=verify-ca&sslmode=require").is_err());
        assert!(split_url("postgres://u@h/db?sslrootcert=").is_err());
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_authority_as_libpq_does() {
        let root = Some(PathBuf::from("ca.pem"));
        assert_eq!(
            options(SslMode::Require, None, root.clone()).check,
            Check::Authority
        );
        assert_eq!(options(SslMode::Require, None, None).check, Check::None);
        assert_eq!(options(SslMode::Prefer, None, root.clone()).check, Check::None);
        assert_eq!(
            options(SslMode::Require, Some(Check::Full), root).check,
            Check::Full
        );
    }

    #[test]
    fn percent_escapes_decode_and_malformed_ones_stay() {
        assert_eq!(percent_decode("%2Fa%20b"), "/a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn a_missing_root_certificate_names_the_file_and_the_fix() {
        let options = TlsOptions {
            check: Check::Full,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let err = connector(&options).err().expect("must fail");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(err.contains("sslrootcert"), "{err}");
    }
}
