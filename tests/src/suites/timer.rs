//! Time: every core ticks, at exactly the configured rate under `-icount` (deterministic
//! emulation), and the clock is monotonic across cores.
use super::{expected, wait_until};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::arch::cpu;
use kernel::testing::Suite;
use kernel::{smp, test_cases, time};

pub const SUITE: Suite = Suite {
    name: "timer",
    cases: test_cases![
        every_core_ticks,
        tick_period_matches_configured_rate,
        ticks_arrive_exactly_at_the_configured_rate,
        clock_is_monotonic_across_cores,
    ],
};

fn every_core_ticks() {
    for core in smp::online_cores() {
        let start = time::ticks(core);
        assert!(wait_until(1000, || time::ticks(core) >= start + 3), "core {core} does not tick");
    }
}

fn tick_period_matches_configured_rate() {
    let hz = expected("tick_hz").unwrap_or(time::DEFAULT_TICK_HZ as u64);
    assert_eq!(time::tick_hz() as u64, hz);
    assert_eq!(time::tick_period(), time::counter_frequency() / hz);
}

/// Ticks counted over a window of WINDOW periods on the calling core.
static COUNTED: AtomicU64 = AtomicU64::new(0);
const WINDOW: u64 = 50;

/// Count the ticks whose deadlines fall in a window of WINDOW periods, starting just after a
/// tick: with a drift-free tick there must be exactly WINDOW of them.
fn count_ticks_over_window(_: usize) {
    let core = cpu::core_index();
    let period = time::tick_period();
    cpu::disable_irqs();
    let (first_count, next) = (time::ticks(core), time::next_deadline(core));
    cpu::enable_irqs();
    // The window ends half a period after the WINDOW-th deadline from `next`.
    let end = next + (WINDOW - 1) * period + period / 2;
    while time::counter() < end {
        kernel::sync::cpu_relax();
    }
    cpu::disable_irqs();
    let counted = time::ticks(core) - first_count;
    cpu::enable_irqs();
    COUNTED.store(counted, Ordering::Release);
}

fn ticks_arrive_exactly_at_the_configured_rate() {
    let icount = kernel::boot::info().args.flag("icount");
    for core in smp::online_cores() {
        smp::run_on(core, count_ticks_over_window, 0).unwrap();
        let counted = COUNTED.load(Ordering::Acquire);
        if icount {
            // Deterministic emulation: the rate is exact.
            assert_eq!(counted, WINDOW, "core {core}: ticks in {WINDOW} periods");
            assert_eq!(time::missed_ticks(core), 0, "core {core} missed ticks");
        } else {
            // Real-time emulation on a loaded host: only that ticks come, none invented.
            assert!(counted >= 1 && counted <= WINDOW, "core {core}: {counted} ticks in {WINDOW} periods");
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
                    assert!(now >= last, "core {}: now {now} < {last}", cpu::core_index());
                    LAST_NS.store(now, Ordering::Release);
                },
                0,
            )
            .unwrap();
        }
    }
    assert!(LAST_NS.load(Ordering::Relaxed) > 0);
}
