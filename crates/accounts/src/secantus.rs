//! Test support: a SecantusDB server (MongoDB wire protocol) started and
//! stopped by the test itself, on 127.0.0.1 with a port the OS picks.
//!
//! The server prints `listening on 127.0.0.1:PORT` when ready; we read the
//! port from its output and keep draining the output so it never blocks.
//! The binary is `secantusd-py` (override with `TINCAN_SECANTUSD`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running SecantusDB server; killed on drop.
#[derive(Debug)]
pub struct Secantus {
    child: Option<Child>,
    port: u16,
    storage: String,
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl Secantus {
    /// Starts a server with in-memory storage on a free port.
    pub fn start() -> std::io::Result<Self> {
        Self::spawn(":memory:".to_owned(), 0)
    }

    /// Starts a server keeping its files in `dir`, so a restart (see
    /// [`Secantus::restart`]) finds the data again.
    pub fn start_on_disk(dir: &Path) -> std::io::Result<Self> {
        Self::spawn(dir.to_string_lossy().into_owned(), 0)
    }

    fn spawn(storage: String, port: u16) -> std::io::Result<Self> {
        let bin = std::env::var_os("TINCAN_SECANTUSD")
            .map_or_else(|| PathBuf::from("secantusd-py"), PathBuf::from);
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--storage-path", &storage, "--log-level", "INFO"])
            // On disk, make every commit durable, as a journaled mongod's is:
            // the test kills the server without warning.
            .args((storage != ":memory:").then_some("--sync-on-commit"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                other(format!(
                    "cannot run {}: {e} (run tests/setup.sh)",
                    bin.display()
                ))
            })?;
        let (tx, rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(port) = parse_port(&line) {
                        let _ = tx.send(port);
                    }
                }
            });
        }
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => Ok(Self {
                child: Some(child),
                port,
                storage,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(other(format!("{} did not report a port", bin.display())))
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for it.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage; retries for a while in
    /// case the port is still held.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let mut last = None;
        for _ in 0..20 {
            match Self::spawn(self.storage.clone(), self.port) {
                Ok(mut fresh) => {
                    self.child = fresh.child.take();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last.unwrap_or_else(|| other("restart failed".to_owned())))
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on ").nth(1)?;
    let port = rest.trim().rsplit(':').next()?;
    port.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_is_read_from_the_log_line() {
        let line =
            "2026-01-01 00:00:00,000 INFO secantus.server: secantus listening on 127.0.0.1:40773";
        assert_eq!(super::parse_port(line), Some(40773));
        assert_eq!(super::parse_port("nothing here"), None);
    }
}
