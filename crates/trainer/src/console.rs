//! Where everything a command prints goes: one line at a time to stdout, or to stderr
//! when stdout carries a result of its own (`trainer bench` prints its JSON there).

use std::io::{IsTerminal, Write};

/// The stream a command's lines go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Console {
    #[default]
    Stdout,
    Stderr,
}

impl Console {
    /// Writes one line. A closed stream must not stop training, so failures are
    /// ignored: the run's files record everything the lines say.
    pub fn line(self, text: impl std::fmt::Display) {
        let _ = self.try_line(text);
    }

    /// Writes one line, reporting a closed stream (`trainer eval | head -3`) as the
    /// [`std::io::ErrorKind::BrokenPipe`] error it is, for commands whose output is
    /// their result.
    pub fn try_line(self, text: impl std::fmt::Display) -> std::io::Result<()> {
        match self {
            Self::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
            Self::Stderr => writeln!(std::io::stderr().lock(), "{text}"),
        }
    }

    /// Whether a person is watching: the stream is a terminal, not a file or a pipe.
    pub(crate) fn is_terminal(self) -> bool {
        match self {
            Self::Stdout => std::io::stdout().is_terminal(),
            Self::Stderr => std::io::stderr().is_terminal(),
        }
    }

    /// Writes a warning to stderr, whichever stream results go to: something went
    /// wrong that does not undo the command's result.
    pub fn warn(warning: impl std::fmt::Display) {
        let _ = writeln!(std::io::stderr().lock(), "warning: {warning}");
    }
}
