//! Changing the profile file that [`crate::profile`] reads: `kneo config profile set | use |
//! delete`. The file keeps kneo-serv 1.2's shape (`{"active", "profiles": {NAME: {"service_url",
//! "api_key"}}}`, sorted keys), so both CLIs share it; we add `api_key_env`, the name of a
//! variable holding the key, so a key need not be written to disk at all.
//!
//! Every write goes to a temporary file created 0600 beside the target and is renamed over it: the
//! key is never readable by others, not even for a moment, and a crash leaves the old file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::profile::{ProfileError, default_profiles_path};

/// A profile as `list` and `show` print it: never the key, only whether there is one.
pub fn public_view(name: &str, entry: &Map<String, Value>) -> Value {
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut view = json!({
        "name": name,
        "service_url": text("service_url").or(text("url")),
        "authenticated": text("api_key").is_some() || text("api_key_env").is_some(),
    });
    if let (Some(variable), Some(object)) = (text("api_key_env"), view.as_object_mut()) {
        object.insert("api_key_env".into(), Value::from(variable));
    }
    view
}

/// The profile file as an editable JSON document.
pub struct ProfileDocument {
    pub path: PathBuf,
    pub active: Option<String>,
    pub profiles: Map<String, Value>,
}

impl ProfileDocument {
    /// The file at `$KNEO_SERV_PROFILES_PATH` or `~/.kneo_serv/profiles.json`; empty when absent.
    pub fn open_default() -> Result<ProfileDocument, ProfileError> {
        let path = default_profiles_path(&|name| std::env::var(name).ok()).ok_or_else(|| {
            ProfileError::Unreadable {
                path: PathBuf::from("~/.kneo_serv/profiles.json"),
                reason: "neither KNEO_SERV_PROFILES_PATH nor HOME is set".into(),
            }
        })?;
        ProfileDocument::open(&path)
    }

    pub fn open(path: &Path) -> Result<ProfileDocument, ProfileError> {
        let malformed = |reason: String| ProfileError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(ProfileError::Unreadable {
                    path: path.to_path_buf(),
                    reason: error.to_string(),
                });
            }
        };
        let mut document = ProfileDocument {
            path: path.to_path_buf(),
            active: None,
            profiles: Map::new(),
        };
        if text.trim().is_empty() {
            return Ok(document);
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|error| malformed(format!("not JSON ({error})")))?;
        let Value::Object(top) = value else {
            return Err(malformed("the top level is not a JSON object".into()));
        };
        document.active = top
            .get("active")
            .and_then(Value::as_str)
            .map(str::to_string);
        match top.get("profiles") {
            Some(Value::Object(profiles)) => document.profiles = profiles.clone(),
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(malformed(
                    "`profiles` is not an object of NAME: {service_url, api_key}, so it cannot be \
                     edited; move the file aside and recreate the profiles"
                        .into(),
                ));
            }
        }
        Ok(document)
    }

    /// One profile's fields, or the unknown-profile error listing the known ones.
    pub fn entry(&self, name: &str) -> Result<&Map<String, Value>, ProfileError> {
        self.profiles
            .get(name)
            .and_then(Value::as_object)
            .ok_or_else(|| ProfileError::UnknownProfile {
                name: name.to_string(),
                path: self.path.clone(),
                available: self.profiles.keys().cloned().collect(),
            })
    }

    /// Creates or replaces `name`.
    pub fn set(&mut self, name: &str, service_url: &str, key: KeySource) {
        let (api_key, api_key_env) = match key {
            KeySource::None => (Value::Null, None),
            KeySource::Key(key) => (Value::from(key), None),
            KeySource::Variable(variable) => (Value::Null, Some(variable)),
        };
        let mut entry = Map::new();
        entry.insert(
            "service_url".into(),
            Value::from(service_url.trim_end_matches('/')),
        );
        entry.insert("api_key".into(), api_key);
        if let Some(variable) = api_key_env {
            entry.insert("api_key_env".into(), Value::from(variable));
        }
        self.profiles.insert(name.to_string(), Value::Object(entry));
    }

    /// Removes `name` (and clears `active` if it was the one); false when there was none.
    pub fn delete(&mut self, name: &str) -> bool {
        if self.active.as_deref() == Some(name) {
            self.active = None;
        }
        self.profiles.remove(name).is_some()
    }

    /// Writes the file: a 0600 temporary file beside it, renamed over it.
    pub fn save(&self) -> Result<(), ProfileError> {
        let failed = |reason: String| ProfileError::Unreadable {
            path: self.path.clone(),
            reason: format!("cannot write it: {reason}"),
        };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| failed(e.to_string()))?;
        }
        let mut sorted: Vec<(&String, &Value)> = self.profiles.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let profiles: Map<String, Value> = sorted
            .into_iter()
            .map(|(name, entry)| (name.clone(), entry.clone()))
            .collect();
        let document = json!({"active": self.active, "profiles": profiles});
        let text = serde_json::to_string_pretty(&document).map_err(|e| failed(e.to_string()))?;
        let temporary = self.path.with_extension("json.tmp");
        let mut file = private_file(&temporary).map_err(|e| failed(e.to_string()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| failed(e.to_string()))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| failed(e.to_string()))
    }
}

/// Where `set` takes the key from.
pub enum KeySource {
    None,
    /// The key itself (written to the file).
    Key(String),
    /// The name of an environment variable read when the profile is used.
    Variable(String),
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // The mode applies only on creation: a leftover looser file is tightened too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_profile_reads_back_and_the_file_is_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/profiles.json");
        let mut document = ProfileDocument::open(&path).expect("absent is empty");
        document.set("prod", "http://prod:8000/", KeySource::Key("k".into()));
        document.active = Some("prod".into());
        document.save().expect("save");
        let read = crate::profile::load_profiles(&path)
            .expect("read")
            .expect("exists");
        assert_eq!(read.active.as_deref(), Some("prod"));
        assert_eq!(
            read.get("prod").and_then(|p| p.url.as_deref()),
            Some("http://prod:8000")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let view = public_view("prod", document.entry("prod").expect("entry"));
        assert_eq!(
            view,
            json!({"name": "prod", "service_url": "http://prod:8000", "authenticated": true})
        );
        assert!(document.delete("prod"));
        assert_eq!(document.active, None);
    }
}
