//! Server binaries (`pullcheck serve`, `docker-registry serve`) as child processes that cannot
//! outlive the test process, each started on a port that was free a moment ago.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{eventually, free_port};

/// Runs `$0 "$@"` (the program and its arguments) in the background with its output appended to
/// `$PULLCHECK_TEST_LOG`, prints its pid, and exits with its status. A watcher blocks reading
/// the wrapper's stdin (kept as fd 3, because a background list gets /dev/null as stdin): the
/// test process holds the only write end, so if it dies without dropping the [`Process`]
/// (abort, SIGKILL) the read returns and the program is killed instead of lingering.
const WRAPPER: &str = r#"
exec 3<&0
"$0" "$@" </dev/null >>"$PULLCHECK_TEST_LOG" 2>&1 3<&- &
pc=$!
echo "$pc"
( read -r _ <&3; kill -9 "$pc" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
watch=$!
exec 3<&-
wait "$pc"
status=$?
kill "$watch" 2>/dev/null
exit "$status"
"#;

/// How long [`Process::kill`] waits for the wrapper to reap the killed program before it kills
/// the wrapper itself.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// A program started through [`WRAPPER`]. Dropping it kills the program and reaps the wrapper.
pub struct Process {
    /// pid of the program itself (not of the wrapper shell).
    pid: u32,
    wrapper: Option<Child>,
    stdin: Option<ChildStdin>,
    exit: Option<ExitStatus>,
    log_path: PathBuf,
}

impl Process {
    /// `/bin/sh -c WRAPPER program`: add the program's arguments and environment, then
    /// [`Process::spawn`] it.
    pub fn command(program: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(WRAPPER).arg(program);
        command
    }

    /// Spawns `command` (from [`Process::command`]), its program's output going to `log_path`,
    /// which is emptied first.
    pub fn spawn(mut command: Command, log_path: &Path) -> Process {
        let _ = std::fs::remove_file(log_path);
        let mut wrapper = command
            .env("PULLCHECK_TEST_LOG", log_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the wrapper shell");
        let stdin = wrapper.stdin.take();
        let mut line = String::new();
        BufReader::new(wrapper.stdout.take().expect("wrapper stdout"))
            .read_line(&mut line)
            .expect("read the program's pid");
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the wrapper printed {line:?}, not a pid"));
        Process {
            pid,
            wrapper: Some(wrapper),
            stdin,
            exit: None,
            log_path: log_path.to_path_buf(),
        }
    }

    /// Everything the program wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The exit status, if the program has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(wrapper) = self.wrapper.as_mut() {
                if let Ok(Some(status)) = wrapper.try_wait() {
                    self.exit = Some(status);
                }
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the program to exit (async: the test's runtime keeps running).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        eventually(timeout, async || self.try_exit().is_some()).await;
        self.exit
    }

    /// Waits up to `within` for `ready` to hold. `Err` holds the log when the program exits
    /// first or `ready` never holds.
    pub async fn wait_ready(
        &mut self,
        within: Duration,
        mut ready: impl AsyncFnMut(&Process) -> bool,
    ) -> Result<(), String> {
        let done = eventually(within, async || {
            self.try_exit().is_some() || ready(self).await
        })
        .await;
        if self.try_exit().is_some() {
            Err(self.log())
        } else if done {
            Ok(())
        } else {
            Err(format!("(not ready after {within:?})\n{}", self.log()))
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`, ...) to the program.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("run kill");
        assert!(
            status.success() || self.exit.is_some(),
            "kill {signal} {} failed",
            self.pid
        );
    }

    /// SIGTERM, then up to `grace` for the program to exit by itself, then [`Self::kill`].
    pub fn terminate(&mut self, grace: Duration) {
        if self.try_exit().is_none() {
            self.signal("-TERM");
            let _ = self.wait_exit_blocking(grace);
        }
        self.kill();
    }

    /// SIGKILL now (closing the pipe is the watcher's signal, and the watcher owns no other
    /// process) and reap the wrapper. Does nothing the second time.
    pub fn kill(&mut self) {
        drop(self.stdin.take());
        if self.wait_exit_blocking(KILL_TIMEOUT).is_none() {
            if let Some(wrapper) = self.wrapper.as_mut() {
                let _ = wrapper.kill();
                let _ = wrapper.wait();
            }
        }
        self.wrapper = None;
    }

    /// [`Self::wait_exit`] for `Drop`, which cannot await.
    fn wait_exit_blocking(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.wrapper.is_some() && self.try_exit().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.exit
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `start` with a port that was free a moment ago, and with another one (five tries in all)
/// while the log it fails with contains `port_taken`: another process may bind the port between
/// [`free_port`] and the program's own bind. `Err` holds the last log.
pub async fn on_a_free_port<T>(
    port_taken: &str,
    mut start: impl AsyncFnMut(u16) -> Result<T, String>,
) -> Result<T, String> {
    let mut last_log = String::new();
    for _attempt in 0..5 {
        match start(free_port()).await {
            Ok(started) => return Ok(started),
            Err(log) if log.contains(port_taken) => last_log = log,
            Err(log) => return Err(log),
        }
    }
    Err(last_log)
}
