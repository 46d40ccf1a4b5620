//! Errors of the data crate. Every variant names the file, folder or video at fault.

use std::path::PathBuf;

/// Result alias of the data crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or generating VOS data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read, written or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A folder the layout requires does not exist.
    #[error("missing folder {path} ({what})")]
    MissingFolder {
        /// The file or folder.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// A file the layout requires does not exist.
    #[error("missing file {path} ({what})")]
    MissingFile {
        /// The file or folder.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// An image file could not be decoded (corrupt, truncated, or not an image).
    #[error("cannot decode image {path}: {reason}")]
    Decode {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An image could not be encoded.
    #[error("cannot encode image {path}: {reason}")]
    Encode {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A mask whose size differs from the frame it annotates (or from the first frame).
    #[error("{path}: size {got_w}x{got_h} (WxH) differs from the expected {want_w}x{want_h}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Its width.
        got_w: usize,
        /// Its height.
        got_h: usize,
        /// The expected width.
        want_w: usize,
        /// The expected height.
        want_h: usize,
    },
    /// An RGB mask holds a colour that is not in the palette.
    #[error("{path}: colour ({r}, {g}, {b}) at (x={x}, y={y}) is not in the palette")]
    ColourNotInPalette {
        /// The file.
        path: PathBuf,
        /// Red.
        r: u8,
        /// Green.
        g: u8,
        /// Blue.
        b: u8,
        /// Column.
        x: usize,
        /// Row.
        y: usize,
    },
    /// A mask in a pixel format we cannot interpret as labels.
    #[error("{path}: unsupported mask format ({reason})")]
    UnsupportedMask {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A video with no frames.
    #[error("video {video} in {path} has no frames")]
    EmptyVideo {
        /// The video.
        video: String,
        /// The file or folder.
        path: PathBuf,
    },
    /// A video listed in an index file (ImageSets, meta.json) that is not on disk.
    #[error("{path}: video {video} is listed but its folder {folder} does not exist")]
    ListedVideoMissing {
        /// The file.
        path: PathBuf,
        /// The video.
        video: String,
        /// The folder looked for.
        folder: PathBuf,
    },
    /// A JSON or TOML file that does not parse.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A palette that is not a whole number of RGB triples, or longer than 256 entries.
    #[error("invalid palette of {len} bytes (must be 3..=768 and a multiple of 3)")]
    InvalidPalette {
        /// Its length in bytes.
        len: usize,
    },
    /// A listed frame with no image file (an annotations-only root: enough to evaluate, not to
    /// segment).
    #[error("video {video}, frame {frame}: no image file (is the root's JPEGImages folder missing? an annotations-only root can be evaluated, not segmented)")]
    NoImage {
        /// The video.
        video: String,
        /// The frame.
        frame: String,
    },
    /// An index file (YouTube-VOS `meta.json`) says an object first appears on a frame whose
    /// mask does not show it.
    #[error("video {video}: object {object} first appears on frame {frame} (meta.json), but {}", match .path { Some(p) => format!("its mask {} does not hold label {object}", p.display()), None => "that frame has no mask".to_string() })]
    MissingFirstMask {
        /// The video.
        video: String,
        /// The object's label.
        object: u8,
        /// The frame.
        frame: String,
        /// The file or folder.
        path: Option<PathBuf>,
    },
    /// An output path that is, contains or lies inside an input path (refused before anything
    /// is read, so nothing the user gave is overwritten).
    #[error("{output_flag} {output} {relation} {input_flag} {input}: an output must not overwrite or mix with an input; choose another {output_flag}", output = .output.display(), input = .input.display())]
    OutputOnInput {
        /// The output's flag.
        output_flag: String,
        /// The output path.
        output: PathBuf,
        /// How they overlap (is, contains, lies inside).
        relation: &'static str,
        /// The input's flag.
        input_flag: String,
        /// The input path.
        input: PathBuf,
    },
    /// Two files or folders that could both be meant (`00003.jpg` and `00003.png`).
    #[error("{path}: ambiguous: {reason}")]
    Ambiguous {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Invalid arguments given by a caller (sizes, counts, probabilities).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
