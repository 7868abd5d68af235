//! A minimal HTTP/1.1 keep-alive client for loopback load: one request at a time per
//! connection, pre-built request bytes, the status line and `Content-Length` parsed, the body
//! read into a reused buffer. Nothing else of HTTP is needed against `seatkeep serve`.

use std::io::ErrorKind;
use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::error::{BenchError, Context, Result};

/// Initial size of the receive buffer (an activation answer is a few KiB).
const BUFFER: usize = 32 * 1024;
/// Largest response accepted.
const MAX_RESPONSE: usize = 1024 * 1024;

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

/// A response, borrowing the connection's buffer.
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
    /// The server will close the connection (`Connection: close`).
    pub close: bool,
}

/// What the response head says.
struct Head {
    status: u16,
    len: usize,
    content_length: usize,
    close: bool,
}

impl Connection {
    /// Connects (Nagle off: requests are written in one piece).
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        Ok(Self {
            stream,
            buf: vec![0; BUFFER],
            filled: 0,
        })
    }

    /// Sends one complete request and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response<'_>> {
        self.write_all(request).await?;
        self.filled = 0;
        let head = loop {
            if let Some(head) = parse_head(&self.buf[..self.filled])? {
                break head;
            }
            self.read_more().await?;
        };
        let total = head.len + head.content_length;
        if total > MAX_RESPONSE {
            return Err(BenchError::new(format!(
                "response of {total} bytes is too large"
            )));
        }
        while self.filled < total {
            self.read_more().await?;
        }
        if self.filled > total {
            return Err(BenchError::new("bytes after the response body"));
        }
        Ok(Response {
            status: head.status,
            body: &self.buf[head.len..total],
            close: head.close,
        })
    }

    async fn write_all(&self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            self.stream.writable().await.context("write request")?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(BenchError::new(format!("write request: {e}"))),
            }
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<()> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= MAX_RESPONSE {
                return Err(BenchError::new("response too large"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            self.stream.readable().await.context("read response")?;
            match self.stream.try_read(&mut self.buf[self.filled..]) {
                Ok(0) => return Err(BenchError::new("connection closed by the server")),
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(BenchError::new(format!("read response: {e}"))),
            }
        }
    }
}

/// Parses the status line and headers once they are complete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&bytes[..end]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| BenchError::new(format!("bad status line: {status_line}")))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse()
                    .with_context(|| format!("bad Content-Length {value}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(BenchError::new("chunked responses are not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let content_length = match (content_length, status) {
        (Some(n), _) => n,
        (None, 204 | 304) => 0,
        (None, _) => return Err(BenchError::new("response without Content-Length")),
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        content_length,
        close,
    }))
}

/// `GET PATH` request bytes.
pub fn get_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn head_is_parsed_when_complete() {
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n")
                .unwrap()
                .is_none()
        );
        let head =
            parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\nconnection: close\r\n\r\n{")
                .unwrap()
                .unwrap();
        assert_eq!(
            (head.status, head.content_length, head.close),
            (201, 12, true)
        );
        assert_eq!(head.len, 63);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
