//! The on-target suites. Each module is one suite; `ALL` is what `cargo xtask test` runs in
//! every machine configuration. Cases read what the configuration promises from bootargs
//! (`expect_cpus`, `expect_el`, `expect_gic`, `expect_load`, `icount`, `tick_hz`).

mod boot;
mod memory;
mod messages;
mod mmu;
mod process;
mod selftest;
mod smp;
mod supervisor;
mod timer;

use kernel::testing::Suite;

pub static ALL: &[Suite] = &[
    boot::SUITE,
    smp::SUITE,
    timer::SUITE,
    mmu::SUITE,
    memory::SUITE,
    process::SUITE,
    messages::SUITE,
    supervisor::SUITE,
];

/// Run only on request: the harness's own check of its abort-and-resume path.
pub static HIDDEN: &[Suite] = &[selftest::SUITE];

pub use mmu::kernel_fault;

/// A number the configuration promises on the command line, if it does.
pub fn expected(key: &str) -> Option<u64> {
    kernel::boot::info()
        .args
        .number(key)
        .unwrap_or_else(|text| panic!("bad {key}={text}"))
}

/// Wait up to `ms` milliseconds for `condition`, checking it after every interrupt (the tick
/// at least): the waiting core sleeps in WFI, so deterministic `-icount` runs skip the wait.
/// False on timeout.
pub fn wait_until(ms: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = kernel::time::now_ns() + ms * 1_000_000;
    while !condition() {
        if kernel::time::now_ns() > deadline {
            return condition();
        }
        kernel::arch::cpu::wait_for_interrupt();
    }
    true
}

static EXIT_REASON: kernel::sync::IrqMutex<Option<(kernel::process::Pid, kernel::msg::Term)>> =
    kernel::sync::IrqMutex::new(None);

fn record_exit(pid: kernel::process::Pid, reason: &kernel::msg::Term) {
    let mut slot = EXIT_REASON.lock();
    if slot.as_ref().is_some_and(|(p, _)| *p == pid) || slot.is_none() {
        // The hook runs inside a kernel call: the clone lands in the kernel heap.
        *slot = Some((pid, reason.clone()));
    }
}

/// Run `body` as a process on core 0 (waiting in the kernel context) and fail the case if it
/// does not exit normally, or if processes it started are still alive afterwards (they may
/// still be stopping: this waits for them).
pub fn in_process(body: fn()) {
    use kernel::msg::{Term, atom};
    use kernel::{process, sched};
    fn run(arg: Term) {
        let raw = arg.as_int().unwrap() as usize;
        // SAFETY: `in_process` passes a `fn()` as an integer.
        let body: fn() = unsafe { core::mem::transmute::<usize, fn()>(raw) };
        body();
    }
    let before = process::count();
    let pid = process::spawn(run, Term::int(body as usize as i64)).expect("spawn");
    *EXIT_REASON.lock() = Some((pid, Term::nil()));
    process::set_exit_hook(Some(record_exit));
    sched::run_until(|| !process::is_alive(pid));
    let reason = EXIT_REASON.lock().take().map(|(_, r)| r).unwrap();
    assert!(
        reason.is_atom(atom::NORMAL),
        "the case's process exited with {reason}"
    );
    sched::run_until(|| process::count() <= before);
}
