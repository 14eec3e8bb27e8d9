//! The differential corpus in CI: runs every area of `tests/differential/cases/` against the
//! binary under test and compares with the fixtures recorded from Envoy 1.40. Fails on a
//! DIFF not listed in `known_differences.yaml`, and on a listed case that now matches (so the
//! list stays true). Against Envoy itself (`BATON_BIN=.../envoy`) every case must be SAME,
//! which checks that the fixtures are stable.

use baton_tests::differential::{compare, run, spec};
use baton_tests::{is_envoy, proxy_binary};

async fn check_area(area: &str) -> anyhow::Result<()> {
    let spec = spec::load_area_named(area)?;
    let options = run::RunOptions {
        binary: proxy_binary(),
        strict_start: false,
        filter: None,
    };
    let outcomes = run::run_area(&spec, &options).await?;
    let expected = compare::read_fixture(area)?;
    let known = if is_envoy() {
        Default::default()
    } else {
        compare::read_known_differences()?
    };
    let verdicts = compare::compare(&expected, &outcomes, &known);
    println!("{}", compare::report(&verdicts));
    let problems = compare::problems(&verdicts);
    anyhow::ensure!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

macro_rules! areas {
    ($($area:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $area() -> anyhow::Result<()> {
                check_area(stringify!($area)).await
            }
        )*

        /// Every area file has a test above, and every known difference names a case.
        #[test]
        fn corpus_is_consistent() -> anyhow::Result<()> {
            let tested = [$(stringify!($area)),*];
            let mut names = std::collections::BTreeSet::new();
            for path in spec::area_files()? {
                let area = spec::load_area(&path)?;
                anyhow::ensure!(
                    tested.contains(&area.area.as_str()),
                    "area {} has no test in tests/differential.rs",
                    area.area
                );
                for case in &area.cases {
                    names.insert(format!("{}/{}", area.area, case.name));
                }
            }
            for name in compare::read_known_differences()?.keys() {
                anyhow::ensure!(names.contains(name), "known difference {name} names no case");
            }
            Ok(())
        }
    };
}

areas!(
    access_log_operators,
    admin,
    connection_handling,
    direct_responses,
    forwarding_headers,
    gateway_hcm_options,
    header_formatters,
    limits,
    local_replies,
    malformed_http1,
    malformed_http2,
    proxy_protocol,
    redirects,
    rewrites,
    route_match_fields,
    routing,
    stats,
    tcp_proxy,
    tls_downstream,
    tls_upstream,
    timeouts,
    tracing_decisions,
    upgrades,
);
