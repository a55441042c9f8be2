//! Requests from outside to stop: SIGINT, SIGTERM and SIGUSR1 (the warning Slurm
//! sends before a time limit) ask a run to stop where it is and keep its place; a
//! second SIGINT ends the process at once, as a user pressing Ctrl-C twice expects.
//! A sweep's trial is also sent SIGTERM when its sweep runner dies, however it dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use crate::TrainerError;

/// Set by a sweep runner in the environment of the trials it starts: its process ID.
pub(crate) const SWEEP_RUNNER: &str = "TRAINER_SWEEP_RUNNER_PID";

const SIGNALS: [(i32, &str); 3] = [
    (SIGINT, "SIGINT"),
    (SIGTERM, "SIGTERM"),
    (SIGUSR1, "SIGUSR1"),
];

/// Whether a stop was asked for, and by which signal. The default asks for none, ever.
#[derive(Debug, Clone, Default)]
pub struct StopSignals {
    received: Arc<[(&'static str, Arc<AtomicBool>)]>,
}

impl StopSignals {
    /// Catches the stop signals for the rest of the process's life; in a sweep's
    /// trial, asks for SIGTERM when the runner dies.
    pub fn install() -> Result<Self, TrainerError> {
        let any = Arc::new(AtomicBool::new(false));
        let mut received = Vec::with_capacity(SIGNALS.len());
        for (signal, name) in SIGNALS {
            let failed = |error: std::io::Error| TrainerError::Signals(format!("{name}: {error}"));
            if signal == SIGINT {
                // Registered first, so that it sees whether any stop came before this one.
                signal_hook::flag::register_conditional_shutdown(signal, 130, any.clone())
                    .map_err(failed)?;
            }
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal, flag.clone()).map_err(failed)?;
            signal_hook::flag::register(signal, any.clone()).map_err(failed)?;
            received.push((name, flag));
        }
        end_with_sweep_runner()?;
        Ok(Self {
            received: received.into(),
        })
    }

    /// Whether a signal other than SIGINT came: those are sent to one process, which
    /// passes them on to the runs it started, while a terminal's SIGINT reaches them
    /// all at once.
    pub(crate) fn sent_to_this_process(&self) -> bool {
        self.received
            .iter()
            .any(|(name, flag)| *name != "SIGINT" && flag.load(Ordering::SeqCst))
    }

    /// The first stop signal received, if any.
    pub(crate) fn received(&self) -> Option<&'static str> {
        self.received
            .iter()
            .find(|(_, flag)| flag.load(Ordering::SeqCst))
            .map(|(name, _)| *name)
    }
}

/// A trial started by a sweep runner (named by [`SWEEP_RUNNER`]) gets SIGTERM when the
/// runner dies, even by SIGKILL, and so checkpoints and ends instead of training on
/// beside the runner's next attempt at the same trial. A runner already gone gets the
/// same at once.
#[cfg(target_os = "linux")]
fn end_with_sweep_runner() -> Result<(), TrainerError> {
    use rustix::process::{Signal, getpid, getppid, kill_process, set_parent_process_death_signal};
    let Some(runner) = std::env::var(SWEEP_RUNNER)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
    else {
        return Ok(());
    };
    let failed = |error: rustix::io::Errno| {
        TrainerError::Signals(format!("SIGTERM at the sweep runner's end: {error}"))
    };
    set_parent_process_death_signal(Some(Signal::TERM)).map_err(failed)?;
    if getppid().map(|parent| parent.as_raw_nonzero().get()) != Some(runner) {
        kill_process(getpid(), Signal::TERM).map_err(failed)?;
    }
    Ok(())
}

/// Elsewhere a trial outlives a runner killed outright, as any child process does.
#[cfg(not(target_os = "linux"))]
fn end_with_sweep_runner() -> Result<(), TrainerError> {
    Ok(())
}
