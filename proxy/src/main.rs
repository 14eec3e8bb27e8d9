//! `baton`: parses the Envoy-compatible command line and runs the server.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let opts = match baton_proxy::server::cli::Options::try_parse() {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match baton_proxy::server::run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::from(1)
        }
    }
}
