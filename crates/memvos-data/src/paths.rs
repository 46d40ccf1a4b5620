//! Paths as a person means them: folders of frames listed in natural (numeric-aware) order, and
//! the one rule for every tool that writes — an output path that is, contains or lies inside an
//! input path (after resolving symlinks and `..`) is refused before anything is read.

use std::cmp::Ordering;
use std::path::{Component, Path, PathBuf};

use crate::error::{DataError, Result};

/// Natural order of two file names: digit runs compare as numbers (`2.jpg` < `10.jpg`), the rest
/// as text; names equal in that order (`3.jpg`, `003.jpg`) fall back to plain text order, so the
/// order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    natord::compare(a, b).then_with(|| a.cmp(b))
}

/// Sorts names in [`natural_cmp`] order.
pub fn sort_natural<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| natural_cmp(key(a), key(b)));
}

/// `path` made absolute with symlinks and `..` resolved. Its longest existing ancestor is
/// canonicalised; the part that does not exist yet is appended with `.` and `..` applied.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| DataError::io(path, e))?.join(path)
    };
    let mut existing = abs.as_path();
    let mut tail: Vec<Component> = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for comp in tail.iter().rev() {
                match comp {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
        let (Some(parent), Some(last)) = (existing.parent(), existing.components().next_back()) else {
            // Nothing of it exists (not even the root): keep it lexically.
            return Ok(abs);
        };
        tail.push(last);
        existing = parent;
    }
}

/// How an output path relates to an input path it overlaps.
fn relation(output: &Path, input: &Path) -> Option<&'static str> {
    if output == input {
        Some("is")
    } else if output.starts_with(input) {
        Some("lies inside")
    } else if input.starts_with(output) {
        Some("contains")
    } else {
        None
    }
}

/// Refuses any output that is, contains or lies inside an input, naming both by the flags the
/// user gave them (`("--out", path)`). Paths are compared after [`resolve`].
pub fn check_outputs_apart(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<()> {
    let inputs = inputs
        .iter()
        .map(|(flag, p)| resolve(p).map(|r| (*flag, *p, r)))
        .collect::<Result<Vec<_>>>()?;
    for (oflag, out) in outputs {
        let o = resolve(out)?;
        for (iflag, input, i) in &inputs {
            if let Some(rel) = relation(&o, i) {
                return Err(DataError::OutputOnInput {
                    output_flag: oflag.to_string(),
                    output: out.to_path_buf(),
                    relation: rel,
                    input_flag: iflag.to_string(),
                    input: input.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// Refuses two inputs that must differ but resolve to the same path (a masks folder given as
/// the frames folder).
pub fn check_distinct(a: (&str, &Path), b: (&str, &Path)) -> Result<()> {
    if resolve(a.1)? == resolve(b.1)? {
        return Err(DataError::Ambiguous {
            path: a.1.to_path_buf(),
            reason: format!("{} and {} are the same folder; give the masks their own folder", a.0, b.0),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_reads_numbers() {
        let mut v = vec!["10.jpg", "2.jpg", "0.jpg", "1.jpg", "11.jpg", "frame_9.png", "frame_10.png"];
        sort_natural(&mut v, |s| s);
        assert_eq!(v, ["0.jpg", "1.jpg", "2.jpg", "10.jpg", "11.jpg", "frame_9.png", "frame_10.png"]);
        let mut w = vec!["00010", "00002", "00001"];
        sort_natural(&mut w, |s| s);
        assert_eq!(w, ["00001", "00002", "00010"]);
        assert_eq!(natural_cmp("3", "003"), "3".cmp("003"));
    }

    #[test]
    fn overlaps_are_found_through_dots_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let masks = dir.path().join("masks");
        std::fs::create_dir_all(&masks).unwrap();
        let err = |o: &Path| check_outputs_apart(&[("--out", o)], &[("--masks", &masks)]).unwrap_err().to_string();
        assert!(err(&masks).contains(" is "), "{}", err(&masks));
        assert!(err(&masks.join("sub/new")).contains("lies inside"));
        assert!(err(dir.path()).contains("contains"));
        assert!(err(&dir.path().join("x/../masks")).contains(" is "));
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&masks, &link).unwrap();
            assert!(err(&link).contains(" is "));
            assert!(err(&link.join("deeper")).contains("lies inside"));
        }
        assert!(check_outputs_apart(&[("--out", &dir.path().join("out"))], &[("--masks", &masks)]).is_ok());
        assert!(check_outputs_apart(&[("--out", &dir.path().join("masks2"))], &[("--masks", &masks)]).is_ok());
    }
}
