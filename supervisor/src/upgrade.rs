//! Checks of an upgrade's new binary before any generation runs it: it must execute and
//! print its version (`--version`), and accept the current configuration
//! (`<user args> --mode validate`). Runs off the supervisor loop; the outcome comes back
//! as [`Event::UpgradeChecked`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use baton_proto::pb::baton::supervisor::v1::ControlReply;
use tokio::sync::{mpsc, oneshot};

use crate::supervisor::Event;

/// Bound for each check command.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the checks of `binary`; the result is sent to `events`.
pub fn spawn_checks(
    binary: PathBuf,
    baton_args: Vec<String>,
    reply: oneshot::Sender<ControlReply>,
    events: mpsc::Sender<Event>,
) {
    tokio::spawn(async move {
        let result = check(&binary, &baton_args).await;
        let _ = events
            .send(Event::UpgradeChecked {
                binary,
                result,
                reply,
            })
            .await;
    });
}

/// Runs both checks; `Err` names the first failure.
pub async fn check(binary: &Path, baton_args: &[String]) -> Result<(), String> {
    if !binary.is_file() {
        return Err(format!(
            "upgrade binary {} does not exist",
            binary.display()
        ));
    }
    let version = run(binary, &["--version".to_owned()]).await?;
    let version = version.lines().next().unwrap_or("").trim().to_owned();
    if version.is_empty() {
        return Err(format!("{} --version printed nothing", binary.display()));
    }
    tracing::info!(binary = %binary.display(), %version, "upgrade binary version");
    let mut validate = baton_args.to_vec();
    validate.extend(["--mode".to_owned(), "validate".to_owned()]);
    run(binary, &validate).await?;
    Ok(())
}

/// Runs `binary args`, bounded; `Ok(stdout)` on exit 0, else the last stderr line.
async fn run(binary: &Path, args: &[String]) -> Result<String, String> {
    let command_text = format!("{} {}", binary.display(), args.join(" "));
    let child = tokio::process::Command::new(binary)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {command_text}: {e}"))?;
    let output = match tokio::time::timeout(CHECK_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("{command_text}: {err}")),
        Err(_) => {
            return Err(format!(
                "{command_text} did not exit within {CHECK_TIMEOUT:?}"
            ))
        }
    };
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output");
    Err(format!(
        "{command_text} failed ({}): {}",
        output.status,
        reason.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_missing_and_failing_binaries() {
        let err = check(Path::new("/nonexistent/baton"), &[])
            .await
            .expect_err("missing");
        assert!(err.contains("does not exist"), "{err}");
        // `false` runs but exits 1 on --version.
        let err = check(Path::new("/bin/false"), &[])
            .await
            .expect_err("fails");
        assert!(err.contains("--version failed"), "{err}");
    }
}
