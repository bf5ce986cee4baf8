//! Writing and reading the `tar.gz` container.
//!
//! Writing: a packer thread appends finished files with deterministic tar headers to a gzip
//! stream with a fixed header, so compression overlaps the export of the next table.
//! Reading: one streaming pass that trusts nothing: the gzip header, every tar header (regular
//! files only, safe relative paths, no duplicates), every line of every table, the gzip
//! checksum, and nothing after the end; each entry is hashed as it streams by. Decompression
//! (and the whole-file hash) runs on a thread of its own, overlapping the checks.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use flate2::Compression;

use super::BackupError;
use super::files::{HashingReader, HashingWriter, file_name_of, parent_of};
use super::format::{
    self, ContinuationEntry, Family, GZIP_HEADER, KeyPart, MANIFEST_PATH, TableSpec,
    continuation_id_for_path, is_safe_continuation_id, parse_continuation,
};
use super::rows::{JsonMode, Row, decode_line};
use super::verify::{Failure, FailureKind};

/// The largest `manifest.json` or continuation document read into memory.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;
/// The longest table line accepted (one row with its documents).
const MAX_LINE_BYTES: u64 = 256 * 1024 * 1024;
/// Bad rows described one by one per file; the rest are counted.
const DESCRIBED_BAD_ROWS: u64 = 10;
const READ_BUFFER: usize = 1 << 20;
/// Decompressed chunks: their size, and how many may wait for the reader.
const INFLATED_CHUNK_BYTES: usize = 256 * 1024;
const INFLATED_CHUNKS: usize = 8;

/// A gzip member written by hand around a raw deflate stream, so the header is exactly
/// [`GZIP_HEADER`] whatever the compression level.
struct GzipWriter<W: Write> {
    deflate: flate2::write::DeflateEncoder<W>,
    crc: flate2::Crc,
}

impl<W: Write> GzipWriter<W> {
    fn new(mut inner: W, level: Compression) -> io::Result<GzipWriter<W>> {
        inner.write_all(&GZIP_HEADER)?;
        Ok(GzipWriter {
            deflate: flate2::write::DeflateEncoder::new(inner, level),
            crc: flate2::Crc::new(),
        })
    }

    /// Ends the deflate stream and writes the gzip trailer (CRC-32 and length).
    fn finish(self) -> io::Result<W> {
        let mut inner = self.deflate.finish()?;
        inner.write_all(&self.crc.sum().to_le_bytes())?;
        inner.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(inner)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let written = self.deflate.write(buffer)?;
        self.crc.update(&buffer[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.deflate.flush()
    }
}

enum PackCommand {
    /// Append the file at `source` as `name`, then delete `source`.
    File { name: String, source: PathBuf },
    /// Append `manifest.json` and close the archive.
    Finish { manifest: Vec<u8> },
}

/// The finished, fsynced archive in its temporary file.
#[derive(Debug)]
pub struct Packed {
    pub temporary: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// Appends files to an archive from a thread of its own.
pub struct Packer {
    sender: mpsc::Sender<PackCommand>,
    handle: thread::JoinHandle<Result<Packed, BackupError>>,
}

impl Packer {
    /// Starts writing a temporary file beside `archive` (renamed into place by the caller).
    pub fn start(archive: &Path, level: Compression) -> Result<Packer, BackupError> {
        let temporary = parent_of(archive).join(format!(
            ".{}.tmp-{}",
            file_name_of(archive),
            uuid::Uuid::new_v4().simple()
        ));
        // 0600, like a capture bundle: an archive holds every run's input and output.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)
        }
        .map_err(BackupError::io("creating the archive", &temporary))?;
        let (sender, commands) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("kneo-backup-pack".into())
            .spawn(move || {
                let result = pack(file, &temporary, level, commands);
                if result.is_err() {
                    let _ = fs::remove_file(&temporary);
                }
                result
            })
            .map_err(|error| {
                BackupError::Internal(format!("cannot start the archive writer thread: {error}"))
            })?;
        Ok(Packer { sender, handle })
    }

    /// Queues a finished file; it is deleted once appended.
    pub fn add(&self, name: String, source: PathBuf) {
        // A send only fails when the thread has stopped on an error, which `finish` reports.
        let _ = self.sender.send(PackCommand::File { name, source });
    }

    /// Appends the manifest, closes tar and gzip, fsyncs, and waits for the thread. Blocking.
    pub fn finish(self, manifest: Vec<u8>) -> Result<Packed, BackupError> {
        let _ = self.sender.send(PackCommand::Finish { manifest });
        drop(self.sender);
        self.handle
            .join()
            .map_err(|_| BackupError::Internal("the archive writer thread panicked".into()))?
    }
}

fn pack(
    file: fs::File,
    temporary: &Path,
    level: Compression,
    commands: mpsc::Receiver<PackCommand>,
) -> Result<Packed, BackupError> {
    let failed = |action: &str| BackupError::io(action.to_string(), temporary);
    let hashing = HashingWriter::new(io::BufWriter::with_capacity(READ_BUFFER, file));
    let gzip = GzipWriter::new(hashing, level).map_err(failed("writing the archive"))?;
    let mut builder = tar::Builder::new(gzip);
    for command in commands {
        match command {
            PackCommand::File { name, source } => {
                let mut input = fs::File::open(&source)
                    .map_err(BackupError::io("reading the scratch file", &source))?;
                let size = input
                    .metadata()
                    .map_err(BackupError::io("reading the scratch file", &source))?
                    .len();
                let mut header = entry_header(size);
                builder
                    .append_data(&mut header, &name, &mut input)
                    .map_err(failed(&format!("appending {name} to the archive")))?;
                drop(input);
                let _ = fs::remove_file(&source);
            }
            PackCommand::Finish { manifest } => {
                let mut header = entry_header(manifest.len() as u64);
                builder
                    .append_data(&mut header, MANIFEST_PATH, manifest.as_slice())
                    .map_err(failed("appending manifest.json to the archive"))?;
                // Finish both layers explicitly: dropping them would lose a late write error.
                let gzip = builder
                    .into_inner()
                    .map_err(failed("finishing the tar stream"))?;
                let hashing = gzip.finish().map_err(failed("finishing the gzip stream"))?;
                let (buffered, sha256, bytes) = hashing.finish();
                let file = buffered
                    .into_inner()
                    .map_err(|error| error.into_error())
                    .map_err(failed("writing the archive"))?;
                file.sync_all().map_err(failed("syncing the archive"))?;
                return Ok(Packed {
                    temporary: temporary.to_path_buf(),
                    sha256,
                    bytes,
                });
            }
        }
    }
    Err(BackupError::Internal(
        "the backup stopped before the archive was finished".into(),
    ))
}

/// A tar header that says nothing about the machine: mode 0644, owner 0, mtime 0.
fn entry_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// The digest of one archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub sha256: String,
    pub bytes: u64,
}

/// What a reading pass found, whatever its visitor did with the rows.
#[derive(Debug, Default)]
pub struct Scan {
    pub failures: Vec<Failure>,
    /// Every regular entry read, in archive order.
    pub entries: Vec<(String, Digest)>,
    pub manifest: Option<Vec<u8>>,
    /// Lines per table file (valid or not).
    pub lines: BTreeMap<&'static str, u64>,
    /// Continuation files that parsed.
    pub continuations: u64,
    pub archive_sha256: String,
    pub archive_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// Receives the content of an archive as it streams by.
pub trait Visitor {
    /// How much of the documents to keep.
    fn mode(&self) -> JsonMode;

    /// A row that parsed, in file order. An error stops the pass.
    fn row(&mut self, table: &'static TableSpec, row: Row) -> Result<(), BackupError>;

    /// The end of a table file.
    fn end_table(&mut self, _table: &'static TableSpec) -> Result<(), BackupError> {
        Ok(())
    }

    /// A continuation document that parsed, with its bytes as stored.
    fn continuation(
        &mut self,
        continuation: ContinuationEntry,
        raw: &[u8],
    ) -> Result<(), BackupError>;
}

/// Counts the bytes read from the archive file, for progress.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Reads an archive once, start to end. `Err` only when the file is not a readable tar.gz at all
/// or the visitor stopped the pass; every other problem is a failure in the [`Scan`].
pub fn scan(
    path: &Path,
    visitor: &mut dyn Visitor,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Scan, BackupError> {
    let unreadable = |detail: String| BackupError::UnreadableArchive {
        path: path.to_path_buf(),
        detail,
    };
    let file = fs::File::open(path).map_err(BackupError::io("opening the archive", path))?;
    let total = file
        .metadata()
        .map_err(BackupError::io("reading the archive", path))?
        .len();
    let read_so_far = Arc::new(AtomicU64::new(0));
    let counting = CountingReader {
        inner: file,
        count: read_so_far.clone(),
    };
    let mut raw = BufReader::with_capacity(READ_BUFFER, HashingReader::new(counting));
    let mut scan = Scan::default();
    let head = raw
        .fill_buf()
        .map_err(BackupError::io("reading the archive", path))?;
    if head.len() < 2 || head[..2] != GZIP_HEADER[..2] {
        return Err(unreadable(format!(
            "it does not start with the gzip magic bytes 1f 8b (found {})",
            hex::encode(&head[..head.len().min(2)])
        )));
    }
    if head.len() < GZIP_HEADER.len() || head[..GZIP_HEADER.len()] != GZIP_HEADER {
        scan.failures.push(Failure::new(
            FailureKind::GzipHeader,
            None,
            format!(
                "the gzip header is {} but kneo writes {}; the archive was altered or re-compressed",
                hex::encode(&head[..head.len().min(GZIP_HEADER.len())]),
                hex::encode(GZIP_HEADER)
            ),
        ));
    }
    // Decompression runs on a thread of its own, so it overlaps the checks of what it produced.
    let inflater = Inflater::start(raw)?;
    let uncompressed = Arc::new(AtomicU64::new(0));
    let mut tar = tar::Archive::new(CountingReader {
        inner: inflater,
        count: uncompressed.clone(),
    });
    let mut stream_broken = false;
    {
        let entries = tar
            .entries()
            .map_err(|error| unreadable(format!("it is not a tar archive: {error}")))?;
        let mut seen: HashSet<String> = HashSet::new();
        let mut any = false;
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(error) if !any => {
                    return Err(unreadable(format!(
                        "no tar entry can be read from it: {error}"
                    )));
                }
                Err(error) => {
                    scan.failures.push(Failure::new(
                        FailureKind::CorruptStream,
                        None,
                        format!(
                            "the archive stream is corrupt after {} entries: {error}",
                            scan.entries.len()
                        ),
                    ));
                    stream_broken = true;
                    break;
                }
            };
            any = true;
            let outcome = read_entry(&mut entry, &mut seen, visitor, &mut scan)?;
            progress(read_so_far.load(Ordering::Relaxed), total);
            if let Err(detail) = outcome {
                scan.failures
                    .push(Failure::new(FailureKind::CorruptStream, None, detail));
                stream_broken = true;
                break;
            }
        }
    }
    let mut inflater = tar.into_inner().inner;
    if !stream_broken {
        // The tar end marker is followed by zero blocks at most; reading to the end also makes the
        // decoder check the gzip CRC-32 and length.
        match drain_counting_nonzero(&mut inflater) {
            Ok(0) => {}
            Ok(nonzero) => scan.failures.push(Failure::new(
                FailureKind::TrailingData,
                None,
                format!("{nonzero} non-zero byte(s) follow the end of the tar archive"),
            )),
            Err(error) => {
                scan.failures.push(Failure::new(
                    FailureKind::CorruptStream,
                    None,
                    format!("the gzip stream is corrupt: {error}"),
                ));
                stream_broken = true;
            }
        }
    }
    scan.uncompressed_bytes = uncompressed.load(Ordering::Relaxed);
    let file = inflater.finish()?;
    if !stream_broken && file.trailing_bytes {
        scan.failures.push(Failure::new(
            FailureKind::TrailingData,
            None,
            "bytes follow the end of the gzip stream".into(),
        ));
    }
    let (sha256, bytes) = (file.sha256, file.bytes);
    scan.archive_sha256 = sha256;
    scan.archive_bytes = bytes;
    progress(total, total);
    Ok(scan)
}

/// The schema family an archive's first entry (its first table) belongs to, read from the first
/// few kilobytes, so a restore can prepare its target before the one pass that loads it. `None`
/// when the file is not a readable archive or its first entry names no family; the pass itself
/// then says what is wrong.
pub fn peek_family(path: &Path) -> Option<Family> {
    let file = fs::File::open(path).ok()?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut entries = archive.entries().ok()?;
    let first = entries.next()?.ok()?;
    let name = first.path().ok()?.to_string_lossy().into_owned();
    format::family_of_path(&name)
}

/// What the decompression thread saw of the whole file.
struct RawFile {
    sha256: String,
    bytes: u64,
    /// Bytes after the end of the gzip stream.
    trailing_bytes: bool,
}

enum Inflated {
    Data(Vec<u8>),
    Failed(String),
}

/// The decompressed stream, produced by a thread that also hashes the whole file.
struct Inflater {
    chunks: Option<mpsc::Receiver<Inflated>>,
    /// Chunks read, sent back for the thread to fill again.
    spare: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    thread: Option<thread::JoinHandle<RawFile>>,
}

type RawReader = BufReader<HashingReader<CountingReader<fs::File>>>;

impl Inflater {
    fn start(raw: RawReader) -> Result<Inflater, BackupError> {
        let (sender, chunks) = mpsc::sync_channel(INFLATED_CHUNKS);
        let (spare, spare_chunks) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("kneo-backup-inflate".into())
            .spawn(move || inflate(raw, sender, spare_chunks))
            .map_err(|error| {
                BackupError::Internal(format!("cannot start the decompression thread: {error}"))
            })?;
        Ok(Inflater {
            chunks: Some(chunks),
            spare,
            current: Vec::new(),
            position: 0,
            thread: Some(thread),
        })
    }

    /// Stops reading (if the reader stopped early) and returns what the thread saw.
    fn finish(mut self) -> Result<RawFile, BackupError> {
        drop(self.chunks.take());
        self.thread
            .take()
            .ok_or_else(|| BackupError::Internal("the decompression thread is gone".into()))?
            .join()
            .map_err(|_| BackupError::Internal("the decompression thread panicked".into()))
    }
}

impl Read for Inflater {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            let Some(chunks) = &self.chunks else {
                return Ok(0);
            };
            match chunks.recv() {
                Ok(Inflated::Data(data)) => {
                    let read = std::mem::replace(&mut self.current, data);
                    // The thread may be gone already; the chunk is then simply freed.
                    let _ = self.spare.send(read);
                    self.position = 0;
                }
                Ok(Inflated::Failed(error)) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
                Err(_) => return Ok(0),
            }
        }
        let length = buffer.len().min(self.current.len() - self.position);
        buffer[..length].copy_from_slice(&self.current[self.position..self.position + length]);
        self.position += length;
        Ok(length)
    }
}

fn inflate(
    raw: RawReader,
    chunks: mpsc::SyncSender<Inflated>,
    spare: mpsc::Receiver<Vec<u8>>,
) -> RawFile {
    let mut gzip = flate2::bufread::GzDecoder::new(raw);
    let mut complete = false;
    loop {
        // A chunk sent back keeps its length, so resizing it writes zeros only past what was read.
        let mut buffer = spare.try_recv().unwrap_or_default();
        buffer.resize(INFLATED_CHUNK_BYTES, 0);
        match gzip.read(&mut buffer) {
            Ok(0) => {
                complete = true;
                break;
            }
            Ok(read) => {
                buffer.truncate(read);
                if chunks.send(Inflated::Data(buffer)).is_err() {
                    break;
                }
            }
            Err(error) => {
                let _ = chunks.send(Inflated::Failed(error.to_string()));
                break;
            }
        }
    }
    drop(chunks);
    let mut raw = gzip.into_inner();
    let trailing_bytes = complete && raw.fill_buf().is_ok_and(|rest| !rest.is_empty());
    // Hash whatever was not read, so the whole-file checksum covers the whole file.
    let _ = io::copy(&mut raw, &mut io::sink());
    let (sha256, bytes) = raw.into_inner().finish();
    RawFile {
        sha256,
        bytes,
        trailing_bytes,
    }
}

/// Reads to the end, returning how many non-zero bytes there were.
fn drain_counting_nonzero(reader: &mut impl Read) -> io::Result<u64> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut nonzero = 0;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(nonzero);
        }
        nonzero += buffer[..read].iter().filter(|byte| **byte != 0).count() as u64;
    }
}

/// Checks one entry and streams its content. `Ok(Err(detail))` when the stream broke inside it.
fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    seen: &mut HashSet<String>,
    visitor: &mut dyn Visitor,
    scan: &mut Scan,
) -> Result<Result<(), String>, BackupError> {
    let path = match entry.path() {
        Ok(path) => safe_path(&path),
        Err(error) => Err(format!("its name cannot be read: {error}")),
    };
    let name = match path {
        Ok(name) => name,
        Err(detail) => {
            let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            scan.failures.push(Failure::new(
                FailureKind::DangerousPath,
                Some(shown),
                detail,
            ));
            return Ok(Ok(()));
        }
    };
    let entry_type = entry.header().entry_type();
    if !entry_type.is_file() {
        scan.failures.push(Failure::new(
            FailureKind::NotARegularFile,
            Some(name),
            format!(
                "it is a {entry_type:?} entry; a kneo archive holds regular files only (no links, directories or devices)"
            ),
        ));
        return Ok(Ok(()));
    }
    if !seen.insert(name.clone()) {
        scan.failures.push(Failure::new(
            FailureKind::DuplicateEntry,
            Some(name),
            "the archive holds this path more than once".into(),
        ));
        return Ok(Ok(()));
    }
    let mut hashing = HashingReader::new(&mut *entry);
    let content = if name == MANIFEST_PATH {
        match read_document(&mut hashing, &name) {
            Ok(Ok(bytes)) => {
                scan.manifest = Some(bytes);
                Ok(())
            }
            Ok(Err(failure)) => {
                scan.failures.push(failure);
                Ok(())
            }
            Err(error) => Err(error),
        }
    } else if let Some(table) = format::table_for_path(&name) {
        read_table(table, &name, &mut hashing, visitor, scan)?
    } else if let Some((family, id)) = continuation_id_for_path(&name) {
        let id = id.to_string();
        match read_document(&mut hashing, &name) {
            Ok(Ok(bytes)) => {
                read_continuation(family, &id, &name, &bytes, visitor, scan)?;
                Ok(())
            }
            Ok(Err(failure)) => {
                scan.failures.push(failure);
                Ok(())
            }
            Err(error) => Err(error),
        }
    } else {
        scan.failures.push(Failure::new(
            FailureKind::UnexpectedEntry,
            Some(name.clone()),
            "a kneo archive holds only manifest.json, <family prefix>tables/<table>.jsonl and <family prefix>continuations/<id>.json".into(),
        ));
        Ok(())
    };
    if let Err(error) = content {
        return Ok(Err(format!("reading {name}: {error}")));
    }
    if let Err(error) = io::copy(&mut hashing, &mut io::sink()) {
        return Ok(Err(format!("reading {name}: {error}")));
    }
    let (sha256, bytes) = hashing.finish();
    scan.entries.push((name, Digest { sha256, bytes }));
    Ok(Ok(()))
}

/// The entry name as a relative path of plain components, or why it is refused.
fn safe_path(path: &Path) -> Result<String, String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => return Err("its name is not UTF-8".into()),
            },
            Component::RootDir | Component::Prefix(_) => {
                return Err("it is an absolute path".into());
            }
            Component::ParentDir => return Err("it contains `..`".into()),
            Component::CurDir => return Err("it contains `.`".into()),
        }
    }
    if parts.is_empty() {
        return Err("its name is empty".into());
    }
    Ok(parts.join("/"))
}

/// Reads a whole small entry; `Ok(Err(failure))` when it is too large to be ours.
fn read_document(reader: &mut impl Read, name: &str) -> io::Result<Result<Vec<u8>, Failure>> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Ok(Err(Failure::new(
            FailureKind::BadFile,
            Some(name.to_string()),
            format!("it is larger than {MAX_DOCUMENT_BYTES} bytes"),
        )));
    }
    Ok(Ok(bytes))
}

fn read_continuation(
    family: Family,
    id: &str,
    name: &str,
    bytes: &[u8],
    visitor: &mut dyn Visitor,
    scan: &mut Scan,
) -> Result<(), BackupError> {
    if !is_safe_continuation_id(id) {
        scan.failures.push(Failure::new(
            FailureKind::BadFile,
            Some(name.to_string()),
            "a continuation id is 1 to 128 letters, digits, `-` or `_`".into(),
        ));
        return Ok(());
    }
    match parse_continuation(family, bytes) {
        Ok(continuation) if continuation.id == id => {
            scan.continuations += 1;
            visitor.continuation(continuation, bytes)
        }
        Ok(continuation) => {
            scan.failures.push(Failure::new(
                FailureKind::BadFile,
                Some(name.to_string()),
                format!(
                    "the file is named {id} but holds continuation {:?}",
                    continuation.id
                ),
            ));
            Ok(())
        }
        Err(error) => {
            scan.failures.push(Failure::new(
                FailureKind::BadFile,
                Some(name.to_string()),
                format!("it is not a continuation document: {error}"),
            ));
            Ok(())
        }
    }
}

/// Streams a table file line by line. The outer error stops the pass (the visitor failed); the
/// inner one means the stream broke.
///
/// This thread reads, hashes and splits the lines into batches; decoder threads parse them; the
/// rows come back here in file order for the key-order check and the visitor.
fn read_table(
    table: &'static TableSpec,
    name: &str,
    reader: &mut impl Read,
    visitor: &mut dyn Visitor,
    scan: &mut Scan,
) -> Result<io::Result<()>, BackupError> {
    let mode = visitor.mode();
    let mut lines = TableLines {
        table,
        name,
        bad: 0,
        key_indexes: table.key_indexes(),
        key: Vec::new(),
        previous: Vec::new(),
        first: true,
    };
    let number = thread::scope(|scope| {
        let mut decoders = Decoders::start(scope, table, mode)?;
        let split = split_lines(reader, &mut decoders, &mut lines, visitor, scan);
        let stopped = decoders.stop();
        let number = split?;
        stopped?;
        Ok::<_, BackupError>(number)
    })?;
    let number = match number {
        Ok(number) => number,
        Err(error) => return Ok(Err(error)),
    };
    if lines.bad > DESCRIBED_BAD_ROWS {
        scan.failures.push(Failure::new(
            FailureKind::BadRow,
            Some(name.to_string()),
            format!(
                "{} more bad row(s) not described",
                lines.bad - DESCRIBED_BAD_ROWS
            ),
        ));
    }
    scan.lines.insert(table.name, number);
    visitor.end_table(table)?;
    Ok(Ok(()))
}

/// Reads the lines of a table into batches for the decoders, and visits what they decoded. Returns
/// the number of lines, or the read error that broke the stream.
fn split_lines(
    reader: &mut impl Read,
    decoders: &mut Decoders<'_>,
    lines: &mut TableLines<'_>,
    visitor: &mut dyn Visitor,
    scan: &mut Scan,
) -> Result<io::Result<u64>, BackupError> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut batch = decoders.empty_batch(1);
    let mut number: u64 = 0;
    loop {
        let start = batch.text.len();
        let read = match (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut batch.text)
        {
            Ok(read) => read,
            Err(error) => {
                batch.text.truncate(start);
                decoders.submit_and_visit_all(batch, lines, visitor, scan)?;
                return Ok(Err(error));
            }
        };
        if read == 0 {
            break;
        }
        number += 1;
        if batch.text.last() != Some(&b'\n') {
            // Rare: the lines before this one are visited first, so failures stay in line order.
            batch.text.truncate(start);
            decoders.submit_and_visit_all(batch, lines, visitor, scan)?;
            batch = decoders.empty_batch(number + 1);
            if read as u64 > MAX_LINE_BYTES {
                lines.bad_row(
                    scan,
                    format!("line {number} is longer than {MAX_LINE_BYTES} bytes"),
                );
                if let Err(error) = skip_line(&mut reader) {
                    return Ok(Err(error));
                }
                continue;
            }
            lines.bad_row(
                scan,
                format!("line {number} is not terminated by a newline: the file is truncated"),
            );
            break;
        }
        batch.ends.push(batch.text.len() - 1);
        if batch.text.len() >= BATCH_BYTES {
            decoders.submit(batch, lines, visitor, scan)?;
            batch = decoders.empty_batch(number + 1);
        }
    }
    decoders.submit_and_visit_all(batch, lines, visitor, scan)?;
    Ok(Ok(number))
}

/// Table lines are handed to the decoders in batches of about this many bytes.
const BATCH_BYTES: usize = 128 * 1024;

/// Complete lines of a table on their way to a decoder and, decoded, back.
#[derive(Default)]
struct Batch {
    /// The number of the first line.
    first_line: u64,
    /// The lines, each with its newline.
    text: Vec<u8>,
    /// Where each line's newline is in `text`.
    ends: Vec<usize>,
    /// Filled by the decoder: each line's row, or why it is not a row.
    rows: Vec<Result<Row, String>>,
}

/// The threads that decode a table's lines (one per core, at most 4), each fed its batches in
/// turn, so the reading thread gets the rows back in file order by asking the threads in the same
/// turn. At most [`Decoders::BATCHES_PER_DECODER`] batches per thread are out, holding at most as
/// many times [`BATCH_BYTES`] in all, or a single longer line.
struct Decoders<'scope> {
    jobs: Vec<mpsc::SyncSender<Batch>>,
    results: Vec<mpsc::Receiver<Batch>>,
    threads: Vec<thread::ScopedJoinHandle<'scope, ()>>,
    /// The decoder and size of each batch submitted and not yet visited, oldest first.
    in_flight: VecDeque<(usize, usize)>,
    in_flight_bytes: usize,
    next_decoder: usize,
    /// Visited batches, their buffers kept for the next ones.
    spare: Vec<Batch>,
}

impl<'scope> Decoders<'scope> {
    /// Batches submitted and not yet visited, per decoder: enough that a decoder finds the next
    /// batch waiting while the reading thread is busy hashing.
    const BATCHES_PER_DECODER: usize = 4;

    fn start(
        scope: &'scope thread::Scope<'scope, '_>,
        table: &'static TableSpec,
        mode: JsonMode,
    ) -> Result<Decoders<'scope>, BackupError> {
        let count = thread::available_parallelism().map_or(1, |cores| cores.get().min(4));
        let mut decoders = Decoders {
            jobs: Vec::with_capacity(count),
            results: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            next_decoder: 0,
            spare: Vec::new(),
        };
        for _ in 0..count {
            // Room for every batch a decoder can have in flight: no send ever waits, so a decoder
            // and the reading thread cannot wait on each other.
            let (job_sender, jobs) = mpsc::sync_channel::<Batch>(Self::BATCHES_PER_DECODER);
            let (result_sender, results) = mpsc::sync_channel(Self::BATCHES_PER_DECODER);
            let started = thread::Builder::new()
                .name("kneo-backup-decode".into())
                .spawn_scoped(scope, move || {
                    decode_batches(table, mode, jobs, result_sender)
                });
            match started {
                Ok(handle) => decoders.threads.push(handle),
                Err(error) => {
                    let _ = decoders.stop();
                    return Err(BackupError::Internal(format!(
                        "cannot start a row decoder thread: {error}"
                    )));
                }
            }
            decoders.jobs.push(job_sender);
            decoders.results.push(results);
        }
        Ok(decoders)
    }

    fn empty_batch(&mut self, first_line: u64) -> Batch {
        let mut batch = self.spare.pop().unwrap_or_else(|| Batch {
            text: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
            ..Batch::default()
        });
        batch.first_line = first_line;
        batch
    }

    /// Hands a batch to the next decoder, first visiting the oldest batches while too many are out.
    fn submit(
        &mut self,
        batch: Batch,
        lines: &mut TableLines<'_>,
        visitor: &mut dyn Visitor,
        scan: &mut Scan,
    ) -> Result<(), BackupError> {
        if batch.ends.is_empty() {
            self.keep_spare(batch);
            return Ok(());
        }
        let size = batch.text.len();
        while !self.in_flight.is_empty()
            && (self.in_flight.len() >= self.jobs.len() * Self::BATCHES_PER_DECODER
                || self.in_flight_bytes + size
                    > self.jobs.len() * Self::BATCHES_PER_DECODER * BATCH_BYTES)
        {
            self.visit_oldest(lines, visitor, scan)?;
        }
        let decoder = self.next_decoder;
        self.next_decoder = (decoder + 1) % self.jobs.len();
        self.jobs[decoder]
            .send(batch)
            .map_err(|_| BackupError::Internal("a row decoder thread stopped".into()))?;
        self.in_flight.push_back((decoder, size));
        self.in_flight_bytes += size;
        Ok(())
    }

    /// Hands over `batch`, then visits every batch out: the lines so far are all visited.
    fn submit_and_visit_all(
        &mut self,
        batch: Batch,
        lines: &mut TableLines<'_>,
        visitor: &mut dyn Visitor,
        scan: &mut Scan,
    ) -> Result<(), BackupError> {
        self.submit(batch, lines, visitor, scan)?;
        self.visit_all(lines, visitor, scan)
    }

    fn visit_all(
        &mut self,
        lines: &mut TableLines<'_>,
        visitor: &mut dyn Visitor,
        scan: &mut Scan,
    ) -> Result<(), BackupError> {
        while !self.in_flight.is_empty() {
            self.visit_oldest(lines, visitor, scan)?;
        }
        Ok(())
    }

    fn visit_oldest(
        &mut self,
        lines: &mut TableLines<'_>,
        visitor: &mut dyn Visitor,
        scan: &mut Scan,
    ) -> Result<(), BackupError> {
        let Some((decoder, size)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.in_flight_bytes -= size;
        let mut batch = self.results[decoder]
            .recv()
            .map_err(|_| BackupError::Internal("a row decoder thread stopped".into()))?;
        for (number, decoded) in (batch.first_line..).zip(batch.rows.drain(..)) {
            lines.visit(number, decoded, visitor, scan)?;
        }
        self.keep_spare(batch);
        Ok(())
    }

    fn keep_spare(&mut self, mut batch: Batch) {
        // A batch that held a huge line gives its memory back.
        if batch.text.capacity() <= 2 * BATCH_BYTES {
            batch.text.clear();
            batch.ends.clear();
            batch.rows.clear();
            self.spare.push(batch);
        }
    }

    /// Ends the decoder threads and waits for them.
    fn stop(&mut self) -> Result<(), BackupError> {
        self.jobs.clear();
        self.results.clear();
        let mut outcome = Ok(());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                outcome = Err(BackupError::Internal(
                    "a row decoder thread panicked".into(),
                ));
            }
        }
        outcome
    }
}

/// A decoder thread: parses each batch's lines and sends the batch back, until the reading thread
/// hangs up.
fn decode_batches(
    table: &'static TableSpec,
    mode: JsonMode,
    jobs: mpsc::Receiver<Batch>,
    results: mpsc::SyncSender<Batch>,
) {
    for mut batch in jobs {
        let mut start = 0;
        for end in &batch.ends {
            let decoded = decode_line(table, &batch.text[start..*end], mode);
            batch.rows.push(decoded);
            start = end + 1;
        }
        if results.send(batch).is_err() {
            return;
        }
    }
}

/// The checks of a table made in line order: key order, bad rows, and the visitor.
struct TableLines<'a> {
    table: &'static TableSpec,
    name: &'a str,
    bad: u64,
    key_indexes: Vec<usize>,
    /// The key of the row being checked and of the one before it; two buffers that swap, so
    /// keeping a key costs no allocation.
    key: Vec<KeyPart>,
    previous: Vec<KeyPart>,
    /// No row has been read yet.
    first: bool,
}

impl TableLines<'_> {
    fn bad_row(&mut self, scan: &mut Scan, detail: String) {
        self.bad += 1;
        if self.bad <= DESCRIBED_BAD_ROWS {
            scan.failures.push(Failure::new(
                FailureKind::BadRow,
                Some(self.name.to_string()),
                detail,
            ));
        }
    }

    fn visit(
        &mut self,
        number: u64,
        decoded: Result<Row, String>,
        visitor: &mut dyn Visitor,
        scan: &mut Scan,
    ) -> Result<(), BackupError> {
        match decoded {
            Ok(row) => {
                row.key_into(&self.key_indexes, &mut self.key);
                if !self.first && self.key <= self.previous {
                    let detail = format!(
                        "line {number}: key ({}) does not come after the previous row's ({}); rows are in primary-key order, each key once",
                        join_key(&self.key),
                        join_key(&self.previous)
                    );
                    self.bad_row(scan, detail);
                }
                self.first = false;
                std::mem::swap(&mut self.key, &mut self.previous);
                visitor.row(self.table, row)
            }
            Err(detail) => {
                self.bad_row(scan, format!("line {number}: {detail}"));
                Ok(())
            }
        }
    }
}

fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|byte| *byte == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let length = buffer.len();
                reader.consume(length);
            }
        }
    }
}

fn join_key(key: &[KeyPart]) -> String {
    key.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::rows::Cell;

    /// Keeps the key of every row it is given.
    struct Versions(Vec<i64>);

    impl Visitor for Versions {
        fn mode(&self) -> JsonMode {
            JsonMode::Validate
        }

        fn row(&mut self, _: &'static TableSpec, row: Row) -> Result<(), BackupError> {
            match row.cells.first() {
                Some(Cell::Int(version)) => self.0.push(*version),
                other => panic!("not a version: {other:?}"),
            }
            Ok(())
        }

        fn continuation(&mut self, _: ContinuationEntry, _: &[u8]) -> Result<(), BackupError> {
            Ok(())
        }
    }

    fn migration(version: i64) -> String {
        format!(
            "{{\"version\":{version},\"name\":\"{}\",\"applied_at\":\"2026-11-28T04:38:11.312209+00:00\"}}\n",
            "m".repeat(100)
        )
    }

    fn read(text: &str) -> (Scan, Vec<i64>) {
        let table = format::table("schema_migrations").expect("table");
        let mut visitor = Versions(Vec::new());
        let mut scan = Scan::default();
        read_table(
            table,
            "tables/schema_migrations.jsonl",
            &mut text.as_bytes(),
            &mut visitor,
            &mut scan,
        )
        .expect("visitor")
        .expect("read");
        (scan, visitor.0)
    }

    #[test]
    fn rows_spanning_many_batches_keep_their_order_and_line_numbers() {
        let mut text = String::new();
        let mut expected = Vec::new();
        for line in 1..=5000 {
            match line {
                1000 => text.push_str("not json\n"),
                2000 => {
                    text.push_str(&migration(1999));
                    expected.push(1999);
                }
                3000..=3007 => text.push_str("{}\n"),
                5000 => text.push_str(migration(5000).trim_end()),
                _ => {
                    text.push_str(&migration(line));
                    expected.push(line);
                }
            }
        }
        assert!(text.len() > 4 * BATCH_BYTES);
        let (scan, versions) = read(&text);
        assert_eq!(versions, expected);
        assert_eq!(scan.lines.get("schema_migrations"), Some(&5000));
        let details: Vec<&str> = scan
            .failures
            .iter()
            .map(|failure| failure.detail.as_str())
            .collect();
        assert_eq!(details.len(), 11, "{details:#?}");
        assert!(
            details[0].starts_with("line 1000: expected ident"),
            "{}",
            details[0]
        );
        assert_eq!(
            details[1],
            "line 2000: key (1999) does not come after the previous row's (1999); rows are in primary-key order, each key once"
        );
        assert!(
            details[2].starts_with("line 3000: missing column(s)"),
            "{}",
            details[2]
        );
        assert!(details[9].starts_with("line 3007: "), "{}", details[9]);
        assert_eq!(details[10], "1 more bad row(s) not described");
    }

    #[test]
    fn a_truncated_last_line_is_named_after_the_rows_before_it() {
        let text = format!("{}{}", migration(1), migration(2).trim_end());
        let (scan, versions) = read(&text);
        assert_eq!(versions, [1]);
        assert_eq!(scan.lines.get("schema_migrations"), Some(&2));
        assert_eq!(scan.failures.len(), 1);
        assert_eq!(
            scan.failures[0].detail,
            "line 2 is not terminated by a newline: the file is truncated"
        );
    }

    #[test]
    fn dangerous_names_are_refused() {
        assert_eq!(
            safe_path(Path::new("tables/runs.jsonl")).as_deref(),
            Ok("tables/runs.jsonl")
        );
        assert!(safe_path(Path::new("/etc/passwd")).is_err());
        assert!(safe_path(Path::new("tables/../../x")).is_err());
        assert!(safe_path(Path::new("")).is_err());
    }
}
