//! Where the target URL and API key come from.
//!
//! Precedence, first found wins, per value: explicit flags; `KNEO_SERV_URL` / `KNEO_SERV_API_KEY`;
//! the named (or else the active) profile of the kneo CLI's profile file
//! (`KNEO_SERV_PROFILES_PATH`, default `~/.kneo_serv/profiles.json`); the default URL
//! `http://127.0.0.1:8000`. The profile file's schema is versioned upstream and not published,
//! so it is read leniently: `{"active": NAME, "profiles": {NAME: {"service_url"|"url", "api_key"}}}`,
//! a list of `{"name", …}` entries, or a bare map of profiles.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The URL used when nothing else names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";
pub const URL_ENV: &str = "KNEO_SERV_URL";
pub const API_KEY_ENV: &str = "KNEO_SERV_API_KEY";
pub const PROFILES_PATH_ENV: &str = "KNEO_SERV_PROFILES_PATH";

/// What the caller gave explicitly (command-line flags).
#[derive(Debug, Clone, Default)]
pub struct TargetOverrides {
    pub url: Option<String>,
    pub api_key: Option<String>,
    /// A profile name; an unknown name is an error.
    pub profile: Option<String>,
}

/// Where a value came from, for `--json` output and error messages (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    Profile { name: String, path: PathBuf },
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("command line"),
            Source::Env(name) => write!(f, "${name}"),
            Source::Profile { name, path } => write!(f, "profile {name:?} in {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The resolved target.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub url_source: Source,
    pub api_key: Option<String>,
    pub api_key_source: Option<Source>,
    /// Things the user should fix but that did not stop resolution (a world-readable profile
    /// file, an unreadable one that was not needed).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &crate::client::strip_credentials(&self.url))
            .field("url_source", &self.url_source)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("api_key_source", &self.api_key_source)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// One profile of the profile file.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub url: Option<String>,
    pub api_key: Option<String>,
    /// The variable that holds the key (`kneo config profile set --api-key-env`).
    pub api_key_env: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("api_key_env", &self.api_key_env)
            .finish()
    }
}

/// The profile file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFile {
    pub path: PathBuf,
    pub active: Option<String>,
    pub profiles: Vec<Profile>,
}

impl ProfileFile {
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|profile| profile.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read the profile file {}: {reason}; fix its permissions or point {PROFILES_PATH_ENV} elsewhere", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("the profile file {} is not valid: {reason}; fix it or point {PROFILES_PATH_ENV} elsewhere", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("no profile named {name:?} in {}{}; pass --url and --api-key instead, or create it with `kneo config profile set {name}`",
        path.display(), if available.is_empty() { " (the file has no profiles or does not exist)".to_string() } else { format!(" (known: {})", available.join(", ")) })]
    UnknownProfile {
        name: String,
        path: PathBuf,
        available: Vec<String>,
    },
}

/// `$KNEO_SERV_PROFILES_PATH`, else `$HOME/.kneo_serv/profiles.json` (None without a home).
pub fn default_profiles_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = env(PROFILES_PATH_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".kneo_serv").join("profiles.json"))
}

/// Reads the profile file; `Ok(None)` when it does not exist.
pub fn load_profiles(path: &Path) -> Result<Option<ProfileFile>, ProfileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(ProfileError::Unreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            });
        }
    };
    parse_profiles(path, &text).map(Some)
}

/// Parses the profile file's text (any of the accepted shapes).
pub fn parse_profiles(path: &Path, text: &str) -> Result<ProfileFile, ProfileError> {
    let malformed = |reason: String| ProfileError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|error| malformed(format!("not JSON ({error})")))?;
    let Value::Object(top) = value else {
        return Err(malformed("the top level is not a JSON object".into()));
    };
    let active = [
        "active",
        "active_profile",
        "current",
        "current_profile",
        "default_profile",
    ]
    .iter()
    .find_map(|key| top.get(*key).and_then(Value::as_str))
    .map(str::to_string);
    let profiles = match top.get("profiles") {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(name, entry)| read_profile(name, entry))
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|entry| {
                entry
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|name| read_profile(name, entry))
            })
            .collect(),
        Some(_) => {
            return Err(malformed(
                "`profiles` is neither an object nor a list".into(),
            ));
        }
        // A bare map of profiles: every object value that names a URL or a key.
        None => top
            .iter()
            .filter_map(|(name, entry)| read_profile(name, entry))
            .collect(),
    };
    Ok(ProfileFile {
        path: path.to_path_buf(),
        active,
        profiles,
    })
}

fn read_profile(name: &str, entry: &Value) -> Option<Profile> {
    let fields: &Map<String, Value> = entry.as_object()?;
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| fields.get(*key).and_then(Value::as_str))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let url = text(&["service_url", "url", "base_url"]);
    let api_key = text(&["api_key", "key", "token"]);
    let api_key_env = text(&["api_key_env"]);
    (url.is_some() || api_key.is_some() || api_key_env.is_some()).then(|| Profile {
        name: name.to_string(),
        url,
        api_key,
        api_key_env,
    })
}

/// Resolves the target from the process environment.
pub fn resolve_target(overrides: &TargetOverrides) -> Result<Target, ProfileError> {
    resolve_target_with(overrides, &|name| std::env::var(name).ok())
}

/// Resolves the target with `env` standing in for the environment (tests pass a map).
pub fn resolve_target_with(
    overrides: &TargetOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, ProfileError> {
    let nonempty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let mut warnings = Vec::new();
    let mut url = nonempty(overrides.url.clone()).map(|u| (u, Source::Flag));
    let mut key = nonempty(overrides.api_key.clone()).map(|k| (k, Source::Flag));
    if url.is_none() {
        url = nonempty(env(URL_ENV)).map(|u| (u, Source::Env(URL_ENV)));
    }
    if key.is_none() {
        key = nonempty(env(API_KEY_ENV)).map(|k| (k, Source::Env(API_KEY_ENV)));
    }

    let needs_profile = overrides.profile.is_some() || url.is_none() || key.is_none();
    if needs_profile && let Some(path) = default_profiles_path(env) {
        match load_profiles(&path) {
            Ok(file) => {
                if let Some(file) = &file {
                    permission_warning(&file.path, &mut warnings);
                }
                let chosen = match (&overrides.profile, &file) {
                    (Some(name), Some(file)) => Some(
                        file.get(name)
                            .ok_or_else(|| unknown(name, &path, Some(file)))?,
                    ),
                    (Some(name), None) => return Err(unknown(name, &path, None)),
                    (None, Some(file)) => file.active.as_deref().and_then(|name| file.get(name)),
                    (None, None) => None,
                };
                if let Some(profile) = chosen {
                    let source = Source::Profile {
                        name: profile.name.clone(),
                        path: path.clone(),
                    };
                    if url.is_none() {
                        url = profile.url.clone().map(|u| (u, source.clone()));
                    }
                    if key.is_none() {
                        key = match (&profile.api_key, &profile.api_key_env) {
                            (Some(k), _) => Some((k.clone(), source)),
                            (None, Some(variable)) => {
                                let value = nonempty(env(variable));
                                if value.is_none() {
                                    warnings.push(format!(
                                        "profile {:?} takes its API key from ${variable}, which is not set; set it or run `kneo config profile set {} --api-key-env OTHER`",
                                        profile.name, profile.name
                                    ));
                                }
                                value.map(|k| (k, source))
                            }
                            (None, None) => None,
                        };
                    }
                }
            }
            Err(error) if overrides.profile.is_some() => return Err(error),
            Err(error) => warnings.push(format!("{error} (ignored: no profile was asked for)")),
        }
    } else if let Some(name) = &overrides.profile {
        return Err(unknown(name, Path::new("~/.kneo_serv/profiles.json"), None));
    }

    let (url, url_source) = url.unwrap_or_else(|| (DEFAULT_URL.to_string(), Source::Default));
    let (api_key, api_key_source) = match key {
        Some((key, source)) => (Some(key), Some(source)),
        None => (None, None),
    };
    Ok(Target {
        url,
        url_source,
        api_key,
        api_key_source,
        warnings,
    })
}

fn unknown(name: &str, path: &Path, file: Option<&ProfileFile>) -> ProfileError {
    ProfileError::UnknownProfile {
        name: name.to_string(),
        path: path.to_path_buf(),
        available: file
            .map(|f| f.profiles.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default(),
    }
}

#[cfg(unix)]
fn permission_warning(path: &Path, warnings: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "the profile file {} holds API keys but is readable by others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
}

#[cfg(not(unix))]
fn permission_warning(_path: &Path, _warnings: &mut Vec<String>) {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write_profiles(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("profiles.json");
        std::fs::write(&path, text).expect("write profiles");
        path
    }

    #[test]
    fn nothing_given_means_the_default_url_and_no_key() {
        let target =
            resolve_target_with(&TargetOverrides::default(), &env_of(&[])).expect("resolves");
        assert_eq!(target.url, DEFAULT_URL);
        assert_eq!(target.url_source, Source::Default);
        assert_eq!(target.api_key, None);
    }

    #[test]
    fn flags_beat_env_and_env_beats_the_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_profiles(
            dir.path(),
            r#"{"version": 1, "active": "prod", "profiles": {"prod": {"service_url": "http://prod:8000", "api_key": "prod-key"}}}"#,
        );
        let path_text = path.to_string_lossy().to_string();
        let env = env_of(&[(PROFILES_PATH_ENV, &path_text), (API_KEY_ENV, "env-key")]);

        let target = resolve_target_with(&TargetOverrides::default(), &env).expect("resolves");
        assert_eq!(target.url, "http://prod:8000");
        assert!(matches!(target.url_source, Source::Profile { ref name, .. } if name == "prod"));
        assert_eq!(target.api_key.as_deref(), Some("env-key"));
        assert_eq!(target.api_key_source, Some(Source::Env(API_KEY_ENV)));

        let flags = TargetOverrides {
            url: Some("http://flag:1".into()),
            api_key: Some("flag-key".into()),
            profile: None,
        };
        let target = resolve_target_with(&flags, &env).expect("resolves");
        assert_eq!(
            (target.url.as_str(), target.api_key.as_deref()),
            ("http://flag:1", Some("flag-key"))
        );
    }

    #[test]
    fn a_named_profile_must_exist_and_the_error_lists_the_known_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_profiles(
            dir.path(),
            r#"{"profiles": [{"name": "staging", "url": "http://s:1", "api_key": "k"}]}"#,
        );
        let path_text = path.to_string_lossy().to_string();
        let env = env_of(&[(PROFILES_PATH_ENV, &path_text)]);
        let chosen = resolve_target_with(
            &TargetOverrides {
                profile: Some("staging".into()),
                ..TargetOverrides::default()
            },
            &env,
        )
        .expect("resolves");
        assert_eq!(chosen.url, "http://s:1");
        let error = resolve_target_with(
            &TargetOverrides {
                profile: Some("prod".into()),
                ..TargetOverrides::default()
            },
            &env,
        )
        .expect_err("unknown profile");
        let text = error.to_string();
        assert!(
            text.contains("\"prod\"") && text.contains("known: staging"),
            "{text}"
        );
    }

    #[test]
    fn a_broken_file_only_matters_when_a_profile_is_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_profiles(dir.path(), "{not json");
        let path_text = path.to_string_lossy().to_string();
        let env = env_of(&[(PROFILES_PATH_ENV, &path_text)]);
        let target = resolve_target_with(&TargetOverrides::default(), &env).expect("falls back");
        assert_eq!(target.url, DEFAULT_URL);
        assert!(
            target.warnings.iter().any(|w| w.contains("not valid")),
            "{:?}",
            target.warnings
        );
        let error = resolve_target_with(
            &TargetOverrides {
                profile: Some("x".into()),
                ..TargetOverrides::default()
            },
            &env,
        )
        .expect_err("error");
        assert!(matches!(error, ProfileError::Malformed { .. }));
    }

    #[test]
    fn the_default_path_is_under_home() {
        let path = default_profiles_path(&env_of(&[("HOME", "/home/op")])).expect("a path");
        assert_eq!(path, PathBuf::from("/home/op/.kneo_serv/profiles.json"));
        assert_eq!(
            default_profiles_path(&env_of(&[
                (PROFILES_PATH_ENV, "/etc/p.json"),
                ("HOME", "/h")
            ])),
            Some(PathBuf::from("/etc/p.json"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_profiles(dir.path(), r#"{"active": "a", "a": {"url": "http://a:1"}}"#);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let path_text = path.to_string_lossy().to_string();
        let target = resolve_target_with(
            &TargetOverrides::default(),
            &env_of(&[(PROFILES_PATH_ENV, &path_text)]),
        )
        .expect("resolves");
        assert_eq!(
            target.url, "http://a:1",
            "a bare map of profiles is read too"
        );
        assert!(
            target.warnings.iter().any(|w| w.contains("chmod 600")),
            "{:?}",
            target.warnings
        );
        assert!(
            !format!("{target:?}").contains("http://a:1/"),
            "debug output is fine to log"
        );
    }
}
