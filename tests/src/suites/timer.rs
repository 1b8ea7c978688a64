//! Time: every busy core ticks, at exactly the configured rate under `-icount`
//! (deterministic emulation); an idle core does not tick (tickless idle) yet wakes for its
//! timers on time; the clock is monotonic across cores.
use super::{expected, wait_until};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::arch::cpu;
use kernel::testing::Suite;
use kernel::{smp, test_cases, time};

pub const SUITE: Suite = Suite {
    name: "timer",
    cases: test_cases![
        every_core_ticks,
        idle_core_takes_no_ticks_but_wakes_for_timers,
        tick_period_matches_configured_rate,
        ticks_arrive_exactly_at_the_configured_rate,
        clock_is_monotonic_across_cores,
    ],
};

/// Wait for three ticks on the calling core, busy (not idle, so its tick runs).
fn three_ticks(_: usize) {
    let core = cpu::core_index();
    let start = time::ticks(core);
    while time::ticks(core) < start + 3 {
        cpu::wait_for_interrupt();
    }
}

fn every_core_ticks() {
    three_ticks(0);
    for core in smp::online_cores().filter(|&c| c != 0) {
        smp::run_on(core, three_ticks, 0).unwrap();
    }
}

static WOKE_AFTER_NS: AtomicU64 = AtomicU64::new(0);

/// A core with nothing to do stops its tick; a process sleeping there still wakes on time.
fn idle_core_takes_no_ticks_but_wakes_for_timers() {
    use kernel::msg::Term;
    use kernel::process::{self, SpawnOpts};
    let core = smp::online_cores().last().unwrap();
    if core == 0 {
        return; // one core: core 0 runs this test, so it is never idle here
    }
    // Let it settle into idle, then watch it for 20 ms.
    time::sleep_ns(2_000_000);
    let ticks = time::ticks(core);
    time::sleep_ns(20_000_000);
    assert!(
        time::ticks(core) <= ticks + 1,
        "idle core {core} took {} ticks in 20 ms",
        time::ticks(core) - ticks
    );
    let wakeups = kernel::sched::snapshot(core).idle_wakeups;
    let pid = process::spawn_opt(
        |_| {
            let start = time::now_ns();
            process::sleep(30);
            WOKE_AFTER_NS.store(time::now_ns() - start, Ordering::SeqCst);
        },
        Term::nil(),
        SpawnOpts::new().core(core),
    )
    .unwrap();
    assert!(wait_until(2000, || !process::is_alive(pid)));
    let slept = WOKE_AFTER_NS.load(Ordering::SeqCst);
    let tick = 1_000_000_000 / time::tick_hz() as u64;
    assert!(slept >= 30_000_000, "woke early: {slept} ns");
    assert!(
        slept <= 30_000_000 + 2 * tick + 5_000_000,
        "woke late: {slept} ns"
    );
    // It slept through most of those 30 ms: a handful of wake-ups, not one per tick.
    let woke = kernel::sched::snapshot(core).idle_wakeups - wakeups;
    assert!(woke <= 6, "{woke} wake-ups for one sleep");
}

fn tick_period_matches_configured_rate() {
    let hz = expected("tick_hz").unwrap_or(time::DEFAULT_TICK_HZ as u64);
    assert_eq!(time::tick_hz() as u64, hz);
    assert_eq!(time::tick_period(), time::counter_frequency() / hz);
}

/// Over WINDOW ticks on the calling core: (ticks taken, counter time between the first and
/// the last tick's handler).
static TICKS_AND_ELAPSED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
const WINDOW: u64 = 50;

fn measure_ticks(_: usize) {
    let core = cpu::core_index();
    let sample = || {
        cpu::disable_irqs();
        let sample = (time::ticks(core), time::last_tick_at(core));
        cpu::enable_irqs();
        sample
    };
    // Start right after a tick, so both ends of the window are tick timestamps.
    let first = time::ticks(core);
    while time::ticks(core) == first {
        cpu::wait_for_interrupt();
    }
    let (start_ticks, start_at) = sample();
    while time::ticks(core) < start_ticks + WINDOW {
        cpu::wait_for_interrupt();
    }
    let (end_ticks, end_at) = sample();
    TICKS_AND_ELAPSED[0].store(end_ticks - start_ticks, Ordering::Relaxed);
    TICKS_AND_ELAPSED[1].store(end_at - start_at, Ordering::Release);
}

fn ticks_arrive_exactly_at_the_configured_rate() {
    let icount = kernel::boot::info().args.flag("icount");
    let period = time::tick_period();
    for core in smp::online_cores() {
        let missed_before = time::missed_ticks(core);
        smp::run_on(core, measure_ticks, 0).unwrap();
        let elapsed = TICKS_AND_ELAPSED[1].load(Ordering::Acquire);
        let ticks = TICKS_AND_ELAPSED[0].load(Ordering::Relaxed);
        assert!(ticks >= WINDOW, "core {core}: {ticks} ticks");
        // Ticks never come faster than the rate: n ticks span at least n-1 whole periods
        // (less at most one tick's worth of interrupt latency at the start).
        assert!(
            elapsed + period > (ticks - 1) * period,
            "core {core}: {ticks} ticks in {elapsed}"
        );
        if icount {
            // Deterministic emulation: exactly one tick per period, no drift, none missed.
            let expected = ticks * period;
            let error = elapsed.abs_diff(expected);
            assert!(
                error < period / 20,
                "core {core}: {ticks} ticks took {elapsed}, expected {expected}"
            );
            assert_eq!(
                time::missed_ticks(core),
                missed_before,
                "core {core} missed ticks"
            );
        }
    }
}

static LAST_NS: AtomicU64 = AtomicU64::new(0);

fn clock_is_monotonic_across_cores() {
    LAST_NS.store(0, Ordering::Relaxed);
    for _round in 0..20 {
        for core in smp::online_cores() {
            smp::run_on(
                core,
                |_| {
                    let now = time::now_ns();
                    let last = LAST_NS.load(Ordering::Acquire);
                    assert!(
                        now >= last,
                        "core {}: now {now} < {last}",
                        cpu::core_index()
                    );
                    LAST_NS.store(now, Ordering::Release);
                },
                0,
            )
            .unwrap();
        }
    }
    assert!(LAST_NS.load(Ordering::Relaxed) > 0);
}
