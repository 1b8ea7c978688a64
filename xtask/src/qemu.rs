//! QEMU command lines for the `virt` machine, and running a child process with a timeout while
//! echoing and keeping its output line by line (used for QEMU and for the host `cargo test`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Result, bail, display_command};

/// The CPU every run uses.
pub const CPU: &str = "cortex-a72";
/// Where QEMU puts a Linux Image with text_offset 0 (RAM + 2 MiB), and where the ELF is linked.
pub const LOAD_ADDR: u64 = 0x4020_0000;
/// Deterministic timing: one instruction per virtual nanosecond, no sleeping when idle.
pub const ICOUNT_ARGS: &[&str] = &["-icount", "shift=0,sleep=off"];

/// `-machine` options for `virt` with GICv2 or v3, entering at EL2 when `el2`.
pub fn machine_opts(gic: u8, el2: bool) -> String {
    let mut m = format!("virt,gic-version={gic}");
    if el2 {
        m.push_str(",virtualization=on");
    }
    m
}

/// How the image gets into the machine.
#[derive(Clone, Debug)]
pub enum Boot {
    /// `-kernel`: QEMU parses the Image header, passes a DTB in x0 and `-append`s bootargs.
    Kernel {
        image: PathBuf,
        dtb: Option<PathBuf>,
        bootargs: Vec<String>,
    },
    /// `-device loader`: raw bytes at `addr`, CPU 0 starts there with x0 = 0 (no DTB, no bootargs).
    Loader { image: PathBuf, addr: u64 },
}

/// Where the console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// `-nographic`: serial and monitor muxed on the terminal (Ctrl-A X quits).
    Interactive,
    /// `-display none -serial stdio -monitor none`, stdin closed: for capturing.
    Captured,
}

/// One QEMU `virt` machine and what to boot on it.
#[derive(Clone, Debug)]
pub struct Qemu {
    /// `-machine` value, e.g. `virt,gic-version=3,virtualization=on`.
    pub machine: String,
    pub smp: u32,
    pub mem_mib: u32,
    pub boot: Boot,
    /// Extra arguments placed before the console options, e.g. `ICOUNT_ARGS`.
    pub extra: Vec<String>,
    /// `-s -S`: gdb server on :1234, CPUs halted until the debugger continues.
    pub gdb: bool,
}

impl Qemu {
    /// The arguments after `qemu-system-aarch64`.
    pub fn args(&self, console: Console) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-machine");
        push(&self.machine);
        push("-cpu");
        push(CPU);
        push("-smp");
        push(&self.smp.to_string());
        push("-m");
        push(&format!("{}M", self.mem_mib));
        // Semihosting lets the guest set QEMU's exit code; harmless when unused.
        push("-semihosting-config");
        push("enable=on,target=native");
        match &self.boot {
            Boot::Kernel {
                image,
                dtb,
                bootargs,
            } => {
                a.push("-kernel".into());
                a.push(image.into());
                if let Some(dtb) = dtb {
                    a.push("-dtb".into());
                    a.push(dtb.into());
                }
                a.push("-append".into());
                a.push(bootargs.join(" ").into());
            }
            Boot::Loader { image, addr } => {
                // QEMU option values escape a comma by doubling it.
                let file = image.to_string_lossy().replace(',', ",,");
                a.push("-device".into());
                a.push(format!("loader,file={file},addr={addr:#x},cpu-num=0").into());
            }
        }
        a.extend(self.extra.iter().map(OsString::from));
        if self.gdb {
            a.push("-s".into());
            a.push("-S".into());
        }
        match console {
            Console::Interactive => a.push("-nographic".into()),
            Console::Captured => {
                for s in ["-display", "none", "-serial", "stdio", "-monitor", "none"] {
                    a.push(s.into());
                }
            }
        }
        a
    }

    /// The full command, with stdin closed when the console is captured.
    pub fn command(&self, console: Console) -> Command {
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(self.args(console));
        if console == Console::Captured {
            cmd.stdin(Stdio::null());
        }
        cmd
    }
}

/// What a captured run produced.
#[derive(Clone, Debug, Default)]
pub struct RunOutput {
    /// The exit code; `None` when killed by a signal (also after a timeout).
    pub code: Option<i32>,
    pub timed_out: bool,
    /// Every output line (stdout, and stderr when captured), without line terminators.
    pub lines: Vec<String>,
    pub elapsed: Duration,
    /// The command as a shell line, for reproducing the run by hand.
    pub command: String,
}

impl RunOutput {
    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    /// "exit code N", "killed by a signal" or "timed out", for messages.
    pub fn describe_exit(&self) -> String {
        match (self.timed_out, self.code) {
            (true, _) => "timed out".into(),
            (false, Some(c)) => format!("exit code {c}"),
            (false, None) => "killed by a signal".into(),
        }
    }
}

/// Spawns `cmd` with stdout (and stderr when `capture_stderr`; otherwise it is inherited) piped,
/// calls `on_line` for every line as it arrives, and kills the child if it runs longer than
/// `timeout`.
pub fn run_captured(
    cmd: &mut Command,
    timeout: Option<Duration>,
    capture_stderr: bool,
    on_line: &mut dyn FnMut(&str),
) -> Result<RunOutput> {
    cmd.stdout(Stdio::piped());
    cmd.stderr(if capture_stderr {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let program = cmd.get_program().to_string_lossy().into_owned();
    let command = display_command(cmd);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;

    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(thread::spawn(move || pump(out, tx)));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(thread::spawn(move || pump(err, tx)));
    }
    drop(tx);

    let deadline = timeout.map(|t| start + t);
    let mut timed_out = false;
    let mut lines = Vec::new();
    loop {
        let wait = match deadline {
            // After a kill, give the pipes a moment to drain, no more.
            _ if timed_out => Duration::from_secs(5),
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(wait) {
            Ok(line) => {
                on_line(&line);
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) if timed_out => break,
            Err(RecvTimeoutError::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                    let _ = child.kill();
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{program}`: {e}"))?;
    if !timed_out {
        for r in readers {
            let _ = r.join();
        }
    }
    Ok(RunOutput {
        code: status.code(),
        timed_out,
        lines,
        elapsed: start.elapsed(),
        command,
    })
}

/// Sends each line of `r` (lossily decoded, `\r\n` or `\n` stripped) until end of file.
fn pump(r: impl Read, tx: mpsc::Sender<String>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Lines of a run's output shown when it goes wrong.
pub const TAIL: usize = 30;

/// Whether XTASK_VERBOSE asks for the kernels' output to be echoed.
pub fn verbose() -> bool {
    std::env::var_os("XTASK_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The limit on each QEMU run: XTASK_TIMEOUT_SECS (`var`, `None` when unset), else
/// `default_secs`.
pub fn timeout_from(var: Option<String>, default_secs: u64) -> Result<Duration> {
    match var {
        None => Ok(Duration::from_secs(default_secs)),
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
            _ => bail!("XTASK_TIMEOUT_SECS must be a positive number of seconds, not `{s}`"),
        },
    }
}

/// Print the last [`TAIL`] lines of a run and its command line.
pub fn print_tail(out: &RunOutput) {
    let tail = out.tail(TAIL);
    let n = tail.len();
    println!(
        "  last {n} line{} of output:",
        if n == 1 { "" } else { "s" }
    );
    for l in tail {
        println!("    | {l}");
    }
    if !out.command.is_empty() {
        println!("  command: {}", out.command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn kernel_command_line() {
        let q = Qemu {
            machine: machine_opts(3, true),
            smp: 4,
            mem_mib: 1024,
            boot: Boot::Kernel {
                image: "k.bin".into(),
                dtb: Some("bad.dtb".into()),
                bootargs: vec!["semihosting=1".into(), "suite=boot".into()],
            },
            extra: ICOUNT_ARGS.iter().map(|s| s.to_string()).collect(),
            gdb: true,
        };
        let a = strings(q.args(Console::Captured)).join(" ");
        assert_eq!(
            a,
            "-machine virt,gic-version=3,virtualization=on -cpu cortex-a72 -smp 4 -m 1024M \
             -semihosting-config enable=on,target=native -kernel k.bin -dtb bad.dtb \
             -append semihosting=1 suite=boot -icount shift=0,sleep=off -s -S \
             -display none -serial stdio -monitor none"
        );
        assert!(strings(q.args(Console::Interactive)).ends_with(&["-nographic".to_string()]));
    }

    #[test]
    fn loader_command_line_escapes_commas() {
        let q = Qemu {
            machine: machine_opts(2, false),
            smp: 1,
            mem_mib: 512,
            boot: Boot::Loader {
                image: "/a,b/ktest.bin".into(),
                addr: LOAD_ADDR,
            },
            extra: vec![],
            gdb: false,
        };
        let a = strings(q.args(Console::Captured));
        assert!(!a.contains(&"-kernel".to_string()));
        assert!(!a.contains(&"-append".to_string()));
        assert!(a.contains(&"loader,file=/a,,b/ktest.bin,addr=0x40200000,cpu-num=0".to_string()));
        assert_eq!(a[1], "virt,gic-version=2");
    }

    #[test]
    fn captures_lines_and_exit_code() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "printf 'a\\r\\nb\\n'; echo err >&2; printf tail; exit 3",
        ]);
        let mut seen = Vec::new();
        let out = run_captured(&mut cmd, Some(Duration::from_secs(20)), true, &mut |l| {
            seen.push(l.to_string())
        })
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(!out.timed_out);
        let mut sorted = out.lines.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "err", "tail"]);
        assert_eq!(seen, out.lines);
    }

    #[test]
    fn kills_on_timeout() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let out = run_captured(
            &mut cmd,
            Some(Duration::from_millis(300)),
            true,
            &mut |_| {},
        )
        .unwrap();
        assert!(out.timed_out);
        assert_eq!(out.lines, ["started"]);
        assert!(out.elapsed < Duration::from_secs(10));
        assert_eq!(out.describe_exit(), "timed out");
    }
}
