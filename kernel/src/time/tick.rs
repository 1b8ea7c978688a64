//! Time: the monotonic clock and the periodic tick every core takes from its generic timer.
//!
//! The tick reprograms the deadline as `previous deadline + period`, so ticks do not drift:
//! over any window each core takes exactly one tick per period that ends in it (exact under
//! `-icount`; under real-time emulation a late tick is still one tick, and periods that
//! passed entirely while the core could not take interrupts are counted in `missed`).

use crate::MAX_CORES;
use crate::arch::{cpu, timer};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const DEFAULT_TICK_HZ: u32 = 1000;

static TICK_HZ: AtomicU32 = AtomicU32::new(DEFAULT_TICK_HZ);
/// Counter ticks per kernel tick.
static PERIOD: AtomicU64 = AtomicU64::new(0);
static TIMER_INTID: AtomicU32 = AtomicU32::new(u32::MAX);

/// Per-core tick state. Written only by the owning core (in its timer IRQ); read by anyone.
struct CoreTicks {
    ticks: AtomicU64,
    missed: AtomicU64,
    deadline: AtomicU64,
    /// Counter value when the tick started: tick `k` is due at `epoch + k * period`.
    epoch: AtomicU64,
    /// Counter value when the last tick's handler ran.
    last_tick_at: AtomicU64,
}

static CORES: [CoreTicks; MAX_CORES] = [const {
    CoreTicks {
        ticks: AtomicU64::new(0),
        missed: AtomicU64::new(0),
        deadline: AtomicU64::new(0),
        epoch: AtomicU64::new(0),
        last_tick_at: AtomicU64::new(0),
    }
}; MAX_CORES];

/// Set the tick rate and the timer's interrupt (boot core, before any core starts ticking).
pub fn init(tick_hz: u32, timer_intid: u32) {
    let hz = tick_hz.clamp(1, 100_000);
    TICK_HZ.store(hz, Ordering::Relaxed);
    PERIOD.store((timer::frequency() / hz as u64).max(1), Ordering::Relaxed);
    TIMER_INTID.store(timer_intid, Ordering::Relaxed);
}

pub fn tick_hz() -> u32 {
    TICK_HZ.load(Ordering::Relaxed)
}

/// Counter ticks per kernel tick.
pub fn tick_period() -> u64 {
    PERIOD.load(Ordering::Relaxed)
}

pub fn timer_intid() -> u32 {
    TIMER_INTID.load(Ordering::Relaxed)
}

/// Start this core's periodic tick (its interrupt must be enabled at the GIC).
pub fn start_this_core() {
    let now = timer::counter();
    let core = &CORES[cpu::core_index()];
    core.epoch.store(now, Ordering::Relaxed);
    let deadline = now + tick_period();
    core.deadline.store(deadline, Ordering::Relaxed);
    timer::set_deadline(deadline);
}

/// Stop this core's periodic tick while it idles: its timer goes off only at `until` (a
/// counter value: the next timer wheel deadline), or never. An idle core then takes no
/// periodic interrupts. IRQs masked; undo with [`resume_tick`] before anything else runs.
pub fn suspend_tick(until: Option<u64>) {
    match until {
        Some(deadline) => timer::set_deadline(deadline),
        None => timer::stop(),
    }
}

/// Restart this core's periodic tick after [`suspend_tick`], in phase with its epoch: the
/// next tick is the next period boundary. The periods slept through are neither ticks nor
/// missed ticks. IRQs masked.
pub fn resume_tick() {
    let core = &CORES[cpu::core_index()];
    let period = tick_period();
    let epoch = core.epoch.load(Ordering::Relaxed);
    let now = timer::counter();
    let next = epoch + ((now - epoch) / period + 1) * period;
    core.deadline.store(next, Ordering::Relaxed);
    timer::set_deadline(next);
}

/// This core's time in whole tick periods since its tick started: the unit of its timer
/// wheel. Tick `k` is due exactly when this becomes `k`, so a timer due at unit `u` fires on
/// the tick that begins unit `u`.
pub fn period_now() -> u64 {
    let core = &CORES[cpu::core_index()];
    (timer::counter() - core.epoch.load(Ordering::Relaxed)) / tick_period()
}

/// The first whole period of this core at or after counter value `at` (rounded up, so a
/// timer for it never fires early).
pub fn period_at_or_after(at: u64) -> u64 {
    let core = &CORES[cpu::core_index()];
    at.saturating_sub(core.epoch.load(Ordering::Relaxed))
        .div_ceil(tick_period())
}

/// The counter value at which period `period` of core `core` begins.
pub fn period_start(core: usize, period: u64) -> u64 {
    CORES[core].epoch.load(Ordering::Relaxed) + period * tick_period()
}

/// Milliseconds as counter ticks.
pub fn ms_to_counter(ms: u64) -> u64 {
    (ms as u128 * timer::frequency() as u128 / 1000) as u64
}

/// The timer interrupt.
pub fn on_tick() {
    let core = &CORES[cpu::core_index()];
    let period = tick_period();
    let now = timer::counter();
    let mut deadline = core.deadline.load(Ordering::Relaxed) + period;
    while deadline <= now {
        deadline += period;
        core.missed.fetch_add(1, Ordering::Relaxed);
    }
    core.deadline.store(deadline, Ordering::Relaxed);
    timer::set_deadline(deadline);
    core.last_tick_at.store(now, Ordering::Relaxed);
    core.ticks.fetch_add(1, Ordering::Release);
}

/// Ticks taken so far by core `core`.
pub fn ticks(core: usize) -> u64 {
    CORES[core].ticks.load(Ordering::Acquire)
}

/// The counter value when core `core` last took a tick.
pub fn last_tick_at(core: usize) -> u64 {
    CORES[core].last_tick_at.load(Ordering::Relaxed)
}

/// Whole periods core `core` could not take a tick for.
pub fn missed_ticks(core: usize) -> u64 {
    CORES[core].missed.load(Ordering::Relaxed)
}

/// The deadline of core `core`'s next tick, in counter ticks.
pub fn next_deadline(core: usize) -> u64 {
    CORES[core].deadline.load(Ordering::Relaxed)
}

/// The raw counter (CNTVCT), shared by all cores.
pub fn counter() -> u64 {
    timer::counter()
}

/// Counter ticks per second.
pub fn counter_frequency() -> u64 {
    timer::frequency()
}

/// Nanoseconds since the counter started (monotonic, the same on every core).
pub fn now_ns() -> u64 {
    counter_to_ns(timer::counter())
}

pub fn counter_to_ns(count: u64) -> u64 {
    (count as u128 * 1_000_000_000 / timer::frequency() as u128) as u64
}

pub fn ns_to_counter(ns: u64) -> u64 {
    (ns as u128 * timer::frequency() as u128 / 1_000_000_000) as u64
}

/// Sleep in WFI until `ns` nanoseconds of counter time have passed. The tick (or any other
/// interrupt) ends each WFI, so this wakes at most one tick late. Needs IRQs enabled and this
/// core ticking. Under `-icount ...,sleep=off` idle time costs no host time, unlike a spin.
pub fn sleep_ns(ns: u64) {
    let end = timer::counter() + ns_to_counter(ns);
    while timer::counter() < end {
        cpu::wait_for_interrupt();
    }
}
