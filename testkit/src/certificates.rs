//! Throwaway certificates for TLS tests, made with the `openssl` command-line tool: a CA, a server
//! certificate it signed for `127.0.0.1` only (so `localhost` is the wrong name), a client
//! certificate it signed for the role [`CLIENT_CERT_ROLE`], and a second CA that signed nothing
//! the server has (the "wrong CA").
//!
//! Keys are P-256, so the whole set takes a few tens of milliseconds. Certificates are valid for
//! two days from their creation.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The role name (certificate CN) of the client certificate, for `cert` authentication.
pub const CLIENT_CERT_ROLE: &str = "kneo_cert";

/// The files of one certificate set, in a directory the caller owns.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// Creates the set in `dir` (which must exist).
    pub fn generate(dir: &Path) -> TestCertificates {
        let set = TestCertificates {
            dir: dir.to_path_buf(),
        };
        set.self_signed_ca("ca", "kneo test CA");
        set.self_signed_ca("other-ca", "kneo unrelated CA");
        set.signed(
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        set.signed("client", CLIENT_CERT_ROLE, "extendedKeyUsage=clientAuth\n");
        for key in ["ca.key", "other-ca.key", "server.key", "client.key"] {
            set_mode(&dir.join(key), 0o600);
        }
        set
    }

    /// The CA that signed the server and client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A CA that signed nothing the server presents.
    pub fn other_ca_cert(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    fn self_signed_ca(&self, name: &str, common_name: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={common_name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }

    fn signed(&self, name: &str, common_name: &str, extensions: &str) {
        let extensions_file = self.dir.join(format!("{name}.ext"));
        let extensions =
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}");
        fs::write(&extensions_file, extensions)
            .unwrap_or_else(|error| panic!("cannot write {extensions_file:?}: {error}"));
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={common_name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-days",
                "2",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run openssl ({error}); install it (apt-get install -y openssl)")
        });
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|error| panic!("cannot chmod {path:?}: {error}"));
}
