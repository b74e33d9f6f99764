//! Where things live: the workspace root, the shared bench folder, the `sluice` binary under
//! test, and the folder that saved results go to.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The workspace root: the Sluice checkout the command runs in (the first directory up from
/// the current one that holds `perf/Cargo.toml`), else the one this binary was built from
/// (`perf/..` at compile time; cargo may reuse a build made in another checkout that shares
/// the target directory, so the current directory comes first).
pub fn workspace_root() -> PathBuf {
    if let Ok(cwd) = env::current_dir() {
        if let Some(root) = cwd
            .ancestors()
            .find(|d| d.join("perf").join("Cargo.toml").is_file() && d.join("Cargo.toml").is_file())
        {
            return root.to_path_buf();
        }
    }
    tidy(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
}

/// The shared folder holding `bench/gen_logs.py`: `$SLUICE_SHARED`, or `../shared` next to the
/// workspace root.
pub fn shared_dir() -> PathBuf {
    match env::var_os("SLUICE_SHARED") {
        Some(dir) if !dir.is_empty() => absolute(PathBuf::from(dir)),
        _ => tidy(workspace_root().join("..").join("shared")),
    }
}

/// Where `--save NAME` writes `NAME.json`.
pub fn results_dir() -> PathBuf {
    workspace_root().join("perf").join("results")
}

/// `target/release/sluice` under the workspace root, or under `$CARGO_TARGET_DIR` when that is
/// set (a relative `CARGO_TARGET_DIR` is taken from the current directory, as cargo does).
pub fn default_sluice_binary() -> PathBuf {
    let target = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => absolute(PathBuf::from(dir)),
        _ => workspace_root().join("target"),
    };
    target.join("release").join("sluice")
}

/// The binary to run: `explicit` (from `--sluice`) or the default release build. Errors with a
/// hint on how to build it when it does not exist.
pub fn resolve_sluice_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let (path, from_flag) = match explicit {
        Some(p) => (absolute(p.to_path_buf()), true),
        None => (default_sluice_binary(), false),
    };
    if !path.is_file() {
        if from_flag {
            bail!(
                "sluice binary not found at {} (given with --sluice)",
                path.display()
            );
        }
        bail!(
            "sluice binary not found at {}\n  build it first: cargo build --release -p sluice-dataflow\n  \
             (or point at another build with --sluice PATH)",
            path.display()
        );
    }
    if !is_executable(&path) {
        bail!("{} is not executable", path.display());
    }
    Ok(path)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Makes a path absolute against the current directory, without touching the file system.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        env::current_dir()
            .map(|cwd| cwd.join(&path))
            .unwrap_or(path)
    }
}

/// Resolves `..` when the path exists; leaves it as it is otherwise.
fn tidy(path: PathBuf) -> PathBuf {
    path.canonicalize().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        assert!(
            root.join("perf").join("Cargo.toml").is_file(),
            "{}",
            root.display()
        );
    }

    #[test]
    fn default_binary_is_a_release_build_named_sluice() {
        let bin = default_sluice_binary();
        assert!(bin.ends_with("release/sluice"), "{}", bin.display());
    }
}
