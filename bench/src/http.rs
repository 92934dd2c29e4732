//! A minimal HTTP/1.1 keep-alive client for the load loops: requests with a body or none,
//! Content-Length or chunked answers.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: std::net::SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream: BufReader::with_capacity(1 << 16, stream), host: addr.to_string() })
    }

    /// GETs `path`; returns the status and the body length.
    pub async fn get(&mut self, path: &str) -> Result<(u16, usize)> {
        self.request("GET", path, None, &[]).await
    }

    /// GETs `path`; returns the status and the body.
    pub async fn get_body(&mut self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.exchange("GET", path, None, &[]).await
    }

    /// Sends `method path` with `body` of `content_type`; returns the status and the answer's length.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, usize)> {
        let (status, answer) = self.exchange(method, path, content_type, body).await?;
        Ok((status, answer.len()))
    }

    /// Sends `method path` with `body` of `content_type`; returns the status and the answer.
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n", self.host);
        if let Some(content_type) = content_type {
            request.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.get_mut().write_all(&bytes).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("status line")?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
                if size == 0 {
                    // Trailers end with an empty line.
                    loop {
                        line.clear();
                        if self.stream.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size + 2, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                body.truncate(start + size);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok((status, body))
    }
}
