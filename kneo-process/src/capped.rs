//! Reading a child's output with a cap on what is kept: a program that prints without end must
//! not grow our memory without end. The stream is still read to its end, so the child never
//! blocks on a full pipe; only the kept part is bounded.

use std::sync::{Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Which end of an output is kept when it is longer than its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first bytes: an answer, which is useless when cut anyway.
    Head,
    /// The last bytes: a log, where the error that ended it usually is.
    Tail,
}

/// At most `limit` bytes of an output: its head or its tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub limit: usize,
    pub keep: Keep,
}

impl Cap {
    /// Keeps the first `limit` bytes.
    pub const fn head(limit: usize) -> Cap {
        Cap {
            limit,
            keep: Keep::Head,
        }
    }

    /// Keeps the last `limit` bytes.
    pub const fn tail(limit: usize) -> Cap {
        Cap {
            limit,
            keep: Keep::Tail,
        }
    }
}

/// What was kept of an output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// The output was longer than its cap, so `bytes` is only its head or its tail.
    pub overflowed: bool,
}

impl Captured {
    /// The kept bytes as text; invalid UTF-8 becomes U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// An output being collected under a [`Cap`].
#[derive(Debug, Clone)]
pub struct CappedBuffer {
    cap: Cap,
    captured: Captured,
}

impl CappedBuffer {
    pub fn new(cap: Cap) -> CappedBuffer {
        CappedBuffer {
            cap,
            captured: Captured::default(),
        }
    }

    /// Adds `chunk`, dropping whatever the cap does not keep.
    pub fn push(&mut self, chunk: &[u8]) {
        let kept = &mut self.captured.bytes;
        kept.extend_from_slice(chunk);
        if kept.len() > self.cap.limit {
            self.captured.overflowed = true;
            match self.cap.keep {
                Keep::Head => kept.truncate(self.cap.limit),
                Keep::Tail => {
                    let excess = kept.len() - self.cap.limit;
                    kept.drain(..excess);
                }
            }
        }
    }

    /// Whether more came than the cap keeps.
    pub fn overflowed(&self) -> bool {
        self.captured.overflowed
    }

    /// What has been kept so far.
    pub fn bytes(&self) -> &[u8] {
        &self.captured.bytes
    }

    pub fn into_captured(self) -> Captured {
        self.captured
    }
}

/// Reads `reader` to its end (or its first read error) and returns what `cap` keeps.
pub async fn read_capped(reader: impl AsyncRead + Unpin, cap: Cap) -> Captured {
    let buffer = Mutex::new(CappedBuffer::new(cap));
    read_capped_into(reader, &buffer).await;
    buffer
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_captured()
}

/// Like [`read_capped`], but into a buffer that others may look at while the stream is still
/// open (to explain why a long-lived child died, with what it last wrote).
pub async fn read_capped_into(mut reader: impl AsyncRead + Unpin, buffer: &Mutex<CappedBuffer>) {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            // A read error ends the output like its end does: what was read is what there is.
            Ok(0) | Err(_) => return,
            Ok(read) => buffer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&chunk[..read]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_cap_keeps_the_first_bytes_and_says_it_cut() {
        let mut buffer = CappedBuffer::new(Cap::head(5));
        buffer.push(b"abc");
        assert_eq!(buffer.bytes(), b"abc");
        buffer.push(b"defgh");
        let captured = buffer.into_captured();
        assert_eq!(captured.bytes, b"abcde");
        assert!(captured.overflowed);
    }

    #[test]
    fn a_tail_cap_keeps_the_last_bytes() {
        let mut buffer = CappedBuffer::new(Cap::tail(4));
        buffer.push(b"abc");
        buffer.push(b"defgh");
        let captured = buffer.into_captured();
        assert_eq!(captured.text(), "efgh");
        assert!(captured.overflowed);
    }

    #[test]
    fn an_output_within_its_cap_is_kept_whole() {
        let mut buffer = CappedBuffer::new(Cap::tail(8));
        buffer.push(b"12345678");
        let captured = buffer.into_captured();
        assert_eq!(captured.bytes, b"12345678");
        assert!(!captured.overflowed);
    }

    #[tokio::test]
    async fn a_stream_is_read_to_its_end_past_the_cap() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let captured = read_capped(&input[..], Cap::tail(10)).await;
        assert_eq!(captured.bytes, &input[input.len() - 10..]);
        assert!(captured.overflowed);
    }
}
