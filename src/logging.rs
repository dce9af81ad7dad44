//! Logging to the terminal and to a log file that rotates by size, like the original
//! (10 MB x 10 files). Rotation is the `file-rotate` crate's, not ours.

use std::fs::OpenOptions;
use std::io::LineWriter;
use std::path::PathBuf;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use log::LevelFilter;
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error and this file.
    File(PathBuf),
    /// Standard output only (containers, journald).
    Stdout,
}

/// How to log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub target: LogTarget,
    /// Log every datagram (DEBUG level).
    pub debug: bool,
    /// Rotate the file when it passes this many bytes.
    pub max_bytes: usize,
    /// Rotated files kept.
    pub keep: usize,
}

impl Default for LogConfig {
    /// As the original: `rabid-hole-punch.log`, rotated at 10 MB, 10 old files kept.
    fn default() -> Self {
        Self {
            target: LogTarget::File(PathBuf::from("rabid-hole-punch.log")),
            debug: false,
            max_bytes: 10_000_000,
            keep: 10,
        }
    }
}

/// Installs the logger. Fails, with a message for the user, when the log file cannot be written.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let level = if config.debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let format = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
    match &config.target {
        LogTarget::Stdout => loggers.push(TermLogger::new(
            level,
            format,
            TerminalMode::Stdout,
            ColorChoice::Never,
        )),
        LogTarget::File(path) => {
            let path = std::path::absolute(path)
                .map_err(|e| format!("cannot use log file {}: {e}", path.display()))?;
            // file-rotate panics on a file it cannot open: check first, and say why.
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot write log file {}: {e}", path.display()))?;
            let file = FileRotate::new(
                path,
                AppendCount::new(config.keep),
                ContentLimit::BytesSurpassed(config.max_bytes),
                Compression::None,
                None,
            );
            loggers.push(TermLogger::new(
                level,
                format.clone(),
                TerminalMode::Stderr,
                ColorChoice::Auto,
            ));
            // simplelog writes a line in several pieces: buffered to the line's end, each line
            // costs one write to the file instead of several.
            loggers.push(WriteLogger::new(level, format, LineWriter::new(file)));
        }
    }
    CombinedLogger::init(loggers).map_err(|e| format!("cannot start logging: {e}"))
}
