//! A reverse proxy that mounts a server at a sub-path, as nginx's
//! `location /edgeclip/ { proxy_pass http://127.0.0.1:8077/; }` does: it
//! strips the prefix from each request's path, adds `X-Forwarded-For` and
//! `X-Forwarded-Proto`, and passes the bytes both ways. One request per
//! connection (it asks the server to close after each), so that each
//! request's head is the one rewritten.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

/// A running proxy on a free loopback port; it lives as long as the test.
pub struct SubPathProxy {
    pub port: u16,
}

impl SubPathProxy {
    /// Serves `target`'s root at `prefix` (e.g. "/edgeclip").
    pub fn start(prefix: &'static str, target: u16) -> SubPathProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                std::thread::spawn(move || relay(client, prefix, target));
            }
        });
        SubPathProxy { port }
    }
}

fn relay(mut client: TcpStream, prefix: &str, target: u16) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.splitn(3, ' ');
    let (method, path, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(rest) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) else {
        let _ = client.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let mut out = format!("{method} {rest} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n");
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else { return };
    if server.write_all(out.as_bytes()).is_err() {
        return;
    }
    let (mut to_server, mut from_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut to_server, &mut server);
        let _ = server.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut from_server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upload.join();
}
