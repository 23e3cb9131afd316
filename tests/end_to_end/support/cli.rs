//! Running the `lancet` binary from the tests: offline, with no model from the
//! environment, its hub cache and embedding cache inside the test's folder.

use std::path::Path;
use std::process::{Command, Output};

/// `lancet ARGS` in `cwd`, ready to run.
pub fn lancet_command(args: &[&str], cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lancet"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("LANCET_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", cwd.join("hf-home"))
        // The machine-wide embedding cache of a test is its own.
        .env("LANCET_CACHE_DIR", cwd.join("embedding-cache"))
        // And so is the rest of its cache (an object-store database's local folder).
        .env("XDG_CACHE_HOME", cwd.join("xdg-cache"))
        .env_remove("LANCET_CACHE_MAX_MB");
    command
}

/// Runs `lancet ARGS` in `cwd` and waits for it.
pub fn lancet(args: &[&str], cwd: &Path) -> Output {
    lancet_command(args, cwd).output().expect("run lancet")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
