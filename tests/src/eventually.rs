//! Bounded waiting: `eventually` retries a check until it yields a value or a deadline passes.
//! Deadlines here are safety bounds for hung processes, never performance assertions.

use std::future::Future;
use std::time::Duration;

/// Bound for a proxy to start (admin file written, `/ready` 200) or a one-shot command to exit.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound for one client I/O step (connect, write, read one response).
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls `check` every 20 ms until it returns `Ok(Some(value))`, or fails with the last
/// error (or "condition never held") once `timeout` has passed.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout(IO_TIMEOUT, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => {}
            Ok(Err(err)) => last_error = Some(err),
            Err(_) => last_error = Some(anyhow::anyhow!("check timed out after {IO_TIMEOUT:?}")),
        }
        if tokio::time::Instant::now() > deadline {
            return Err(last_error
                .unwrap_or_else(|| anyhow::anyhow!("condition never held"))
                .context(format!("not true within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
