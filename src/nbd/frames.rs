//! Reading transmission requests off the socket. Headers come through a
//! buffer that keeps partial reads, so waiting for the next request can be
//! interrupted (the server closing the connection) without losing bytes,
//! and the requests already sent can still be answered. Payloads go
//! straight into their own buffers.

use super::request::REQUEST_LEN;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from the socket at once: many small requests per system call.
const BUFFER: usize = 64 << 10;

pub(crate) struct RequestReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> RequestReader<R> {
    pub fn new(inner: R) -> RequestReader<R> {
        RequestReader {
            inner,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The next request header. Cancel-safe: if the future is dropped,
    /// whatever it read stays buffered for the next call.
    pub async fn header(&mut self) -> io::Result<[u8; REQUEST_LEN]> {
        while self.end - self.start < REQUEST_LEN {
            if self.buf.len() - self.start < REQUEST_LEN {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // `read` is cancel-safe: it either read bytes, now counted, or none.
            let n = self.inner.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
        }
        let mut header = [0u8; REQUEST_LEN];
        header.copy_from_slice(&self.buf[self.start..self.start + REQUEST_LEN]);
        self.start += REQUEST_LEN;
        Ok(header)
    }

    /// Fill `out` with the payload that follows a header: buffered bytes
    /// first. Not cancel-safe.
    pub async fn payload(&mut self, out: &mut [u8]) -> io::Result<()> {
        let have = self.take_buffered(out.len());
        out[..have].copy_from_slice(&self.buf[self.start - have..self.start]);
        if have < out.len() {
            self.inner.read_exact(&mut out[have..]).await?;
        }
        Ok(())
    }

    /// Read and discard `n` bytes through the buffer, never allocating.
    pub async fn skip(&mut self, n: u32) -> io::Result<()> {
        let mut left = n as usize;
        loop {
            left -= self.take_buffered(left);
            if left == 0 {
                return Ok(());
            }
            self.start = 0;
            self.end = self.inner.read(&mut self.buf).await?;
            if self.end == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Consume up to `want` buffered bytes; how many were consumed.
    fn take_buffered(&mut self, want: usize) -> usize {
        let have = want.min(self.end - self.start);
        self.start += have;
        have
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn an_interrupted_header_read_loses_nothing() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut r = RequestReader::new(server);
        client.write_all(&[1; 10]).await.unwrap();
        // Ten bytes are not a header; give up waiting, as a close would.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), r.header()).await;
        assert!(waited.is_err());
        client.write_all(&[2; 18 + 5]).await.unwrap();
        let h = r.header().await.unwrap();
        assert_eq!(h[..10], [1; 10]);
        assert_eq!(h[10..], [2; 18]);
        let mut p = [0u8; 5];
        r.payload(&mut p).await.unwrap();
        assert_eq!(p, [2; 5]);
    }

    #[tokio::test]
    async fn payloads_and_skips_take_buffered_bytes_first() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut r = RequestReader::new(server);
        let mut wire = vec![7u8; REQUEST_LEN];
        wire.extend((0..100_000u32).map(|i| i as u8));
        wire.extend([9u8; REQUEST_LEN]);
        client.write_all(&wire).await.unwrap();
        r.header().await.unwrap();
        let mut p = vec![0u8; 70_000];
        r.payload(&mut p).await.unwrap();
        assert_eq!(p[..], wire[REQUEST_LEN..REQUEST_LEN + 70_000]);
        r.skip(30_000).await.unwrap();
        assert_eq!(r.header().await.unwrap(), [9u8; REQUEST_LEN]);
        drop(client);
        assert_eq!(
            r.header().await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
