//! Process liveness: a (pid, start time) pair identifies one process even after pid reuse.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The identity of a process: pid plus the kernel's start time (clock ticks since boot,
/// field 22 of `/proc/<pid>/stat`). A recycled pid has a different start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (0 when unknown).
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of the calling process.
    pub fn current() -> Self {
        let pid = std::process::id();
        ProcessIdentity {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
        }
    }

    /// Whether this exact process is still running (not a later process reusing the pid).
    ///
    /// Zombies count as dead: a SIGKILLed child that its parent has not reaped yet no
    /// longer runs code, so its gauges must vanish and its locks be recoverable.
    pub fn is_alive(&self) -> bool {
        if self.pid == 0 || self.pid > i32::MAX as u32 {
            return false;
        }
        match kill(Pid::from_raw(self.pid as i32), None) {
            // EPERM: exists but owned by someone else; still check the start time.
            Ok(()) | Err(Errno::EPERM) => {}
            Err(_) => return false,
        }
        match read_stat(self.pid) {
            Some((state, start)) => {
                state != 'Z' && state != 'X' && (self.start_time == 0 || start == self.start_time)
            }
            // /proc unavailable: fall back to kill(pid, 0) alone.
            None => true,
        }
    }
}

/// Start time of `pid` in clock ticks since boot, from `/proc/<pid>/stat`.
pub fn process_start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|(_, start)| start)
}

/// Returns (state, start time) from `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or ')', so
    // parse from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Fields after the comm start at field 3 (state); start time is field 22.
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_has_a_start_time() {
        let me = ProcessIdentity::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
    }

    #[test]
    fn recycled_pid_with_other_start_time_is_dead() {
        let mut me = ProcessIdentity::current();
        me.start_time += 1;
        assert!(!me.is_alive());
    }

    #[test]
    fn nonexistent_pid_is_dead() {
        let ghost = ProcessIdentity {
            pid: i32::MAX as u32 - 1,
            start_time: 1,
        };
        assert!(!ghost.is_alive());
        assert!(!ProcessIdentity {
            pid: 0,
            start_time: 0
        }
        .is_alive());
    }
}
