//! Writes the bundle: a `tar.gz` with entries sorted by path and deterministic headers, written
//! to a temporary file beside the target and renamed into place, so a reader never sees half a
//! bundle and an existing file is never overwritten.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

/// One file of the archive.
pub(crate) struct Entry {
    pub path: String,
    pub data: Vec<u8>,
}

/// Why the bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{} already exists; choose another -o or move it away", path.display())]
    Exists { path: std::path::PathBuf },
    #[error("cannot write {}: {source}; check that the directory exists, is writable and has room", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes `entries` (sorted here) to `output` atomically; returns the archive's size.
/// Every header has mode 0644, owner 0:0 and `mtime` as its time, so equal input gives equal
/// bytes.
pub(crate) fn write_atomically(
    output: &Path,
    entries: &mut [Entry],
    mtime: u64,
) -> Result<u64, ArchiveError> {
    let io_error = |source: io::Error| ArchiveError::Io {
        path: output.to_path_buf(),
        source,
    };
    if output.exists() {
        return Err(ArchiveError::Exists {
            path: output.to_path_buf(),
        });
    }
    let directory = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // The temp file is created 0600: a bundle is evidence, not something to share by default.
    let mut temp = tempfile::Builder::new()
        .prefix(".kneo-capture-")
        .suffix(".partial")
        .tempfile_in(&directory)
        .map_err(io_error)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    {
        // Level 1: a bundle is written once, inside a time budget, and JSON compresses well anyway.
        let encoder = GzEncoder::new(BufWriter::new(temp.as_file_mut()), Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        builder.mode(tar::HeaderMode::Deterministic);
        for entry in entries.iter() {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(entry.data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(mtime);
            builder
                .append_data(&mut header, &entry.path, entry.data.as_slice())
                .map_err(io_error)?;
        }
        // Finishing both layers explicitly surfaces a late write error instead of losing it.
        let encoder = builder.into_inner().map_err(io_error)?;
        let buffered = encoder.finish().map_err(io_error)?;
        buffered
            .into_inner()
            .map_err(|error| io_error(error.into_error()))?;
    }
    temp.as_file().sync_all().map_err(io_error)?;
    let size = temp.as_file().metadata().map_err(io_error)?.len();
    temp.persist_noclobber(output).map_err(|error| {
        if error.error.kind() == io::ErrorKind::AlreadyExists {
            ArchiveError::Exists {
                path: output.to_path_buf(),
            }
        } else {
            io_error(error.error)
        }
    })?;
    if let Ok(directory) = File::open(&directory) {
        // Makes the rename itself durable; a failure here does not undo the bundle.
        let _ = directory.sync_all();
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                path: "runs/r1/run.json".into(),
                data: b"{}".to_vec(),
            },
            Entry {
                path: "manifest.json".into(),
                data: b"{\"a\":1}".to_vec(),
            },
        ]
    }

    #[test]
    fn entries_are_sorted_and_identical_input_gives_identical_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("a.tar.gz");
        let second = dir.path().join("b.tar.gz");
        write_atomically(&first, &mut entries(), 1_700_000_000).expect("writes");
        write_atomically(&second, &mut entries(), 1_700_000_000).expect("writes");
        let bytes = std::fs::read(&first).expect("read");
        assert_eq!(
            bytes,
            std::fs::read(&second).expect("read"),
            "deterministic headers"
        );
        let mut archive = tar::Archive::new(GzDecoder::new(bytes.as_slice()));
        let mut names = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("read entry");
            assert_eq!(entry.header().mode().expect("mode"), 0o644);
            names.push(entry.path().expect("path").to_string_lossy().to_string());
        }
        assert_eq!(names, ["manifest.json", "runs/r1/run.json"]);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary file is left behind");
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.tar.gz");
        std::fs::write(&path, b"keep me").expect("write");
        let error = write_atomically(&path, &mut entries(), 0).expect_err("refused");
        assert!(error.to_string().contains("already exists"), "{error}");
        assert_eq!(std::fs::read(&path).expect("read"), b"keep me");
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_the_path() {
        let error = write_atomically(
            Path::new("/nonexistent-dir/kneo/x.tar.gz"),
            &mut entries(),
            0,
        )
        .expect_err("refused");
        assert!(
            error.to_string().contains("/nonexistent-dir/kneo/x.tar.gz"),
            "{error}"
        );
    }
}
