//! The demo kernel that `cargo xtask qemu` boots: all cores come up and run processes.
//!
//! - On every core but the boot core, two CPU-bound processes that never make a kernel call
//!   (one `normal`, one `low`): the timer preempts them, and the low one gets about an
//!   eighth of the normal one's share.
//! - Every second, on every core, a burst of short-lived processes spawned by a fan-out
//!   process, and one process that crashes on purpose (a null dereference): it dies alone,
//!   with a crash report, and its core carries on.
//! - Every second the boot core prints a line per core: live processes, runnable, context
//!   switches, preemptions, reductions and idle time.
//!
//! With `demo=timed` on the command line (xtask adds it when stdin is not a terminal) it
//! stops the processes after a few rounds, prints a summary and exits; otherwise it reads
//! single-key commands from the UART.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod demo {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use kernel::msg::Term;
    use kernel::process::{self, SpawnOpts};
    use kernel::sched::{self, Priority};
    use kernel::{boot, println, smp, time};

    kernel::entry!(main);

    const TIMED_ROUNDS: u32 = 4;
    /// Short-lived processes each fan-out process spawns.
    const FAN_OUT: u64 = 200;

    static STOP: AtomicBool = AtomicBool::new(false);
    static HOG_WORK: [AtomicU64; kernel::MAX_CORES * 2] =
        [const { AtomicU64::new(0) }; kernel::MAX_CORES * 2];

    fn main() -> ! {
        let timed = boot::info().args.get("demo") == Some("timed");
        if timed {
            println!("demo: {TIMED_ROUNDS} one-second rounds, then exit");
        } else {
            help();
        }
        start_hogs();
        let mut round = 0;
        loop {
            spawn_bursts(round);
            wait_one_second(!timed);
            round += 1;
            report(round);
            if timed && round == TIMED_ROUNDS {
                finish(round)
            }
        }
    }

    fn help() {
        println!(
            "demo: processes on every core, a line per core every second. \
             Keys: t = report now, q = quit, h = help"
        );
    }

    /// A CPU-bound process: no kernel call until told to stop; only preemption lets the
    /// others on its core run.
    fn hog(arg: Term) {
        let slot = arg.as_int().unwrap_or(0) as usize;
        while !STOP.load(Ordering::Relaxed) {
            HOG_WORK[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn start_hogs() {
        for core in smp::online_cores().filter(|&c| c != 0) {
            for (i, priority) in [Priority::Normal, Priority::Low].into_iter().enumerate() {
                let opts = SpawnOpts::new().core(core).priority(priority);
                if let Err(e) = process::spawn_opt(hog, Term::int((core * 2 + i) as i64), opts) {
                    println!("demo: cannot start a hog on core {core}: {e}");
                }
            }
        }
    }

    fn short_lived(_: Term) {
        process::yield_now();
    }

    fn fan_out(_: Term) {
        for _ in 0..FAN_OUT {
            if process::spawn(short_lived, Term::nil()).is_err() {
                break;
            }
        }
    }

    fn crasher(_: Term) {
        let p = core::hint::black_box(core::ptr::null::<u64>());
        // SAFETY: not safe: this process exists to crash, and only it dies.
        core::hint::black_box(unsafe { p.read_volatile() });
    }

    fn spawn_bursts(round: u32) {
        let cores: heapless::Vec<usize, { kernel::MAX_CORES }> = smp::online_cores().collect();
        for &core in &cores {
            let _ = process::spawn_opt(fan_out, Term::nil(), SpawnOpts::new().core(core));
        }
        let victim = cores[round as usize % cores.len()];
        let _ = process::spawn_opt(crasher, Term::nil(), SpawnOpts::new().core(victim));
    }

    /// Run this core's processes (and sleep when there are none) for a second; in
    /// interactive mode, answer keys meanwhile.
    fn wait_one_second(interactive: bool) {
        let end = time::now_ns() + 1_000_000_000;
        while time::now_ns() < end {
            if interactive {
                match kernel::console::read_byte() {
                    Some(b't') => report(0),
                    Some(b'q') => finish(0),
                    Some(b'h') => help(),
                    _ => {}
                }
            }
            sched::idle();
        }
    }

    fn report(round: u32) {
        println!(
            "--- round {round}: {} processes on {} cores, {} exited so far",
            process::count(),
            smp::online_count(),
            process::exited_total()
        );
        for core in smp::online_cores() {
            let s = sched::snapshot(core);
            let idle = s.idle_ns / (time::now_ns() / 100).max(1);
            println!(
                "core {core}  procs {:>4}  runnable {:>3}  switches {:>7}  preempted {:>5}  reductions {:>9}  idle {:>3}%",
                s.spawned - s.exited,
                s.runnable,
                s.switches,
                s.preemptions,
                s.reductions,
                idle
            );
        }
    }

    fn finish(rounds: u32) -> ! {
        STOP.store(true, Ordering::Relaxed);
        sched::run_until(|| process::count() == 0);
        println!(
            "demo: done after {rounds} rounds; {} cores online",
            smp::online_count()
        );
        for core in smp::online_cores().filter(|&c| c != 0) {
            let normal = HOG_WORK[core * 2].load(Ordering::Relaxed);
            let low = HOG_WORK[core * 2 + 1].load(Ordering::Relaxed);
            println!(
                "core {core}: the normal hog did {normal} loops, the low one {low} (1/{})",
                normal / low.max(1)
            );
        }
        println!(
            "demo: {} processes ran and exited; one crashed per round, nothing else stopped",
            process::exited_total()
        );
        boot::exit(0)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on aarch64-unknown-none: use `cargo xtask qemu`");
    std::process::exit(1);
}
