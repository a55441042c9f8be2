//! `trainer serve`: the drawing page and the JSON prediction API, bounded against slow
//! and idle clients, with an access log and Prometheus metrics.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use trainer::console::Console;
use trainer::run_dir::RunDir;
use trainer::serve::{
    LogFormat, Metrics, Predictor, ServeConfig, Server, init_logging, raise_open_file_limit,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run directory: the trained run, holding config.json and model.bpk (a file
    /// inside it names it too).
    #[arg(long = "run", value_name = "DIR", alias = "model")]
    run: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Device of a GPU backend to compute on, as for the other commands.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Connections held at once; one more takes the place of the quietest idle or
    /// head-less one, or is answered 503 when all are answering requests.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds from accept, or from the previous answer, to a complete request head.
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = seconds)]
    header_timeout: f64,
    /// Seconds a request's body (at most 4 MiB) may take to arrive; then 408.
    #[arg(long, value_name = "S", default_value_t = 60.0, value_parser = seconds)]
    body_timeout: f64,
    /// Seconds a connection may sit without a request before it is closed.
    #[arg(long, value_name = "S", default_value_t = 60.0, value_parser = seconds)]
    idle_timeout: f64,
    /// Seconds from a prediction request's arrival to its answer, decoding and
    /// prediction included; then 503.
    #[arg(long, value_name = "S", default_value_t = 30.0, value_parser = seconds)]
    request_timeout: f64,
    /// Heavy prediction requests (images, big batches) that may wait for a CPU; more
    /// are answered 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 64)]
    queue_size: u32,
    /// Log lines on stderr as text or as JSON objects.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// Leave the access log out (start, errors and shutdown are still logged).
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// A positive, finite number of seconds.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds between 0 and 86400"
        )),
    }
}

pub fn exec(args: ServeArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let _log = init_logging(
        match args.log_format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        },
        args.quiet,
    );
    let run = RunDir::named(&args.run);
    let backend = super::open_backend(args.device.as_deref(), console)?;
    let (config, model) = run.load_model(&backend.device)?;
    let limits = ServeConfig {
        max_connections: args.max_connections as usize,
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        body_timeout: Duration::from_secs_f64(args.body_timeout),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        queue_size: args.queue_size as usize,
    };
    let max_connections = limits.max_connections;
    let files = raise_open_file_limit();
    let architecture = config.model.architecture();
    let metrics = Metrics::new(&architecture, config.model.num_params(), backend.name);
    let predictor =
        Predictor::new(model, &config.model, backend.device).with_pictures(&config.data);
    let server = Server::bind(&args.addr, predictor, limits, metrics)?;
    match files {
        Ok(files) => {
            tracing::info!("open-file limit {files}; at most {max_connections} connections")
        }
        Err(error) => tracing::warn!("cannot raise the open-file limit: {error}"),
    }
    console.line(format_args!(
        "model {} ({architecture})",
        run.root().display()
    ));
    // Scripts wait for this line on stdout.
    console.line(format_args!("listening on http://{}", server.local_addr()));
    tracing::info!(model = %run.root().display(), %architecture, addr = %server.local_addr(), "serving");
    server.run()?;
    tracing::info!("stopped");
    console.line("stopped");
    Ok(())
}
