//! The TLS settings of a libpq connection string, taken out before tokio-postgres reads the rest.
//!
//! tokio-postgres knows `sslmode` `disable`/`prefer`/`require` only and none of the certificate
//! settings, so `sslmode`, `sslrootcert`, `sslcert`, `sslkey` and `sslsni` are split off here, from
//! a `postgres://` URL's query or a `key=value` string. A setting the string leaves out falls back
//! to the variable libpq reads for it (`PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`,
//! `PGSSLSNI`), so an operator's existing libpq environment means the same thing to kneo.

use super::TargetError;

/// `sslmode`, with libpq's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS or nothing; the certificate chain is checked only when a root certificate is there.
    Require,
    /// TLS, with a certificate chain signed by a trusted root.
    VerifyCa,
    /// TLS, with a trusted chain whose certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str, setting: &str) -> Result<SslMode, TargetError> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(TargetError::new(
                setting,
                Some(value),
                "sslmode=allow (plain TCP first, TLS only if refused) is not supported",
                "use sslmode=prefer (TLS when offered) or sslmode=disable",
            )),
            _ => Err(TargetError::new(
                setting,
                Some(value),
                "is not an sslmode",
                "one of disable, prefer, require, verify-ca, verify-full",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must be signed by a trusted root.
    pub fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// One setting's value and where it came from (`sslrootcert` in the URL or `PGSSLROOTCERT`), so
/// that an error names what the operator has to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub source: String,
}

/// The TLS part of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// Where `mode` came from; `None` when it is the default.
    pub mode_source: Option<String>,
    pub root_cert: Option<Setting>,
    pub client_cert: Option<Setting>,
    pub client_key: Option<Setting>,
    /// `sslsni`: whether to send the host name in the handshake (libpq's default: yes).
    pub server_name_indication: bool,
}

/// A connection string split in two: what tokio-postgres reads, and the TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub rest: String,
    pub tls: TlsSettings,
}

/// The keys split off, each with the variable libpq falls back to.
const TLS_KEYS: [(&str, &str); 5] = [
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslsni", "PGSSLSNI"),
];

/// libpq TLS keys kneo's client cannot honour, with what to do instead.
fn unsupported(key: &str) -> Option<&'static str> {
    Some(match key {
        "sslpassword" => {
            "encrypted client keys are not supported: decrypt the key (openssl pkey -in KEY -out PLAIN) and keep it mode 0600"
        }
        "sslcrl" | "sslcrldir" => {
            "certificate revocation lists are not supported: remove the setting, and revoke by replacing the server's certificate"
        }
        "sslcompression" => "TLS compression is not supported: remove the setting",
        "sslcertmode" => {
            "remove the setting: a client certificate is sent when sslcert (or ~/.postgresql/postgresql.crt) is there"
        }
        "ssl_min_protocol_version" | "ssl_max_protocol_version" => {
            "kneo always speaks TLS 1.2 or 1.3: remove the setting"
        }
        "requiressl" => "requiressl is obsolete: use sslmode=require",
        "gssencmode" | "krbsrvname" | "gsslib" => "GSSAPI is not supported: remove the setting",
        _ => return None,
    })
}

/// Splits the TLS settings out of `connection` (a `postgres://` URL or `key=value` pairs), with
/// `env` looked up for the settings the string leaves out.
pub fn split(connection: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Split, TargetError> {
    let trimmed = connection.trim();
    let (rest, found) =
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            split_url(trimmed)?
        } else {
            split_key_values(trimmed)?
        };
    let lookup = |key: &str, variable: &str| -> Option<Setting> {
        if let Some((_, value)) = found.iter().rev().find(|(found, _)| found == key) {
            return Some(Setting {
                value: value.clone(),
                source: key.to_string(),
            });
        }
        env(variable)
            .filter(|value| !value.trim().is_empty())
            .map(|value| Setting {
                value: value.trim().to_string(),
                source: variable.to_string(),
            })
    };
    let [mode_key, root_key, cert_key, key_key, sni_key] = TLS_KEYS;
    let mode_setting = lookup(mode_key.0, mode_key.1);
    let root_cert = lookup(root_key.0, root_key.1);
    let mode = match &mode_setting {
        Some(setting) => SslMode::parse(&setting.value, &setting.source)?,
        // libpq (16): trusting the host's public CAs makes full verification the default.
        None if root_cert
            .as_ref()
            .is_some_and(|root| root.value == "system") =>
        {
            SslMode::VerifyFull
        }
        None => SslMode::Prefer,
    };
    let server_name_indication = match lookup(sni_key.0, sni_key.1) {
        None => true,
        Some(setting) => match setting.value.as_str() {
            "1" => true,
            "0" => false,
            other => {
                return Err(TargetError::new(
                    &setting.source,
                    Some(other),
                    "is not 0 or 1",
                    "sslsni=1 (send the host name, the default) or sslsni=0",
                ));
            }
        },
    };
    Ok(Split {
        rest,
        tls: TlsSettings {
            mode,
            mode_source: mode_setting.map(|setting| setting.source),
            root_cert,
            client_cert: lookup(cert_key.0, cert_key.1),
            client_key: lookup(key_key.0, key_key.1),
            server_name_indication,
        },
    })
}

/// Found TLS keys, as (key, value), in the order they appear.
type Found = Vec<(String, String)>;

fn take(key: &str, value: String, found: &mut Found) -> Result<bool, TargetError> {
    if TLS_KEYS.iter().any(|(tls_key, _)| *tls_key == key) {
        found.push((key.to_string(), value));
        return Ok(true);
    }
    if let Some(fix) = unsupported(key) {
        return Err(TargetError::new(key, None, "is not supported", fix));
    }
    Ok(false)
}

/// `postgres://…?sslmode=require&application_name=x`: the query parameters are `&`-separated
/// and percent-encoded; the others are kept as they were written.
fn split_url(url: &str) -> Result<(String, Found), TargetError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for parameter in query.split('&').filter(|part| !part.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if !take(&percent_decode(key), percent_decode(value), &mut found)? {
            kept.push(parameter);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, found))
}

/// `host=db sslmode=verify-full sslrootcert='/etc/ca dir/root.crt'`: libpq's `key = value` form,
/// values optionally single-quoted with `\'` and `\\` escapes.
fn split_key_values(text: &str) -> Result<(String, Found), TargetError> {
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for (key, value) in key_value_pairs(text)? {
        if !take(&key, value.clone(), &mut found)? {
            kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    Ok((kept.join(" "), found))
}

fn key_value_pairs(text: &str) -> Result<Vec<(String, String)>, TargetError> {
    let malformed = |problem: &str| {
        TargetError::new(
            "connection string",
            None,
            problem,
            "key=value pairs separated by spaces (quote values with spaces: key='a b'), or a postgres:// URL",
        )
    };
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // Only a plain keyword is repeated: anything else may be a pasted URL with a password.
            let shown = if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                format!("the key {key:?}")
            } else {
                "a part of it".to_string()
            };
            return Err(malformed(&format!("{shown} has no '=' and value")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(malformed("a quoted value has no closing quote")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// `%2F` → `/`. libpq decodes nothing else (a `+` stays a `+`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn url_settings_are_split_off_and_the_rest_kept_as_written() {
        let split = split(
            "postgres://kneo:p%40ss@db:5432/runs?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
            &no_env,
        )
        .unwrap();
        assert_eq!(
            split.rest,
            "postgres://kneo:p%40ss@db:5432/runs?application_name=x"
        );
        assert_eq!(split.tls.mode, SslMode::VerifyFull);
        assert_eq!(split.tls.mode_source.as_deref(), Some("sslmode"));
        let root = split.tls.root_cert.unwrap();
        assert_eq!(root.value, "/etc/ca.pem");
        assert_eq!(root.source, "sslrootcert");
    }

    #[test]
    fn a_url_without_tls_settings_means_prefer_and_is_unchanged() {
        let split = split("postgresql://db/runs", &no_env).unwrap();
        assert_eq!(split.rest, "postgresql://db/runs");
        assert_eq!(split.tls.mode, SslMode::Prefer);
        assert!(split.tls.mode_source.is_none());
        assert!(split.tls.server_name_indication);
    }

    #[test]
    fn the_libpq_variables_fill_in_what_the_string_leaves_out() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-ca".to_string()),
            "PGSSLROOTCERT" => Some("/env/root.crt".to_string()),
            "PGSSLCERT" => Some("/env/client.crt".to_string()),
            _ => None,
        };
        let split = split("postgres://db/runs?sslrootcert=/url/root.crt", &env).unwrap();
        assert_eq!(split.tls.mode, SslMode::VerifyCa);
        assert_eq!(split.tls.mode_source.as_deref(), Some("PGSSLMODE"));
        assert_eq!(split.tls.root_cert.unwrap().value, "/url/root.crt");
        let cert = split.tls.client_cert.unwrap();
        assert_eq!(
            (cert.value.as_str(), cert.source.as_str()),
            ("/env/client.crt", "PGSSLCERT")
        );
        assert!(split.tls.client_key.is_none());
    }

    #[test]
    fn key_value_strings_are_split_with_quotes_and_escapes() {
        let split = split_key_values(
            r"host=db dbname = runs sslmode=require sslkey='/k dir/k.pem' password='a b\'c'",
        )
        .unwrap();
        assert_eq!(split.0, r"host='db' dbname='runs' password='a b\'c'");
        assert_eq!(
            split.1,
            vec![
                ("sslmode".to_string(), "require".to_string()),
                ("sslkey".to_string(), "/k dir/k.pem".to_string())
            ]
        );
        let parsed = split.0.parse::<tokio_postgres::Config>().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"a b'c"[..]));
    }

    #[test]
    fn bad_and_unsupported_settings_are_refused_with_the_fix() {
        let error = split("postgres://db/x?sslmode=verify", &no_env).unwrap_err();
        assert_eq!(error.setting, "sslmode");
        assert!(error.to_string().contains("verify-full"), "{error}");
        let error = split("postgres://db/x?sslmode=allow", &no_env).unwrap_err();
        assert!(error.to_string().contains("sslmode=prefer"), "{error}");
        let error = split("postgres://db/x?sslpassword=hunter2", &no_env).unwrap_err();
        assert_eq!(error.setting, "sslpassword");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let env = |name: &str| (name == "PGSSLMODE").then(|| "sometimes".to_string());
        let error = split("postgres://db/x", &env).unwrap_err();
        assert_eq!(error.setting, "PGSSLMODE");
        let error = split("host=db sslmode", &no_env).unwrap_err();
        assert!(error.to_string().contains("no '='"), "{error}");
    }

    #[test]
    fn percent_decoding_leaves_plus_and_stray_percents_alone() {
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b+c%zz%4");
    }
}
