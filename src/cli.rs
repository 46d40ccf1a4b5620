//! How the example binaries end: `Ok` exits 0; an error prints one human line — the error's
//! message and then each cause not already in it, "error: … : caused by …" — and exits 1.
//! (clap's usage errors exit 2 before this runs.)

use std::error::Error;
use std::process::ExitCode;

/// The error's message followed by its causes (`source()` chain), each once.
pub fn report(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": caused by: ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Runs an example's body and turns its result into the process's exit code.
pub fn main(body: impl FnOnce() -> Result<(), Box<dyn Error>>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner went wrong")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn causes_are_listed_once() {
        let e = Outer(Inner(std::io::Error::other("disk on fire")));
        assert_eq!(report(&e), "outer: inner went wrong: caused by: disk on fire");
    }
}

/// A frame size written `HxW` (e.g. `480x854`), as `(height, width)`; limits are the caller's.
pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s.split_once(['x', 'X']).ok_or("expected HxW, e.g. 480x854")?;
    let side = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((side(h)?, side(w)?))
}
