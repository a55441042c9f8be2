//! The `trainer` command line: `train` (the default), `sweep`, `eval`, `predict`,
//! `explain`, `summary`, `serve`, `bench`, `export` and `import`, each in `commands/`.

mod advice;
mod args;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::FromArgMatches;
use trainer::console::escape_controls;

use crate::cli::{Cli, Command};

/// Burn allocates and frees a buffer for nearly every tensor operation, across the
/// training thread and the metric thread; mimalloc serves that pattern faster and
/// steadier than the system allocator (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Address space reserved for the allocator at start; only what is used takes memory.
const HEAP_RESERVE: usize = 2 << 30;

/// The build turns off mimalloc's own arena reservation (`.cargo/config.toml`: with
/// it, transparent huge pages kept 30 MB more resident). Without any arena, though,
/// mimalloc maps blocks of megabytes (a CNN's feature maps and im2col buffers) from
/// the OS and unmaps them on free, so every step faults each of their pages in again:
/// 40% of a CNN epoch. One arena reserved uncommitted, without large OS pages, keeps
/// those blocks for reuse and costs the default run 2 MB.
#[allow(unsafe_code)]
fn reserve_heap() {
    let mut arena = std::mem::MaybeUninit::<libmimalloc_sys::mi_arena_id_t>::uninit();
    // SAFETY: mi_reserve_os_memory_ex only maps address space for mimalloc's own
    // arenas and writes the new arena's id through a pointer to a value that lives
    // through the call; failing (an error code) changes nothing.
    let _ = unsafe {
        libmimalloc_sys::mi_reserve_os_memory_ex(
            HEAP_RESERVE,
            false,
            false,
            false,
            arena.as_mut_ptr(),
        )
    };
}

/// Makes the main thread worker 0 of rayon's global pool. The kernels' parallel loops
/// are called from the main thread; outside the pool it hands each whole loop to the
/// pool's threads and sleeps until they are done, three threads taking turns on the
/// cores. Inside, it runs its own half: a CNN epoch 4.06-4.47 s against 4.60-5.10 s
/// on two cores (bench/runs/2026-12-07-epyc-2core). Not for `serve`, whose requests
/// reach rayon from tokio's threads while the main thread waits outside the pool.
fn main_thread_joins_rayon_pool() {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|threads| threads.parse::<usize>().ok())
        .filter(|&threads| threads > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    // At least one worker besides: jobs that other threads (the data loader's, a
    // second device's) hand to the pool must run while the main thread waits for
    // them outside it.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(2))
        .use_current_thread()
        .build_global();
}

fn main() -> ExitCode {
    reserve_heap();
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
        main_thread_joins_rayon_pool();
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
