//! The demo kernel that `cargo xtask qemu` boots: all cores come up and run an application
//! under a supervision tree.
//!
//! ```text
//! app (one_for_one)
//! ├── ring: a ring of processes spread over every core, passing a token round and round
//! └── pool (one_for_one, 50 restarts in 1 s): workers on every core, some of which crash
//!     on purpose every now and then; the pool restarts them
//! ```
//!
//! Once a second the boot core prints a line per core: live processes, runnable, context
//! switches, reductions, messages sent, crashes. With `demo=timed` on the command line
//! (xtask adds it when stdin is not a terminal) it runs a few rounds, stops the tree, prints a
//! summary and exits; otherwise it offers a small shell on the UART: `help`, `ps`, `sched`,
//! `spawn ring N M`, `kill PID`, `halt`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod demo {
    extern crate alloc;

    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use kernel::msg::{Atom, Term, atom};
    use kernel::process::supervisor::{self, ChildSpec, Strategy, SupervisorSpec};
    use kernel::process::{self, Pid, SpawnOpts, Timeout};
    use kernel::{boot, print, println, sched, smp, term, time};

    kernel::entry!(main);

    const TIMED_ROUNDS: u32 = 4;
    const RING_SIZE: i64 = 64;
    const WORKERS_PER_CORE: i64 = 3;

    /// Token hops made by the demo ring.
    static HOPS: AtomicU64 = AtomicU64::new(0);

    fn main() -> ! {
        let timed = boot::info().args.get("demo") == Some("timed");
        let app = match supervisor::start(app_spec()) {
            Ok(pid) => pid,
            Err(e) => {
                println!("demo: the application did not start: {e}");
                boot::exit(1)
            }
        };
        println!("demo: application {app} started: a ring over every core and a pool of workers");
        if timed {
            println!("demo: {TIMED_ROUNDS} one-second rounds, then exit");
        } else {
            help();
        }
        let mut shell = Shell::new();
        let mut round = 0;
        loop {
            let end = time::now_ns() + 1_000_000_000;
            sched::run_until(|| {
                if !timed && shell.poll(app) {
                    finish(app, round);
                }
                time::now_ns() >= end
            });
            round += 1;
            report(round);
            if timed && round == TIMED_ROUNDS {
                finish(app, round)
            }
        }
    }

    fn app_spec() -> SupervisorSpec {
        let cores = smp::online_count() as i64;
        let mut pool = SupervisorSpec::new(Strategy::OneForOne).intensity(50, 1);
        for i in 0..cores * WORKERS_PER_CORE {
            let core = (i % cores) as usize;
            let id = Atom::new(&alloc::format!("worker{i}"));
            pool = pool.child(
                ChildSpec::new(id, worker, Term::int(i)).spawn_opts(SpawnOpts::new().core(core)),
            );
        }
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(5, 10)
            .child(ChildSpec::new(
                Atom::new("ring"),
                ring,
                term!({(RING_SIZE), 0}),
            ))
            .child(ChildSpec::supervisor(Atom::new("pool"), pool))
    }

    // -----------------------------------------------------------------------------------
    // The ring: `ring({N, Rounds})` builds N members over every core and passes a token;
    // Rounds = 0 means for ever.

    fn ring_member(_: Term) {
        let next = process::receive(Timeout::Infinity).and_then(|m| m.as_pid());
        let Some(next) = next else { return };
        loop {
            let token = process::receive(Timeout::Infinity).unwrap();
            process::send(next, &token);
            if token.as_int() == Some(0) {
                return;
            }
        }
    }

    fn ring(arg: Term) {
        let t = arg.as_tuple().unwrap();
        let n = t
            .get(0)
            .and_then(|x| x.as_int())
            .unwrap_or(RING_SIZE)
            .max(2) as usize;
        let rounds = t.get(1).and_then(|x| x.as_int()).unwrap_or(0);
        let me = process::self_pid();
        let cores: Vec<usize> = smp::online_cores().collect();
        let mut members = Vec::with_capacity(n - 1);
        for i in 0..n - 1 {
            let opts = SpawnOpts::new().core(cores[i % cores.len()]).link(true);
            match process::spawn_opt(ring_member, Term::nil(), opts) {
                Ok(pid) => members.push(pid),
                Err(e) => {
                    println!("ring: cannot spawn member {i}: {e}");
                    return;
                }
            }
        }
        for (i, &m) in members.iter().enumerate() {
            let next = members.get(i + 1).copied().unwrap_or(me);
            process::send(m, &Term::pid(next));
        }
        let start = time::now_ns();
        let mut round = if rounds > 0 { rounds } else { i64::MAX };
        while round > 0 {
            round -= 1;
            // The last token (0) also stops the members.
            let token = if rounds > 0 { round } else { 1 };
            process::send(members[0], &Term::int(token));
            let _ = process::receive(Timeout::Infinity);
            HOPS.fetch_add(n as u64, Ordering::Relaxed);
        }
        if rounds > 0 {
            let ns = time::now_ns() - start;
            println!(
                "ring {me}: {n} processes, {rounds} rounds, {} hops in {} ms ({} ns a hop)",
                n as i64 * rounds,
                ns / 1_000_000,
                ns / (n as u64 * rounds as u64).max(1)
            );
        }
    }

    // -----------------------------------------------------------------------------------
    // The pool's workers: some work, and now and then a crash.

    fn worker(arg: Term) {
        let id = arg.as_int().unwrap_or(0) as u64;
        let mut seed = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ time::now_ns();
        loop {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // A little work: a list built and summed in this worker's own heap.
            let items: Vec<u64> = (0..(seed % 200)).collect();
            core::hint::black_box(items.iter().sum::<u64>());
            process::sleep(20 + seed % 80);
            match seed % 150 {
                0 => panic!("worker {id} gave up"),
                1 => {
                    let p = core::hint::black_box(core::ptr::null::<u64>());
                    // SAFETY: not safe: this worker crashes here on purpose.
                    core::hint::black_box(unsafe { p.read_volatile() });
                }
                _ => {}
            }
        }
    }

    // -----------------------------------------------------------------------------------

    fn report(round: u32) {
        println!(
            "--- round {round}: {} processes on {} cores, {} restarts, {} ring hops",
            process::count(),
            smp::online_count(),
            supervisor::total_restarts(),
            HOPS.load(Ordering::Relaxed)
        );
        for core in smp::online_cores() {
            let s = sched::snapshot(core);
            println!(
                "core {core}  procs {:>4}  runnable {:>3}  switches {:>8}  reductions {:>9}  messages {:>8}  crashes {:>3}",
                s.spawned - s.exited,
                s.runnable,
                s.switches,
                s.reductions,
                s.messages,
                s.crashes
            );
        }
    }

    fn finish(app: Pid, rounds: u32) -> ! {
        // Stopping a supervisor is a request to it, made by a process.
        let stopper = |arg: Term| {
            let _ = supervisor::stop(arg.as_pid().unwrap());
        };
        if process::spawn(stopper, Term::pid(app)).is_err() {
            process::exit_signal(app, &Term::atom(atom::KILL));
        }
        sched::run_until(|| process::count() == 0);
        println!(
            "demo: done after {rounds} rounds; {} cores online; {} processes ran and exited, {} restarted by their supervisor; {} ring hops",
            smp::online_count(),
            process::exited_total(),
            supervisor::total_restarts(),
            HOPS.load(Ordering::Relaxed)
        );
        boot::exit(0)
    }

    // -----------------------------------------------------------------------------------
    // The shell.

    fn help() {
        println!("commands: help | ps | sched | spawn ring N M | kill PID | halt");
    }

    struct Shell {
        line: heapless::String<80>,
    }

    impl Shell {
        fn new() -> Self {
            print!("> ");
            Self {
                line: heapless::String::new(),
            }
        }

        /// Take what the UART has; true when the user asked to halt.
        fn poll(&mut self, app: Pid) -> bool {
            while let Some(byte) = kernel::console::read_byte() {
                match byte {
                    b'\r' | b'\n' => {
                        println!();
                        let line = core::mem::take(&mut self.line);
                        if run(line.trim(), app) {
                            return true;
                        }
                        print!("> ");
                    }
                    0x08 | 0x7f if self.line.pop().is_some() => print!("\x08 \x08"),
                    b if (b.is_ascii_graphic() || b == b' ')
                        && self.line.push(b as char).is_ok() =>
                    {
                        print!("{}", b as char)
                    }
                    _ => {}
                }
            }
            false
        }
    }

    /// Run one command; true for `halt`.
    fn run(line: &str, app: Pid) -> bool {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (None, ..) => {}
            (Some("help"), ..) => help(),
            (Some("ps"), ..) => ps(),
            (Some("sched"), ..) => report(0),
            (Some("halt"), ..) => return true,
            (Some("kill"), Some(pid), ..) => match parse_pid(pid) {
                Some(pid) if process::is_alive(pid) => {
                    process::exit_signal(pid, &Term::atom(atom::KILL));
                    println!("sent kill to {pid}");
                }
                Some(pid) => println!("{pid} is not alive"),
                None => println!("kill: give a pid like <0.12.0> or 12.0"),
            },
            (Some("spawn"), Some("ring"), Some(n), Some(m)) => {
                match (n.parse::<i64>(), m.parse::<i64>()) {
                    (Ok(n), Ok(m)) if n >= 2 && m >= 1 => {
                        match process::spawn(ring, term!({(n), (m)})) {
                            Ok(pid) => println!("ring {pid} started: {n} processes, {m} rounds"),
                            Err(e) => println!("spawn: {e}"),
                        }
                    }
                    _ => println!("spawn ring N M: N >= 2 processes, M >= 1 rounds"),
                }
            }
            _ => println!("unknown command {line:?}; try help"),
        }
        let _ = app;
        false
    }

    fn parse_pid(text: &str) -> Option<Pid> {
        let text = text.trim_start_matches('<').trim_end_matches('>');
        let mut parts: Vec<u32> = text.split('.').filter_map(|p| p.parse().ok()).collect();
        if parts.len() == 3 {
            parts.remove(0);
        }
        match parts[..] {
            [index, generation] => Some(Pid::new(index, generation)),
            _ => None,
        }
    }

    fn ps() {
        println!(
            "{:<14} {:>4} {:<8} {:<6} {:>10} {:>8} {:>8} {:>7}  name",
            "pid", "core", "state", "prio", "reductions", "heap", "stack", "mailbox"
        );
        process::pids(|pid| {
            if let Some(i) = process::info(pid) {
                let name = i.registered.map(|a| a.name()).unwrap_or("");
                println!(
                    "{:<14} {:>4} {:<8} {:<6} {:>10} {:>8} {:>8} {:>7}  {name}",
                    alloc::format!("{pid}"),
                    i.core,
                    i.state.name(),
                    i.priority.name(),
                    i.reductions,
                    i.heap_bytes,
                    i.stack_bytes,
                    i.mailbox_bytes
                );
            }
        });
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on aarch64-unknown-none: use `cargo xtask qemu`");
    std::process::exit(1);
}
