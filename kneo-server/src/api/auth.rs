//! API keys, roles and scopes: who is calling, and may they call this route.
//!
//! Keys are kept only as SHA-256 digests and compared in constant time against every configured
//! key, so neither the comparison nor the loop leaks which key (or how much of it) matched.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::app::AppState;

/// Every scope kneo-serv 1.2 defines.
pub const ALL_SCOPES: [&str; 10] = [
    "runs:read",
    "runs:write",
    "specs:read",
    "human:read",
    "human:write",
    "audit:read",
    "audit:write",
    "credentials:read",
    "policies:read",
    "policies:write",
];

/// The scopes a built-in role grants, or `None` for an unknown role name.
pub fn role_scopes(role: &str) -> Option<&'static [&'static str]> {
    let scopes: &'static [&'static str] = match role {
        "admin" => &ALL_SCOPES,
        "operator" => &[
            "runs:read",
            "runs:write",
            "specs:read",
            "human:read",
            "audit:read",
            "credentials:read",
            "policies:read",
            "policies:write",
        ],
        "reviewer" => &["runs:read", "human:read", "human:write", "audit:read"],
        "service" => &[
            "runs:read",
            "runs:write",
            "specs:read",
            "human:read",
            "human:write",
            "audit:read",
            "audit:write",
            "credentials:read",
            "policies:read",
        ],
        "viewer" => &["runs:read", "specs:read", "human:read", "audit:read"],
        _ => return None,
    };
    Some(scopes)
}

/// One configured key: its name (the audit actor), the digest of its secret, and its scopes.
#[derive(Clone)]
pub struct ApiKey {
    pub name: String,
    digest: [u8; 32],
    pub scopes: Vec<String>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    pub fn new(name: &str, secret: &str, scopes: Vec<String>) -> ApiKey {
        ApiKey {
            name: name.to_string(),
            digest: digest(secret),
            scopes,
        }
    }

    /// The break-glass key from `KNEO_SERV_ADMIN_API_KEY`: every scope.
    pub fn admin(secret: &str) -> ApiKey {
        ApiKey::new(
            "admin",
            secret,
            ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
        )
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Why `KNEO_SERV_API_KEYS` could not be read. Never holds a key's secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    #[error("entry {position} is not of the form name:key:role_or_scope[,role_or_scope]")]
    Malformed { position: usize },
    #[error(
        "entry {position} ({name}) names an unknown role or scope {grant:?}; roles are admin, operator, reviewer, service, viewer"
    )]
    UnknownGrant {
        position: usize,
        name: String,
        grant: String,
    },
    #[error("entry {position} ({name}) has an empty name or key")]
    Empty { position: usize, name: String },
    /// A grant that is no scope but holds a colon: most likely the next entries, joined with `,`
    /// instead of `;`, so it may hold their keys and is never printed.
    #[error(
        "entry {position} ({name}) names a grant with a colon that is no scope (not printed: it may hold a key); \
         are the entries separated by ',' instead of ';'?"
    )]
    GrantLooksLikeEntries { position: usize, name: String },
}

/// Parses `name:key:role_or_scope[,role_or_scope]` entries separated by `;`.
///
/// Scopes themselves contain a colon (`runs:write`), so only the first two colons split.
pub fn parse_api_keys(raw: &str) -> Result<Vec<ApiKey>, KeyConfigError> {
    let mut keys = Vec::new();
    let entries = raw
        .split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for (index, entry) in entries.enumerate() {
        let position = index + 1;
        let mut parts = entry.splitn(3, ':');
        let (Some(name), Some(secret), Some(grants)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyConfigError::Malformed { position });
        };
        let (name, secret) = (name.trim(), secret.trim());
        if name.is_empty() || secret.is_empty() {
            return Err(KeyConfigError::Empty {
                position,
                name: name.to_string(),
            });
        }
        let mut scopes: Vec<String> = Vec::new();
        for grant in grants.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let granted: Vec<&str> = match role_scopes(grant) {
                Some(role) => role.to_vec(),
                None if ALL_SCOPES.contains(&grant) => vec![grant],
                None if grant.contains(':') => {
                    return Err(KeyConfigError::GrantLooksLikeEntries {
                        position,
                        name: name.to_string(),
                    });
                }
                None => {
                    return Err(KeyConfigError::UnknownGrant {
                        position,
                        name: name.to_string(),
                        grant: grant.to_string(),
                    });
                }
            };
            for scope in granted {
                if !scopes.iter().any(|s| s == scope) {
                    scopes.push(scope.to_string());
                }
            }
        }
        keys.push(ApiKey::new(name, secret, scopes));
    }
    Ok(keys)
}

/// Finds the key matching `presented`, comparing against every key so timing reveals nothing.
pub fn find_key<'a>(keys: &'a [ApiKey], presented: &str) -> Option<&'a ApiKey> {
    let presented = digest(presented);
    let mut found = None;
    for key in keys {
        if bool::from(key.digest.ct_eq(&presented)) {
            found = Some(key);
        }
    }
    found
}

/// The key a request presents: the `Authorization: Bearer …` token when there is one, otherwise
/// `X-Kneo-Api-Key`.
///
/// Only one key is ever tried, so a request cannot offer several and pass with whichever matches.
/// The Bearer token wins, as in kneo-serv 1.2: an `X-Kneo-Api-Key` beside a Bearer token is not
/// looked at (a proxy that adds its own Bearer header decides who the caller is).
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim().to_string());
    bearer.or_else(|| {
        headers
            .get("x-kneo-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    })
}

/// The configured key matching the presented one.
pub fn authenticate<'a>(keys: &'a [ApiKey], headers: &HeaderMap) -> Option<&'a ApiKey> {
    find_key(keys, &presented_key(headers)?)
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Recorded as the `actor` of audit events.
    pub name: String,
    scopes: Vec<String>,
    /// False when auth is disabled: every scope is granted to an anonymous local caller.
    pub authenticated: bool,
}

impl Principal {
    /// Refuses with 403 unless the caller holds `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if !self.authenticated || self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope))
        }
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let config = &state.config;
        if !config.auth_enabled {
            return Ok(Principal {
                name: "anonymous".into(),
                scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
                authenticated: false,
            });
        }
        let key =
            authenticate(&config.api_keys, &parts.headers).ok_or_else(ApiError::unauthorized)?;
        Ok(Principal {
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            authenticated: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_on_the_first_two_colons_only() {
        let keys = parse_api_keys("ci:ci-token:service;reader:read-token:runs:read,human:read")
            .expect("valid");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].name, "reader");
        assert_eq!(keys[1].scopes, vec!["runs:read", "human:read"]);
        assert!(find_key(&keys, "read-token").is_some());
    }

    #[test]
    fn roles_expand_to_their_scopes() {
        let keys = parse_api_keys(" rev : revkey123 : reviewer ").expect("valid");
        assert_eq!(
            keys[0].scopes,
            vec!["runs:read", "human:read", "human:write", "audit:read"]
        );
    }

    #[test]
    fn a_missing_colon_is_malformed_and_the_secret_is_not_echoed() {
        let error = parse_api_keys("ops:opskey123:operator;broken-secret").expect_err("malformed");
        assert_eq!(error, KeyConfigError::Malformed { position: 2 });
        assert!(!error.to_string().contains("broken-secret"));
    }

    #[test]
    fn entries_joined_with_commas_never_echo_a_key() {
        for raw in [
            "view:V13WKEY:viewer,ops:S3CRETKEY:operator",
            "ops:k:operator,ci:CITOKEN:runs:read",
        ] {
            let error = parse_api_keys(raw).expect_err("refused");
            let text = error.to_string();
            assert!(
                matches!(
                    error,
                    KeyConfigError::GrantLooksLikeEntries { position: 1, .. }
                ),
                "{raw}: {error:?}"
            );
            for secret in ["S3CRETKEY", "CITOKEN"] {
                assert!(!text.contains(secret), "{raw}: {text}");
            }
            assert!(text.contains("separated by ','"), "{text}");
        }
        assert!(
            parse_api_keys("ci:t:runs:read,runs:write").is_ok(),
            "scopes hold one colon and stay valid"
        );
    }

    #[test]
    fn an_unknown_role_is_refused() {
        let error = parse_api_keys("ops:k:superuser").expect_err("unknown");
        assert!(error.to_string().contains("superuser"));
    }

    #[test]
    fn only_the_exact_key_matches() {
        let keys = parse_api_keys("a:alpha:viewer;b:beta:admin").expect("valid");
        assert_eq!(find_key(&keys, "beta").map(|k| k.name.as_str()), Some("b"));
        assert!(find_key(&keys, "bet").is_none());
        assert!(find_key(&keys, "").is_none());
    }

    #[test]
    fn the_bearer_token_wins_over_x_kneo_api_key() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer tok".parse().expect("header"));
        assert_eq!(presented_key(&headers), Some("tok".to_string()));
        headers.insert("x-kneo-api-key", "tok2".parse().expect("header"));
        assert_eq!(presented_key(&headers), Some("tok".to_string()));
        let mut headers = HeaderMap::new();
        headers.insert("x-kneo-api-key", "tok2".parse().expect("header"));
        assert_eq!(presented_key(&headers), Some("tok2".to_string()));
        headers.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(presented_key(&headers), Some("tok2".to_string()));
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(presented_key(&headers), None);
    }
}
