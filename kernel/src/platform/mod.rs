//! Board drivers, chosen at run time from the device tree: the PL011 UART and the GIC (v2 or
//! v3) on QEMU virt. Apple's s5l UART and AIC will sit beside them behind the same calls.
pub mod gic;
pub mod pl011;

/// SGI used to wake a core (doorbells, posted work). Its handler does nothing but return:
/// the point is to end the target's WFI.
pub const SGI_WAKE: u32 = 0;

/// The kernel's IRQ dispatch, installed as the exception layer's IRQ handler. Acknowledges
/// and handles every pending interrupt before returning.
pub fn handle_irq() {
    while let Some(ack) = gic::acknowledge() {
        let intid = ack.intid();
        if intid == crate::time::timer_intid() {
            crate::time::on_tick();
            crate::sched::scheduler::on_tick();
            crate::process::timers::on_tick();
        } else if intid == SGI_WAKE {
            crate::smp::on_wake_ipi();
        } else {
            // Not ours: say so once and mask it, so a stuck line cannot storm this core.
            log::error!(
                "unexpected IRQ {intid} on core {}: masked",
                crate::arch::cpu::core_index()
            );
            gic::disable(intid);
        }
        gic::end_of_interrupt(ack);
    }
}
