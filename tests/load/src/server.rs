//! The server side of a run: the local stack in this process, in a child
//! process of its own (`TINCAN_LOAD_SPAWN=1`: this binary run as
//! `tincan-load serve`), or an external one (`TINCAN_LOAD_TARGET`); and the
//! server process's CPU time and RSS, read from `/proc`.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::{bail, Context as _};
use tincan_local::{LocalConfig, LocalStack};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The token secret of the stacks this tool starts.
pub(crate) const SECRET: &str = "load-tool-secret-load-tool-secret-xx";

/// A stack configured for a load run of `sockets` sockets, all from
/// 127.0.0.1, with tokens minted by this tool for users never registered.
pub(crate) fn load_config(
    sockets: usize,
    data_dir: &std::path::Path,
) -> anyhow::Result<LocalConfig> {
    let mut config = LocalConfig::from_env()?;
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.management_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    // Every load client comes from 127.0.0.1.
    config.listener.max_conns_per_ip = config.listener.max_conns_per_ip.max(sockets + 16);
    config.listener.max_conns = config.listener.max_conns.max(sockets + 64);
    config.data_dir = data_dir.into();
    config.jwt_secret = Some(SECRET.into());
    config.users_must_exist = false;
    config.turn_addr = None;
    config.room_max = Some(8);
    Ok(config)
}

/// Raises this process's open-file limit to its hard limit (a child
/// inherits it); returns the soft limit in force.
pub(crate) fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// `tincan-load serve SOCKETS`: runs the stack, prints its `ws://` base on
/// one line of stdout, and serves until stdin closes.
pub(crate) async fn serve(sockets: usize) -> anyhow::Result<()> {
    raise_nofile();
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(load_config(sockets, dir.path())?).await?;
    println!("ws://{}", stack.addr);
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    stack.stop().await;
    Ok(())
}

/// A stack in a child process, stopped when dropped.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Spawned {
    pub(crate) async fn start(sockets: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg(sockets.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the server process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let base = line.trim().to_owned();
        if !base.starts_with("ws://") {
            bail!("server process said {base:?}");
        }
        Ok(Self { child, base })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Closes its stdin (it stops) and waits for it.
    pub(crate) async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await;
    }
}

/// CPU time and resident memory of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// User plus system time, seconds.
    pub(crate) cpu_secs: f64,
    /// Resident set, KiB.
    pub(crate) rss_kib: u64,
}

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// Process `pid`'s usage now, from `/proc`.
pub(crate) fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field
    // 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Usage {
        cpu_secs: (utime + stime) as f64 / TICKS,
        rss_kib,
    })
}
