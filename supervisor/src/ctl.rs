//! `baton-supervisor ctl`: sends one request to a running supervisor and prints the answer
//! (a supervisorctl-like table for `status`, or JSON with `--json`). Exit codes are in
//! [`crate::exit`] so scripts and systemd's `ExecReload=` can rely on them.

use std::time::Duration;

use baton_proto::pb::baton::supervisor::v1 as pb;
use pb::control_request::Kind;

use crate::cli::{CtlAction, CtlArgs};
use crate::control;
use crate::exit;
use crate::generation::unix_now;
use crate::settings::ctl_socket_path;

/// Runs the `ctl` subcommand; returns the exit code.
pub async fn run(args: CtlArgs) -> u8 {
    let socket = match ctl_socket_path(
        args.control_socket,
        args.runtime_dir,
        args.config.as_deref(),
    ) {
        Ok(socket) => socket,
        Err(err) => {
            eprintln!("baton-supervisor ctl: {err}");
            return exit::USAGE;
        }
    };
    let (kind, json) = match args.action {
        CtlAction::Status { json } => (Kind::Status(pb::StatusRequest {}), json),
        CtlAction::Reload => (Kind::Reload(pb::ReloadRequest {}), false),
        CtlAction::Upgrade { binary } => {
            // The supervisor may run in another directory: send an absolute path.
            let binary = std::path::absolute(&binary).unwrap_or(binary);
            (
                Kind::Upgrade(pb::UpgradeRequest {
                    binary: binary.display().to_string(),
                }),
                false,
            )
        }
        CtlAction::Stop => (Kind::Stop(pb::StopRequest {}), false),
    };
    let is_status = matches!(kind, Kind::Status(_));
    let request = pb::ControlRequest { kind: Some(kind) };
    let reply = match control::call(&socket, &request, Duration::from_secs(args.timeout_s)).await {
        Ok(reply) => reply,
        Err(err) => {
            eprintln!("baton-supervisor ctl: cannot reach the supervisor: {err}");
            return exit::UNREACHABLE;
        }
    };
    if is_status {
        match reply.status.as_ref() {
            Some(status) if json => println!("{}", status_json(status, &reply.message)),
            Some(status) => print!("{}", status_table(status, unix_now())),
            None => println!("{}", reply.message),
        }
    } else if reply.ok {
        println!("{}", reply.message);
    } else {
        eprintln!("{}", reply.message);
    }
    if reply.ok {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// `status` as a table, one generation per line, like supervisorctl.
pub fn status_table(status: &pb::Status, now_unix: u64) -> String {
    let mut out = format!(
        "supervisor pid {}, crash restarts {}\n",
        status.supervisor_pid, status.restarts
    );
    if status.generations.is_empty() {
        out.push_str("no generations running\n");
    }
    for generation in &status.generations {
        out.push_str(&format!(
            "gen {:<4} {:<9} pid {:<8} uptime {:<10} {}\n",
            generation.epoch,
            generation.state,
            generation.pid,
            uptime(now_unix.saturating_sub(generation.started_unix)),
            generation.binary
        ));
        // What a starting generation is waiting for (its initialisation's STATUS=).
        if generation.state == "STARTING" && !generation.detail.is_empty() {
            out.push_str(&format!("         {}\n", generation.detail));
        }
    }
    match &status.last_reload {
        Some(reload) => out.push_str(&format!(
            "last reload: {} {} ago (generation {}): {}\n",
            if reload.ok { "OK" } else { "FAILED" },
            uptime(now_unix.saturating_sub(reload.at_unix)),
            reload.epoch,
            reload.message
        )),
        None => out.push_str("last reload: none\n"),
    }
    out
}

/// `status --json`.
pub fn status_json(status: &pb::Status, summary: &str) -> serde_json::Value {
    serde_json::json!({
        "supervisor_pid": status.supervisor_pid,
        "summary": summary,
        "restarts": status.restarts,
        "generations": status.generations.iter().map(|g| serde_json::json!({
            "epoch": g.epoch,
            "pid": g.pid,
            "state": g.state,
            "started_unix": g.started_unix,
            "uptime_s": unix_now().saturating_sub(g.started_unix),
            "binary": g.binary,
            "detail": g.detail,
        })).collect::<Vec<_>>(),
        "last_reload": status.last_reload.as_ref().map(|r| serde_json::json!({
            "at_unix": r.at_unix,
            "ok": r.ok,
            "message": r.message,
            "epoch": r.epoch,
        })),
    })
}

/// `H:MM:SS`, as supervisorctl prints uptimes.
fn uptime(seconds: u64) -> String {
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_generations_and_last_reload() {
        let status = pb::Status {
            supervisor_pid: 10,
            generations: vec![pb::Generation {
                epoch: 2,
                pid: 99,
                state: "LIVE".into(),
                started_unix: 1000,
                binary: "/usr/bin/baton".into(),
                detail: String::new(),
            }],
            last_reload: Some(pb::ReloadResult {
                at_unix: 1000,
                ok: false,
                message: "bad config".into(),
                epoch: 3,
            }),
            restarts: 1,
        };
        let table = status_table(&status, 1000 + 3725);
        assert!(
            table.contains("gen 2    LIVE      pid 99       uptime 1:02:05"),
            "{table}"
        );
        assert!(table.contains("last reload: FAILED"), "{table}");
        assert!(table.contains("bad config"), "{table}");
        let json = status_json(&status, "generation 2 live");
        assert_eq!(json["generations"][0]["state"], "LIVE");
        assert_eq!(json["last_reload"]["ok"], false);
    }
}
