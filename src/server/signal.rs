//! Shutdown on SIGTERM/SIGINT, with a second signal as an escape hatch.

use tokio::sync::oneshot;

/// Exit codes of a process killed by the signal (128 + signal number), as shells report them.
const EXIT_SIGINT: i32 = 130;
const EXIT_SIGTERM: i32 = 143;

/// Resolves on the first SIGTERM or SIGINT; a second one sends the exit code of a process killed by
/// it (130 for SIGINT, 143 for SIGTERM) to `abort`, for the caller to stop draining and exit with.
///
/// The kubelet sends SIGTERM at pod deletion and SIGKILL after the grace period; the first signal starts a
/// drain, and a second (an impatient Ctrl-C) should not have to wait for it.
pub async fn shutdown_signal(abort: oneshot::Sender<i32>) {
    match Signals::register() {
        Ok(signals) => signals.wait_then_arm_exit(abort).await,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM/SIGINT; falling back to Ctrl-C only");
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot listen for Ctrl-C either; shutdown only by SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first signal, then leaves a task behind that reports the second.
    async fn wait_then_arm_exit(mut self, abort: oneshot::Sender<i32>) {
        let first = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = first,
            "shutdown requested; draining (send the signal again to exit at once)"
        );
        tokio::spawn(async move {
            let (name, code) = tokio::select! {
                _ = self.term.recv() => ("SIGTERM", EXIT_SIGTERM),
                _ = self.int.recv() => ("SIGINT", EXIT_SIGINT),
            };
            tracing::warn!(
                signal = name,
                "second shutdown signal; exiting without draining"
            );
            let _ = abort.send(code);
        });
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn wait_then_arm_exit(self, abort: oneshot::Sender<i32>) {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutdown requested; draining (press Ctrl-C again to exit at once)");
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    let _ = abort.send(EXIT_SIGINT);
                }
            });
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    //! Signals are process-wide, so each case runs in a child process: this test binary re-executed to
    //! run only `signal_child`, which reports progress on stdout.

    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    const CHILD_ENV: &str = "PULLCHECK_SIGNAL_CHILD";

    /// Runs only inside the child process (ignored, selected explicitly by the parent).
    #[test]
    #[ignore = "helper process for the signal tests"]
    fn signal_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let signals = Signals::register().expect("register");
            println!("child:armed");
            let (abort, aborted) = oneshot::channel();
            signals.wait_then_arm_exit(abort).await;
            println!("child:first-signal-handled");
            // Stay alive until the second signal asks to end the process; the caller exits,
            // as `main` does with the code `run` returns.
            if let Ok(Ok(code)) =
                tokio::time::timeout(std::time::Duration::from_secs(20), aborted).await
            {
                std::process::exit(code);
            }
            println!("child:still-alive");
        });
    }

    fn kill(pid: u32, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    fn run_child(first: &str, second: &str) -> (Vec<String>, Option<i32>) {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "server::signal::tests::signal_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let mut wait_for = |marker: &str, seen: &mut Vec<String>| {
            for line in lines.by_ref() {
                let line = line.expect("read child stdout");
                let found = line.contains(marker);
                seen.push(line);
                if found {
                    return;
                }
            }
            panic!("child ended before printing {marker}: {seen:?}");
        };
        wait_for("child:armed", &mut seen);
        kill(pid, first);
        wait_for("child:first-signal-handled", &mut seen);
        kill(pid, second);
        let status = child.wait().expect("wait child");
        seen.extend(lines.map_while(Result::ok));
        (seen, status.code())
    }

    #[test]
    fn first_sigterm_resolves_and_second_sigterm_exits_143() {
        let (seen, code) = run_child("-TERM", "-TERM");
        assert_eq!(code, Some(143), "output: {seen:?}");
        assert!(!seen.iter().any(|l| l.contains("child:still-alive")));
    }

    #[test]
    fn first_sigint_resolves_and_second_sigint_exits_130() {
        let (seen, code) = run_child("-INT", "-INT");
        assert_eq!(code, Some(130), "output: {seen:?}");
    }

    #[test]
    fn second_signal_exit_code_follows_the_second_signal() {
        let (seen, code) = run_child("-TERM", "-INT");
        assert_eq!(code, Some(130), "output: {seen:?}");
    }
}
