//! `cargo xtask`: the project's only entry point for building, running, testing, linting and
//! debugging the kernel. This file parses the command line (by hand: the grammar is tiny) and
//! dispatches to the modules that do the work.

mod bench;
mod build;
mod image;
mod prereq;
mod qemu;
mod test_runner;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use build::{Bin, Profile};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--release]
      Build the demo kernel and the test kernel for aarch64-unknown-none and flatten each ELF
      into a Linux arm64 Image <name>.bin (plus <name>-alt.bin, loaded 48 MiB higher) in
      target/aarch64-unknown-none/<debug|release>/.
  qemu [--smp N] [--mem MiB] [--gic 2|3] [--el2] [--gdb] [--release] [--icount] [-- bootargs...]
      Build, then boot the demo kernel in qemu-system-aarch64 (virt, cortex-a72; defaults:
      --smp 4 --mem 1024 --gic 3). On a terminal the console is interactive (Ctrl-A X quits);
      otherwise it runs `demo=timed` with a 120 s timeout. --el2 enters at EL2
      (virtualization=on); --gdb waits for `cargo xtask gdb`; --icount makes the run
      deterministic (-icount shift=0,sleep=off). Exits with QEMU's exit code.
  gdb [--release]
      Attach gdb-multiarch to a QEMU started with `cargo xtask qemu --gdb`.
  test [--release] [--filter SUBSTR]
      Host unit tests (cargo test --workspace), then every on-target suite in every machine
      configuration, then the harness checks; prints a summary and, last, `N passed, M failed`.
      --filter keeps host tests whose name contains SUBSTR, on-target runs whose
      `<config>/<suite>` contains it and harness checks whose `harness/<name>` contains it.
  bench [--mode icount|wall|wall_smp] [--repeat N] [--debug]
      Boot the test kernel with `suite=bench bench=<mode>` in each mode (default: all three, in
      that order; release build unless --debug) and print every figure it reports, one line
      each, as `bench <name> <value> <unit>   [<mode>]`. Modes, all virt GICv3 with 1 GiB:
      icount: -smp 1 -icount shift=0,sleep=off (deterministic; guest instructions); wall:
      -smp 1 (guest nanoseconds); wall_smp: -smp 4, MTTCG (may report nothing). --repeat N
      runs icount N times and fails unless its figures are identical every time. Exits 0 only
      if every run exited 0 with well-formed output (and the repeats agree), 1 otherwise.
  lint
      cargo fmt --check, clippy on the host and clippy for the target, all with -D warnings.
  help
      This text.

environment:
  XTASK_TIMEOUT_SECS  timeout of each on-target QEMU run (default 60 in `test`, 300 in `bench`)
  XTASK_VERBOSE=1     echo the whole serial output of on-target runs, not only verdicts
                      (`test`) or the figures (`bench`)
";

/// A failure of an xtask command. `Msg` is printed as `error: ...`; `Exit` has already been
/// reported and only sets the exit code.
#[derive(Debug)]
pub enum Error {
    Msg(String),
    Exit(u8),
}

/// Any displayable error converts, so `?` works on io, object and string errors alike. (`Error`
/// deliberately does not implement `Display`, which would make this impl overlap `From<T> for T`.)
impl<E: std::fmt::Display> From<E> for Error {
    fn from(e: E) -> Self {
        Error::Msg(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns early with an `Error::Msg` built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Msg(format!($($arg)*)))
    };
}

/// The workspace root: xtask lives in `<root>/xtask`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// The cargo that runs us (set by `cargo run`), so nested builds use the same toolchain.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

/// A command as a shell line, for echoing what is run.
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=,:+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Runs a command with inherited stdio, echoing it first; fails unless it exits 0.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    println!("$ {}", display_command(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display_command(cmd));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(args) {
        Ok(code) => ExitCode::from(code),
        Err(Error::Msg(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
        Err(Error::Exit(code)) => ExitCode::from(code),
    }
}

fn dispatch(args: Vec<String>) -> Result<u8> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        print!("{USAGE}");
        return Ok(0);
    };
    let mut opts = Opts::new(&command, args);
    match command.as_str() {
        "build" => {
            let profile = Profile::from_release(opts.flag("--release"));
            opts.finish()?;
            prereq::ensure_target()?;
            build::build(profile, &[Bin::KERNEL, Bin::KTEST])?;
            Ok(0)
        }
        "qemu" => cmd_qemu(opts),
        "gdb" => {
            let profile = Profile::from_release(opts.flag("--release"));
            opts.finish()?;
            cmd_gdb(profile)
        }
        "test" => {
            let profile = Profile::from_release(opts.flag("--release"));
            let filter = opts.value::<String>("--filter")?;
            opts.finish()?;
            prereq::ensure_target()?;
            prereq::ensure_qemu()?;
            test_runner::run(profile, filter.as_deref())
        }
        "bench" => {
            let debug = opts.flag("--debug");
            // Accepted for symmetry with the other commands: release is the default here.
            let release = opts.flag("--release");
            let mode = opts.value::<bench::Mode>("--mode")?;
            let repeat = opts.value::<usize>("--repeat")?.unwrap_or(1);
            opts.finish()?;
            if debug && release {
                bail!("--debug and --release contradict each other");
            }
            let plan = bench::plan(mode, repeat)?;
            prereq::ensure_target()?;
            prereq::ensure_qemu()?;
            bench::run(Profile::from_release(!debug), &plan)
        }
        "lint" => {
            opts.finish()?;
            cmd_lint()
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => {
            eprintln!("error: unknown command `{other}`\n");
            eprint!("{USAGE}");
            Ok(2)
        }
    }
}

/// Hand-rolled option parsing: `--flag`, `--opt value`, `--opt=value`, and `--` followed by
/// free arguments. Options are taken out by name; `finish` rejects whatever is left.
struct Opts {
    command: String,
    args: Vec<String>,
    trailing: Vec<String>,
}

impl Opts {
    fn new(command: &str, args: impl Iterator<Item = String>) -> Self {
        let mut before = Vec::new();
        let mut trailing = Vec::new();
        let mut seen_dashdash = false;
        for a in args {
            if seen_dashdash {
                trailing.push(a);
            } else if a == "--" {
                seen_dashdash = true;
            } else {
                before.push(a);
            }
        }
        Opts {
            command: command.to_string(),
            args: before,
            trailing,
        }
    }

    fn flag(&mut self, name: &str) -> bool {
        let before = self.args.len();
        self.args.retain(|a| a != name);
        self.args.len() != before
    }

    fn value<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        let prefix = format!("{name}=");
        let mut found: Option<String> = None;
        let mut i = 0;
        while i < self.args.len() {
            if self.args[i] == name {
                if i + 1 >= self.args.len() {
                    bail!("`{name}` needs a value (see `cargo xtask help`)");
                }
                found = Some(self.args.remove(i + 1));
                self.args.remove(i);
            } else if let Some(v) = self.args[i].strip_prefix(&prefix) {
                found = Some(v.to_string());
                self.args.remove(i);
            } else {
                i += 1;
            }
        }
        match found {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| Error::Msg(format!("bad value `{v}` for `{name}`: {e}"))),
        }
    }

    fn take_trailing(&mut self) -> Vec<String> {
        std::mem::take(&mut self.trailing)
    }

    fn finish(self) -> Result<()> {
        if let Some(extra) = self.args.first() {
            bail!(
                "unknown option `{extra}` for `cargo xtask {}` (see `cargo xtask help`)",
                self.command
            );
        }
        if !self.trailing.is_empty() {
            bail!(
                "`cargo xtask {}` takes no arguments after `--`",
                self.command
            );
        }
        Ok(())
    }
}

fn cmd_qemu(mut opts: Opts) -> Result<u8> {
    let smp = opts.value::<u32>("--smp")?.unwrap_or(4);
    let mem = opts.value::<u32>("--mem")?.unwrap_or(1024);
    let gic = opts.value::<u8>("--gic")?.unwrap_or(3);
    let el2 = opts.flag("--el2");
    let gdb = opts.flag("--gdb");
    let icount = opts.flag("--icount");
    let profile = Profile::from_release(opts.flag("--release"));
    let extra_bootargs = opts.take_trailing();
    opts.finish()?;
    if gic != 2 && gic != 3 {
        bail!("--gic must be 2 or 3, not {gic}");
    }
    if smp == 0 {
        bail!("--smp must be at least 1");
    }

    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    let out = build::build(profile, &[Bin::KERNEL])?;

    let interactive = std::io::stdin().is_terminal();
    let mut bootargs = vec!["semihosting=1".to_string()];
    if !interactive {
        bootargs.push("demo=timed".into());
    }
    let mut extra = Vec::new();
    if icount {
        extra.extend(qemu::ICOUNT_ARGS.iter().map(|s| s.to_string()));
        bootargs.push("icount=1".into());
    }
    bootargs.extend(extra_bootargs);

    let vm = qemu::Qemu {
        machine: qemu::machine_opts(gic, el2),
        smp,
        mem_mib: mem,
        boot: qemu::Boot::Kernel {
            image: out.image(Bin::KERNEL),
            dtb: None,
            bootargs,
        },
        extra,
        gdb,
    };
    if gdb {
        println!(
            "QEMU waits for a debugger on localhost:1234: run `cargo xtask gdb{}` in another terminal",
            if profile == Profile::Release {
                " --release"
            } else {
                ""
            }
        );
    }
    if interactive {
        println!("(console on this terminal; Ctrl-A X quits QEMU, Ctrl-A H lists the other keys)");
        let mut cmd = vm.command(qemu::Console::Interactive);
        println!("$ {}", display_command(&cmd));
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run qemu-system-aarch64: {e}"))?;
        return Ok(exit_code_of(status.code()));
    }

    let mut cmd = vm.command(qemu::Console::Captured);
    println!("$ {}", display_command(&cmd));
    // With --gdb the run waits for a human: no timeout then.
    let timeout = (!gdb).then(|| Duration::from_secs(120));
    let out = qemu::run_captured(&mut cmd, timeout, true, &mut |line| println!("{line}"))?;
    if out.timed_out {
        eprintln!("error: QEMU did not exit within 120 s and was killed");
        return Ok(124);
    }
    Ok(exit_code_of(out.code))
}

/// QEMU's exit code as ours; a QEMU killed by a signal counts as a failure.
fn exit_code_of(code: Option<i32>) -> u8 {
    match code {
        Some(c) => u8::try_from(c).unwrap_or(1),
        None => 1,
    }
}

fn cmd_gdb(profile: Profile) -> Result<u8> {
    let elf = build::output_dir(profile).join(Bin::KERNEL.name);
    if !elf.exists() {
        bail!(
            "{} does not exist: start the kernel with `cargo xtask qemu --gdb` first",
            elf.display()
        );
    }
    let Some(gdb) = prereq::ensure_gdb(&elf)? else {
        return Err(Error::Exit(1));
    };
    let mut cmd = Command::new(gdb);
    cmd.arg(&elf).args(["-ex", "target remote :1234"]);
    println!("$ {}", display_command(&cmd));
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    bail!("cannot run gdb-multiarch: {err}")
}

fn cmd_lint() -> Result<u8> {
    prereq::ensure_target()?;
    let steps: [(&str, &[&str]); 3] = [
        ("rustfmt", &["fmt", "--all", "--", "--check"]),
        (
            "clippy (host)",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            "clippy (aarch64-unknown-none)",
            &[
                "clippy",
                "--target",
                build::TARGET,
                "-p",
                "kernel",
                "-p",
                "ktest",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    let mut failed = Vec::new();
    for (name, args) in steps {
        if let Err(e) = run_checked(cargo().args(args)) {
            if let Error::Msg(m) = e {
                eprintln!("error: {m}");
            }
            failed.push(name);
        }
    }
    if failed.is_empty() {
        println!("lint: all clean");
        Ok(0)
    } else {
        println!("lint: FAILED: {}", failed.join(", "));
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Opts {
        Opts::new("qemu", args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags_values_and_trailing() {
        let mut o = opts(&["--smp", "2", "--el2", "--mem=512", "--", "a=1", "--smp"]);
        assert_eq!(o.value::<u32>("--smp").unwrap(), Some(2));
        assert_eq!(o.value::<u32>("--mem").unwrap(), Some(512));
        assert_eq!(o.value::<u8>("--gic").unwrap(), None);
        assert!(o.flag("--el2"));
        assert!(!o.flag("--gdb"));
        assert_eq!(o.take_trailing(), vec!["a=1", "--smp"]);
        assert!(o.finish().is_ok());
    }

    #[test]
    fn quotes_for_the_shell() {
        let mut cmd = Command::new("qemu");
        cmd.args(["-append", "a=1 b=2", "it's", "-m"]);
        assert_eq!(
            display_command(&cmd),
            "qemu -append 'a=1 b=2' 'it'\\''s' -m"
        );
    }

    #[test]
    fn rejects_unknown_and_missing_values() {
        let o = opts(&["--bogus"]);
        assert!(o.finish().is_err());
        let mut o = opts(&["--smp"]);
        assert!(o.value::<u32>("--smp").is_err());
        let mut o = opts(&["--smp", "four"]);
        assert!(o.value::<u32>("--smp").is_err());
    }
}
