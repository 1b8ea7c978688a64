//! Secondary cores: starting them (by the device tree's `enable-method`), their idle loop, and
//! the two ways cores talk before there is a scheduler: posted work (run a function on another
//! core and wait for it) and doorbells (an IPI that records who rang).
//!
//! Logical core indices: 0 is the boot core; the other cores the device tree lists follow in
//! its order. A core that fails to start keeps its index but never comes online.

use crate::MAX_CORES;
use crate::arch::aarch64::psci::{self, PsciError};
use crate::arch::{boot as arch_boot, cpu};
use crate::devicetree::{BoardInfo, CpuInfo, EnableMethod};
use crate::platform::SGI_WAKE;
use crate::platform::gic::{self, SgiTarget};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How long a started core has to report online before it is declared lost. Generous:
/// eight emulated cores on a two-core host start slowly.
pub const START_TIMEOUT_NS: u64 = 5_000_000_000;

/// Posted-work states.
const IDLE: usize = 0;
const CLAIMED: usize = 1;
const POSTED: usize = 2;

struct CoreSlot {
    mpidr: AtomicU64,
    present: AtomicBool,
    online: AtomicBool,
    /// Posted work: IDLE -> CLAIMED (a poster fills fn/arg) -> POSTED -> run -> IDLE.
    work_state: AtomicUsize,
    work_fn: AtomicUsize,
    work_arg: AtomicUsize,
    work_posted: AtomicU64,
    work_completed: AtomicU64,
    /// Doorbells: bit s set = core s rang and this core has not yet seen it.
    doorbells: AtomicU64,
    rung_by: [AtomicU64; MAX_CORES],
    wake_ipis: AtomicU64,
}

static CORES: [CoreSlot; MAX_CORES] = [const {
    CoreSlot {
        mpidr: AtomicU64::new(0),
        present: AtomicBool::new(false),
        online: AtomicBool::new(false),
        work_state: AtomicUsize::new(IDLE),
        work_fn: AtomicUsize::new(0),
        work_arg: AtomicUsize::new(0),
        work_posted: AtomicU64::new(0),
        work_completed: AtomicU64::new(0),
        doorbells: AtomicU64::new(0),
        rung_by: [const { AtomicU64::new(0) }; MAX_CORES],
        wake_ipis: AtomicU64::new(0),
    }
}; MAX_CORES];

static PRESENT: AtomicUsize = AtomicUsize::new(1);

/// Why a core did not come up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The firmware refused `CPU_ON`.
    Psci(PsciError),
    /// The cpu uses PSCI but the device tree has no /psci node.
    NoPsciConduit,
    /// `spin-table` needs a release address the device tree did not give (or was zero).
    BadReleaseAddress,
    /// An enable-method this kernel does not implement (or none).
    UnsupportedEnableMethod,
    /// Started, but did not report online within [`START_TIMEOUT_NS`].
    NoSignOfLife,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Psci(e) => write!(f, "CPU_ON failed: {e}"),
            Self::NoPsciConduit => f.write_str("enable-method is psci but there is no /psci node"),
            Self::BadReleaseAddress => f.write_str("spin-table without a usable cpu-release-addr"),
            Self::UnsupportedEnableMethod => f.write_str("unsupported or missing enable-method"),
            Self::NoSignOfLife => {
                write!(
                    f,
                    "no sign of life within {} ms",
                    START_TIMEOUT_NS / 1_000_000
                )
            }
        }
    }
}

/// Record the boot core (index 0).
pub fn register_boot_core() {
    let slot = &CORES[0];
    slot.mpidr.store(cpu::mpidr(), Ordering::Relaxed);
    slot.present.store(true, Ordering::Relaxed);
    slot.online.store(true, Ordering::Release);
}

/// Start every other core the device tree lists; returns how many cores are online.
pub fn start_secondaries(board: &BoardInfo) -> usize {
    let boot_mpidr = cpu::mpidr();
    let others = board
        .cpus
        .iter()
        .filter(|c| c.mpidr & cpu::AFFINITY_MASK != boot_mpidr);
    for (index, cpu_info) in (1..).zip(others) {
        if index >= MAX_CORES {
            log::warn!("more than {MAX_CORES} cpus in the device tree; the rest stay off");
            break;
        }
        CORES[index].mpidr.store(cpu_info.mpidr, Ordering::Relaxed);
        CORES[index].present.store(true, Ordering::Relaxed);
        PRESENT.store(index + 1, Ordering::Release);
        if let Err(error) = start_core(index, cpu_info, board) {
            log::error!(
                "core {index} (MPIDR {:#x}) failed to start: {error}; continuing without it",
                cpu_info.mpidr
            );
        }
    }
    online_count()
}

/// Start core `index` as `cpu_info` describes and wait for it to report online.
pub fn start_core(index: usize, cpu_info: &CpuInfo, board: &BoardInfo) -> Result<(), StartError> {
    // Both entries may need it; spin_table_entry cannot find its index without it.
    arch_boot::publish_core_mpidr(index, cpu_info.mpidr);
    match cpu_info.enable_method {
        EnableMethod::Psci => {
            let conduit = board.psci.ok_or(StartError::NoPsciConduit)?;
            let entry = arch_boot::secondary_entry_address();
            psci::cpu_on(conduit, cpu_info.mpidr, entry, index as u64).map_err(StartError::Psci)?
        }
        EnableMethod::SpinTable { release_addr: 0 } => return Err(StartError::BadReleaseAddress),
        EnableMethod::SpinTable { release_addr } => release_from_spin_table(release_addr)?,
        EnableMethod::Unsupported => return Err(StartError::UnsupportedEnableMethod),
    }
    let deadline = crate::time::now_ns() + START_TIMEOUT_NS;
    while !CORES[index].online.load(Ordering::Acquire) {
        if crate::time::now_ns() > deadline {
            return Err(StartError::NoSignOfLife);
        }
        crate::sync::cpu_relax();
    }
    Ok(())
}

/// The spin-table protocol (Apple: m1n1 parks every core in WFE on its `cpu-release-addr`):
/// write the entry address to the release word, clean it to the point of coherency (the
/// parked core reads it with its MMU and caches off), then SEV.
fn release_from_spin_table(release_addr: u64) -> Result<(), StartError> {
    if !release_addr.is_multiple_of(8) || crate::boot::ensure_mapped_rw(release_addr).is_err() {
        return Err(StartError::BadReleaseAddress);
    }
    let word = release_addr as *mut u64;
    // SAFETY: the device tree hands this word to the kernel for exactly this write; it is
    // mapped read-write (checked above) and 8-byte aligned.
    unsafe { word.write_volatile(arch_boot::spin_table_entry_address()) };
    crate::arch::aarch64::cache::clean_to_poc(release_addr as usize, 8);
    cpu::send_event();
    Ok(())
}

/// Take this core out of service and power it off through PSCI (it can be started again
/// with `start_core`). Run it as posted work: the post counts as done.
pub fn stop_this_core() -> ! {
    let index = cpu::core_index();
    let slot = &CORES[index];
    cpu::disable_irqs();
    crate::arch::timer::stop();
    slot.online.store(false, Ordering::Release);
    if slot.work_state.load(Ordering::Acquire) == POSTED {
        slot.work_completed.fetch_add(1, Ordering::Release);
        slot.work_state.store(IDLE, Ordering::Release);
    }
    cpu::send_event();
    let refused = match crate::boot::info().board.psci {
        Some(conduit) => psci::cpu_off(conduit),
        None => PsciError::NotSupported,
    };
    log::error!("core {index}: cannot power off ({refused}); halting it instead");
    cpu::halt()
}

/// A secondary core, MMU and vectors on, stack set: finish its setup and idle.
pub fn secondary_main(index: usize) -> ! {
    let slot = &CORES[index];
    if let Err(error) = gic::init_this_core(&[SGI_WAKE, crate::time::timer_intid()]) {
        log::error!("core {index}: {error}; parking this core");
        cpu::halt();
    }
    crate::time::start_this_core();
    crate::println!("core {index} online (MPIDR {:#x})", cpu::mpidr());
    slot.online.store(true, Ordering::Release);
    cpu::enable_irqs();
    idle_loop(slot)
}

/// Run posted work, then processes; otherwise sleep in WFI until an interrupt (an IPI or the
/// tick).
fn idle_loop(slot: &CoreSlot) -> ! {
    loop {
        if slot.work_state.load(Ordering::Acquire) == POSTED {
            let f = slot.work_fn.load(Ordering::Relaxed);
            let arg = slot.work_arg.load(Ordering::Relaxed);
            // SAFETY: `post` stored a valid `fn(usize)` before publishing POSTED.
            let f: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
            f(arg);
            slot.work_completed.fetch_add(1, Ordering::Release);
            slot.work_state.store(IDLE, Ordering::Release);
            cpu::send_event(); // the poster may be waiting in WFE
            continue;
        }
        // Run processes, else sleep. An IPI posted after the check above is pending and
        // ends the sleep at once.
        crate::sched::idle();
    }
}

/// Errors of [`post`] and [`run_on`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    NoSuchCore,
    Offline,
    /// Posting to oneself would wait forever: call the function directly.
    IsCurrentCore,
}

/// Work posted on a core; [`Posted::wait`] returns once it has run.
#[must_use]
pub struct Posted {
    core: usize,
    sequence: u64,
}

impl Posted {
    /// Sleeps in WFI until the work is done, looking after every interrupt (at least each
    /// tick of this core). Not WFE: under `-icount`, a WFE loop on one vCPU while the worker
    /// sleeps in WFI can stop QEMU's virtual clock, and with it every timer (seen with QEMU
    /// 7.2 at 250 Hz on 4 vCPUs).
    pub fn wait(self) {
        let slot = &CORES[self.core];
        while slot.work_completed.load(Ordering::Acquire) < self.sequence {
            cpu::wait_for_interrupt();
        }
    }

    pub fn is_done(&self) -> bool {
        CORES[self.core].work_completed.load(Ordering::Acquire) >= self.sequence
    }
}

/// Have core `core` run `f(arg)` from its idle loop, and return without waiting. Waits for
/// the core's previous posted work to be picked up first.
pub fn post(core: usize, f: fn(usize), arg: usize) -> Result<Posted, CallError> {
    if core >= MAX_CORES || !CORES[core].present.load(Ordering::Acquire) {
        return Err(CallError::NoSuchCore);
    }
    if core == cpu::core_index() {
        return Err(CallError::IsCurrentCore);
    }
    let slot = &CORES[core];
    if !slot.online.load(Ordering::Acquire) {
        return Err(CallError::Offline);
    }
    while slot
        .work_state
        .compare_exchange_weak(IDLE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        crate::sync::cpu_relax();
    }
    slot.work_fn.store(f as usize, Ordering::Relaxed);
    slot.work_arg.store(arg, Ordering::Relaxed);
    let sequence = slot.work_posted.fetch_add(1, Ordering::Relaxed) + 1;
    slot.work_state.store(POSTED, Ordering::Release);
    gic::send_sgi(SgiTarget::Core(core), SGI_WAKE);
    Ok(Posted { core, sequence })
}

/// Run `f(arg)` on core `core` and wait for it (directly, if `core` is this core).
pub fn run_on(core: usize, f: fn(usize), arg: usize) -> Result<(), CallError> {
    if core == cpu::core_index() {
        f(arg);
        return Ok(());
    }
    post(core, f, arg)?.wait();
    Ok(())
}

/// Ring core `target`'s doorbell: it takes an IPI and records that this core rang.
pub fn ring_doorbell(target: usize) {
    CORES[target]
        .doorbells
        .fetch_or(1 << cpu::core_index(), Ordering::Release);
    gic::send_sgi(SgiTarget::Core(target), SGI_WAKE);
}

/// Ring every other online core's doorbell with one broadcast IPI.
pub fn ring_all_other_doorbells() {
    let me = cpu::core_index();
    for target in online_cores().filter(|&t| t != me) {
        CORES[target].doorbells.fetch_or(1 << me, Ordering::Release);
    }
    gic::send_sgi(SgiTarget::AllOthers, SGI_WAKE);
}

/// The SGI_WAKE handler: account for the doorbells that rang.
pub fn on_wake_ipi() {
    let slot = &CORES[cpu::core_index()];
    slot.wake_ipis.fetch_add(1, Ordering::Relaxed);
    let mut rang = slot.doorbells.swap(0, Ordering::Acquire);
    while rang != 0 {
        let source = rang.trailing_zeros() as usize;
        slot.rung_by[source].fetch_add(1, Ordering::Release);
        rang &= rang - 1;
    }
}

/// How many times core `source` rang core `target`'s doorbell, as seen by `target`.
pub fn doorbells_received(target: usize, source: usize) -> u64 {
    CORES[target].rung_by[source].load(Ordering::Acquire)
}

/// Wake IPIs core `core` has taken.
pub fn wake_ipis(core: usize) -> u64 {
    CORES[core].wake_ipis.load(Ordering::Relaxed)
}

/// Number of cores the device tree lists (online or not).
pub fn present_count() -> usize {
    PRESENT.load(Ordering::Acquire)
}

pub fn is_online(core: usize) -> bool {
    core < MAX_CORES && CORES[core].online.load(Ordering::Acquire)
}

pub fn online_count() -> usize {
    (0..present_count()).filter(|&c| is_online(c)).count()
}

/// Indices of the cores that are online.
pub fn online_cores() -> impl Iterator<Item = usize> {
    (0..present_count()).filter(|&c| is_online(c))
}

/// MPIDR of core `core` as the device tree lists it.
pub fn mpidr_of(core: usize) -> u64 {
    CORES[core].mpidr.load(Ordering::Relaxed)
}

/// Wait, relaxing with WFE, until `done()`; WFE may return early, so the condition is
/// re-checked every time. The waker stores its result, then calls `cpu::send_event`.
pub fn wait_for_event_until(mut done: impl FnMut() -> bool) {
    while !done() {
        cpu::wait_for_event();
    }
}
