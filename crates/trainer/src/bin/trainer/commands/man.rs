//! `trainer man`: the manual page, in roff, from the same definitions as `--help`.

pub fn exec() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(crate::cli::command()).render(&mut page)?;
    super::print(&page)
}
