//! `trainer serve`: the drawing page and the JSON prediction API.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::run_dir::RunDir;
use trainer::serve::{Predictor, Server};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run directory holding config.json and model.bpk.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Device of a GPU backend to compute on, as for the other commands.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
}

pub fn exec(args: ServeArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let run = RunDir::new(&args.model);
    let backend = super::open_backend(args.device.as_deref(), console)?;
    let (config, model) = run.load_model(&backend.device)?;
    let predictor = Predictor::new(model, &config.model, backend.device);
    let server = Server::bind(&args.addr, predictor)?;
    console.line(format_args!(
        "model {} ({})",
        run.root().display(),
        config.model.architecture()
    ));
    console.line(format_args!("listening on http://{}", server.local_addr()));
    server.run()?;
    console.line("stopped");
    Ok(())
}
