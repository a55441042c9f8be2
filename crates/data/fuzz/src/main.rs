//! `fuzz-idx`: a deterministic, coverage-free mutational fuzzer for the IDX reader
//! that runs on stable Rust. See `crates/data/fuzz/README.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use data_fuzz::{
    ALLOC_FACTOR, ALLOC_SLACK, Config, Crash, Outcome, Summary, check_idx, mutate, run,
};

const USAGE: &str = "\
usage: fuzz-idx [--iterations N] [--seed S] [--max-len BYTES] [--corpus DIR] [--crashes DIR]
       fuzz-idx --replay FILE...
       fuzz-idx --write-corpus DIR

Mutates the seed corpus (default: crates/data/fuzz/corpus/idx) and feeds every input to
IdxImages::from_bytes and IdxLabels::from_bytes, checking each result against the IDX
format, and checks LabelledImages::from_parts. A panic, a wrong result or an allocation
beyond 64 x the content + 1 MiB writes the input to the crashes directory (default:
crates/data/fuzz/crashes) and exits with status 1.

  --iterations N   inputs to run (default 1000000)
  --seed S         PRNG seed; a run is reproducible from its seed (default 1)
  --max-len BYTES  cut mutated inputs to this length (default 4096)
  --replay FILE    check the given files once each and report
  --write-corpus D write the built-in seed files into D";

#[derive(Debug)]
enum Command {
    Fuzz {
        iterations: u64,
        seed: u64,
        max_len: usize,
        corpus: PathBuf,
        crashes: PathBuf,
    },
    Replay(Vec<PathBuf>),
    WriteCorpus(PathBuf),
}

fn parse_args() -> Result<Command, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut iterations = 1_000_000u64;
    let mut seed = 1u64;
    let mut max_len = 4096usize;
    let mut corpus = here.join("corpus/idx");
    let mut crashes = here.join("crashes");
    let mut args = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{flag} {value}: {e}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => iterations = number("--iterations", args.next())?,
            "--seed" => seed = number("--seed", args.next())?,
            "--max-len" => max_len = number("--max-len", args.next())? as usize,
            "--corpus" => corpus = args.next().ok_or("--corpus needs a directory")?.into(),
            "--crashes" => crashes = args.next().ok_or("--crashes needs a directory")?.into(),
            "--replay" => return Ok(Command::Replay(args.map(PathBuf::from).collect())),
            "--write-corpus" => {
                return Ok(Command::WriteCorpus(
                    args.next()
                        .ok_or("--write-corpus needs a directory")?
                        .into(),
                ));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Command::Fuzz {
        iterations,
        seed,
        max_len,
        corpus,
        crashes,
    })
}

fn load_corpus(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read corpus {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    let corpus = paths
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())))
        .collect::<Result<Vec<_>, _>>()?;
    if corpus.is_empty() {
        return Err(format!("the corpus {} holds no files", dir.display()));
    }
    Ok(corpus)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn save_crash(dir: &Path, seed: u64, crash: &Crash) -> Result<PathBuf, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    let kind = if crash.from_parts {
        "from-parts"
    } else {
        "idx"
    };
    let ext = if crash.from_parts { "txt" } else { "bin" };
    let path = dir.join(format!(
        "crash-{kind}-seed{seed}-iter{}-{:016x}.{ext}",
        crash.iteration,
        fnv1a(&crash.input)
    ));
    std::fs::write(&path, &crash.input)?;
    Ok(path)
}

fn print_summary(seed: u64, summary: &Summary) {
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "fuzz-idx seed {seed}: {} executions ({} parser calls, {} from_parts checks, {} accepted) in {secs:.1} s: {:.0} executions/s",
        summary.executions,
        2 * summary.executions,
        summary.from_parts_checks,
        summary.from_parts_accepted,
        summary.executions as f64 / secs.max(1e-9)
    );
    println!("  {:<14}{:>12}{:>12}", "outcome", "images", "labels");
    for outcome in Outcome::ALL {
        println!(
            "  {:<14}{:>12}{:>12}",
            outcome.name(),
            summary.images[outcome.index()],
            summary.labels[outcome.index()]
        );
    }
    println!(
        "  gzip inputs: {} ({} with a stream that decodes cleanly); longest input {} bytes; most bytes one parse allocated: {}",
        summary.gzip_inputs, summary.gzip_complete, summary.max_input_len, summary.max_allocated
    );
}

fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(command) => command,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("fuzz-idx: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::WriteCorpus(dir) => {
            let written = std::fs::create_dir_all(&dir).and_then(|()| {
                mutate::seeds()
                    .iter()
                    .try_for_each(|(name, bytes)| std::fs::write(dir.join(name), bytes))
            });
            match written {
                Ok(()) => {
                    println!(
                        "wrote {} seed files to {}",
                        mutate::seeds().len(),
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fuzz-idx: cannot write {}: {e}", dir.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Replay(files) => {
            let mut failed = false;
            for file in files {
                let bytes = match std::fs::read(&file) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        eprintln!("fuzz-idx: cannot read {}: {e}", file.display());
                        failed = true;
                        continue;
                    }
                };
                match std::panic::catch_unwind(|| check_idx(&bytes)) {
                    Ok(report) => println!("{}: {report:?}", file.display()),
                    Err(_) => {
                        println!("{}: CRASH (message above)", file.display());
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Fuzz {
            iterations,
            seed,
            max_len,
            corpus,
            crashes,
        } => {
            let corpus = match load_corpus(&corpus) {
                Ok(corpus) => corpus,
                Err(message) => {
                    eprintln!("fuzz-idx: {message}");
                    return ExitCode::from(2);
                }
            };
            println!(
                "fuzz-idx: seed {seed}, {iterations} iterations, {} seed files, inputs up to {max_len} bytes, allocation limit {ALLOC_FACTOR} x content + {ALLOC_SLACK} bytes",
                corpus.len()
            );
            let config = Config {
                iterations,
                seed,
                max_len,
                corpus,
            };
            match run(&config, |summary| {
                eprintln!(
                    "  ... {} executions, {:.0}/s",
                    summary.executions,
                    summary.executions as f64 / summary.elapsed.as_secs_f64().max(1e-9)
                );
            }) {
                Ok(summary) => {
                    print_summary(seed, &summary);
                    println!("no crash");
                    ExitCode::SUCCESS
                }
                Err(crash) => {
                    eprintln!(
                        "fuzz-idx: CRASH at iteration {} (seed {seed}): {}",
                        crash.iteration, crash.message
                    );
                    match save_crash(&crashes, seed, &crash) {
                        Ok(path) => eprintln!("fuzz-idx: input written to {}", path.display()),
                        Err(e) => eprintln!(
                            "fuzz-idx: cannot write the input to {}: {e}",
                            crashes.display()
                        ),
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
