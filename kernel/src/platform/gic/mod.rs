//! The ARM Generic Interrupt Controller, v2 or v3 as the device tree says, behind one small
//! interface: set up the distributor once, each core's own interface, enable a private
//! interrupt, acknowledge/end an interrupt, and send software-generated interrupts (IPIs).
//!
//! Interrupt numbers are GIC INTIDs: 0-15 SGIs, 16-31 PPIs (per core), 32+ SPIs.

mod v2;
mod v3;

use crate::devicetree::GicInfo;

/// Shared by v2 and v3: the distributor layout up to 0x1000 is the same in both.
mod distributor {
    use tock_registers::register_structs;
    use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

    register_structs! {
        pub Registers {
            (0x0000 => pub ctlr: ReadWrite<u32>),
            (0x0004 => pub typer: ReadOnly<u32>),
            (0x0008 => _reserved0),
            (0x0080 => pub igroupr: [ReadWrite<u32>; 32]),
            (0x0100 => pub isenabler: [ReadWrite<u32>; 32]),
            (0x0180 => pub icenabler: [ReadWrite<u32>; 32]),
            (0x0200 => _reserved1),
            (0x0280 => pub icpendr: [ReadWrite<u32>; 32]),
            (0x0300 => _reserved2),
            (0x0400 => pub ipriorityr: [ReadWrite<u32>; 255]),
            (0x07fc => _reserved3),
            (0x0800 => pub itargetsr: [ReadWrite<u32>; 255]),
            (0x0bfc => _reserved4),
            (0x0c00 => pub icfgr: [ReadWrite<u32>; 64]),
            (0x0d00 => _reserved5),
            (0x0f00 => pub sgir: WriteOnly<u32>),
            (0x0f04 => @END),
        }
    }

    /// Number of interrupt lines the distributor implements (ITLinesNumber).
    pub fn lines(regs: &Registers) -> usize {
        use tock_registers::interfaces::Readable;
        (((regs.typer.get() & 0x1f) as usize) + 1) * 32
    }

    /// Group 1, disabled, not pending, default priority: every shared interrupt.
    pub fn reset_spis(regs: &Registers) {
        use tock_registers::interfaces::Writeable;
        let lines = lines(regs).min(1020);
        for n in 1..lines / 32 {
            regs.icenabler[n].set(!0);
            regs.icpendr[n].set(!0);
            regs.igroupr[n].set(!0);
        }
        for n in 8..lines / 4 {
            regs.ipriorityr[n].set(super::DEFAULT_PRIORITY_WORD);
        }
    }
}

/// Every interrupt gets the same middle priority; the priority mask lets all through.
const DEFAULT_PRIORITY_WORD: u32 = 0xa0a0_a0a0;

/// An acknowledged interrupt: hand it back to [`end_of_interrupt`].
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    raw: u32,
}

impl Ack {
    pub fn intid(self) -> u32 {
        self.raw & 0x3ff
    }
}

/// Who receives a software-generated interrupt.
#[derive(Clone, Copy, Debug)]
pub enum SgiTarget {
    /// The core with this logical index (it must have run [`init_this_core`]).
    Core(usize),
    AllOthers,
}

#[allow(clippy::large_enum_variant, reason = "a single static instance")]
enum Gic {
    V2(v2::GicV2),
    V3(v3::GicV3),
}

static GIC: spin::Once<Gic> = spin::Once::new();

fn gic() -> &'static Gic {
    GIC.get().expect("GIC used before platform::gic::init")
}

/// Set up the distributor (boot core, once).
///
/// # Safety
/// The controller's register ranges in `info` must be identity-mapped as Device memory.
pub unsafe fn init(info: &GicInfo) {
    GIC.call_once(|| match *info {
        // SAFETY: forwarded to the caller.
        GicInfo::V2 {
            distributor,
            cpu_interface,
        } => unsafe {
            Gic::V2(v2::GicV2::new(
                distributor.base as usize,
                cpu_interface.base as usize,
            ))
        },
        // SAFETY: forwarded to the caller.
        GicInfo::V3 {
            distributor,
            redistributors,
        } => unsafe {
            Gic::V3(v3::GicV3::new(
                distributor.base as usize,
                redistributors.base as usize,
                redistributors.size as usize,
            ))
        },
    });
}

pub fn version() -> u8 {
    match gic() {
        Gic::V2(_) => 2,
        Gic::V3(_) => 3,
    }
}

/// Set up this core's CPU interface (and, on v3, its redistributor) and enable the listed
/// private interrupts (SGIs and PPIs) on it. Each core calls this once.
pub fn init_this_core(private_intids: &[u32]) -> Result<(), &'static str> {
    match gic() {
        Gic::V2(g) => g.init_this_core(private_intids),
        Gic::V3(g) => g.init_this_core(private_intids),
    }
}

/// Acknowledge the highest-priority pending interrupt; `None` if it was spurious.
pub fn acknowledge() -> Option<Ack> {
    let raw = match gic() {
        Gic::V2(g) => g.acknowledge(),
        Gic::V3(g) => g.acknowledge(),
    };
    ((raw & 0x3ff) < 1020).then_some(Ack { raw })
}

pub fn end_of_interrupt(ack: Ack) {
    match gic() {
        Gic::V2(g) => g.end_of_interrupt(ack.raw),
        Gic::V3(g) => g.end_of_interrupt(ack.raw),
    }
}

/// Mask one interrupt (a private one on this core).
pub fn disable(intid: u32) {
    match gic() {
        Gic::V2(g) => g.disable(intid),
        Gic::V3(g) => g.disable(intid),
    }
}

/// Send SGI `sgi` (0-15).
pub fn send_sgi(target: SgiTarget, sgi: u32) {
    debug_assert!(sgi < 16);
    match gic() {
        Gic::V2(g) => g.send_sgi(target, sgi),
        Gic::V3(g) => g.send_sgi(target, sgi),
    }
}
