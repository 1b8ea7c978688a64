//! Building the kernel binaries for `aarch64-unknown-none` and turning each ELF into the flat
//! Linux arm64 Images that QEMU and m1n1 boot (see `image`).

use std::path::PathBuf;

use crate::{Result, cargo, image, run_checked, workspace_root};

/// The bare-metal target every kernel binary is built for.
pub const TARGET: &str = "aarch64-unknown-none";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    pub fn from_release(release: bool) -> Self {
        if release {
            Profile::Release
        } else {
            Profile::Debug
        }
    }

    /// The directory name cargo uses for this profile.
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// A kernel binary: its cargo package and `[[bin]]` name.
#[derive(Clone, Copy, Debug)]
pub struct Bin {
    pub package: &'static str,
    pub name: &'static str,
}

impl Bin {
    /// The demo kernel booted by `cargo xtask qemu`.
    pub const KERNEL: Bin = Bin {
        package: "kernel",
        name: "kernel",
    };
    /// The on-target test kernel booted by `cargo xtask test`.
    pub const KTEST: Bin = Bin {
        package: "ktest",
        name: "ktest",
    };
}

/// Where the built files of one profile are.
#[derive(Clone, Debug)]
pub struct Outputs {
    pub dir: PathBuf,
}

impl Outputs {
    pub fn elf(&self, bin: Bin) -> PathBuf {
        self.dir.join(bin.name)
    }
    /// The Image loaded at the link address (RAM + 2 MiB).
    pub fn image(&self, bin: Bin) -> PathBuf {
        self.dir.join(format!("{}.bin", bin.name))
    }
    /// The same Image with text_offset = `image::ALT_TEXT_OFFSET`.
    pub fn alt_image(&self, bin: Bin) -> PathBuf {
        self.dir.join(format!("{}-alt.bin", bin.name))
    }
}

/// `target/aarch64-unknown-none/<profile>`, honouring CARGO_TARGET_DIR.
pub fn output_dir(profile: Profile) -> PathBuf {
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_BUILD_TARGET_DIR"))
        .map(|d| root.join(d)) // an absolute path replaces root
        .unwrap_or_else(|| root.join("target"));
    target_dir.join(TARGET).join(profile.dir())
}

/// Builds `bins` in one cargo invocation, then writes `<name>.bin` and `<name>-alt.bin` for each.
pub fn build(profile: Profile, bins: &[Bin]) -> Result<Outputs> {
    let mut cmd = cargo();
    cmd.args(["build", "--target", TARGET]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    for bin in bins {
        cmd.args(["-p", bin.package]);
    }
    for bin in bins {
        cmd.args(["--bin", bin.name]);
    }
    run_checked(&mut cmd)?;

    let out = Outputs {
        dir: output_dir(profile),
    };
    for &bin in bins {
        let info = image::make_images(&out.elf(bin), &out.image(bin), &out.alt_image(bin))?;
        println!(
            "{}: {} bytes at {:#x} (image_size {:#x}, {} relocations), {} and {}",
            bin.name,
            info.file_len,
            info.base,
            info.image_size,
            info.relocations,
            display_rel(&out.image(bin)),
            display_rel(&out.alt_image(bin)),
        );
    }
    Ok(out)
}

/// A path relative to the workspace root when it is inside it.
pub fn display_rel(path: &std::path::Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}
