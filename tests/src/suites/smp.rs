//! Cores talking to each other: IPIs between every pair, WFE woken by SEV, a lock contended
//! by all cores, posted work, and core start-up errors reported rather than fatal.
use super::wait_until;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::arch::aarch64::boot::{spin_table_entry_address, spin_table_pen_address};
use kernel::arch::aarch64::cache::clean_to_poc;
use kernel::arch::aarch64::psci::{self, PsciError};
use kernel::arch::cpu;
use kernel::devicetree::EnableMethod;
use kernel::smp::{self, StartError};
use kernel::sync::SpinMutex;
use kernel::testing::Suite;
use kernel::{boot, test_cases};

pub const SUITE: Suite = Suite {
    name: "smp",
    cases: test_cases![
        posted_work_runs_on_the_target_core,
        ipi_from_every_core_to_every_other_core,
        broadcast_ipi_reaches_all_other_cores,
        core_parked_in_wfe_is_woken_by_sev,
        spin_mutex_contended_by_all_cores_counts_exactly,
        starting_a_running_core_is_refused_and_reported,
        bad_start_requests_are_errors_not_hangs,
        spin_table_release_brings_a_parked_core_online,
    ],
};

static RAN_ON: AtomicUsize = AtomicUsize::new(usize::MAX);

fn posted_work_runs_on_the_target_core() {
    for core in smp::online_cores() {
        smp::run_on(
            core,
            |arg| RAN_ON.store(cpu::core_index() * 1000 + arg, Ordering::Release),
            7,
        )
        .unwrap();
        assert_eq!(RAN_ON.load(Ordering::Acquire), core * 1000 + 7);
    }
    assert_eq!(
        smp::run_on(kernel::MAX_CORES - 1, |_| {}, 0),
        Err(smp::CallError::NoSuchCore)
    );
}

fn ring_all_others(_: usize) {
    let me = cpu::core_index();
    for target in smp::online_cores().filter(|&t| t != me) {
        smp::ring_doorbell(target);
    }
}

fn ipi_from_every_core_to_every_other_core() {
    let cores: heapless::Vec<usize, { kernel::MAX_CORES }> = smp::online_cores().collect();
    let mut before = [[0u64; kernel::MAX_CORES]; kernel::MAX_CORES];
    for &t in &cores {
        for &s in &cores {
            before[t][s] = smp::doorbells_received(t, s);
        }
    }
    for &source in &cores {
        smp::run_on(source, ring_all_others, 0).unwrap();
    }
    for &t in &cores {
        for &s in cores.iter().filter(|&&s| s != t) {
            let arrived = wait_until(2000, || smp::doorbells_received(t, s) > before[t][s]);
            assert!(arrived, "IPI from core {s} to core {t} never arrived");
        }
    }
}

fn broadcast_ipi_reaches_all_other_cores() {
    let cores: heapless::Vec<usize, { kernel::MAX_CORES }> = smp::online_cores().collect();
    for &source in &cores {
        let before: heapless::Vec<u64, { kernel::MAX_CORES }> = cores
            .iter()
            .map(|&t| smp::doorbells_received(t, source))
            .collect();
        smp::run_on(source, |_| smp::ring_all_other_doorbells(), 0).unwrap();
        for (i, &t) in cores.iter().enumerate().filter(|&(_, &t)| t != source) {
            let arrived = wait_until(2000, || smp::doorbells_received(t, source) > before[i]);
            assert!(
                arrived,
                "broadcast from core {source} never reached core {t}"
            );
        }
        assert_eq!(
            smp::doorbells_received(source, source),
            0,
            "a broadcast excludes its sender"
        );
    }
}

static WAITER_READY: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);
static WAKEUPS: AtomicU64 = AtomicU64::new(0);

fn wait_in_wfe(_: usize) {
    WAITER_READY.store(true, Ordering::Release);
    smp::wait_for_event_until(|| {
        WAKEUPS.fetch_add(1, Ordering::Relaxed);
        RELEASE.load(Ordering::Acquire)
    });
}

fn core_parked_in_wfe_is_woken_by_sev() {
    let Some(waiter) = smp::online_cores().find(|&c| c != 0) else {
        return; // one core: nobody to wake
    };
    WAITER_READY.store(false, Ordering::Relaxed);
    RELEASE.store(false, Ordering::Relaxed);
    let posted = smp::post(waiter, wait_in_wfe, 0).unwrap();
    assert!(
        wait_until(2000, || WAITER_READY.load(Ordering::Acquire)),
        "waiter never started"
    );
    kernel::time::sleep_ns(2_000_000);
    assert!(!posted.is_done(), "waiter returned before the event");
    RELEASE.store(true, Ordering::Release);
    cpu::send_event();
    assert!(
        wait_until(2000, || posted.is_done()),
        "SEV did not wake the core parked in WFE"
    );
    posted.wait();
    assert!(WAKEUPS.load(Ordering::Relaxed) >= 1);
}

static COUNTER: SpinMutex<u64> = SpinMutex::new(0);
const INCREMENTS: u64 = 20_000;

fn add_to_counter(_: usize) {
    for _ in 0..INCREMENTS {
        let mut value = COUNTER.lock();
        // A non-atomic read-modify-write: only the lock makes it exact.
        let read = core::hint::black_box(*value);
        *value = read + 1;
    }
}

fn spin_mutex_contended_by_all_cores_counts_exactly() {
    *COUNTER.lock() = 0;
    let others: heapless::Vec<smp::Posted, { kernel::MAX_CORES }> = smp::online_cores()
        .filter(|&c| c != 0)
        .map(|c| smp::post(c, add_to_counter, 0).unwrap())
        .collect();
    add_to_counter(0);
    for posted in others {
        posted.wait();
    }
    assert_eq!(*COUNTER.lock(), INCREMENTS * smp::online_count() as u64);
}

fn starting_a_running_core_is_refused_and_reported() {
    let board = &boot::info().board;
    let Some(core) = smp::online_cores().find(|&c| c != 0) else {
        return;
    };
    let mpidr = smp::mpidr_of(core);
    let cpu_info = board.cpus.iter().find(|c| c.mpidr == mpidr).unwrap();
    assert_eq!(
        smp::start_core(core, cpu_info, board),
        Err(StartError::Psci(PsciError::AlreadyOn))
    );
    assert!(
        smp::is_online(core),
        "the refused start must not disturb the running core"
    );
}

fn bad_start_requests_are_errors_not_hangs() {
    let board = &boot::info().board;
    let mut fake = board.cpus[0].clone();
    fake.mpidr = 0xff_00ab_cdef; // no such core
    fake.enable_method = EnableMethod::Psci; // QEMU omits it when there is one cpu
    let unused = kernel::MAX_CORES - 1;
    match smp::start_core(unused, &fake, board) {
        Err(StartError::Psci(PsciError::InvalidParameters | PsciError::NotPresent)) => {}
        other => panic!("CPU_ON of a missing core gave {other:?}"),
    }
    fake.enable_method = EnableMethod::Unsupported;
    assert_eq!(
        smp::start_core(unused, &fake, board),
        Err(StartError::UnsupportedEnableMethod)
    );
    fake.enable_method = EnableMethod::SpinTable { release_addr: 0 };
    assert_eq!(
        smp::start_core(unused, &fake, board),
        Err(StartError::BadReleaseAddress)
    );
    assert!(!smp::is_online(unused));
}

/// The release word of the test's holding pen, on its own cache line.
#[repr(C, align(64))]
struct ReleaseWord(u64);
static mut PEN_RELEASE: ReleaseWord = ReleaseWord(0);

/// Apple's way of starting cores, exercised on QEMU: a core powers itself off (PSCI
/// CPU_OFF); the test, playing the firmware's part, parks it in a WFE loop on a release word
/// with its MMU off; then the kernel's spin-table path releases it, and it must come online
/// through `spin_table_entry`, finding its own index from MPIDR.
fn spin_table_release_brings_a_parked_core_online() {
    let board = &kernel::boot::info().board;
    let Some(core) = smp::online_cores().filter(|&c| c != 0).last() else {
        return;
    };
    let conduit = board.psci.expect("QEMU virt has PSCI");
    let mpidr = smp::mpidr_of(core);

    smp::post(core, |_| smp::stop_this_core(), 0)
        .unwrap()
        .wait();
    assert!(!smp::is_online(core));
    assert!(
        wait_until(2000, || psci::is_off(conduit, mpidr)),
        "core {core} did not power off"
    );

    let word = (&raw mut PEN_RELEASE).cast::<u64>();
    // SAFETY: the word is ours; the parked core reads it with its MMU off, hence the clean.
    unsafe { word.write_volatile(0) };
    clean_to_poc(word as usize, 8);
    psci::cpu_on(conduit, mpidr, spin_table_pen_address(), word as u64).expect("park the core");
    kernel::time::sleep_ns(5_000_000);
    assert!(
        !smp::is_online(core),
        "a parked core must stay parked until released"
    );

    let mut cpu_info = board
        .cpus
        .iter()
        .find(|c| c.mpidr == mpidr)
        .unwrap()
        .clone();
    cpu_info.enable_method = EnableMethod::SpinTable {
        release_addr: word as u64,
    };
    assert_eq!(smp::start_core(core, &cpu_info, board), Ok(()));
    // SAFETY: reading back the word the kernel wrote.
    assert_eq!(unsafe { word.read_volatile() }, spin_table_entry_address());
    assert!(smp::is_online(core));
    smp::run_on(
        core,
        |arg| RAN_ON.store(cpu::core_index() * 1000 + arg, Ordering::Release),
        3,
    )
    .unwrap();
    assert_eq!(
        RAN_ON.load(Ordering::Acquire),
        core * 1000 + 3,
        "released core runs posted work"
    );
    // Its timer works: a busy stretch there takes ticks (idle, it would not: tickless).
    smp::run_on(
        core,
        |_| {
            let core = cpu::core_index();
            let ticks = kernel::time::ticks(core);
            while kernel::time::ticks(core) < ticks + 2 {
                cpu::wait_for_interrupt();
            }
        },
        0,
    )
    .unwrap();
}
