//! `baton-differential`: records Envoy's answers to the differential corpus into fixtures, or
//! compares a binary (Baton by default) against them and prints SAME / DIFF per case and a
//! score. See tests/README.md ("Differential corpus").
//!
//! ```text
//! baton-differential record  [--area NAME] [--filter TEXT]              # $ENVOY_BIN
//! baton-differential compare [--area NAME] [--filter TEXT] [--bin PATH] # Baton
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use baton_tests::differential::{compare, run, spec};

const DEFAULT_ENVOY: &str = "/work/scratch/ref/bin/envoy";

struct Args {
    mode: String,
    area: Option<String>,
    filter: Option<String>,
    bin: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    if mode != "record" && mode != "compare" {
        bail!(
            "usage: baton-differential record|compare [--area NAME] [--filter TEXT] [--bin PATH]"
        );
    }
    let mut parsed = Args {
        mode,
        area: None,
        filter: None,
        bin: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--area" => parsed.area = Some(value),
            "--filter" => parsed.filter = Some(value),
            "--bin" => parsed.bin = Some(PathBuf::from(value)),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(parsed)
}

/// Baton next to this binary (`target/<profile>/baton`), unless `BATON_BIN` says otherwise.
fn baton_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BATON_BIN") {
        return PathBuf::from(bin);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("baton")))
        .unwrap_or_else(|| PathBuf::from("baton"))
}

fn version_of(binary: &PathBuf) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    match real_main().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("baton-differential: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main() -> anyhow::Result<ExitCode> {
    let args = parse_args()?;
    let areas = match &args.area {
        Some(name) => vec![spec::load_area_named(name)?],
        None => spec::area_files()?
            .iter()
            .map(|p| spec::load_area(p))
            .collect::<Result<_, _>>()?,
    };
    let recording = args.mode == "record";
    let binary = match (&args.bin, recording) {
        (Some(bin), _) => bin.clone(),
        (None, true) => std::env::var_os("ENVOY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ENVOY)),
        (None, false) => baton_binary(),
    };
    let options = run::RunOptions {
        binary: binary.clone(),
        strict_start: recording,
        filter: args.filter.clone(),
    };
    // Envoy against its own fixtures must be SAME everywhere: no known differences apply.
    let known = if binary.to_string_lossy().contains("envoy") {
        Default::default()
    } else {
        compare::read_known_differences()?
    };
    let mut verdicts = Vec::new();
    for area in &areas {
        let outcomes = run::run_area(area, &options).await?;
        if recording {
            // With a filter, only the cases run are replaced.
            let mut merged = if args.filter.is_some() {
                compare::read_fixture(&area.area)?
            } else {
                run::Outcomes::new()
            };
            let count = outcomes.len();
            merged.extend(outcomes);
            compare::write_fixture(&area.area, &version_of(&binary), &merged)?;
            println!("recorded {count} cases of {}", area.area);
        } else {
            let expected = compare::read_fixture(&area.area)?;
            let area_verdicts = compare::compare(&expected, &outcomes, &known);
            print!("{}", compare::report(&area_verdicts));
            verdicts.extend(area_verdicts);
        }
    }
    if recording {
        return Ok(ExitCode::SUCCESS);
    }
    let same = verdicts.iter().filter(|v| v.difference.is_none()).count();
    println!(
        "\n{} {same}/{} SAME ({} known differences listed)",
        binary.display(),
        verdicts.len(),
        verdicts.iter().filter(|v| v.known.is_some()).count()
    );
    let problems = compare::problems(&verdicts);
    for problem in &problems {
        println!("PROBLEM {problem}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
