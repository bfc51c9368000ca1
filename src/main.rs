//! The `graphsec` binary: parse the command line, set up logging, run.

use clap::Parser;
use graphsec::config::{Cli, Command, LogFormat};

/// mimalloc instead of glibc's allocator: a request allocates and frees many small buffers
/// (headers, JSON, rows), and glibc's `malloc`/`free` (with `malloc_consolidate`) took about 8%
/// of a GET by id's CPU (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The model (Graph's metadata and graphsec's overlay, embedded) loads once, before anything
    // uses it; an error here is a bad build, reported instead of served.
    if let Err(e) = graphsec::model::catalog::init() {
        eprintln!("graphsec: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match cli.command {
        Command::Token(args) => block_on("graphsec token", async move {
            println!("{}", args.run().await?);
            Ok(())
        }),
        Command::Serve(args) => {
            init_tracing(&args.log, args.log_format);
            // Every connection is a file descriptor: raise the soft limit as far as the hard
            // limit allows (the common soft 1,024 is below the default --max-connections plus
            // pending TLS handshakes), so a burst of sockets cannot make accept fail (EMFILE).
            match rlimit::increase_nofile_limit(u64::MAX) {
                Ok(n) => tracing::debug!(limit = n, "open files limit"),
                Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
            }
            block_on("graphsec", graphsec::server::run(*args))
        }
        Command::Export(args) => {
            init_tracing(&args.log, LogFormat::Text);
            block_on("graphsec export", graphsec::ops::commands::export(&args))
        }
        Command::Import(args) => {
            init_tracing(&args.log, LogFormat::Text);
            block_on("graphsec import", graphsec::ops::commands::import(&args))
        }
    }
}

/// Runs a command on a multi-threaded runtime; its error becomes the exit status.
fn block_on(
    name: &str,
    fut: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
