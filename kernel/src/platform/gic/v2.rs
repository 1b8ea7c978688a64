//! GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`): memory-mapped distributor and CPU interface.
//! SGIs target CPU-interface numbers, which each core reads from its banked ITARGETSR0.

use super::distributor::{self, Registers as Distributor};
use super::{DEFAULT_PRIORITY_WORD, SgiTarget};
use crate::MAX_CORES;
use core::sync::atomic::{AtomicU8, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    CpuInterface {
        (0x00 => ctlr: ReadWrite<u32>),
        (0x04 => pmr: ReadWrite<u32>),
        (0x08 => bpr: ReadWrite<u32>),
        (0x0c => iar: ReadOnly<u32>),
        (0x10 => eoir: WriteOnly<u32>),
        (0x14 => @END),
    }
}

pub struct GicV2 {
    distributor: &'static Distributor,
    cpu: &'static CpuInterface,
    /// CPU-interface bit of each logical core, 0 until that core initialised its interface.
    target_mask: [AtomicU8; MAX_CORES],
}

// SAFETY: MMIO registers, each access a single volatile load or store; the per-core state
// is atomics, and per-core registers are only touched by their own core.
unsafe impl Send for GicV2 {}
// SAFETY: as above.
unsafe impl Sync for GicV2 {}

impl GicV2 {
    /// # Safety
    /// Both bases must be identity-mapped GICv2 register blocks (Device memory).
    pub unsafe fn new(distributor: usize, cpu: usize) -> Self {
        // SAFETY: per the caller.
        let (distributor, cpu) = unsafe {
            (
                &*(distributor as *const Distributor),
                &*(cpu as *const CpuInterface),
            )
        };
        distributor.ctlr.set(0);
        distributor::reset_spis(distributor);
        distributor.ctlr.set(1);
        Self {
            distributor,
            cpu,
            target_mask: [const { AtomicU8::new(0) }; MAX_CORES],
        }
    }

    pub fn init_this_core(&self, private_intids: &[u32]) -> Result<(), &'static str> {
        let d = self.distributor;
        // Banked per core: interrupts 0-31 are this core's.
        d.icenabler[0].set(!0);
        d.icpendr[0].set(!0);
        for n in 0..8 {
            d.ipriorityr[n].set(DEFAULT_PRIORITY_WORD);
        }
        let mask = (d.itargetsr[0].get() & 0xff) as u8;
        if mask == 0 {
            return Err("GICv2: ITARGETSR0 reads as zero, cannot address this core");
        }
        self.target_mask[crate::arch::cpu::core_index()].store(mask, Ordering::Release);
        for &intid in private_intids {
            d.isenabler[0].set(1 << intid);
        }
        self.cpu.pmr.set(0xff);
        self.cpu.bpr.set(0);
        self.cpu.ctlr.set(1);
        Ok(())
    }

    pub fn acknowledge(&self) -> u32 {
        self.cpu.iar.get()
    }

    /// `raw` is the full IAR value: for SGIs it carries the source CPU, which EOIR needs.
    pub fn end_of_interrupt(&self, raw: u32) {
        self.cpu.eoir.set(raw);
    }

    pub fn disable(&self, intid: u32) {
        self.distributor.icenabler[(intid / 32) as usize].set(1 << (intid % 32));
    }

    pub fn send_sgi(&self, target: SgiTarget, sgi: u32) {
        let value = match target {
            SgiTarget::Core(core) => {
                let mask = self.target_mask[core].load(Ordering::Acquire) as u32;
                if mask == 0 {
                    return; // not online: nothing to wake
                }
                (mask << 16) | sgi
            }
            SgiTarget::AllOthers => (1 << 24) | sgi,
        };
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        self.distributor.sgir.set(value);
    }
}
