//! `trainer man`: the manual page, in roff, from the same definitions as `--help`.

/// Prints the page of `command`, the whole command line.
pub fn exec(command: clap::Command) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    super::print(&page)
}
