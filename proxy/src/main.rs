//! `baton`: parses the Envoy-compatible command line and runs the server; `baton stats`
//! reads a stats region offline.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("stats") {
        return match baton_proxy::server::stats_cmd::run(&args[1..]) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("baton stats: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let opts = match baton_proxy::server::cli::Options::parse_envoy_args(args) {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(e) = baton_proxy::server::cli_checks::check(&opts) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    match baton_proxy::server::run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::from(1)
        }
    }
}
