//! Semihosting exit: ends the QEMU process with an exit code (used by tests and the demo).
//! Only valid when QEMU runs with `-semihosting`; otherwise `hlt` is an undefined instruction,
//! so callers check the `semihosting` boot argument first.

const SYS_EXIT_EXTENDED: u64 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Exit QEMU with `code`.
pub fn exit(code: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, code as u64];
    // SAFETY: the semihosting call reads the two-word block and never returns.
    unsafe {
        core::arch::asm!(
            "hlt #0xf000",
            in("x0") SYS_EXIT_EXTENDED,
            in("x1") block.as_ptr(),
            options(nostack, noreturn)
        );
    }
}
