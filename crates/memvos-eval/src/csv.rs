//! Results files in the toolkit's format: `global_results-<set>.csv` and
//! `per-sequence_results-<set>.csv`, as pandas `to_csv(index=False, float_format="%.3f")`
//! writes them (NaN as an empty cell, "\n" line ends).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use memvos_data::write_atomic;

use crate::davis::Evaluation;
use crate::error::Result;

/// The header of `global_results-val.csv`, as the toolkit writes it.
pub const GLOBAL_HEADER: &str = "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay";
/// The header of `per-sequence_results-val.csv`.
pub const SEQUENCE_HEADER: &str = "Sequence,J-Mean,F-Mean";

/// One cell: C's `%.3f` (correctly rounded, so a tiny negative value prints `-0.000`).
pub fn cell(v: f64) -> String {
    if v.is_nan() { String::new() } else { format!("{v:.3}") }
}

/// `global_results-val.csv`'s text.
pub fn global_csv(eval: &Evaluation) -> String {
    let row: Vec<String> = eval.global.as_row().iter().map(|&v| cell(v)).collect();
    format!("{GLOBAL_HEADER}\n{}\n", row.join(","))
}

/// `per-sequence_results-val.csv`'s text (one row per object, `sequence_id`).
pub fn per_sequence_csv(eval: &Evaluation) -> String {
    let mut s = format!("{SEQUENCE_HEADER}\n");
    for o in &eval.objects {
        let _ = writeln!(s, "{},{},{}", o.csv_name(), cell(o.j_stats.mean), cell(o.f_stats.mean));
    }
    s
}

/// Writes both CSVs into `dir` atomically; returns their paths (global first).
pub fn write_csvs(eval: &Evaluation, dir: &Path, set: &str) -> Result<(PathBuf, PathBuf)> {
    let g = dir.join(format!("global_results-{set}.csv"));
    let p = dir.join(format!("per-sequence_results-{set}.csv"));
    write_atomic(&g, global_csv(eval).as_bytes())?;
    write_atomic(&p, per_sequence_csv(eval).as_bytes())?;
    Ok((g, p))
}

/// The global and per-sequence tables as the toolkit prints them to the terminal.
pub fn format_tables(eval: &Evaluation, set: &str) -> String {
    let mut s = format!("--------------------------- Global results for {set} ---------------------------\n");
    let names: Vec<&str> = GLOBAL_HEADER.split(',').collect();
    let _ = writeln!(s, "{}", names.iter().map(|n| format!("{n:>9}")).collect::<Vec<_>>().join(" "));
    let _ = writeln!(s, "{}", eval.global.as_row().iter().map(|v| format!("{v:>9.6}")).collect::<Vec<_>>().join(" "));
    let _ = writeln!(s, "\n---------- Per sequence results for {set} ----------");
    let width = eval.objects.iter().map(|o| o.csv_name().len()).max().unwrap_or(8).max(8);
    let _ = writeln!(s, "{:<width$} {:>8} {:>8}", "Sequence", "J-Mean", "F-Mean");
    for o in &eval.objects {
        let _ = writeln!(s, "{:<width$} {:>8.6} {:>8.6}", o.csv_name(), o.j_stats.mean, o.f_stats.mean);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_round_like_printf() {
        assert_eq!(cell(-0.0001), "-0.000");
        assert_eq!(cell(0.0625), "0.062"); // exact tie: round half to even on the binary value
        assert_eq!(cell(0.0575), "0.058"); // 0.0575 is stored as 0.05750000000000000222
        assert_eq!(cell(1.0), "1.000");
        assert_eq!(cell(f64::NAN), "");
    }
}
