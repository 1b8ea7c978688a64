//! `cargo xtask test`: host unit tests, then the loom model checks (`--cfg loom`), then every
//! on-target suite of the test kernel in every machine configuration (with reruns past a case
//! that aborts its suite), then the harness checks (negative scenarios), then a summary whose
//! last line is `N passed, M failed`.
//!
//! The on-target protocol: `ktest.bin` boots with `-append "semihosting=1 suite=<name>
//! [skip=<k>] <config bootargs>"` and prints, per case, one line `test <suite>::<case> ... ok`
//! or `test <suite>::<case> ... FAILED: <message>`, then `test result: ok|FAILED. N passed;
//! M failed`, and exits QEMU with 0 (all passed) or 1. A case that panics or faults gets its
//! FAILED line, then the result line, then `suite aborted`: the suite is booted again with
//! `skip=<cases reported so far>`. `suite=list` prints `suite <name>` per suite.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use crate::build::{self, Bin, Outputs, Profile};
use crate::qemu::{self, Boot, Console, Qemu, RunOutput, TAIL, print_tail, verbose};
use crate::{Error, Result, bail, cargo, display_command, workspace_root};

/// Which flat image a configuration boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// `ktest.bin`, loaded at RAM + 2 MiB.
    Normal,
    /// `ktest-alt.bin`, loaded at RAM + 48 MiB (`image::ALT_TEXT_OFFSET`).
    Alt,
}

/// A machine configuration every suite runs in.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub name: &'static str,
    /// The `-machine` value.
    pub machine: &'static str,
    pub smp: u32,
    pub qemu_args: &'static [&'static str],
    /// Appended to `semihosting=1 suite=<name> [skip=<k>]`; tells the kernel what to expect.
    pub bootargs: &'static str,
    pub image: ImageKind,
}

const fn config(
    name: &'static str,
    machine: &'static str,
    smp: u32,
    qemu_args: &'static [&'static str],
    bootargs: &'static str,
    image: ImageKind,
) -> Config {
    Config {
        name,
        machine,
        smp,
        qemu_args,
        bootargs,
        image,
    }
}

use ImageKind::{Alt, Normal};
const ICOUNT: &[&str] = qemu::ICOUNT_ARGS;
const V3: &str = "virt,gic-version=3";
const V2: &str = "virt,gic-version=2";

/// Every configuration, in run order. The first one also lists the suites.
#[rustfmt::skip]
pub const CONFIGS: &[Config] = &[
    config("gicv3-smp1", V3, 1, &[], "expect_gic=3 expect_el=1 expect_cpus=1", Normal),
    config("gicv3-smp2", V3, 2, &[], "expect_gic=3 expect_el=1 expect_cpus=2", Normal),
    config("gicv3-smp4", V3, 4, &[], "expect_gic=3 expect_el=1 expect_cpus=4", Normal),
    config("gicv3-smp8", V3, 8, &[], "expect_gic=3 expect_el=1 expect_cpus=8", Normal),
    config("gicv2-smp4", V2, 4, &[], "expect_gic=2 expect_el=1 expect_cpus=4", Normal),
    config("gicv2-smp8", V2, 8, &[], "expect_gic=2 expect_el=1 expect_cpus=8", Normal),
    config("el2-gicv3-smp4", "virt,gic-version=3,virtualization=on", 4, &[],
           "expect_gic=3 expect_el=2 expect_cpus=4", Normal),
    config("el2-gicv2-smp2", "virt,gic-version=2,virtualization=on", 2, &[],
           "expect_gic=2 expect_el=2 expect_cpus=2", Normal),
    config("icount-smp1", V3, 1, ICOUNT, "icount=1 expect_gic=3 expect_el=1 expect_cpus=1", Normal),
    config("icount-smp4-250hz", V3, 4, ICOUNT,
           "icount=1 tick_hz=250 expect_gic=3 expect_el=1 expect_cpus=4", Normal),
    config("alt-load-smp4", V3, 4, &[],
           "expect_load=0x43000000 expect_gic=3 expect_el=1 expect_cpus=4", Alt),
];

/// The configuration the harness checks run in.
const HARNESS_CONFIG: &str = "gicv3-smp4";
/// Suites that exist only for the harness checks and fail on purpose.
const HARNESS_SUITES: &[&str] = &["selftest", "kernel_fault"];
/// RAM of every on-target run, MiB.
const MEM_MIB: u32 = 1024;
const MAX_RERUNS: usize = 50;
const DEFAULT_TIMEOUT_SECS: u64 = 60;

impl Config {
    fn by_name(name: &str) -> &'static Config {
        CONFIGS
            .iter()
            .find(|c| c.name == name)
            .expect("configuration exists")
    }

    /// `semihosting=1 <first...> <config bootargs>`.
    fn bootargs(&self, first: &[String]) -> Vec<String> {
        let mut args = vec!["semihosting=1".to_string()];
        args.extend(first.iter().cloned());
        args.extend(self.bootargs.split_whitespace().map(String::from));
        args
    }

    fn image(&self, out: &Outputs) -> PathBuf {
        match self.image {
            Normal => out.image(Bin::KTEST),
            Alt => out.alt_image(Bin::KTEST),
        }
    }

    fn vm(&self, boot: Boot) -> Qemu {
        Qemu {
            machine: self.machine.to_string(),
            smp: self.smp,
            mem_mib: MEM_MIB,
            boot,
            extra: self.qemu_args.iter().map(|s| s.to_string()).collect(),
            gdb: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol parsing

/// How a case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
}

/// One `test <suite>::<case> ... <outcome>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `<suite>::<case>`.
    pub name: String,
    pub outcome: Outcome,
}

impl Verdict {
    fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// Parses a verdict line: it starts with `test ` and contains ` ... `. Anything after ` ... `
/// other than `ok` or `FAILED[: message]` counts as a failure.
pub fn parse_verdict(line: &str) -> Option<Verdict> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    let name = name.trim();
    if name.is_empty() || name.starts_with("result:") {
        return None;
    }
    let result = result.trim();
    let outcome = if result.starts_with("ok") {
        // Tolerates text glued on by another core printing without a newline.
        Outcome::Ok
    } else if let Some(msg) = result.strip_prefix("FAILED") {
        Outcome::Failed(msg.trim_start_matches(':').trim().to_string())
    } else {
        Outcome::Failed(format!("unrecognised verdict `{result}`"))
    };
    Some(Verdict {
        name: name.to_string(),
        outcome,
    })
}

/// The numbers of a `test result: ok|FAILED. N passed; M failed[; ...]` line (kernel or libtest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
}

pub fn parse_result_line(line: &str) -> Option<Tally> {
    let rest = line.trim_start().strip_prefix("test result: ")?;
    let (status, counts) = rest.split_once('.')?;
    let ok = match status.trim() {
        "ok" => true,
        "FAILED" => false,
        _ => return None,
    };
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match what {
            "passed" => passed = n.parse().ok(),
            "failed" => failed = n.parse().ok(),
            _ => {}
        }
    }
    Some(Tally {
        ok,
        passed: passed?,
        failed: failed?,
    })
}

pub fn is_abort_line(line: &str) -> bool {
    line.trim_start().starts_with("suite aborted")
}

/// The names printed by `suite=list`, in order, without duplicates or harness-only suites.
pub fn parse_suite_list(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in lines {
        let Some(rest) = line.strip_prefix("suite ") else {
            continue;
        };
        let name = rest.trim();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid && name != "aborted" && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// What one boot of a suite showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub verdicts: Vec<Verdict>,
    pub result: Option<Tally>,
    pub aborted: bool,
}

pub fn scan(lines: &[String]) -> RunReport {
    let mut report = RunReport::default();
    for line in lines {
        if let Some(v) = parse_verdict(line) {
            report.verdicts.push(v);
        } else if let Some(t) = parse_result_line(line) {
            report.result = Some(t);
        } else if is_abort_line(line) {
            report.aborted = true;
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------
// One suite in one configuration

/// Echoes verdict lines live as `[<config>] test ... ok`, and before a FAILED verdict the
/// lines the case printed (fault reports and the like). With `verbose`, echoes everything.
struct Echo {
    prefix: String,
    verbose: bool,
    context: VecDeque<String>,
}

impl Echo {
    fn new(prefix: &str) -> Self {
        Echo {
            prefix: prefix.to_string(),
            verbose: verbose(),
            context: VecDeque::new(),
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(v) = parse_verdict(line) {
            if v.failed() && !self.verbose {
                for c in &self.context {
                    println!("    | {c}");
                }
            }
            self.context.clear();
            println!("[{}] {line}", self.prefix);
        } else if is_abort_line(line) {
            println!("[{}] {line}", self.prefix);
            self.context.clear();
        } else {
            if self.verbose {
                println!("[{}]   {line}", self.prefix);
            }
            if self.context.len() == TAIL {
                self.context.pop_front();
            }
            self.context.push_back(line.to_string());
        }
    }
}

/// All the runs of one suite in one configuration.
#[derive(Clone, Debug, Default)]
pub struct SuiteOutcome {
    /// Every verdict, across reruns, in order.
    pub verdicts: Vec<Verdict>,
    /// Failures that are not a case's verdict: timeouts, crashes, protocol violations.
    pub problems: Vec<String>,
    /// The `skip` of each boot (the first is 0).
    pub skips: Vec<usize>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl SuiteOutcome {
    pub fn passed(&self) -> usize {
        self.verdicts.iter().filter(|v| !v.failed()).count()
    }

    /// Failed cases plus problems: what counts towards `M failed`.
    pub fn failed(&self) -> usize {
        self.verdicts.iter().filter(|v| v.failed()).count() + self.problems.len()
    }

    /// Records and prints a failure that is not a verdict, with the run's tail if given.
    fn problem(&mut self, label: &str, msg: String, out: Option<&RunOutput>) {
        println!("FAILED: {label}: {msg}");
        if let Some(out) = out {
            print_tail(out);
        }
        self.problems.push(format!("{label}: {msg}"));
    }
}

/// Runs `suite` until every case has reported: `boot(skip)` boots the suite once with that
/// `skip`; after a `suite aborted` the suite is booted again past the cases reported so far.
/// Every boot is checked against the protocol; deviations become problems.
pub fn run_suite(
    suite: &str,
    config: &str,
    timeout: Duration,
    boot: &mut dyn FnMut(usize) -> Result<RunOutput>,
) -> Result<SuiteOutcome> {
    let label = format!("{suite} on {config}");
    let mut o = SuiteOutcome::default();
    let mut skip = 0;
    loop {
        o.skips.push(skip);
        let out = boot(skip)?;
        o.elapsed += out.elapsed;
        let report = scan(&out.lines);
        let reported = report.verdicts.len();
        let failed_here = report.verdicts.iter().filter(|v| v.failed()).count();

        if let Some(first) = report.verdicts.first()
            && o.verdicts.iter().any(|v| v.name == first.name)
        {
            let msg = format!(
                "the rerun with skip={skip} reported {} again: the kernel ignored skip",
                first.name
            );
            o.problem(&label, msg, Some(&out));
            break;
        }
        o.verdicts.extend(report.verdicts);
        if failed_here > 0 && !out.command.is_empty() {
            println!("  reproduce: {}", out.command);
        }

        if out.timed_out {
            o.timed_out = true;
            let msg = format!("timed out (after {} s)", timeout.as_secs());
            o.problem(&label, msg, Some(&out));
            break;
        }
        if let Some(t) = report.result
            && (t.passed, t.failed) != (reported - failed_here, failed_here)
        {
            let msg = format!(
                "the result line says {} passed; {} failed, but the run printed {} ok and {} FAILED verdicts",
                t.passed,
                t.failed,
                reported - failed_here,
                failed_here
            );
            o.problem(&label, msg, Some(&out));
        }
        if report.aborted {
            if reported == 0 {
                let msg = format!("suite aborted (skip={skip}) before reporting any case");
                o.problem(&label, msg, Some(&out));
                break;
            }
            if o.skips.len() > MAX_RERUNS {
                let msg = format!("still aborting after {MAX_RERUNS} reruns; giving up");
                o.problem(&label, msg, Some(&out));
                break;
            }
            skip += reported;
            println!("[{config}] {suite}: rerunning with skip={skip}");
            continue;
        }
        match report.result {
            None => {
                let msg = format!(
                    "crashed: no `test result` line ({}, {} cases reported in this run)",
                    out.describe_exit(),
                    reported
                );
                o.problem(&label, msg, Some(&out));
            }
            Some(t) => {
                let all_ok = failed_here == 0;
                if t.ok != all_ok {
                    let msg = format!(
                        "the result line says {} although {failed_here} cases failed",
                        if t.ok { "ok" } else { "FAILED" }
                    );
                    o.problem(&label, msg, Some(&out));
                }
                let exit_ok = match out.code {
                    Some(0) => all_ok,
                    Some(_) => !all_ok,
                    None => false,
                };
                if !exit_ok {
                    let msg = format!(
                        "{} after {}",
                        out.describe_exit(),
                        if all_ok {
                            "all cases passed (expected 0)"
                        } else {
                            "failures (expected non-zero)"
                        }
                    );
                    o.problem(&label, msg, Some(&out));
                }
            }
        }
        break;
    }
    Ok(o)
}

/// Boots the test kernel in `cfg` once with `suite=<suite> [skip=<skip>]`, echoing verdicts.
fn boot_suite(
    cfg: &Config,
    out: &Outputs,
    suite: &str,
    skip: usize,
    timeout: Duration,
) -> Result<RunOutput> {
    let mut first = vec![format!("suite={suite}")];
    if skip > 0 {
        first.push(format!("skip={skip}"));
    }
    let vm = cfg.vm(Boot::Kernel {
        image: cfg.image(out),
        dtb: None,
        bootargs: cfg.bootargs(&first),
    });
    let mut cmd = vm.command(Console::Captured);
    if verbose() {
        println!("$ {}", display_command(&cmd));
    }
    let mut echo = Echo::new(cfg.name);
    qemu::run_captured(&mut cmd, Some(timeout), true, &mut |l| echo.line(l))
}

// ---------------------------------------------------------------------------------------------
// Harness checks

/// The result of one harness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Boots `vm` once, quietly (everything when verbose), with the timeout.
fn boot_quiet(vm: &Qemu, timeout: Duration) -> Result<RunOutput> {
    let mut cmd = vm.command(Console::Captured);
    let verbose = verbose();
    if verbose {
        println!("$ {}", display_command(&cmd));
    }
    qemu::run_captured(&mut cmd, Some(timeout), true, &mut |l| {
        if verbose {
            println!("    | {l}");
        }
    })
}

/// The selftest suite: `before` ok, `panics` FAILED with "deliberate panic" and the suite
/// aborted, then after the rerun with skip=2, `after` ok — and nothing else.
pub fn judge_selftest(o: &SuiteOutcome) -> CheckResult {
    let got: Vec<(&str, &Outcome)> = o
        .verdicts
        .iter()
        .map(|v| (v.name.as_str(), &v.outcome))
        .collect();
    let shape_ok = matches!(
        got.as_slice(),
        [
            ("selftest::before", Outcome::Ok),
            ("selftest::panics", Outcome::Failed(msg)),
            ("selftest::after", Outcome::Ok),
        ] if msg.contains("deliberate panic")
    );
    if !shape_ok {
        let seen: Vec<String> = o
            .verdicts
            .iter()
            .map(|v| match &v.outcome {
                Outcome::Ok => format!("{} ok", v.name),
                Outcome::Failed(m) => format!("{} FAILED: {m}", v.name),
            })
            .collect();
        return CheckResult::Failed(format!(
            "expected `before ok`, `panics FAILED: ...deliberate panic...`, `after ok`; got [{}]",
            seen.join(", ")
        ));
    }
    if o.skips != [0, 2] {
        return CheckResult::Failed(format!(
            "expected one abort and one rerun with skip=2; the boots used skip={:?}",
            o.skips
        ));
    }
    if !o.problems.is_empty() {
        return CheckResult::Failed(o.problems.join("; "));
    }
    CheckResult::Passed
}

/// A run that should fail loudly: a non-zero exit (not a timeout, not a signal) whose output
/// contains every one of `needles` (`(text, case_sensitive)`).
pub fn judge_loud_failure(out: &RunOutput, needles: &[(&str, bool)]) -> CheckResult {
    let mut why = Vec::new();
    match (out.timed_out, out.code) {
        (true, _) => why.push("timed out instead of exiting".to_string()),
        (false, Some(0)) => why.push("exited 0, expected a failure exit".to_string()),
        (false, None) => why.push("QEMU was killed by a signal".to_string()),
        (false, Some(_)) => {}
    }
    let text = out.lines.join("\n");
    let lower = text.to_lowercase();
    let missing: Vec<&str> = needles
        .iter()
        .filter(|(n, case)| {
            if *case {
                !text.contains(n)
            } else {
                !lower.contains(&n.to_lowercase())
            }
        })
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        why.push(format!("output lacks {}", quote_list(&missing)));
    }
    if why.is_empty() {
        CheckResult::Passed
    } else {
        CheckResult::Failed(why.join("; "))
    }
}

/// A run that should succeed: exit 0 within the timeout, output containing every needle.
pub fn judge_success(out: &RunOutput, needles: &[&str]) -> CheckResult {
    let mut why = Vec::new();
    if out.timed_out || out.code != Some(0) {
        why.push(format!("{}, expected exit code 0", out.describe_exit()));
    }
    let missing: Vec<&str> = needles
        .iter()
        .copied()
        .filter(|n| !out.lines.iter().any(|l| l.contains(n)))
        .collect();
    if !missing.is_empty() {
        why.push(format!("output lacks {}", quote_list(&missing)));
    }
    if why.is_empty() {
        CheckResult::Passed
    } else {
        CheckResult::Failed(why.join("; "))
    }
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names of the harness checks, in run order.
const CHECKS: &[&str] = &[
    "selftest",
    "kernel-fault",
    "no-dtb",
    "bad-cpu-dtb",
    "run-demo",
];

/// Runs one harness check, printing what it expects and, on failure, the run's output.
fn run_check(
    name: &str,
    out: &Outputs,
    suites: &[String],
    timeout: Duration,
) -> Result<CheckResult> {
    let cfg = Config::by_name(HARNESS_CONFIG);
    let ktest = out.image(Bin::KTEST);
    let kernel_boot = |first: Vec<String>, dtb: Option<PathBuf>| Boot::Kernel {
        image: ktest.clone(),
        dtb,
        bootargs: cfg.bootargs(&first),
    };
    let (result, run) = match name {
        "selftest" => {
            println!(
                "== harness check selftest on {}: expect `before` ok, `panics` FAILED (deliberate panic) and suite aborted, a rerun with skip=2, `after` ok",
                cfg.name
            );
            let o = run_suite("selftest", cfg.name, timeout, &mut |skip| {
                boot_suite(cfg, out, "selftest", skip, timeout)
            })?;
            (judge_selftest(&o), None)
        }
        "kernel-fault" => {
            println!(
                "== harness check kernel-fault on {}: expect a non-zero exit and a data abort report (translation fault, FAR, ESR, ELR)",
                cfg.name
            );
            let vm = cfg.vm(kernel_boot(vec!["suite=kernel_fault".into()], None));
            let run = boot_quiet(&vm, timeout)?;
            let needles = [
                ("data abort", false),
                ("translation fault", false),
                ("FAR", true),
                ("ESR", true),
                ("ELR", true),
            ];
            (judge_loud_failure(&run, &needles), Some(run))
        }
        "no-dtb" => {
            println!(
                "== harness check no-dtb on {}: boot through -device loader (x0 = 0, no bootargs); expect a non-zero exit and `no device tree`",
                cfg.name
            );
            let vm = cfg.vm(Boot::Loader {
                image: ktest.clone(),
                addr: qemu::LOAD_ADDR,
            });
            let run = boot_quiet(&vm, timeout)?;
            (
                judge_loud_failure(&run, &[("no device tree", false)]),
                Some(run),
            )
        }
        "bad-cpu-dtb" => {
            let dtb = workspace_root().join("tests/data/bad-cpu.dtb");
            if !dtb.exists() {
                let msg = format!("{} does not exist yet", build::display_rel(&dtb));
                println!("== harness check bad-cpu-dtb: SKIPPED: {msg}");
                return Ok(CheckResult::Skipped(msg));
            }
            // Any real suite: the kernel must stop at the device tree before running it.
            let suite = suites.first().map_or("selftest", String::as_str);
            println!(
                "== harness check bad-cpu-dtb on {}: -dtb {} (cpu@1 lacks reg), suite={suite}; expect a non-zero exit naming the device tree and `reg`",
                cfg.name,
                build::display_rel(&dtb)
            );
            let vm = cfg.vm(kernel_boot(vec![format!("suite={suite}")], Some(dtb)));
            let run = boot_quiet(&vm, timeout)?;
            let needles = [("device tree", false), ("reg", true)];
            (judge_loud_failure(&run, &needles), Some(run))
        }
        "run-demo" => {
            println!(
                "== harness check run-demo on {}: the demo kernel with demo=timed; expect exit code 0 and `core 3 online`",
                cfg.name
            );
            let vm = cfg.vm(Boot::Kernel {
                image: out.image(Bin::KERNEL),
                dtb: None,
                bootargs: vec!["demo=timed".into(), "semihosting=1".into()],
            });
            let run = boot_quiet(&vm, timeout)?;
            (judge_success(&run, &["core 3 online"]), Some(run))
        }
        other => bail!("unknown harness check {other}"),
    };
    match &result {
        CheckResult::Passed => println!("harness check {name}: ok"),
        CheckResult::Failed(why) => {
            println!("FAILED: harness check {name}: {why}");
            if let Some(run) = &run {
                print_tail(run);
            }
        }
        CheckResult::Skipped(_) => {}
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Host tests

/// What `cargo test --workspace` reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostTests {
    pub passed: usize,
    pub failed: usize,
    /// A failure no `test result` line accounts for (e.g. a compile error).
    pub problem: Option<String>,
}

/// Sums the `test result:` lines of cargo test output; `code` is cargo's exit code.
pub fn tally_host(lines: &[String], code: Option<i32>) -> HostTests {
    let mut h = HostTests::default();
    for t in lines.iter().filter_map(|l| parse_result_line(l)) {
        h.passed += t.passed;
        h.failed += t.failed;
    }
    if code != Some(0) && h.failed == 0 {
        h.problem = Some(format!(
            "cargo test failed ({}) without a failing test: does it compile?",
            match code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            }
        ));
    }
    h
}

fn run_host_tests(filter: Option<&str>) -> Result<HostTests> {
    println!("== host unit tests");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]);
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    println!("$ {}", display_command(&cmd));
    let out = qemu::run_captured(&mut cmd, None, false, &mut |l| println!("{l}"))?;
    Ok(tally_host(&out.lines, out.code))
}

/// The libtest filter that selects the loom model tests (every `loom_tests` module).
const LOOM_TESTS: &str = "loom_tests";

/// The loom model checks of the kernel's lock-free code: the kernel's unit tests built with
/// `--cfg loom`, in release mode (loom is slow), in their own target directory so that the
/// changed RUSTFLAGS do not invalidate the normal build.
fn run_loom_tests() -> Result<HostTests> {
    println!("== loom model tests");
    let mut cmd = cargo();
    cmd.args(["test", "-p", "kernel", "--release", "--lib", "--target-dir"]);
    cmd.arg(workspace_root().join("target/loom"));
    cmd.args(["--", LOOM_TESTS]);
    cmd.env("RUSTFLAGS", "--cfg loom");
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS");
    println!("$ RUSTFLAGS='--cfg loom' {}", display_command(&cmd));
    let out = qemu::run_captured(&mut cmd, None, false, &mut |l| println!("{l}"))?;
    Ok(tally_host(&out.lines, out.code))
}

// ---------------------------------------------------------------------------------------------
// The whole run

/// Lists the suites by booting `suite=list` in the first configuration.
fn list_suites(out: &Outputs, timeout: Duration) -> Result<Result<Vec<String>, String>> {
    let cfg = &CONFIGS[0];
    println!("== listing suites (suite=list on {})", cfg.name);
    let vm = cfg.vm(Boot::Kernel {
        image: cfg.image(out),
        dtb: None,
        bootargs: cfg.bootargs(&["suite=list".into()]),
    });
    let run = boot_quiet(&vm, timeout)?;
    let mut suites = parse_suite_list(&run.lines);
    let harness: Vec<String> = suites
        .iter()
        .filter(|s| HARNESS_SUITES.contains(&s.as_str()))
        .cloned()
        .collect();
    if !harness.is_empty() {
        println!(
            "note: suite=list names harness-only suites {harness:?}; they run only as harness checks"
        );
        suites.retain(|s| !harness.contains(s));
    }
    if run.timed_out || run.code != Some(0) || suites.is_empty() {
        let msg = format!(
            "suite=list on {}: {} with {} suites listed",
            cfg.name,
            run.describe_exit(),
            suites.len()
        );
        println!("FAILED: {msg}");
        print_tail(&run);
        return Ok(Err(msg));
    }
    println!("suites: {}", suites.join(" "));
    Ok(Ok(suites))
}

/// Does `key` pass the `--filter`?
fn selected(filter: Option<&str>, key: &str) -> bool {
    filter.is_none_or(|f| key.contains(f))
}

/// Everything `cargo xtask test` does; the exit code is 0 iff nothing failed.
pub fn run(profile: Profile, filter: Option<&str>) -> Result<u8> {
    let timeout = qemu::timeout_from(
        std::env::var("XTASK_TIMEOUT_SECS").ok(),
        DEFAULT_TIMEOUT_SECS,
    )?;
    let mut other_failures: Vec<String> = Vec::new();

    // 1. Host unit tests.
    let host = run_host_tests(filter)?;
    if let Some(p) = &host.problem {
        println!("FAILED: {p}");
        other_failures.push(p.clone());
    }
    // 1b. Loom model tests, unless a --filter leaves them out.
    let loom = if selected(filter, LOOM_TESTS) {
        run_loom_tests()?
    } else {
        HostTests::default()
    };
    if let Some(p) = &loom.problem {
        println!("FAILED: loom: {p}");
        other_failures.push(format!("loom: {p}"));
    }

    // 2. Build both kernels.
    println!("== building the kernels");
    let out = match build::build(profile, &[Bin::KERNEL, Bin::KTEST]) {
        Ok(out) => Some(out),
        Err(Error::Msg(m)) => {
            println!("FAILED: build: {m}");
            other_failures.push(format!("build: {m}"));
            None
        }
        Err(e) => return Err(e),
    };

    // 3. Every suite in every configuration, then the harness checks.
    let mut suites = Vec::new();
    let mut results: Vec<(&'static Config, String, SuiteOutcome)> = Vec::new();
    let mut checks: Vec<(&str, CheckResult)> = Vec::new();
    if let Some(out) = &out {
        match list_suites(out, timeout)? {
            Ok(s) => suites = s,
            Err(msg) => other_failures.push(msg),
        }
        for cfg in CONFIGS {
            let chosen: Vec<&String> = suites
                .iter()
                .filter(|s| selected(filter, &format!("{}/{s}", cfg.name)))
                .collect();
            if chosen.is_empty() {
                continue;
            }
            println!(
                "== {}: -machine {} -smp {}{}{} (bootargs: {})",
                cfg.name,
                cfg.machine,
                cfg.smp,
                if cfg.qemu_args.is_empty() { "" } else { " " },
                cfg.qemu_args.join(" "),
                cfg.bootargs
            );
            for suite in chosen {
                let o = run_suite(suite, cfg.name, timeout, &mut |skip| {
                    boot_suite(cfg, out, suite, skip, timeout)
                })?;
                println!(
                    "[{}] {suite}: {} passed, {} failed ({} boot{}, {:.1} s)",
                    cfg.name,
                    o.passed(),
                    o.failed(),
                    o.skips.len(),
                    if o.skips.len() == 1 { "" } else { "s" },
                    o.elapsed.as_secs_f64()
                );
                results.push((cfg, suite.clone(), o));
            }
        }
        for &name in CHECKS {
            if selected(filter, &format!("harness/{name}")) {
                checks.push((name, run_check(name, out, &suites, timeout)?));
            }
        }
    }

    // 4. Summary.
    println!();
    println!("==================== summary ====================");
    let shown_suites: Vec<&String> = suites
        .iter()
        .filter(|s| results.iter().any(|(_, r, _)| r == *s))
        .collect();
    if !results.is_empty() {
        let mut header = vec!["config".to_string()];
        header.extend(shown_suites.iter().map(|s| s.to_string()));
        let mut rows = Vec::new();
        for cfg in CONFIGS {
            if !results.iter().any(|(c, _, _)| c.name == cfg.name) {
                continue;
            }
            let mut row = vec![cfg.name.to_string()];
            for suite in &shown_suites {
                let cell = results
                    .iter()
                    .find(|(c, s, _)| c.name == cfg.name && s == *suite)
                    .map_or_else(|| "-".to_string(), |(_, _, o)| cell(o));
                row.push(cell);
            }
            rows.push(row);
        }
        print!("{}", render_table(&header, &rows));
    }
    for (name, r) in &checks {
        let text = match r {
            CheckResult::Passed => "ok".to_string(),
            CheckResult::Failed(why) => format!("FAILED: {why}"),
            CheckResult::Skipped(why) => format!("skipped: {why}"),
        };
        println!("harness {name:<13} {text}");
    }
    println!(
        "host unit tests: {} passed, {} failed",
        host.passed, host.failed
    );
    println!(
        "loom model tests: {} passed, {} failed",
        loom.passed, loom.failed
    );

    let target_passed: usize = results.iter().map(|(_, _, o)| o.passed()).sum();
    let target_failed: usize = results.iter().map(|(_, _, o)| o.failed()).sum();
    let checks_passed = checks
        .iter()
        .filter(|(_, r)| *r == CheckResult::Passed)
        .count();
    let checks_failed = checks
        .iter()
        .filter(|(_, r)| matches!(r, CheckResult::Failed(_)))
        .count();
    println!(
        "on-target: {target_passed} passed, {target_failed} failed; harness checks: {checks_passed} passed, {checks_failed} failed"
    );

    let mut failures = other_failures.clone();
    for (cfg, _, o) in &results {
        for v in &o.verdicts {
            if let Outcome::Failed(msg) = &v.outcome {
                failures.push(format!("[{}] test {} ... FAILED: {msg}", cfg.name, v.name));
            }
        }
        failures.extend(o.problems.iter().cloned());
    }
    for (name, r) in &checks {
        if let CheckResult::Failed(why) = r {
            failures.push(format!("harness check {name}: {why}"));
        }
    }
    if !failures.is_empty() {
        println!("failures:");
        for f in &failures {
            println!("  {f}");
        }
    }

    let passed = host.passed + loom.passed + target_passed + checks_passed;
    let failed = host.failed + loom.failed + target_failed + checks_failed + other_failures.len();
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// A summary-table cell: `12 ok`, `11 ok 1 FAIL`, `3 ok TIMEOUT`.
fn cell(o: &SuiteOutcome) -> String {
    let passed = o.passed();
    let failed = o.failed();
    if o.timed_out {
        format!("{passed} ok TIMEOUT")
    } else if failed == 0 {
        format!("{passed} ok")
    } else {
        format!("{passed} ok {failed} FAIL")
    }
}

/// Left-aligned columns separated by two spaces, a rule under the header.
fn render_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    fn run_output(text: &str, code: i32) -> RunOutput {
        RunOutput {
            code: Some(code),
            lines: lines(text),
            ..Default::default()
        }
    }

    #[test]
    fn verdict_lines() {
        assert_eq!(
            parse_verdict("test boot::cores_online ... ok"),
            Some(Verdict {
                name: "boot::cores_online".into(),
                outcome: Outcome::Ok
            })
        );
        assert_eq!(
            parse_verdict("test mem::frames ... FAILED: expected 3, got 4 ... really"),
            Some(Verdict {
                name: "mem::frames".into(),
                outcome: Outcome::Failed("expected 3, got 4 ... really".into())
            })
        );
        assert_eq!(
            parse_verdict("test a::b ... FAILED").unwrap().outcome,
            Outcome::Failed(String::new())
        );
        assert_eq!(
            parse_verdict("test a::b ... ok[core 1 INFO ] glued")
                .unwrap()
                .outcome,
            Outcome::Ok
        );
        assert!(matches!(
            parse_verdict("test a::b ... ignored").unwrap().outcome,
            Outcome::Failed(m) if m.contains("unrecognised")
        ));
        // Not verdicts: a log prefix first, no ` ... `, the result line.
        assert_eq!(parse_verdict("[core 1 INFO ] test a::b ... ok"), None);
        assert_eq!(parse_verdict("test a::b running"), None);
        assert_eq!(parse_verdict("test result: ok. 1 passed; 0 failed"), None);
        assert_eq!(parse_verdict("testing ... ok"), None);
    }

    #[test]
    fn result_lines() {
        assert_eq!(
            parse_result_line("test result: ok. 5 passed; 0 failed"),
            Some(Tally {
                ok: true,
                passed: 5,
                failed: 0
            })
        );
        assert_eq!(
            parse_result_line("test result: FAILED. 1 passed; 2 failed"),
            Some(Tally {
                ok: false,
                passed: 1,
                failed: 2
            })
        );
        // libtest's longer form.
        assert_eq!(
            parse_result_line(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some(Tally {
                ok: true,
                passed: 12,
                failed: 0
            })
        );
        assert_eq!(
            parse_result_line("test result: maybe. 1 passed; 0 failed"),
            None
        );
        assert_eq!(parse_result_line("test result: ok."), None);
    }

    #[test]
    fn suite_list() {
        let out = lines(
            "[core 0 INFO ] booting\nsuite boot\nsuite sync\nsuite bad name\nsuite boot\nsuite mem_frames\n",
        );
        assert_eq!(parse_suite_list(&out), ["boot", "sync", "mem_frames"]);
    }

    #[test]
    fn a_clean_suite_boots_once() {
        let mut boots = Vec::new();
        let o = run_suite("boot", "cfg", Duration::from_secs(1), &mut |skip| {
            boots.push(skip);
            Ok(run_output(
                "hello\ntest boot::a ... ok\n[core 1 INFO ] x\ntest boot::b ... ok\ntest result: ok. 2 passed; 0 failed\n",
                0,
            ))
        })
        .unwrap();
        assert_eq!(boots, [0]);
        assert_eq!((o.passed(), o.failed()), (2, 0));
        assert!(o.problems.is_empty());
    }

    #[test]
    fn a_failing_case_without_abort_is_counted_once() {
        let o = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            Ok(run_output(
                "test s::a ... FAILED: nope\ntest s::b ... ok\ntest result: FAILED. 1 passed; 1 failed\n",
                1,
            ))
        })
        .unwrap();
        assert_eq!((o.passed(), o.failed()), (1, 1));
        assert!(o.problems.is_empty());
        assert_eq!(o.skips, [0]);
    }

    /// The canned selftest: before ok, panics aborts, rerun with skip=2 runs after.
    fn selftest_boot(skip: usize) -> RunOutput {
        match skip {
            0 => run_output(
                "test selftest::before ... ok\n\
                 [core 0 ERROR] panicked at tests/src/selftest.rs:9: deliberate panic\n\
                 test selftest::panics ... FAILED: panicked: deliberate panic\n\
                 test result: FAILED. 1 passed; 1 failed\n\
                 suite aborted\n",
                1,
            ),
            2 => run_output(
                "test selftest::after ... ok\ntest result: ok. 1 passed; 0 failed\n",
                0,
            ),
            _ => run_output("unexpected skip\n", 3),
        }
    }

    #[test]
    fn abort_reruns_past_the_reported_cases() {
        let o = run_suite("selftest", "cfg", Duration::from_secs(1), &mut |skip| {
            Ok(selftest_boot(skip))
        })
        .unwrap();
        assert_eq!(o.skips, [0, 2]);
        assert_eq!((o.passed(), o.failed()), (2, 1));
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert_eq!(judge_selftest(&o), CheckResult::Passed);
    }

    #[test]
    fn skip_accumulates_across_several_aborts() {
        // Cases 0..6; cases 1 and 4 abort. Boots: skip 0 (0,1), skip 2 (2,3,4), skip 5 (5).
        let mut boots = Vec::new();
        let o = run_suite("s", "cfg", Duration::from_secs(1), &mut |skip| {
            boots.push(skip);
            let mut text = String::new();
            let mut n = (0, 0);
            for case in skip..6 {
                if case == 1 || case == 4 {
                    text += &format!("test s::c{case} ... FAILED: boom\n");
                    n.1 += 1;
                    text += &format!(
                        "test result: FAILED. {} passed; {} failed\nsuite aborted\n",
                        n.0, n.1
                    );
                    return Ok(run_output(&text, 1));
                }
                text += &format!("test s::c{case} ... ok\n");
                n.0 += 1;
            }
            text += &format!("test result: ok. {} passed; 0 failed\n", n.0);
            Ok(run_output(&text, 0))
        })
        .unwrap();
        assert_eq!(boots, [0, 2, 5]);
        assert_eq!(o.skips, boots);
        assert_eq!((o.passed(), o.failed()), (4, 2));
        let names: Vec<&str> = o.verdicts.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["s::c0", "s::c1", "s::c2", "s::c3", "s::c4", "s::c5"]
        );
    }

    #[test]
    fn a_kernel_ignoring_skip_is_caught_not_looped() {
        let mut boots = 0;
        let o = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            boots += 1;
            Ok(run_output(
                "test s::a ... FAILED: boom\ntest result: FAILED. 0 passed; 1 failed\nsuite aborted\n",
                1,
            ))
        })
        .unwrap();
        assert_eq!(boots, 2);
        assert_eq!(o.problems.len(), 1);
        assert!(o.problems[0].contains("ignored skip"), "{:?}", o.problems);
    }

    #[test]
    fn abort_before_any_case_is_a_problem() {
        let o = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            Ok(run_output("panic in setup\nsuite aborted\n", 1))
        })
        .unwrap();
        assert_eq!(o.skips, [0]);
        assert_eq!(o.failed(), 1);
    }

    #[test]
    fn timeout_crash_and_protocol_violations() {
        let timed_out = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            Ok(RunOutput {
                timed_out: true,
                lines: lines("test s::a ... ok\n"),
                ..Default::default()
            })
        })
        .unwrap();
        assert!(timed_out.timed_out);
        assert_eq!((timed_out.passed(), timed_out.failed()), (1, 1));
        assert_eq!(timed_out.problems, ["s on cfg: timed out (after 1 s)"]);

        let crashed = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            Ok(run_output("test s::a ... ok\nSynchronous exception\n", 1))
        })
        .unwrap();
        assert_eq!((crashed.passed(), crashed.failed()), (1, 1));
        assert!(crashed.problems[0].contains("crashed"));

        let wrong_code = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            Ok(run_output(
                "test s::a ... ok\ntest result: ok. 1 passed; 0 failed\n",
                1,
            ))
        })
        .unwrap();
        assert_eq!(wrong_code.failed(), 1);

        let wrong_count = run_suite("s", "cfg", Duration::from_secs(1), &mut |_| {
            Ok(run_output(
                "test s::a ... ok\ntest result: ok. 2 passed; 0 failed\n",
                0,
            ))
        })
        .unwrap();
        assert_eq!(wrong_count.failed(), 1);
        assert!(wrong_count.problems[0].contains("result line says 2 passed"));
    }

    #[test]
    fn selftest_judgement_rejects_wrong_shapes() {
        let ok = |n: &str| Verdict {
            name: n.into(),
            outcome: Outcome::Ok,
        };
        let mut o = SuiteOutcome {
            verdicts: vec![
                ok("selftest::before"),
                ok("selftest::panics"),
                ok("selftest::after"),
            ],
            skips: vec![0],
            ..Default::default()
        };
        assert!(matches!(judge_selftest(&o), CheckResult::Failed(_)));
        o.verdicts[1].outcome = Outcome::Failed("panicked: deliberate panic".into());
        assert!(matches!(judge_selftest(&o), CheckResult::Failed(m) if m.contains("skip")));
        o.skips = vec![0, 2];
        assert_eq!(judge_selftest(&o), CheckResult::Passed);
        o.verdicts.pop();
        assert!(matches!(judge_selftest(&o), CheckResult::Failed(_)));
    }

    #[test]
    fn loud_failure_and_success_judgements() {
        let fault = run_output(
            "[core 0 ERROR] data abort (translation fault, level 3) FAR 0xdead000 ESR 0x96000007 ELR 0x40201234\n",
            1,
        );
        let needles = [
            ("Data Abort", false),
            ("FAR", true),
            ("ESR", true),
            ("ELR", true),
        ];
        assert_eq!(judge_loud_failure(&fault, &needles), CheckResult::Passed);
        let clean_exit = run_output(&fault.lines[0], 0);
        assert!(
            matches!(judge_loud_failure(&clean_exit, &needles), CheckResult::Failed(m) if m.contains("exited 0"))
        );
        let quiet = run_output("nothing here", 1);
        assert!(
            matches!(judge_loud_failure(&quiet, &needles), CheckResult::Failed(m) if m.contains("`FAR`"))
        );
        let hung = RunOutput {
            timed_out: true,
            ..fault.clone()
        };
        assert!(
            matches!(judge_loud_failure(&hung, &needles), CheckResult::Failed(m) if m.contains("timed out"))
        );

        let demo = run_output("core 0 online\ncore 3 online\n", 0);
        assert_eq!(
            judge_success(&demo, &["core 3 online"]),
            CheckResult::Passed
        );
        assert!(matches!(
            judge_success(&run_output("core 3 online", 1), &["core 3 online"]),
            CheckResult::Failed(_)
        ));
    }

    #[test]
    fn host_tally() {
        let out = lines(
            "running 2 tests\ntest a ... ok\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
             test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        assert_eq!(
            tally_host(&out, Some(101)),
            HostTests {
                passed: 5,
                failed: 1,
                problem: None
            }
        );
        let compile_error = tally_host(&[], Some(101));
        assert!(compile_error.problem.is_some());
        assert_eq!(tally_host(&out[..3], Some(0)).problem, None);
    }

    #[test]
    fn configs_are_well_formed() {
        let mut names: Vec<&str> = CONFIGS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CONFIGS.len());
        assert_eq!(Config::by_name(HARNESS_CONFIG).smp, 4);
        for c in CONFIGS {
            assert!(
                c.bootargs.contains(&format!("expect_cpus={}", c.smp)),
                "{}",
                c.name
            );
            let gic = if c.machine.contains("gic-version=2") {
                2
            } else {
                3
            };
            assert!(
                c.bootargs.contains(&format!("expect_gic={gic}")),
                "{}",
                c.name
            );
            let el = if c.machine.contains("virtualization=on") {
                2
            } else {
                1
            };
            assert!(
                c.bootargs.contains(&format!("expect_el={el}")),
                "{}",
                c.name
            );
            assert_eq!(
                c.qemu_args == ICOUNT,
                c.bootargs.contains("icount=1"),
                "{}",
                c.name
            );
            assert_eq!(
                c.image == Alt,
                c.bootargs.contains("expect_load=0x43000000"),
                "{}",
                c.name
            );
        }
        let args =
            Config::by_name("alt-load-smp4").bootargs(&["suite=boot".into(), "skip=3".into()]);
        assert_eq!(
            args.join(" "),
            "semihosting=1 suite=boot skip=3 expect_load=0x43000000 expect_gic=3 expect_el=1 expect_cpus=4"
        );
    }

    #[test]
    fn filter_keys() {
        assert!(selected(None, "gicv3-smp1/boot"));
        assert!(selected(Some("gicv2"), "gicv2-smp4/boot"));
        assert!(selected(Some("smp4/sched"), "gicv3-smp4/sched"));
        assert!(!selected(Some("sched"), "gicv3-smp4/boot"));
        assert!(selected(Some("harness"), "harness/no-dtb"));
    }

    #[test]
    fn table_rendering() {
        let header = vec!["config".to_string(), "boot".to_string()];
        let rows = vec![
            vec!["gicv3-smp1".to_string(), "5 ok".to_string()],
            vec!["x".to_string(), "4 ok 1 FAIL".to_string()],
        ];
        assert_eq!(
            render_table(&header, &rows),
            "config      boot\n----------  -----------\ngicv3-smp1  5 ok\nx           4 ok 1 FAIL\n"
        );
    }
}
