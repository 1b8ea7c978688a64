//! ARM PrimeCell PL011 UART: the console on QEMU virt. Polled: transmit waits for FIFO space,
//! receive returns what is there without blocking.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    FR [
        TXFF OFFSET(5) NUMBITS(1) [],
        RXFE OFFSET(4) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    LCR_H [
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        FEN OFFSET(4) NUMBITS(1) []
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
];

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved3),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// The early-console fallback: QEMU virt's UART, used only until the device tree is parsed.
pub const QEMU_VIRT_UART: usize = 0x0900_0000;

pub struct Pl011 {
    base: usize,
}

// SAFETY: the registers are MMIO; every access is a single volatile load or store, and the
// console serialises whole lines with its lock.
unsafe impl Send for Pl011 {}
// SAFETY: as above.
unsafe impl Sync for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the identity-mapped (or, with the MMU off, physical) address of a PL011,
    /// mapped as Device memory, and nothing else may drive it concurrently.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s caller promised a PL011 register block at `base` for ever.
        unsafe { &*(self.base as *const Registers) }
    }

    pub fn base(&self) -> usize {
        self.base
    }

    /// 8N1 with FIFOs, transmit and receive on, interrupts masked. The baud rate is left as the
    /// firmware set it (QEMU ignores it).
    pub fn init(&self) {
        self.flush();
        self.regs().cr.set(0);
        self.regs()
            .lcr_h
            .write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        self.regs().imsc.set(0);
        self.regs().icr.set(0x7ff);
        self.regs()
            .cr
            .write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    pub fn write_byte(&self, byte: u8) {
        while self.regs().fr.is_set(FR::TXFF) {
            crate::sync::cpu_relax();
        }
        self.regs().dr.set(byte as u32);
    }

    /// Wait until everything written has left the transmitter.
    pub fn flush(&self) {
        while self.regs().fr.is_set(FR::BUSY) {
            crate::sync::cpu_relax();
        }
    }

    pub fn read_byte(&self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs().dr.get() as u8)
        }
    }

    /// Re-enable the receiver if something (a break, an overrun) disabled it.
    pub fn enable_receive(&self) {
        self.regs().cr.modify(CR::RXE::SET);
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}
