//! The studio: a page on 127.0.0.1 to annotate frames by hand, propagate forward, backward or
//! both ways, correct and propagate again, and export (see `memvos-studio`).
//!
//! `cargo run --release --example studio -- --frames DIR [--masks DIR] [--weights F] [--out DIR]`
//!
//! Prints the page's URL (with its token) and opens it in the default browser where there is
//! one. `--masks DIR` loads PNGs named like frames as their complete annotations.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memvos::model::{Benchmark, FrameSource, Frames, Session};
use memvos::runner::ModelArgs;
use memvos::studio::{StudioOptions, start};

#[derive(Parser)]
#[command(about = "Annotate, propagate and correct video object masks in the browser")]
struct Args {
    #[arg(long)]
    frames: PathBuf,
    /// Annotations to start from: PNGs named like the frames (each complete).
    #[arg(long)]
    masks: Option<PathBuf>,
    /// Where Export writes the masks and overlay.gif (default: `<frames>-studio` beside the frames).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Address to listen on. Anything but loopback lets other machines drive the studio (the
    /// token still guards it).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Do not open the browser.
    #[arg(long)]
    no_open: bool,
    /// Resize frames so their shorter side is this long for the network.
    #[arg(long)]
    short_side: Option<usize>,
    #[command(flatten)]
    model: ModelArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.model.check()?;
    let name = args.frames.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
    let out = args.out.clone().unwrap_or_else(|| args.frames.with_file_name(format!("{name}-studio")));
    let mut inputs = vec![("--frames", args.frames.as_path())];
    inputs.extend(args.masks.as_deref().map(|m| ("--masks", m)));
    memvos::data::paths::check_outputs_apart(&[("--out", &out)], &inputs)?;
    let frames = Frames::folder(&args.frames)?;
    let names: Vec<String> = (0..frames.len()).map(|i| frames.name(i).to_string()).collect();
    let first = frames.read(0)?;
    let annotations = match &args.masks {
        Some(dir) => memvos::model::session::read_annotations(dir, &names, (first.height(), first.width()))?,
        None => Vec::new(),
    };
    memvos::output::prepare(&out, "--out")?;
    if !args.host.is_loopback() {
        eprintln!("warning: listening on {}: other machines can reach the studio (it still asks for its token)", args.host);
    }
    let loaded = args.model.load()?;
    println!("{}", loaded.describe());
    let cfg = args.model.schedule_for(loaded.method(), Benchmark::YouTube)?;
    let mut session = Session::new(loaded.network(), cfg, Box::new(frames), &loaded.device)?.with_short_side(args.short_side);
    let palette = match &args.masks {
        Some(dir) => annotations.first().and_then(|(i, _)| memvos::data::read_mask(&dir.join(format!("{}.png", names[*i]))).ok()).and_then(|m| m.palette).unwrap_or_default(),
        None => Default::default(),
    };
    for (i, labels) in annotations {
        session.annotate(i, labels)?;
    }
    let studio = start(session, loaded.network(), loaded.device.clone(), palette, StudioOptions { host: args.host, port: args.port, out: out.clone(), name })?;
    println!("studio for {} ({} frames), exports into {}", args.frames.display(), names.len(), out.display());
    println!("open {}", studio.url);
    if !args.no_open {
        open_browser(&studio.url);
    }
    studio.wait();
    Ok(())
}

/// Opens `url` in the desktop's browser, if there is one (failures are fine: the URL is printed).
fn open_browser(url: &str) {
    let cmd: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["cmd", "/C", "start", ""]
    } else {
        &["xdg-open"]
    };
    let has_display = cfg!(any(target_os = "macos", windows)) || std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if has_display {
        let _ = std::process::Command::new(cmd[0]).args(&cmd[1..]).arg(url).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn();
    }
}
