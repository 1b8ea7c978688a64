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
