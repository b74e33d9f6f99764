//! The `sluice` command line: run, validate, graph and plan pipelines.

use clap::{Parser, Subcommand};
use sluice_dataflow::config::{self, Config};
use sluice_dataflow::topology::RunState;
use sluice_dataflow::{api, graph, plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_CONFIG: &str = "configs/default.toml";

const EXAMPLES: &str = "\
Examples:
  sluice run                          run configs/default.toml
  sluice run pipeline.toml            run a pipeline until SIGINT/SIGTERM (drains, exits 0)
  sluice run filter.toml < app.log    use a stdin-sourced pipeline as a filter
  sluice validate configs/*.toml      check files; every error names file:line and key
  sluice plan pipeline.toml           show which component runs on which core, and the rings
  sluice graph pipeline.toml | dot -Tsvg > graph.svg

A pipeline is a TOML file of [sources.ID], [transforms.ID] and [sinks.ID] tables joined by
`inputs`; see README.md for every component and option.

Environment:
  SLUICE_LOG    log filter (default \"info\"), e.g. SLUICE_LOG=debug or sluice=trace
  SLUICE_HUGE_PAGES=1  keep transparent huge pages (off by default: they cost memory and
                page zeroing when batches are freed on another thread than their own)";

/// Sluice: a thread-per-core log aggregation engine.
///
/// Describe a pipeline as a dataflow graph in TOML; Sluice compiles it into one pipeline copy
/// per CPU core, joined by bounded rings, and runs it.
#[derive(Parser)]
#[command(name = "sluice", version, about, long_about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline (default: configs/default.toml) until its sources end or a signal.
    ///
    /// SIGINT or SIGTERM stops the sources, waits until every batch in flight reached its
    /// sinks (up to engine.shutdown_timeout), and exits 0. A second signal exits at once.
    Run {
        /// The pipeline file.
        file: Option<PathBuf>,
    },
    /// Check pipeline files; exits 1 if any has an error, listing all of them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the component graph in Graphviz DOT (pipe it into `dot -Tsvg`).
    Graph { file: PathBuf },
    /// Print the placement: per core the fused operator chains, the rings and their
    /// capacities, and the connector threads.
    Plan { file: PathBuf },
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    if std::env::var_os("SLUICE_HUGE_PAGES").is_none() {
        sluice_engine::memory::disable_transparent_huge_pages();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => {
            let mut failed = 0;
            for f in &files {
                match config::load(f) {
                    Ok(c) => println!(
                        "ok: {} ({} sources, {} transforms, {} sinks)",
                        f.display(),
                        c.sources.len(),
                        c.transforms.len(),
                        c.sinks.len()
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if failed > 0 {
                eprintln!("{failed} of {} file(s) have errors", files.len());
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Graph { file } => match load(&file) {
            Ok(c) => {
                print!("{}", graph::to_dot(&c));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Plan { file } => match load(&file) {
            Ok(c) => match plan::placement(&c, &sluice_engine::runtime::online_cores()) {
                Ok(cores) => {
                    print!("{}", plan::build(&c, cores).render());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    ExitCode::from(1)
                }
            },
            Err(code) => code,
        },
        Command::Run { file } => {
            let file = file.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            if !file.exists() && file == Path::new(DEFAULT_CONFIG) {
                eprintln!("error: no pipeline given and {DEFAULT_CONFIG} is not here; run from the Sluice checkout or pass a file: sluice run FILE");
                return ExitCode::from(2);
            }
            match load(&file) {
                Ok(c) => run(&file, c),
                Err(code) => code,
            }
        }
    }
}

fn run(file: &Path, config: Config) -> ExitCode {
    let cores = match plan::placement(&config, &sluice_engine::runtime::online_cores()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    let plan = plan::build(&config, cores);
    let state = Arc::new(RunState {
        registry: sluice_engine::metrics::Registry::new(),
        lifecycle: sluice_engine::shutdown::Lifecycle::new(),
        ready: AtomicBool::new(false),
        dead_letter_tap: None,
    });
    let signal = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while draining exits at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, signal.clone());
        let _ = signal_hook::flag::register(sig, signal.clone());
    }
    if let Some(a) = &config.api {
        match api::start(a.address, state.clone()) {
            Ok(addr) => tracing::info!("API listening on http://{addr}"),
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                return ExitCode::from(1);
            }
        }
    }
    tracing::info!(
        "running {} on {} shard(s): {} sources, {} transforms, {} sinks",
        file.display(),
        plan.shards,
        config.sources.len(),
        config.transforms.len(),
        config.sinks.len()
    );
    match sluice_dataflow::topology::run(&config, &plan, state, signal.clone()) {
        Ok(outcome) => {
            tracing::info!(
                "stopped after {:.2} s; sources read {} events{}",
                outcome.elapsed.as_secs_f64(),
                outcome.events_in,
                if outcome.clean {
                    ""
                } else {
                    " (drain timed out)"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
