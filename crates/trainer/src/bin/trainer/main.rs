//! The `trainer` command line: `train` (the default), `sweep`, `eval`, `predict`,
//! `explain`, `summary`, `serve`, `bench`, `export` and `import`, each in `commands/`.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Burn allocates and frees a buffer for nearly every tensor operation, across the
/// training thread and the metric thread; mimalloc serves that pattern faster and
/// steadier than the system allocator (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            eprintln!("{}", cli::one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
        Err(help_or_version) => help_or_version.exit(),
    };
    let outcome = match cli.command.unwrap_or(Command::Train(cli.train)) {
        Command::Train(args) => commands::train::exec(args),
        Command::Sweep(args) => commands::sweep::exec(args),
        Command::Eval(args) => commands::eval::exec(args),
        Command::Predict(args) => commands::predict::exec(args),
        Command::Explain(args) => commands::explain::exec(args),
        Command::Summary(args) => commands::summary::exec(args),
        Command::Serve(args) => commands::serve::exec(args),
        Command::Bench(args) => commands::bench::exec(args),
        Command::Export(args) => commands::export::exec(args),
        Command::Import(args) => commands::import::exec(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output has gone (`trainer eval | head -3`): stop quietly,
        // with the status a shell reports for a tool stopped by SIGPIPE.
        Err(error) if cli::is_closed_stdout(&error) => ExitCode::from(141),
        Err(error) => {
            eprintln!("error: {}", cli::with_hint(&error));
            ExitCode::FAILURE
        }
    }
}
