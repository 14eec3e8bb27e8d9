//! `baton-supervisor`: see the library's docs; this only maps its result to the exit code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(baton_supervisor::main_entry())
}
