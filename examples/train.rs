//! Trains a method's stage from a recipe (methods.md §2.6–2.7): checkpoints every N iterations,
//! `--resume` after an interruption, a loss curve (`loss.png`) beside the checkpoints and the
//! final weights (`final.safetensors`, loadable by every runner) at the end.
//!
//! `cargo run --release --example train -- --method stcn --stage 0 --data ROOT --out DIR [--recipe FILE] [--resume]`
//! `cargo run --release --example train -- --recipe stcn/cpu-synthetic --out runs/small` (the shipped model)
//!
//! On a terminal burn-train's dashboard shows loss, IoU, learning rate and iterations per second
//! (`q` stops after a checkpoint); otherwise a line is printed every 30 seconds.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::device::{DeviceChoice, select};
use memvos::model::Method;
use memvos::train::dashboard::Dashboard;
use memvos::train::recipe::{self, Recipe};
use memvos::train::{IterationStats, Observer, TrainOptions, train};

#[derive(Parser)]
#[command(about = "Train a memvos network stage by stage")]
struct Args {
    /// stcn, mivos, qdmn, gsfm or imsfr (default: the recipe's).
    #[arg(long)]
    method: Option<Method>,
    /// 0 (static images), 1 (BL30K), 2 (DAVIS + YouTube-VOS after BL30K), 3 (the same without).
    #[arg(long)]
    stage: Option<u8>,
    /// Folder the recipe's data roots are relative to.
    #[arg(long, default_value = ".")]
    data: PathBuf,
    /// Folder for checkpoints, the loss curve and the final weights.
    #[arg(long)]
    out: PathBuf,
    /// A recipe file (.toml or .json) or a bundled recipe (`stcn/s0`, `stcn/cpu-synthetic`, …);
    /// default: the bundled recipe of --method and --stage.
    #[arg(long)]
    recipe: Option<String>,
    /// Override a recipe field, `key=value` (repeatable): `--set lr=2e-5 --set bootstrap.start=100`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run whose checkpoint is in --out, with the checkpoint's recipe. Extending
    /// the run is allowed (`--set iterations=N` above the recipe's; the max-skip curriculum, a
    /// fraction of the run, stretches over the iterations still to run), and so are `workers`,
    /// `checkpoint_every` and `keep_checkpoints`; any other change is refused, listing the
    /// fields.
    #[arg(long)]
    resume: bool,
    /// With --resume: continue with a recipe that changes other fields too (learning rate,
    /// seed, sources, …); the checkpoint records the earlier recipe and what changed.
    #[arg(long, requires = "resume")]
    resume_with_changes: bool,
    /// Start from these weights (a previous stage's final.safetensors, a published .pth).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Texture the recipe's synthetic videos with this folder of photographs (JPEG/PNG);
    /// `scripts/fetch-photos.sh DIR` fetches the set the shipped model learned on.
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Training devices, comma-separated (cpu, cuda:0, cuda:1, wgpu:0, …); the batch is split over them.
    #[arg(long, default_value = "cpu", value_delimiter = ',')]
    devices: Vec<DeviceChoice>,
    /// Plain progress output even on a terminal.
    #[arg(long)]
    no_dashboard: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn pick_recipe(args: &Args) -> Result<Recipe, Box<dyn std::error::Error>> {
    let name = match (&args.recipe, args.method, args.stage) {
        (Some(r), _, _) => r.clone(),
        (None, Some(m), Some(s)) => recipe::stage_name(m, s).ok_or_else(|| format!("--stage {s}: stages are 0, 1, 2 and 3"))?,
        (None, _, _) => return Err("give --recipe, or --method and --stage".into()),
    };
    let mut r = recipe::load(&name, &args.overrides)?;
    if let Some(dir) = &args.photos {
        // Absolute, so that it is not read relative to --data as recipe paths are.
        r.set_photos(&std::path::absolute(dir).map_err(|e| format!("--photos {}: {e}", dir.display()))?)?;
    }
    if let Some(m) = args.method.filter(|&m| m != r.method) {
        return Err(format!("--method {}: the recipe {name} trains {}", m.id(), r.method).into());
    }
    if let Some(s) = args.stage.filter(|&s| s != r.stage) {
        return Err(format!("--stage {s}: the recipe {name} is stage {}", r.stage).into());
    }
    Ok(r)
}

/// Progress without the dashboard: a bar on a terminal, a line every 30 s otherwise.
struct Plain {
    bar: Option<ProgressBar>,
    last: Instant,
}

impl Observer for Plain {
    fn start(&mut self, first: usize, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(first as u64);
        }
        println!("training iterations {first}..{total}");
    }

    fn iteration(&mut self, s: &IterationStats) {
        let line = format!("it {} loss {:.4} IoU {:.3} lr {:.1e} {:.2} s/it", s.iteration + 1, s.loss, s.iou, s.lr, s.seconds);
        match &self.bar {
            Some(b) => {
                b.set_position(s.iteration as u64 + 1);
                b.set_message(line);
            }
            None if self.last.elapsed() >= Duration::from_secs(30) => {
                println!("{line}");
                self.last = Instant::now();
            }
            None => {}
        }
    }

    fn checkpoint(&mut self, iteration: usize, folder: &std::path::Path) {
        let msg = format!("checkpoint after iteration {} in {}", iteration + 1, folder.display());
        match &self.bar {
            Some(b) => b.println(msg),
            None => println!("{msg}"),
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let recipe = pick_recipe(&args)?;
    let devices = args.devices.iter().map(|&d| select(d).map(|s| s.device)).collect::<Result<Vec<_>, _>>()?;
    let opts = TrainOptions { data: args.data.clone(), out: args.out.clone(), resume: args.resume, resume_with_changes: args.resume_with_changes, init: args.init.clone(), devices, stop_after: None };
    let terminal = std::io::stdout().is_terminal();
    let report = if terminal && !args.no_dashboard {
        let mut dash = Dashboard::new();
        train(&recipe, &opts, &mut dash)?
    } else {
        let bar = terminal.then(|| {
            let b = ProgressBar::new(recipe.iterations as u64);
            b.set_style(ProgressStyle::with_template("[{bar:30}] {pos}/{len} ({per_sec}, eta {eta}) {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
            b
        });
        let mut plain = Plain { bar, last: Instant::now() };
        let r = train(&recipe, &opts, &mut plain)?;
        if let Some(b) = plain.bar {
            b.finish_and_clear();
        }
        r
    };
    let last = report.history.last();
    println!(
        "ran {} iterations of {} stage {}; last loss {:.4}, IoU {:.3}; loss curve {}",
        report.ran,
        recipe.method,
        recipe.stage,
        last.map(|s| s.loss).unwrap_or(f64::NAN),
        last.map(|s| s.iou).unwrap_or(f64::NAN),
        args.out.join("loss.png").display()
    );
    match report.weights {
        Some(w) => println!("final weights: {}", w.display()),
        None => println!("stopped before the end: continue with --resume"),
    }
    Ok(())
}
