//! What an archive is: a kneo backup (`kneo-ops backup`), a kneo escalation bundle
//! (`kneo-ops capture`), or something else, told from its layout and its `manifest.json`.
//!
//! `verify`, `restore`, `bundle inspect` and `kneo-tui --bundle` ask this first, so a bundle
//! handed to `verify` (or a backup to `bundle inspect`) is named for what it is, with the command
//! that reads it, instead of reading as a corrupt archive.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::manifest;

/// The `format` field of every backup manifest (kneo-server's backup engine writes it).
pub const BACKUP_FORMAT: &str = "kneo-backup";

/// The largest manifest looked at (a bundle's is kilobytes; a backup's is read elsewhere).
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// Entries looked through for the manifest before giving up (a bundle has a few hundred).
const MAX_ENTRIES: usize = 100_000;

/// What [`identify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveKind {
    Backup,
    Bundle,
    /// Neither; the reason says what it is instead (not a tar.gz, no manifest, another format).
    Other(String),
}

impl ArchiveKind {
    /// `a kneo backup archive`, `a kneo escalation bundle`, or the reason.
    pub fn describe(&self) -> String {
        match self {
            ArchiveKind::Backup => "a kneo backup archive (kneo-ops backup)".into(),
            ArchiveKind::Bundle => "a kneo escalation bundle (kneo-ops capture)".into(),
            ArchiveKind::Other(reason) => format!("not a kneo archive: {reason}"),
        }
    }
}

/// Why a file handed to a command that wants `wanted` is the wrong kind, with the command that
/// reads what it is; `None` when it is the kind wanted, or not a kneo archive at all (the
/// command's own checks then say what is wrong with it).
pub fn wrong_kind(path: &Path, wanted: &ArchiveKind) -> Option<String> {
    let found = identify(path).ok()?;
    let file = path.display();
    match (&found, wanted) {
        (ArchiveKind::Bundle, ArchiveKind::Backup) => Some(format!(
            "{file} is an escalation bundle (kneo-ops capture), not a backup; use `kneo-ops bundle inspect {file}` \
             or `kneo-tui --bundle {file}`"
        )),
        (ArchiveKind::Backup, ArchiveKind::Bundle) => Some(format!(
            "{file} is a kneo backup archive (kneo-ops backup), not an escalation bundle; use `kneo-ops verify {file}` \
             (or `kneo-ops restore`)"
        )),
        _ => None,
    }
}

/// Reads just enough of `path` to tell what it is.
pub fn identify(path: &Path) -> std::io::Result<ArchiveKind> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(error) => return Ok(ArchiveKind::Other(format!("not a tar.gz ({error})"))),
    };
    for (index, entry) in entries.enumerate() {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                return Ok(ArchiveKind::Other(format!(
                    "not a readable tar.gz ({error})"
                )));
            }
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // A backup writes its tables first and its manifest last: the layout says it at once
        // (a backup of a kneo-serv 1.2 store keeps its tables under `kneo-serv/tables/`).
        if index == 0 && (name.starts_with("tables/") || name.starts_with("kneo-serv/tables/")) {
            return Ok(ArchiveKind::Backup);
        }
        if name == manifest::MANIFEST_PATH {
            let mut bytes = Vec::new();
            if let Err(error) = entry
                .by_ref()
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut bytes)
            {
                return Ok(ArchiveKind::Other(format!(
                    "manifest.json cannot be read ({error})"
                )));
            }
            return Ok(from_manifest(&bytes));
        }
        if index >= MAX_ENTRIES {
            break;
        }
    }
    Ok(ArchiveKind::Other("no manifest.json in it".into()))
}

fn from_manifest(bytes: &[u8]) -> ArchiveKind {
    let format = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| value.get("format")?.as_str().map(str::to_string));
    match format.as_deref() {
        Some(BACKUP_FORMAT) => ArchiveKind::Backup,
        Some(manifest::FORMAT) => ArchiveKind::Bundle,
        Some(other) => ArchiveKind::Other(format!("its manifest.json says format {other:?}")),
        None => ArchiveKind::Other("its manifest.json has no format field".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn archive(dir: &Path, name: &str, entries: &[(&str, &str)]) -> std::path::PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).expect("create");
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        for (entry, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, entry, data.as_bytes())
                .expect("append");
        }
        builder
            .into_inner()
            .expect("tar")
            .finish()
            .expect("gzip")
            .flush()
            .expect("flush");
        path
    }

    #[test]
    fn backups_bundles_and_the_rest_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backup = archive(
            dir.path(),
            "b.tar.gz",
            &[
                ("tables/runs.jsonl", "{}\n"),
                ("manifest.json", r#"{"format":"kneo-backup"}"#),
            ],
        );
        let manifest_only_backup = archive(
            dir.path(),
            "m.tar.gz",
            &[("manifest.json", r#"{"format":"kneo-backup"}"#)],
        );
        let bundle = archive(
            dir.path(),
            "c.tar.gz",
            &[
                ("host/uname.txt", "Linux"),
                ("manifest.json", r#"{"format":"kneo-capture"}"#),
            ],
        );
        let other = archive(dir.path(), "o.tar.gz", &[("readme.txt", "hi")]);
        let text = dir.path().join("t.tar.gz");
        std::fs::write(&text, "plain text").expect("write");
        assert_eq!(identify(&backup).expect("reads"), ArchiveKind::Backup);
        assert_eq!(
            identify(&manifest_only_backup).expect("reads"),
            ArchiveKind::Backup
        );
        assert_eq!(identify(&bundle).expect("reads"), ArchiveKind::Bundle);
        assert!(
            matches!(identify(&other), Ok(ArchiveKind::Other(reason)) if reason.contains("no manifest"))
        );
        assert!(
            matches!(identify(&text), Ok(ArchiveKind::Other(reason)) if reason.contains("tar.gz"))
        );
        assert!(identify(&dir.path().join("absent.tar.gz")).is_err());

        let mixed_up = wrong_kind(&bundle, &ArchiveKind::Backup).expect("a bundle is not a backup");
        assert!(
            mixed_up.contains("is an escalation bundle")
                && mixed_up.contains("kneo-ops bundle inspect"),
            "{mixed_up}"
        );
        let mixed_up = wrong_kind(&backup, &ArchiveKind::Bundle).expect("a backup is not a bundle");
        assert!(mixed_up.contains("kneo-ops verify"), "{mixed_up}");
        assert_eq!(wrong_kind(&backup, &ArchiveKind::Backup), None);
        assert_eq!(
            wrong_kind(&other, &ArchiveKind::Backup),
            None,
            "the command's own checks speak"
        );
    }
}
