//! Text shaping shared by the faces, kept apart so that the fuzz tests can
//! compile it with the meta writer.

/// `text` trimmed, with every line break (`\n`, `\r`) turned into a space:
/// error lines, summary lines and meta file values are read line by line,
/// so a message must never start a new one.
pub fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect()
}
