//! GICv3 (`arm,gic-v3`): memory-mapped distributor and per-core redistributors, and the CPU
//! interface through ICC_* system registers (affinity routing; all interrupts group 1).

use super::distributor::{self, Registers as Distributor};
use super::{DEFAULT_PRIORITY_WORD, SgiTarget};
use crate::MAX_CORES;
use crate::arch::cpu;
use aarch64_cpu::asm::barrier;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    /// The RD_base frame of one redistributor.
    Redistributor {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => iidr: ReadOnly<u32>),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _reserved0),
        (0x0014 => waker: ReadWrite<u32>),
        (0x0018 => @END),
    }
}

register_structs! {
    /// The SGI_base frame (RD_base + 64 KiB): this core's SGIs and PPIs.
    SgiFrame {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0280 => icpendr0: ReadWrite<u32>),
        (0x0284 => _reserved4),
        (0x0400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x0420 => @END),
    }
}

const CTLR_RWP: u32 = 1 << 31;
const CTLR_ARE: u32 = 1 << 4;
/// EnableGrp1 in both the single-security-state (bit 1) and non-secure (bit 0, bit 1 = Grp1A)
/// views: QEMU virt without `secure=on` has one security state; firmware-run machines two.
const CTLR_ENABLE_GROUP1: u32 = 0b11;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const TYPER_LAST: u64 = 1 << 4;
const TYPER_VLPIS: u64 = 1 << 1;
const SGI_FRAME_OFFSET: usize = 0x1_0000;

pub struct GicV3 {
    distributor: &'static Distributor,
    redistributors: usize,
    redistributors_size: usize,
    /// RD_base of each logical core (0 until it initialised).
    rd_base: [AtomicUsize; MAX_CORES],
    /// MPIDR affinity of each logical core, for SGI targeting.
    affinity: [AtomicU64; MAX_CORES],
}

macro_rules! write_sysreg {
    ($reg:literal, $value:expr) => {
        // SAFETY: GIC CPU-interface system registers; writing them affects interrupt
        // delivery to this core only.
        #[allow(unused_unsafe)]
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {0}"), in(reg) $value as u64) }
    };
}
macro_rules! read_sysreg {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reading a GIC CPU-interface system register.
        #[allow(unused_unsafe)]
        unsafe { core::arch::asm!(concat!("mrs {0}, ", $reg), out(reg) value) };
        value
    }};
}

// aarch64-cpu has no definitions for these ICC registers; their encodings:
// ICC_SRE_EL1 S3_0_C12_C12_5, ICC_PMR_EL1 S3_0_C4_C6_0, ICC_BPR1_EL1 S3_0_C12_C12_3,
// ICC_IGRPEN1_EL1 S3_0_C12_C12_7, ICC_IAR1_EL1 S3_0_C12_C12_0, ICC_EOIR1_EL1 S3_0_C12_C12_1,
// ICC_SGI1R_EL1 S3_0_C12_C11_5.

// SAFETY: MMIO registers, each access a single volatile load or store; the per-core state
// is atomics, and per-core registers are only touched by their own core.
unsafe impl Send for GicV3 {}
// SAFETY: as above.
unsafe impl Sync for GicV3 {}

impl GicV3 {
    /// # Safety
    /// The ranges must be identity-mapped GICv3 distributor and redistributor regions.
    pub unsafe fn new(
        distributor: usize,
        redistributors: usize,
        redistributors_size: usize,
    ) -> Self {
        // SAFETY: per the caller.
        let distributor = unsafe { &*(distributor as *const Distributor) };
        distributor.ctlr.set(0);
        wait_rwp(distributor);
        distributor::reset_spis(distributor);
        distributor.ctlr.set(CTLR_ARE);
        wait_rwp(distributor);
        distributor.ctlr.set(CTLR_ARE | CTLR_ENABLE_GROUP1);
        wait_rwp(distributor);
        Self {
            distributor,
            redistributors,
            redistributors_size,
            rd_base: [const { AtomicUsize::new(0) }; MAX_CORES],
            affinity: [const { AtomicU64::new(0) }; MAX_CORES],
        }
    }

    /// The redistributor whose GICR_TYPER affinity matches this core's MPIDR.
    fn find_redistributor(&self, mpidr: u64) -> Option<&'static Redistributor> {
        let wanted = ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff);
        let mut base = self.redistributors;
        while base + 0x2_0000 <= self.redistributors + self.redistributors_size {
            // SAFETY: within the redistributor region the device tree gave us.
            let rd = unsafe { &*(base as *const Redistributor) };
            let typer = rd.typer.get();
            if typer >> 32 == wanted {
                return Some(rd);
            }
            if typer & TYPER_LAST != 0 {
                return None;
            }
            base += if typer & TYPER_VLPIS != 0 {
                0x4_0000
            } else {
                0x2_0000
            };
        }
        None
    }

    pub fn init_this_core(&self, private_intids: &[u32]) -> Result<(), &'static str> {
        let mpidr = cpu::mpidr();
        let rd = self
            .find_redistributor(mpidr)
            .ok_or("GICv3: no redistributor matches this core's MPIDR")?;
        let rd_base = rd as *const Redistributor as usize;
        rd.waker.set(rd.waker.get() & !WAKER_PROCESSOR_SLEEP);
        while rd.waker.get() & WAKER_CHILDREN_ASLEEP != 0 {
            crate::sync::cpu_relax();
        }
        // SAFETY: the SGI frame follows RD_base within the same redistributor.
        let sgi = unsafe { &*((rd_base + SGI_FRAME_OFFSET) as *const SgiFrame) };
        sgi.icenabler0.set(!0);
        sgi.icpendr0.set(!0);
        sgi.igroupr0.set(!0);
        for word in &sgi.ipriorityr {
            word.set(DEFAULT_PRIORITY_WORD);
        }
        for &intid in private_intids {
            sgi.isenabler0.set(1 << intid);
        }

        write_sysreg!("S3_0_C12_C12_5", read_sysreg!("S3_0_C12_C12_5") | 1); // ICC_SRE_EL1.SRE
        barrier::isb(barrier::SY);
        write_sysreg!("S3_0_C4_C6_0", 0xffu64); // ICC_PMR_EL1: let every priority through
        write_sysreg!("S3_0_C12_C12_3", 0u64); // ICC_BPR1_EL1
        write_sysreg!("S3_0_C12_C12_7", 1u64); // ICC_IGRPEN1_EL1
        barrier::isb(barrier::SY);

        let core = cpu::core_index();
        self.affinity[core].store(mpidr, Ordering::Relaxed);
        self.rd_base[core].store(rd_base, Ordering::Release);
        Ok(())
    }

    pub fn acknowledge(&self) -> u32 {
        let intid = read_sysreg!("S3_0_C12_C12_0") as u32; // ICC_IAR1_EL1
        barrier::dsb(barrier::SY);
        intid
    }

    pub fn end_of_interrupt(&self, raw: u32) {
        write_sysreg!("S3_0_C12_C12_1", raw); // ICC_EOIR1_EL1
        barrier::isb(barrier::SY);
    }

    pub fn disable(&self, intid: u32) {
        if intid < 32 {
            let rd_base = self.rd_base[cpu::core_index()].load(Ordering::Acquire);
            // SAFETY: this core's SGI frame, recorded by init_this_core.
            let sgi = unsafe { &*((rd_base + SGI_FRAME_OFFSET) as *const SgiFrame) };
            sgi.icenabler0.set(1 << intid);
        } else {
            self.distributor.icenabler[(intid / 32) as usize].set(1 << (intid % 32));
        }
    }

    pub fn send_sgi(&self, target: SgiTarget, sgi: u32) {
        let value = match target {
            SgiTarget::Core(core) => {
                if self.rd_base[core].load(Ordering::Acquire) == 0 {
                    return; // not online: nothing to wake
                }
                let mpidr = self.affinity[core].load(Ordering::Relaxed);
                let aff0 = mpidr & 0xff;
                let aff1 = (mpidr >> 8) & 0xff;
                let aff2 = (mpidr >> 16) & 0xff;
                let aff3 = (mpidr >> 32) & 0xff;
                (aff3 << 48)
                    | ((aff0 >> 4) << 44)
                    | (aff2 << 32)
                    | ((sgi as u64) << 24)
                    | (aff1 << 16)
                    | (1 << (aff0 & 0xf))
            }
            SgiTarget::AllOthers => (1 << 40) | ((sgi as u64) << 24),
        };
        barrier::dsb(barrier::ISHST);
        write_sysreg!("S3_0_C12_C11_5", value); // ICC_SGI1R_EL1
        barrier::isb(barrier::SY);
    }
}

fn wait_rwp(distributor: &Distributor) {
    while distributor.ctlr.get() & CTLR_RWP != 0 {
        crate::sync::cpu_relax();
    }
}
