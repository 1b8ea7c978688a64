//! Prerequisites checked before the commands that need them: the `aarch64-unknown-none` rustup
//! target, `qemu-system-aarch64` and `gdb-multiarch`. Missing pieces are installed when that can
//! be done without asking (rustup; apt-get when running as root), otherwise the fix is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result, build, workspace_root};

/// Makes sure the active toolchain (the one rust-toolchain.toml pins) has the bare-metal target.
pub fn ensure_target() -> Result<()> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        // No rustup (a distribution toolchain?): let cargo report a missing target itself.
        _ => {
            eprintln!(
                "warning: cannot ask rustup for the installed targets; assuming {} is there",
                build::TARGET
            );
            return Ok(());
        }
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|l| l.trim() == build::TARGET) {
        return Ok(());
    }
    println!("rustup target {} is missing: installing it", build::TARGET);
    crate::run_checked(
        Command::new("rustup")
            .args(["target", "add", build::TARGET])
            .current_dir(workspace_root()),
    )
}

/// Makes sure `qemu-system-aarch64` is on PATH, installing Debian's `qemu-system-arm` when we
/// are root and have apt-get.
pub fn ensure_qemu() -> Result<()> {
    if find_on_path("qemu-system-aarch64").is_some() {
        return Ok(());
    }
    if can_apt_install() {
        println!("qemu-system-aarch64 not found: installing qemu-system-arm with apt-get");
        if apt_install("qemu-system-arm") && find_on_path("qemu-system-aarch64").is_some() {
            return Ok(());
        }
        eprintln!("error: installing qemu-system-arm did not provide qemu-system-aarch64");
    }
    println!(
        "qemu-system-aarch64 not found; install it with: sudo apt-get install -y qemu-system-arm"
    );
    Err(Error::Exit(1))
}

/// Finds `gdb-multiarch`, installing it when we can. When it cannot be had, prints the command
/// to run by hand and returns `None`.
pub fn ensure_gdb(elf: &Path) -> Result<Option<PathBuf>> {
    if let Some(gdb) = find_on_path("gdb-multiarch") {
        return Ok(Some(gdb));
    }
    if can_apt_install() {
        println!("gdb-multiarch not found: installing it with apt-get");
        if apt_install("gdb-multiarch")
            && let Some(gdb) = find_on_path("gdb-multiarch")
        {
            return Ok(Some(gdb));
        }
    }
    println!("gdb-multiarch not found; install it with: sudo apt-get install -y gdb-multiarch");
    println!(
        "then run: gdb-multiarch {} -ex \"target remote :1234\"",
        elf.display()
    );
    Ok(None)
}

/// The first executable called `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Root (asked of `id -u`, no libc needed) with apt-get available.
fn can_apt_install() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    root && find_on_path("apt-get").is_some()
}

/// `apt-get update -qq` (a failure there is tolerated: the lists may be fresh enough), then
/// `apt-get install -y <package>`. True when the install succeeded.
fn apt_install(package: &str) -> bool {
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    if !matches!(update, Ok(s) if s.success()) {
        eprintln!("warning: apt-get update failed; trying the install anyway");
    }
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", package])
        .env("DEBIAN_FRONTEND", "noninteractive");
    match crate::run_checked(&mut install) {
        Ok(()) => true,
        Err(Error::Msg(m)) => {
            eprintln!("error: {m}");
            false
        }
        Err(Error::Exit(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_but_not_nonsense() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("no-such-program-xtask-test").is_none());
    }
}
