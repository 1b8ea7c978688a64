//! The console: `print!`/`println!` from any core without interleaved lines, the `log`
//! backend (`[core N LEVEL] message`), UART input, and an emergency path for the panic and
//! fault reports that must get out even if the lock's holder died.
//!
//! Until the device tree is parsed the console is QEMU virt's PL011 (the early-console
//! fallback); `boot` then switches it to the UART that `/chosen/stdout-path` names.

use crate::platform::pl011::{Pl011, QEMU_VIRT_UART};
use crate::sync::IrqMutex;
use core::fmt::{self, Write};

/// `None` means no console at all (a board without a UART we drive): output is dropped.
static CONSOLE: IrqMutex<Option<Pl011>> =
    // SAFETY: QEMU virt's UART; only used before the DTB names the real one.
    IrqMutex::new(Some(unsafe { Pl011::new(QEMU_VIRT_UART) }));

/// Use the UART at `base` from now on.
///
/// # Safety
/// `base` must be an identity-mapped PL011 register block.
pub unsafe fn use_pl011(base: usize) {
    // SAFETY: per the caller.
    let uart = unsafe { Pl011::new(base) };
    uart.init();
    *CONSOLE.lock() = Some(uart);
}

/// Drop all output (no usable UART).
pub fn disable() {
    *CONSOLE.lock() = None;
}

pub fn uart_base() -> Option<usize> {
    CONSOLE.lock().as_ref().map(Pl011::base)
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// One byte of input, if any has arrived.
pub fn read_byte() -> Option<u8> {
    CONSOLE.lock().as_ref().and_then(Pl011::read_byte)
}

/// Write a report from a dying context: waits a bounded time for the lock, then takes it
/// from whoever holds it (they are stopped or will be) so the report is never lost.
pub fn emergency(report: impl FnOnce(&mut dyn Write)) {
    let mut guard = None;
    for _ in 0..1_000_000 {
        if let Some(g) = CONSOLE.try_lock() {
            guard = Some(g);
            break;
        }
        crate::sync::cpu_relax();
    }
    let mut guard = guard.unwrap_or_else(|| {
        // SAFETY: the holder has had a million tries' time; a dying kernel must speak.
        unsafe { CONSOLE.force_unlock() };
        CONSOLE.lock()
    });
    if let Some(uart) = guard.as_mut() {
        report(uart);
        uart.flush();
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a whole line under one lock acquisition: lines from different cores never mix.
#[macro_export]
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            crate::println!(
                "[core {} {:<5}] {}",
                crate::arch::cpu::core_index(),
                record.level(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Install the `log` backend at `level` (`error`..`trace`, default `info`).
pub fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        Some("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Info,
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(filter);
}
