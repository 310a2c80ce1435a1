//! `nexus-bench`, run by `cargo xtask bench SUITE`. Each suite prints what it measured next to
//! a baseline measured in the same run, and the performance target it is held to.

mod channels_bench;
mod console_bench;
mod engine_bench;
mod gateway_bench;
mod jobs_bench;
mod knowledge_bench;
mod ledger_bench;
mod ledger_replicas;
mod memory_bench;
mod models_bench;
mod serve_process;
mod startup_bench;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let result = match args.first().map(String::as_str) {
        Some("ledger") => ledger_bench::run(quick),
        Some("ledger-replica") => ledger_replicas::child(&args[1..]),
        Some("engine") => engine_bench::run(quick),
        Some("console") => console_bench::run(quick),
        Some("channels") => channels_bench::run(quick),
        Some("gateway") => gateway_bench::run(quick, args.iter().any(|a| a == "--soak")),
        Some("knowledge") => knowledge_bench::run(quick),
        Some("models") => models_bench::run(quick),
        Some("jobs") => jobs_bench::run(quick),
        Some("memory") => memory_bench::run(quick),
        _ => {
            eprintln!(
                "usage: nexus-bench ledger|engine|gateway|knowledge|models|console|channels|jobs|memory [--quick] (gateway also --soak)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
