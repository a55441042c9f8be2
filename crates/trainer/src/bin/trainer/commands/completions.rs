//! `trainer completions`: a shell's completion script for the command line.

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn exec(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = crate::cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "trainer", &mut script);
    super::print(&script)
}
