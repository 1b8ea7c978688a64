//! `cargo xtask bench`: boots the test kernel in each benchmark mode, collects the figures it
//! prints, checks that the deterministic (`-icount`) figures are identical run to run when asked
//! to (`--repeat N`), and prints every figure in one table at the end.
//!
//! The on-target protocol: `ktest.bin` boots with `-append "semihosting=1 suite=bench
//! bench=<mode> [icount=1]"`, prints one line `bench <name> <value> <unit>` per figure (exactly
//! four whitespace-separated fields; the value an integer or a decimal; each name once per run)
//! and exits QEMU with 0, or non-zero on failure. The modes, all on `virt,gic-version=3` with
//! 1 GiB (the machine of the test runner's first configuration):
//!
//! - `icount`: `-smp 1 -icount shift=0,sleep=off`: deterministic, figures in guest instructions.
//! - `wall`: `-smp 1`, plain TCG: figures in guest nanoseconds.
//! - `wall_smp`: `-smp 4 -accel tcg,thread=multi` (MTTCG), for cross-core figures; the only mode
//!   allowed to print no figures.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::build::{self, Bin, Profile};
use crate::qemu::{self, Boot, Console, Qemu, RunOutput, print_tail, verbose};
use crate::{Error, Result, bail, display_command};

/// RAM of every benchmark run, MiB.
const MEM_MIB: u32 = 1024;
/// The interrupt controller of every benchmark run (as in the test runner's first config).
const GIC: u8 = 3;
const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// How a benchmark run is emulated; its name is the `bench=<mode>` boot argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Icount,
    Wall,
    WallSmp,
}

impl Mode {
    /// Every mode, in run (and table) order.
    pub const ALL: [Mode; 3] = [Mode::Icount, Mode::Wall, Mode::WallSmp];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Icount => "icount",
            Mode::Wall => "wall",
            Mode::WallSmp => "wall_smp",
        }
    }

    fn smp(self) -> u32 {
        match self {
            Mode::Icount | Mode::Wall => 1,
            Mode::WallSmp => 4,
        }
    }

    /// QEMU arguments beyond the machine, CPU, memory, boot and console.
    fn qemu_args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Mode::Icount => qemu::ICOUNT_ARGS,
            Mode::Wall => &[],
            // MTTCG is QEMU's default for an aarch64 guest on x86-64 and arm64 hosts; say so
            // explicitly so a host where it is not fails loudly instead of measuring one thread.
            Mode::WallSmp => &["-accel", "tcg,thread=multi"],
        };
        args.iter().map(|s| s.to_string()).collect()
    }

    /// Only the SMP run may print nothing (its cross-core figures come later).
    fn may_print_nothing(self) -> bool {
        self == Mode::WallSmp
    }

    fn bootargs(self) -> Vec<String> {
        let mut args = vec![
            "semihosting=1".to_string(),
            "suite=bench".to_string(),
            format!("bench={}", self.name()),
        ];
        if self == Mode::Icount {
            // What every -icount run tells the kernel (see `cargo xtask qemu --icount`).
            args.push("icount=1".into());
        }
        args
    }

    fn vm(self, image: PathBuf) -> Qemu {
        Qemu {
            machine: qemu::machine_opts(GIC, false),
            smp: self.smp(),
            mem_mib: MEM_MIB,
            boot: Boot::Kernel {
                image,
                dtb: None,
                bootargs: self.bootargs(),
            },
            extra: self.qemu_args(),
            gdb: false,
        }
    }

    /// `-smp 1 -m 1024M -icount shift=0,sleep=off`, for progress lines.
    fn describe(self) -> String {
        let mut s = format!(
            "-machine {} -smp {} -m {MEM_MIB}M",
            qemu::machine_opts(GIC, false),
            self.smp()
        );
        for a in self.qemu_args() {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| "expected icount, wall or wall_smp".to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol parsing

/// One `bench <name> <value> <unit>` line. The value is kept as printed: it is compared
/// textually between repeats and shown as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    pub name: String,
    pub value: String,
    pub unit: String,
}

impl Figure {
    /// `bench <name> <value> <unit>`, single-spaced: the line scripts grep for.
    pub fn line(&self) -> String {
        format!("bench {} {} {}", self.name, self.value, self.unit)
    }
}

/// An optional `-`, digits, and optionally `.` and more digits.
fn is_number(s: &str) -> bool {
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let s = s.strip_prefix('-').unwrap_or(s);
    match s.split_once('.') {
        None => digits(s),
        Some((int, frac)) => digits(int) && digits(frac),
    }
}

/// Parses one output line: `Ok(None)` unless its first word is `bench` (from the first
/// column), an error when it is a `bench` line of the wrong shape.
pub fn parse_line(line: &str) -> Result<Option<Figure>, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if !line.starts_with("bench") || fields.first() != Some(&"bench") {
        return Ok(None);
    }
    let [_, name, value, unit] = fields[..] else {
        return Err(format!(
            "malformed line `{line}`: expected `bench <name> <value> <unit>` (4 fields), got {}",
            fields.len()
        ));
    };
    if !is_number(value) {
        return Err(format!(
            "malformed line `{line}`: the value `{value}` is not an integer or a decimal"
        ));
    }
    if is_number(unit) {
        return Err(format!(
            "malformed line `{line}`: the unit `{unit}` is a number (is the unit missing?)"
        ));
    }
    Ok(Some(Figure {
        name: name.to_string(),
        value: value.to_string(),
        unit: unit.to_string(),
    }))
}

/// Every figure of one run, in order; or every protocol violation in it (malformed `bench`
/// lines, a name printed twice).
pub fn parse_figures(lines: &[String]) -> Result<Vec<Figure>, Vec<String>> {
    let mut figures: Vec<(usize, Figure)> = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some(f)) => {
                if let Some((first, _)) = figures.iter().find(|(_, g)| g.name == f.name) {
                    problems.push(format!(
                        "`bench {}` printed twice (output lines {} and {})",
                        f.name,
                        first + 1,
                        i + 1
                    ));
                } else {
                    figures.push((i, f));
                }
            }
            Err(e) => problems.push(format!("output line {}: {e}", i + 1)),
        }
    }
    if problems.is_empty() {
        Ok(figures.into_iter().map(|(_, f)| f).collect())
    } else {
        Err(problems)
    }
}

/// The figures of one run, or why the run failed: a timeout, a non-zero exit, a protocol
/// violation, or no figures at all in a mode that must print some.
pub fn judge(mode: Mode, out: &RunOutput, timeout: Duration) -> Result<Vec<Figure>, String> {
    let mut why = Vec::new();
    let figures = match parse_figures(&out.lines) {
        Ok(f) => f,
        Err(problems) => {
            why.extend(problems);
            Vec::new()
        }
    };
    if out.timed_out {
        why.push(format!(
            "timed out after {} s (XTASK_TIMEOUT_SECS raises the limit)",
            timeout.as_secs()
        ));
    } else if out.code != Some(0) {
        why.push(format!(
            "QEMU ended with {} (expected 0)",
            out.describe_exit()
        ));
    }
    if why.is_empty() && figures.is_empty() && !mode.may_print_nothing() {
        why.push("no `bench <name> <value> <unit>` lines in the output".into());
    }
    let no_suite = out
        .lines
        .iter()
        .any(|l| l.contains("no suite named") && l.contains("bench"));
    if !why.is_empty() && no_suite {
        why.push(
            "the test kernel has no `bench` suite (the kernel side of the benchmarks is missing)"
                .into(),
        );
    }
    if why.is_empty() {
        Ok(figures)
    } else {
        Err(why.join("; "))
    }
}

/// How the repeats of a run differ from its first run (empty: identical). Figures are matched by
/// name; values and units are compared as printed.
pub fn compare_runs(runs: &[Vec<Figure>]) -> Vec<String> {
    let Some((first, rest)) = runs.split_first() else {
        return Vec::new();
    };
    let mut diffs = Vec::new();
    for (k, run) in rest.iter().enumerate() {
        let k = k + 2;
        for f in first {
            match run.iter().find(|g| g.name == f.name) {
                None => diffs.push(format!(
                    "bench {}: run 1 printed {} {}, run {k} did not print it",
                    f.name, f.value, f.unit
                )),
                Some(g) if (&g.value, &g.unit) != (&f.value, &f.unit) => diffs.push(format!(
                    "bench {}: run 1 printed {} {}, run {k} printed {} {}",
                    f.name, f.value, f.unit, g.value, g.unit
                )),
                Some(_) => {}
            }
        }
        for g in run
            .iter()
            .filter(|g| !first.iter().any(|f| f.name == g.name))
        {
            diffs.push(format!(
                "bench {}: run {k} printed {} {}, run 1 did not print it",
                g.name, g.value, g.unit
            ));
        }
    }
    diffs
}

/// One line per figure: `bench <name> <value> <unit>` exactly as `Figure::line`, then the mode
/// in brackets, aligned in one column.
pub fn render_table(figures: &[(Mode, Figure)]) -> String {
    let lines: Vec<String> = figures.iter().map(|(_, f)| f.line()).collect();
    let width = lines.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (line, (mode, _)) in lines.iter().zip(figures) {
        out.push_str(&format!("{line:<width$}   [{}]\n", mode.name()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The runs

/// One boot of the bench kernel: `index` of `of` runs of `mode` (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub mode: Mode,
    pub index: usize,
    pub of: usize,
}

impl Run {
    fn label(&self) -> String {
        if self.of == 1 {
            self.mode.name().to_string()
        } else {
            format!("{} run {}/{}", self.mode.name(), self.index, self.of)
        }
    }
}

/// The modes to run: `only`, or all; `repeat` runs of icount, one of the others. A repeat
/// without the icount mode is refused: only icount figures are meant to be reproducible.
pub fn plan(only: Option<Mode>, repeat: usize) -> Result<Vec<Run>> {
    if repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if repeat > 1 && only.is_some_and(|m| m != Mode::Icount) {
        bail!(
            "--repeat repeats the icount run (the deterministic one); it cannot be combined with --mode {}",
            only.map_or("", Mode::name)
        );
    }
    let modes: Vec<Mode> = match only {
        Some(m) => vec![m],
        None => Mode::ALL.to_vec(),
    };
    let mut runs = Vec::new();
    for mode in modes {
        let of = if mode == Mode::Icount { repeat } else { 1 };
        runs.extend((1..=of).map(|index| Run { mode, index, of }));
    }
    Ok(runs)
}

/// What the runs produced.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// The figures of the first run of each mode, in run order.
    pub figures: Vec<(Mode, Figure)>,
    /// Why the runs stopped early (`<label>: <reason>`), if they did.
    pub failure: Option<String>,
    /// How the icount repeats differ from the first icount run.
    pub differences: Vec<String>,
    /// Boots done.
    pub boots: usize,
    pub elapsed: Duration,
}

/// Boots every run of `plan` in order with `boot`, stopping at the first that fails (after
/// printing its tail), then compares the icount repeats.
pub fn collect(
    plan: &[Run],
    timeout: Duration,
    boot: &mut dyn FnMut(Run) -> Result<RunOutput>,
) -> Result<Collected> {
    let mut c = Collected::default();
    let mut icount_runs: Vec<Vec<Figure>> = Vec::new();
    for &run in plan {
        let label = run.label();
        println!("== bench {label}: {}", run.mode.describe());
        let out = boot(run)?;
        c.boots += 1;
        c.elapsed += out.elapsed;
        match judge(run.mode, &out, timeout) {
            Ok(figures) => {
                println!(
                    "[{label}] {} figure{} in {:.1} s",
                    figures.len(),
                    if figures.len() == 1 { "" } else { "s" },
                    out.elapsed.as_secs_f64()
                );
                if run.mode == Mode::Icount {
                    icount_runs.push(figures.clone());
                }
                if run.index == 1 {
                    c.figures.extend(figures.into_iter().map(|f| (run.mode, f)));
                }
            }
            Err(why) => {
                println!("FAILED: bench {label}: {why}");
                print_tail(&out);
                c.failure = Some(format!("{label}: {why}"));
                break;
            }
        }
    }
    c.differences = compare_runs(&icount_runs);
    Ok(c)
}

/// Boots the bench kernel once, capturing its output (echoing it when verbose).
fn boot(image: PathBuf, run: Run, timeout: Duration) -> Result<RunOutput> {
    let mut cmd = run.mode.vm(image).command(Console::Captured);
    let verbose = verbose();
    if verbose {
        println!("$ {}", display_command(&cmd));
    }
    let label = run.label();
    qemu::run_captured(&mut cmd, Some(timeout), true, &mut |l| {
        if verbose {
            println!("[{label}]   {l}");
        }
    })
}

/// Everything `cargo xtask bench` does after the prerequisites: exit code 0 when every run
/// succeeded (and the icount repeats agree); otherwise an error naming what failed.
pub fn run(profile: Profile, plan: &[Run]) -> Result<u8> {
    let timeout = qemu::timeout_from(
        std::env::var("XTASK_TIMEOUT_SECS").ok(),
        DEFAULT_TIMEOUT_SECS,
    )?;
    println!("== building the test kernel ({} build)", profile.dir());
    let out = build::build(profile, &[Bin::KTEST])?;
    let image = out.image(Bin::KTEST);

    let c = collect(plan, timeout, &mut |run| boot(image.clone(), run, timeout))?;

    println!();
    println!(
        "==================== bench figures ({} build) ====================",
        profile.dir()
    );
    if c.figures.is_empty() {
        println!("(no figures)");
    } else {
        print!("{}", render_table(&c.figures));
    }
    if let Some(failure) = &c.failure {
        return Err(Error::Msg(format!("bench failed: {failure}")));
    }
    let repeats = plan.iter().filter(|r| r.mode == Mode::Icount).count();
    if !c.differences.is_empty() {
        println!("icount figures differ between the {repeats} runs:");
        for d in &c.differences {
            println!("  {d}");
        }
        return Err(Error::Msg(format!(
            "bench failed: the icount figures are not deterministic ({} difference{} across {repeats} runs, listed above)",
            c.differences.len(),
            if c.differences.len() == 1 { "" } else { "s" }
        )));
    }
    let determinism = if repeats > 1 {
        format!("; icount figures identical across {repeats} runs")
    } else {
        String::new()
    };
    println!(
        "bench: ok: {} figure{} from {} boot{} in {:.1} s{determinism}",
        c.figures.len(),
        if c.figures.len() == 1 { "" } else { "s" },
        c.boots,
        if c.boots == 1 { "" } else { "s" },
        c.elapsed.as_secs_f64()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

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

    fn fig(name: &str, value: &str, unit: &str) -> Figure {
        Figure {
            name: name.into(),
            value: value.into(),
            unit: unit.into(),
        }
    }

    const T: Duration = Duration::from_secs(300);

    #[test]
    fn good_lines() {
        assert_eq!(
            parse_line("bench spawn 1234 insns"),
            Ok(Some(fig("spawn", "1234", "insns")))
        );
        assert_eq!(
            parse_line("bench msg::send_recv 12.50 ns/op"),
            Ok(Some(fig("msg::send_recv", "12.50", "ns/op")))
        );
        // Extra blanks between fields and a negative value are fine; the line is normalised.
        let f = parse_line("bench  delta\t-3   ns  ").unwrap().unwrap();
        assert_eq!(f, fig("delta", "-3", "ns"));
        assert_eq!(f.line(), "bench delta -3 ns");
    }

    #[test]
    fn other_lines_are_ignored() {
        for l in [
            "",
            "test boot::a ... ok",
            "benchmarks: starting",
            "bench: starting",
            " bench indented 1 ns",
            "[core 1 INFO ] bench spawn 1 ns",
            "ktest: no suite named \"bench\"; try suite=list",
        ] {
            assert_eq!(parse_line(l), Ok(None), "{l:?}");
        }
    }

    #[test]
    fn malformed_lines() {
        for (l, why) in [
            ("bench", "got 1"),
            ("bench spawn", "got 2"),
            ("bench spawn 12", "got 3"),
            ("bench spawn 12 ns[core 1 INFO ] glued", "got 8"),
            ("bench spawn 12 ns extra", "got 5"),
            ("bench spawn 12ns ns", "`12ns` is not"),
            ("bench spawn 1.2.3 ns", "not an integer"),
            ("bench spawn .5 ns", "not an integer"),
            ("bench spawn 5. ns", "not an integer"),
            ("bench spawn 0x10 ns", "not an integer"),
            ("bench spawn NaN ns", "not an integer"),
            ("bench spawn 1e6 ns", "not an integer"),
            ("bench spawn 12 34", "unit `34` is a number"),
        ] {
            let err = parse_line(l).expect_err(l);
            assert!(err.contains(why), "{l:?}: {err}");
        }
    }

    #[test]
    fn duplicates_and_malformed_lines_fail_the_run() {
        let good = lines("hello\nbench a 1 ns\n[core 0 INFO ] x\nbench b 2.5 ns\n");
        assert_eq!(
            parse_figures(&good),
            Ok(vec![fig("a", "1", "ns"), fig("b", "2.5", "ns")])
        );
        let dup = lines("bench a 1 ns\nbench b 2 ns\nbench a 1 ns\n");
        let err = parse_figures(&dup).unwrap_err();
        assert_eq!(err, ["`bench a` printed twice (output lines 1 and 3)"]);
        let both = lines("bench a 1 ns\nbench b x ns\nbench a 2 ns\n");
        let err = parse_figures(&both).unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].starts_with("output line 2: malformed"), "{err:?}");
        assert!(err[1].contains("printed twice"), "{err:?}");
    }

    #[test]
    fn judging_a_run() {
        let ok = run_output("boot\nbench a 1 insns\n", 0);
        assert_eq!(
            judge(Mode::Icount, &ok, T),
            Ok(vec![fig("a", "1", "insns")])
        );

        let empty = run_output("boot\n", 0);
        let err = judge(Mode::Wall, &empty, T).unwrap_err();
        assert!(err.contains("no `bench"), "{err}");
        assert_eq!(judge(Mode::WallSmp, &empty, T), Ok(vec![]));

        let crashed = run_output("bench a 1 ns\npanicked\n", 1);
        let err = judge(Mode::WallSmp, &crashed, T).unwrap_err();
        assert!(err.contains("exit code 1 (expected 0)"), "{err}");

        let malformed = run_output("bench a 1\n", 0);
        let err = judge(Mode::Icount, &malformed, T).unwrap_err();
        assert!(err.contains("4 fields"), "{err}");
        assert!(!err.contains("no `bench"), "{err}");

        let hung = RunOutput {
            timed_out: true,
            ..run_output("bench a 1 ns\n", 0)
        };
        let err = judge(Mode::Wall, &hung, T).unwrap_err();
        assert!(err.starts_with("timed out after 300 s"), "{err}");

        let no_suite = run_output("ktest: no suite named \"bench\"; try suite=list\n", 1);
        let err = judge(Mode::Icount, &no_suite, T).unwrap_err();
        assert!(err.contains("exit code 1"), "{err}");
        assert!(err.contains("no `bench` suite"), "{err}");
    }

    #[test]
    fn determinism_comparison() {
        let a = vec![fig("a", "100", "insns"), fig("b", "7", "insns")];
        assert!(compare_runs(&[]).is_empty());
        assert!(compare_runs(std::slice::from_ref(&a)).is_empty());
        // Order does not matter; values and units are compared as printed.
        let reordered = vec![a[1].clone(), a[0].clone()];
        assert!(compare_runs(&[a.clone(), a.clone(), reordered]).is_empty());

        let changed = vec![fig("a", "101", "insns"), fig("b", "7", "insns")];
        assert_eq!(
            compare_runs(&[a.clone(), a.clone(), changed]),
            ["bench a: run 1 printed 100 insns, run 3 printed 101 insns"]
        );
        let respelled = vec![fig("a", "100.0", "insns"), fig("b", "7", "ns")];
        assert_eq!(compare_runs(&[a.clone(), respelled]).len(), 2);

        let missing_and_extra = vec![fig("a", "100", "insns"), fig("c", "1", "insns")];
        assert_eq!(
            compare_runs(&[a.clone(), missing_and_extra]),
            [
                "bench b: run 1 printed 7 insns, run 2 did not print it",
                "bench c: run 2 printed 1 insns, run 1 did not print it",
            ]
        );
    }

    #[test]
    fn plans() {
        let modes = |p: Vec<Run>| {
            p.iter()
                .map(|r| format!("{}:{}/{}", r.mode.name(), r.index, r.of))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            modes(plan(None, 1).unwrap()),
            ["icount:1/1", "wall:1/1", "wall_smp:1/1"]
        );
        assert_eq!(
            modes(plan(None, 2).unwrap()),
            ["icount:1/2", "icount:2/2", "wall:1/1", "wall_smp:1/1"]
        );
        assert_eq!(
            modes(plan(Some(Mode::Icount), 3).unwrap()),
            ["icount:1/3", "icount:2/3", "icount:3/3"]
        );
        assert_eq!(modes(plan(Some(Mode::Wall), 1).unwrap()), ["wall:1/1"]);
        assert!(plan(Some(Mode::Wall), 2).is_err());
        assert!(plan(None, 0).is_err());
        assert_eq!("wall_smp".parse::<Mode>(), Ok(Mode::WallSmp));
        assert!("smp".parse::<Mode>().is_err());
    }

    #[test]
    fn repeats_are_compared_and_a_failure_stops_the_runs() {
        let plan = plan(None, 3).unwrap();
        let mut booted = Vec::new();
        let c = collect(&plan, T, &mut |run| {
            booted.push(run.label());
            Ok(match (run.mode, run.index) {
                (Mode::Icount, 2) => run_output("bench a 11 insns\nbench b 2 insns\n", 0),
                (Mode::Icount, _) => run_output("bench a 10 insns\nbench b 2 insns\n", 0),
                (Mode::Wall, _) => run_output("bench a 5000 ns\n", 0),
                (Mode::WallSmp, _) => run_output("", 0),
            })
        })
        .unwrap();
        assert_eq!(
            booted,
            [
                "icount run 1/3",
                "icount run 2/3",
                "icount run 3/3",
                "wall",
                "wall_smp"
            ]
        );
        assert!(c.failure.is_none());
        assert_eq!(c.boots, 5);
        assert_eq!(
            c.differences,
            ["bench a: run 1 printed 10 insns, run 2 printed 11 insns"]
        );
        assert_eq!(
            c.figures,
            [
                (Mode::Icount, fig("a", "10", "insns")),
                (Mode::Icount, fig("b", "2", "insns")),
                (Mode::Wall, fig("a", "5000", "ns")),
            ]
        );

        let mut boots = 0;
        let c = collect(&plan, T, &mut |run| {
            boots += 1;
            Ok(if run.index == 2 {
                run_output("bench a 1 insns\nbench a 1 insns\n", 0)
            } else {
                run_output("bench a 1 insns\n", 0)
            })
        })
        .unwrap();
        assert_eq!(boots, 2);
        assert!(
            c.failure
                .as_deref()
                .is_some_and(|f| f.starts_with("icount run 2/3: ") && f.contains("twice")),
            "{:?}",
            c.failure
        );
        assert!(c.differences.is_empty());
    }

    #[test]
    fn table_keeps_the_bench_prefix_and_aligns_the_mode() {
        let table = render_table(&[
            (Mode::Icount, fig("spawn", "1234", "insns")),
            (Mode::Wall, fig("msg::send_recv", "12.5", "ns")),
        ]);
        assert_eq!(
            table,
            "bench spawn 1234 insns         [icount]\n\
             bench msg::send_recv 12.5 ns   [wall]\n"
        );
        assert_eq!(render_table(&[]), "");
    }

    #[test]
    fn command_lines() {
        let args = |m: Mode| {
            m.vm("ktest.bin".into())
                .args(Console::Captured)
                .into_iter()
                .map(|a: OsString| a.into_string().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let common = "-machine virt,gic-version=3 -cpu cortex-a72";
        let tail = "-display none -serial stdio -monitor none";
        let semi = "-semihosting-config enable=on,target=native -kernel ktest.bin";
        assert_eq!(
            args(Mode::Icount),
            format!(
                "{common} -smp 1 -m 1024M {semi} -append semihosting=1 suite=bench bench=icount icount=1 -icount shift=0,sleep=off {tail}"
            )
        );
        assert_eq!(
            args(Mode::Wall),
            format!(
                "{common} -smp 1 -m 1024M {semi} -append semihosting=1 suite=bench bench=wall {tail}"
            )
        );
        assert_eq!(
            args(Mode::WallSmp),
            format!(
                "{common} -smp 4 -m 1024M {semi} -append semihosting=1 suite=bench bench=wall_smp -accel tcg,thread=multi {tail}"
            )
        );
        assert_eq!(
            Mode::Icount.describe(),
            "-machine virt,gic-version=3 -smp 1 -m 1024M -icount shift=0,sleep=off"
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            qemu::timeout_from(None, DEFAULT_TIMEOUT_SECS).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            qemu::timeout_from(Some(" 42 ".into()), DEFAULT_TIMEOUT_SECS).unwrap(),
            Duration::from_secs(42)
        );
        assert!(qemu::timeout_from(Some("0".into()), DEFAULT_TIMEOUT_SECS).is_err());
        assert!(qemu::timeout_from(Some("soon".into()), DEFAULT_TIMEOUT_SECS).is_err());
    }
}
