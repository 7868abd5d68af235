//! Streamed downloads: a blocking writer (the seat export, which reads the database page by
//! page) feeds the response through a small bounded channel, so a 100,000-seat export holds a
//! few chunks in memory, not the file. A client that goes away stops the writer (its next
//! chunk fails); a writer that fails ends the response with an error, so the download fails
//! instead of ending short but looking complete.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::web::Bytes;
use tokio::sync::mpsc;

/// Bytes buffered before a chunk is sent.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the writer and the response.
const IN_FLIGHT: usize = 4;

/// The writer's end: an `io::Write` that sends chunks.
pub struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

/// The response's end: a stream of chunks.
pub struct Chunks(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A connected writer and stream.
pub fn channel() -> (ChunkWriter, Chunks) {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    (
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        Chunks(rx),
    )
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the download was cancelled")
        })
    }

    /// Ends the download with an error (the response is cut off, not completed).
    pub fn fail(self, reason: String) {
        let _ = self.tx.blocking_send(Err(std::io::Error::other(reason)));
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
