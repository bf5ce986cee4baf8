//! File plumbing shared by backup and restore: scratch directories that clean up after
//! themselves, readers and writers that hash what passes through, durable renames.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BackupError;

/// A directory for intermediate files, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<parent>/.<stem>.kneo-tmp-<random>`; beside the final file, so a rename into place
    /// never crosses file systems.
    pub fn create_in(parent: &Path, stem: &str) -> Result<ScratchDir, BackupError> {
        let path = parent.join(format!(
            ".{stem}.kneo-tmp-{}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&path)
            .map_err(BackupError::io("creating the scratch directory", &path))?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover scratch directory is visible and harmless.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into())
}

/// Makes a rename or a new file in `directory` durable.
pub fn sync_directory(directory: &Path) -> Result<(), BackupError> {
    fs::File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(BackupError::io("syncing the directory", directory))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let directory = parent_of(path);
    let temporary = directory.join(format!(
        ".{}.tmp-{}",
        file_name_of(path),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&temporary);
        return Err(BackupError::Io {
            action: "writing".into(),
            path: path.to_path_buf(),
            source,
        });
    }
    sync_directory(&directory)
}

/// SHA-256 and length of everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the hex digest and the length.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 and length of everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.bytes += read as u64;
        Ok(read)
    }
}

/// The SHA-256 (hex) and length of a whole file.
pub fn sha256_of_file(path: &Path) -> Result<(String, u64), BackupError> {
    let file = fs::File::open(path).map_err(BackupError::io("reading", path))?;
    let mut reader = HashingReader::new(file);
    io::copy(&mut reader, &mut io::sink()).map_err(BackupError::io("reading", path))?;
    Ok(reader.finish())
}

/// The `sha256sum` sidecar of an archive: `<archive>.sha256`.
pub fn sidecar_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The verification record of an archive: `<archive>.verified.json`.
pub fn verification_record_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".verified.json");
    PathBuf::from(name)
}
