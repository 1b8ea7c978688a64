//! PSCI (Power State Coordination Interface) calls over the conduit the device tree names:
//! starting a core (`CPU_ON`) and powering the machine off.

use crate::devicetree::PsciConduit;

const CPU_OFF: u64 = 0x8400_0002;
const CPU_ON: u64 = 0xC400_0003;
const AFFINITY_INFO: u64 = 0xC400_0004;
const SYSTEM_OFF: u64 = 0x8400_0008;

/// PSCI return codes (negative values of the specification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciError {
    NotSupported,
    InvalidParameters,
    Denied,
    AlreadyOn,
    OnPending,
    InternalFailure,
    NotPresent,
    Disabled,
    InvalidAddress,
    Unknown(i64),
}

impl PsciError {
    fn from_code(code: i64) -> Self {
        match code {
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::Denied,
            -4 => Self::AlreadyOn,
            -5 => Self::OnPending,
            -6 => Self::InternalFailure,
            -7 => Self::NotPresent,
            -8 => Self::Disabled,
            -9 => Self::InvalidAddress,
            other => Self::Unknown(other),
        }
    }
}

impl core::fmt::Display for PsciError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown(code) => write!(f, "PSCI error {code}"),
            known => write!(f, "PSCI {known:?}"),
        }
    }
}

fn call(conduit: PsciConduit, function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let result: i64;
    // SAFETY: a PSCI call clobbers only x0-x3 per the SMC calling convention (x4-x17 may be
    // clobbered by older firmware: declare them too).
    unsafe {
        match conduit {
            PsciConduit::Hvc => core::arch::asm!(
                "hvc #0",
                inout("x0") function => result, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            ),
            PsciConduit::Smc => core::arch::asm!(
                "smc #0",
                inout("x0") function => result, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            ),
        }
    }
    result
}

/// Start the core with affinity `mpidr` at physical address `entry`, with x0 = `context`.
pub fn cpu_on(conduit: PsciConduit, mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    match call(conduit, CPU_ON, mpidr, entry, context) {
        0 => Ok(()),
        code => Err(PsciError::from_code(code)),
    }
}

/// Power this core off. Returns only if the firmware refuses.
pub fn cpu_off(conduit: PsciConduit) -> PsciError {
    PsciError::from_code(call(conduit, CPU_OFF, 0, 0, 0))
}

/// Whether the core with affinity `mpidr` is off (`AFFINITY_INFO` reports OFF).
pub fn is_off(conduit: PsciConduit, mpidr: u64) -> bool {
    call(conduit, AFFINITY_INFO, mpidr, 0, 0) == 1
}

/// Power the machine off (QEMU exits with status 0).
pub fn system_off(conduit: PsciConduit) -> ! {
    call(conduit, SYSTEM_OFF, 0, 0, 0);
    super::cpu::halt()
}
