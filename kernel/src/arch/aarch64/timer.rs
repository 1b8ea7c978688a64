//! The ARM Generic Timer, EL1 virtual timer (CNTV_*): the per-core tick source. The boot code
//! sets CNTVOFF_EL2 = 0 when it enters at EL2, so the virtual and physical counts agree.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// The virtual count, ordered after preceding instructions.
#[inline(always)]
pub fn counter() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Counter ticks per second.
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Fire the timer interrupt when the counter reaches `deadline`.
pub fn set_deadline(deadline: u64) {
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
}

pub fn stop() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::SET);
}
