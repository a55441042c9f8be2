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
    /// their result. Control characters are escaped ([`escape_controls`]); the line breaks of a
    /// text of several lines are kept.
    pub fn try_line(self, text: impl std::fmt::Display) -> std::io::Result<()> {
        let text = text.to_string();
        let text = text
            .split('\n')
            .map(escape_controls)
            .collect::<Vec<_>>()
            .join("\n");
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
        let warning = escape_controls(&warning.to_string());
        let _ = writeln!(std::io::stderr().lock(), "warning: {warning}");
    }
}

/// `text` with each control character written out as `\x1b` (ESC), `\x0a` (a line
/// break) and so on. Much of what is printed comes from names a user, or whoever made
/// the files, chose: image file names, run directories, a config's class names. An
/// escape sequence among them must not reach the terminal, where it could recolour,
/// retitle or rewrite it; and a line break in one must not make one line two.
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            // Control characters are U+0000 to U+001F and U+007F to U+009F: two hex digits.
            escaped.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out_and_the_rest_kept() {
        assert_eq!(
            escape_controls("\u{1b}[31mred\u{7}\ttab\r\nnext\u{9b}"),
            "\\x1b[31mred\\x07\\x09tab\\x0d\\x0anext\\x9b"
        );
        let plain = "T-shirt/top \"quoted\" back\\slash, ünïcödé 7";
        assert_eq!(escape_controls(plain), plain);
    }
}
