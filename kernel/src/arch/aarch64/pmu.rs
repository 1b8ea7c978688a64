//! The PMU cycle counter (PMCCNTR_EL0), for benchmarks. Under QEMU's `-icount shift=0` it
//! counts guest instructions exactly (one per cycle), unlike CNTVCT, which moves every 16.
//! aarch64-cpu has no PMU registers, hence the few `mrs`/`msr` here.

/// Start the cycle counter on this core: enabled, 64 bits wide, counting at EL1.
pub fn enable_cycle_counter() {
    // SAFETY: PMU configuration only changes what the counters count.
    // PMCR_EL0: E (bit 0) enables the counters, LC (bit 6) makes the cycle counter 64-bit;
    // PMCCFILTR_EL0 = 0 counts at every EL; PMCNTENSET_EL0.C (bit 31) enables the cycle
    // counter.
    unsafe {
        core::arch::asm!(
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #0x1",
            "orr {t}, {t}, #0x40",
            "msr pmcr_el0, {t}",
            "msr pmccfiltr_el0, xzr",
            "mov {t}, #0x80000000",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// The cycle counter now.
#[inline(always)]
pub fn cycles() -> u64 {
    let count: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {0}, pmccntr_el0", out(reg) count, options(nostack)) };
    count
}
