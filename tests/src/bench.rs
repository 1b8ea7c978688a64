//! The benchmarks behind `cargo xtask bench` (`suite=bench bench=<mode>`): one line
//! `bench <name> <value> <unit>` per figure, then exit 0. See docs/benchmarks.md for what
//! each figure measures and how.
//!
//! - `bench=icount` (one vCPU, `-icount shift=0,sleep=off`): instruction counts from the PMU
//!   cycle counter, which equals the guest instruction count there, and memory figures. Every
//!   figure is identical from run to run.
//! - `bench=wall` (one vCPU, plain TCG): the same loops in guest nanoseconds, the median of
//!   several runs, for side-by-side comparison with other runtimes under the same emulator.
//! - `bench=wall_smp`: nothing yet (cross-core figures come with messages).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::arch::pmu;
use kernel::mem::heap::KERNEL_HEAP;
use kernel::msg::Term;
use kernel::process::{self, Pid, SpawnOpts};
use kernel::sched;
use kernel::{boot, println};

extern crate alloc;

pub fn run(mode: Option<&str>) -> ! {
    pmu::enable_cycle_counter();
    match mode {
        Some("icount") => {
            figure(
                "yield_switch",
                yield_switch(Clock::Instructions),
                "instructions",
            );
            figure(
                "spawn_exit",
                spawn_exit(Clock::Instructions),
                "instructions",
            );
            figure("idle_process_bytes", idle_process_bytes(), "bytes");
            let (gap, unit) = hog_max_gap();
            println!("bench hog_max_gap {gap} {unit}");
            figure("max_idle_processes_1g", max_idle_processes(), "processes");
            figure(
                "send_receive",
                send_receive(Clock::Instructions, ROUND_TRIPS),
                "instructions",
            );
            let (_, few) = timer_insert_cancel(0);
            figure("timer_insert_cancel_0_pending", few, "instructions");
            let (_, many) = timer_insert_cancel(100_000);
            figure("timer_insert_cancel", many, "instructions");
            // The ticker again, where guest time is instructions: deterministic, no host noise.
            let (p99, max) = ticker_latency();
            figure("ticker_latency_icount_p99_us", p99, "us");
            figure("ticker_latency_icount_max_us", max, "us");
        }
        Some("wall") => {
            figure(
                "yield_ns",
                median(|| yield_switch(Clock::Nanoseconds)),
                "ns",
            );
            figure("spawn_ns", median(|| spawn_exit(Clock::Nanoseconds)), "ns");
            figure(
                "pingpong_roundtrip_ns",
                send_receive(Clock::Nanoseconds, 500_000),
                "ns",
            );
            figure("ring_hop_ns_smp1", ring_hop_ns(), "ns");
            let (p99, max) = ticker_latency();
            figure("ticker_latency_p99_us", p99, "us");
            figure("ticker_latency_max_us", max, "us");
        }
        Some("profile_send") => {
            // For profiling with QEMU's exec log: a short ping-pong and nothing else.
            figure(
                "send_receive",
                send_receive(Clock::Instructions, 200),
                "instructions",
            );
        }
        Some("wall_smp") => {
            figure("ring_hop_ns_smp4", ring_hop_ns(), "ns");
            figure("cross_core_wake_ns", median(cross_core_wake), "ns");
        }
        other => {
            println!("bench: unknown mode {other:?} (icount, wall or wall_smp)");
            boot::exit(1)
        }
    }
    boot::exit(0)
}

fn figure(name: &str, value: u64, unit: &str) {
    println!("bench {name} {value} {unit}");
}

#[derive(Clone, Copy)]
enum Clock {
    /// PMU cycles: guest instructions under icount.
    Instructions,
    Nanoseconds,
}

impl Clock {
    fn now(self) -> u64 {
        match self {
            Clock::Instructions => pmu::cycles(),
            Clock::Nanoseconds => kernel::time::now_ns(),
        }
    }
}

/// The median of 7 runs.
fn median(mut f: impl FnMut() -> u64) -> u64 {
    let mut runs: Vec<u64> = (0..7).map(|_| f()).collect();
    runs.sort_unstable();
    runs[runs.len() / 2]
}

/// Run `entry(arg)` as a process on this core and wait (in the kernel context) until every
/// process has exited.
fn run_process(entry: fn(Term), arg: Term) {
    let before = process::count();
    process::spawn(entry, arg).expect("spawn");
    sched::run_until(|| process::count() == before);
}

static CLOCK: AtomicUsize = AtomicUsize::new(0);
static RESULT: AtomicU64 = AtomicU64::new(0);

fn current_clock() -> Clock {
    if CLOCK.load(Ordering::Relaxed) == 0 {
        Clock::Instructions
    } else {
        Clock::Nanoseconds
    }
}

fn set_clock(clock: Clock) {
    CLOCK.store(
        matches!(clock, Clock::Nanoseconds) as usize,
        Ordering::Relaxed,
    );
}

const YIELDS: u64 = 20_000;

/// Two processes yielding to each other: cost per switch.
fn yield_switch(clock: Clock) -> u64 {
    fn partner(_: Term) {
        for _ in 0..YIELDS + 1 {
            process::yield_now();
        }
    }
    fn timer(_: Term) {
        process::spawn(partner, Term::nil()).unwrap();
        process::yield_now(); // the partner is running its loop from here on
        let start = current_clock().now();
        for _ in 0..YIELDS {
            process::yield_now();
        }
        let end = current_clock().now();
        // Each of our yields switches to the partner and the partner's yield switches back.
        RESULT.store((end - start) / (2 * YIELDS), Ordering::SeqCst);
    }
    set_clock(clock);
    run_process(timer, Term::nil());
    RESULT.load(Ordering::SeqCst)
}

const SPAWNS: u64 = 2_000;

/// Spawn a batch of trivial processes, then let them all run and exit: cost per process.
fn spawn_exit(clock: Clock) -> u64 {
    fn trivial(_: Term) {}
    fn spawner(_: Term) {
        // Warm-up: page tables for the stack slots and the page cache.
        for _ in 0..SPAWNS {
            process::spawn(trivial, Term::nil()).unwrap();
        }
        process::yield_now();
        let start = current_clock().now();
        for _ in 0..SPAWNS {
            process::spawn(trivial, Term::nil()).unwrap();
        }
        // Every child runs and exits before we are back (same priority, queued first).
        process::yield_now();
        let end = current_clock().now();
        RESULT.store((end - start) / SPAWNS, Ordering::SeqCst);
    }
    set_clock(clock);
    run_process(spawner, Term::nil());
    RESULT.load(Ordering::SeqCst)
}

static PARKED: AtomicUsize = AtomicUsize::new(0);
static RELEASE: AtomicBool = AtomicBool::new(false);

/// An idle process: parks until released.
fn idler(_: Term) {
    PARKED.fetch_add(1, Ordering::Relaxed);
    while !RELEASE.load(Ordering::Relaxed) {
        process::park();
    }
}

/// Spawn idle processes from the kernel context until `limit` or the first error; wait until
/// all have parked. Their pids.
fn spawn_idlers(limit: usize) -> Vec<Pid> {
    PARKED.store(0, Ordering::Relaxed);
    RELEASE.store(false, Ordering::Relaxed);
    let mut pids = Vec::new();
    while pids.len() < limit {
        match process::spawn_opt(idler, Term::nil(), SpawnOpts::new()) {
            Ok(pid) => pids.push(pid),
            Err(_) => break,
        }
    }
    let n = pids.len();
    sched::run_until(|| PARKED.load(Ordering::Relaxed) == n);
    pids
}

fn release_idlers(pids: &[Pid]) {
    let before = process::count() - pids.len();
    RELEASE.store(true, Ordering::Relaxed);
    for &pid in pids {
        assert!(process::unpark(pid), "idle process {pid} is gone");
    }
    sched::run_until(|| process::count() == before);
}

const IDLERS: usize = 10_000;

/// Physical memory per idle process: frames (stack page, page-table share) and kernel heap
/// (process-table slot), over 10,000 processes.
fn idle_process_bytes() -> u64 {
    // Warm-up so the figure is per process, not the first use of the table and the cache.
    let warm = spawn_idlers(1);
    release_idlers(&warm);
    let mut pids = Vec::with_capacity(IDLERS);
    let frames = process::free_pages();
    let heap = KERNEL_HEAP.stats().used;
    pids.extend(spawn_idlers(IDLERS));
    assert_eq!(pids.len(), IDLERS, "spawning 10,000 idle processes failed");
    let used_frames = (frames - process::free_pages()) as u64;
    let used_heap = (KERNEL_HEAP.stats().used - heap) as u64;
    release_idlers(&pids);
    (used_frames * 4096 + used_heap) / IDLERS as u64
}

/// Idle processes until spawn fails, each verified alive, then all released.
fn max_idle_processes() -> u64 {
    let pids = spawn_idlers(usize::MAX);
    for &pid in &pids {
        assert!(process::is_alive(pid), "idle process {pid} died");
    }
    let n = pids.len() as u64;
    release_idlers(&pids);
    n
}

static HOG_GAPS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static HOG_DEADLINE: AtomicU64 = AtomicU64::new(0);

/// Four CPU-bound processes on one core: the longest any of them waits between two runs,
/// in slices (a slice is two ticks).
fn hog_max_gap() -> (alloc::string::String, &'static str) {
    fn hog(arg: Term) {
        let me = arg.as_int().unwrap() as usize;
        let mut last = pmu::cycles();
        let mut max_gap = 0;
        while kernel::time::ticks(0) < HOG_DEADLINE.load(Ordering::Relaxed) {
            let now = pmu::cycles();
            max_gap = max_gap.max(now - last);
            last = now;
        }
        HOG_GAPS[me].store(max_gap, Ordering::SeqCst);
    }
    let ticks = 200;
    HOG_DEADLINE.store(kernel::time::ticks(0) + ticks, Ordering::Relaxed);
    let before = process::count();
    for i in 0..4 {
        process::spawn(hog, Term::int(i)).unwrap();
    }
    sched::run_until(|| process::count() == before);
    let gap = HOG_GAPS
        .iter()
        .map(|g| g.load(Ordering::SeqCst))
        .max()
        .unwrap();
    // Instructions per slice under icount shift=0: one instruction per nanosecond.
    let slice_ns = 2 * 1_000_000_000 / kernel::time::tick_hz() as u64;
    let hundredths = gap * 100 / slice_ns;
    (
        alloc::format!("{}.{:02}", hundredths / 100, hundredths % 100),
        "slices",
    )
}

// ---------------------------------------------------------------------------------------
// Messages and timers.

use kernel::process::Timeout;
use kernel::smp;

const ROUND_TRIPS: u64 = 20_000;

/// Ping-pong between two processes on one core: cost per round trip (two sends, two
/// receives, two switches).
fn send_receive(clock: Clock, rounds: u64) -> u64 {
    fn ponger(_: Term) {
        loop {
            let m = process::receive(Timeout::Infinity).unwrap();
            let Some(from) = m.as_pid() else { return };
            process::send(from, &Term::atom(kernel::msg::atom::OK));
        }
    }
    fn pinger(arg: Term) {
        let rounds = arg.as_int().unwrap() as u64;
        let me = Term::pid(process::self_pid());
        let pong = process::spawn(ponger, Term::nil()).unwrap();
        // Warm-up round: the ponger is waiting in receive from here on.
        process::send(pong, &me);
        process::receive(Timeout::Infinity).unwrap();
        let start = current_clock().now();
        for _ in 0..rounds {
            process::send(pong, &me);
            process::receive(Timeout::Infinity).unwrap();
        }
        let end = current_clock().now();
        process::send(pong, &Term::nil());
        RESULT.store((end - start) / rounds, Ordering::SeqCst);
    }
    set_clock(clock);
    run_process(pinger, Term::int(rounds as i64));
    RESULT.load(Ordering::SeqCst)
}

/// Insert and cancel one timer with `pending` others armed: instructions per pair.
fn timer_insert_cancel(pending: usize) -> (usize, u64) {
    fn body(arg: Term) {
        let pending = arg.as_int().unwrap() as u64;
        let me = process::self_pid();
        let msg = Term::nil();
        let armed: Vec<process::TimerRef> = (0..pending)
            .map(|i| process::send_after(3_600_000 + i, me, msg.as_ref()).unwrap())
            .collect();
        const PAIRS: u64 = 2_000;
        let start = pmu::cycles();
        for _ in 0..PAIRS {
            let t = process::send_after(60_000, me, msg.as_ref()).unwrap();
            process::cancel_timer(t);
        }
        let end = pmu::cycles();
        for t in armed {
            process::cancel_timer(t);
        }
        RESULT.store((end - start) / PAIRS, Ordering::SeqCst);
    }
    run_process(body, Term::int(pending as i64));
    (pending, RESULT.load(Ordering::SeqCst))
}

const RING: usize = 1_000;
const RING_ROUNDS: u64 = 100;

/// A ring of 1,000 processes spread over every online core, passing a token for
/// `RING_ROUNDS` rounds: wall nanoseconds per hop.
fn ring_hop_ns() -> u64 {
    fn member(_: Term) {
        let next = process::receive(Timeout::Infinity)
            .unwrap()
            .as_pid()
            .unwrap();
        loop {
            let token = process::receive(Timeout::Infinity).unwrap();
            let n = token.as_int().unwrap();
            process::send(next, &Term::int(n));
            if n == 0 {
                return;
            }
        }
    }
    fn driver(_: Term) {
        let me = process::self_pid();
        let cores: Vec<usize> = smp::online_cores().collect();
        let members: Vec<Pid> = (0..RING - 1)
            .map(|i| {
                let core = cores[i % cores.len()];
                process::spawn_opt(member, Term::nil(), SpawnOpts::new().core(core)).unwrap()
            })
            .collect();
        for (i, &m) in members.iter().enumerate() {
            let next = members.get(i + 1).copied().unwrap_or(me);
            process::send(m, &Term::pid(next));
        }
        let hops = RING_ROUNDS * RING as u64;
        let start = kernel::time::now_ns();
        // One token per round, numbered down to 0; the last round also stops the members.
        for round in (0..RING_ROUNDS as i64).rev() {
            process::send(members[0], &Term::int(round));
            let back = process::receive(Timeout::Infinity)
                .unwrap()
                .as_int()
                .unwrap();
            assert_eq!(back, round);
        }
        let end = kernel::time::now_ns();
        RESULT.store((end - start) / hops, Ordering::SeqCst);
    }
    run_process(driver, Term::nil());
    RESULT.load(Ordering::SeqCst)
}

/// Send to a process waiting on another core; nanoseconds until it runs.
fn cross_core_wake() -> u64 {
    static SENT_AT: AtomicU64 = AtomicU64::new(0);
    fn sleeper(arg: Term) {
        let back = arg.as_pid().unwrap();
        process::send(back, &Term::nil());
        let _ = process::receive(Timeout::Infinity);
        let woke = kernel::time::now_ns();
        RESULT.store(woke - SENT_AT.load(Ordering::SeqCst), Ordering::SeqCst);
    }
    fn waker(_: Term) {
        let me = process::self_pid();
        let far = smp::online_cores().last().unwrap();
        let pid = process::spawn_opt(sleeper, Term::pid(me), SpawnOpts::new().core(far)).unwrap();
        let _ = process::receive(Timeout::Infinity);
        process::sleep(5); // let it go to sleep in receive
        SENT_AT.store(kernel::time::now_ns(), Ordering::SeqCst);
        process::send(pid, &Term::nil());
    }
    let before = process::count();
    process::spawn(waker, Term::nil()).unwrap();
    sched::run_until(|| process::count() == before);
    RESULT.load(Ordering::SeqCst)
}

const TICKS: usize = 2_000;
static TICKER_LATE: kernel::sync::IrqMutex<Vec<u64>> = kernel::sync::IrqMutex::new(Vec::new());

/// A process woken every millisecond by a timer while a CPU-bound process shares its core:
/// how late it runs, p99 and max, in microseconds.
fn ticker_latency() -> (u64, u64) {
    static STOP_HOG: AtomicBool = AtomicBool::new(false);
    fn hog(_: Term) {
        while !STOP_HOG.load(Ordering::Relaxed) {
            core::hint::spin_loop();
        }
    }
    fn ticker(_: Term) {
        let mut late = Vec::with_capacity(TICKS);
        let mut due = kernel::time::now_ns();
        for _ in 0..TICKS {
            due += 1_000_000;
            let now = kernel::time::now_ns();
            if due > now {
                process::sleep((due - now).div_ceil(1_000_000));
            }
            late.push(kernel::time::now_ns().saturating_sub(due));
        }
        STOP_HOG.store(true, Ordering::Relaxed);
        // Kernel state must not keep a block of this process's heap: copy it out.
        *TICKER_LATE.lock() = kernel::mem::in_kernel_heap(|| late.clone());
    }
    STOP_HOG.store(false, Ordering::Relaxed);
    let before = process::count();
    process::spawn(hog, Term::nil()).unwrap();
    process::spawn_opt(
        ticker,
        Term::nil(),
        SpawnOpts::new().priority(kernel::sched::Priority::High),
    )
    .unwrap();
    sched::run_until(|| process::count() == before);
    let mut late = core::mem::take(&mut *TICKER_LATE.lock());
    late.sort_unstable();
    let p99 = late[late.len() * 99 / 100] / 1000;
    let max = late[late.len() - 1] / 1000;
    (p99, max)
}
