//! The `trainer` command line: `train` (the default), `sweep`, `eval`, `predict`,
//! `explain`, `summary`, `serve`, `bench`, `export` and `import`, each in `commands/`.

mod advice;
mod args;
mod cli;
mod commands;
mod process;

use std::process::ExitCode;

use clap::FromArgMatches;
use trainer::console::escape_controls;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    process::reserve_heap();
    let parsed = cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            let help = advice::help_for(std::env::args().skip(1));
            let line = advice::one_line(&error.render().to_string(), &help);
            eprintln!("{}", escape_controls(&line));
            return ExitCode::from(2);
        }
        Err(help_or_version) => help_or_version.exit(),
    };
    let command = cli.command.unwrap_or(Command::Train(cli.train));
    if !matches!(command, Command::Serve(_)) {
        process::main_thread_joins_rayon_pool();
    }
    let outcome = match command {
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
        Command::Completions(args) => commands::completions::exec(args, cli::command()),
        Command::Man => commands::man::exec(cli::command()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output has gone (`trainer eval | head -3`): stop quietly,
        // with the status a shell reports for a tool stopped by SIGPIPE.
        Err(error) if advice::is_closed_stdout(&error) => ExitCode::from(141),
        Err(error) => {
            // One line, whatever the names in it hold.
            eprintln!("error: {}", escape_controls(&advice::with_hint(&error)));
            ExitCode::FAILURE
        }
    }
}
