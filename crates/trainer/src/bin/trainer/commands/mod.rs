//! One module per subcommand, as cargo keeps its own: each its arguments and an `exec`
//! that turns them into a call of the trainer library.

pub mod bench;
pub mod completions;
pub mod eval;
pub mod explain;
pub mod export;
pub mod import;
pub mod man;
pub mod predict;
pub mod serve;
pub mod summary;
pub mod sweep;
pub mod train;

use trainer::backend::{self, Backend};
use trainer::console::Console;

/// Writes `bytes` to stdout as they are.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Opens the compiled-in backend on `device` and says which it is on `console`.
fn open_backend(device: Option<&str>, console: Console) -> anyhow::Result<Backend> {
    let backend = backend::open(device)?;
    console.try_line(&backend)?;
    Ok(backend)
}
