//! `trainer serve` run as a child process on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::path_str;

/// A server started by `bash -c` (for its limits), killed when dropped.
pub struct Served {
    child: Child,
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `trainer serve` on a free port with `flags`, under the shell limits of
    /// `ulimit` (e.g. `ulimit -Sn 256`), stderr into `log`.
    pub fn start(run: &Path, ulimit: &str, flags: &[&str], log: &Path) -> Self {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!(r#"{ulimit}; exec "$0" "$@""#))
            .arg(env!("CARGO_BIN_EXE_trainer"))
            .args(["serve", "--run", path_str(run), "--addr", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"));
        let mut child = command.spawn().expect("the server starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut addr = None;
        for line in stdout.lines() {
            let line = line.expect("a line");
            if let Some(found) = line.strip_prefix("listening on http://") {
                addr = Some(found.to_string());
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| {
            panic!("no listening line; log: {:?}", std::fs::read_to_string(log))
        });
        Self { child, addr }
    }

    /// Sends `request` (without the Host header and the blank line) on a new
    /// connection and reads the whole answer.
    pub fn ask(&self, head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let request = format!(
            "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        stream.write_all(body).expect("send body");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.ask(&format!("GET {path} HTTP/1.1"), b"")
    }
}
