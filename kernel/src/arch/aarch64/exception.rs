//! Exception entry from the vector table (vectors.s): decoding the syndrome into a readable
//! report, the IRQ hand-off, and the one way a synchronous exception in the kernel ends
//! (report, then `boot::die`) unless a test armed [`catch_fault`] for it.

use crate::MAX_CORES;
use crate::sync::IrqMutex;
use aarch64_cpu::registers::*;
use core::fmt;

core::arch::global_asm!(include_str!("vectors.s"));

/// The frame vectors.s saves on the current stack; layout fixed by the assembly.
#[repr(C)]
pub struct ExceptionFrame {
    pub x: [u64; 31],
    pub sp_el0: u64,
    pub elr: u64,
    pub spsr: u64,
    pub fpcr: u64,
    pub fpsr: u64,
    pub q: [u128; 32],
}

const _: () = assert!(core::mem::size_of::<ExceptionFrame>() == 800);

/// Where the exception came from (the vector table's four groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    CurrentElSp0,
    CurrentElSpx,
    LowerEl64,
    LowerEl32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

/// Point VBAR_EL1 at the vector table. Every core calls this first thing.
pub fn install_vectors() {
    unsafe extern "C" {
        static exception_vectors: u8;
    }
    VBAR_EL1.set((&raw const exception_vectors) as u64);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

static IRQ_HANDLER: spin::Once<fn()> = spin::Once::new();

/// The function called for every IRQ (the interrupt controller's dispatch). Set once.
pub fn set_irq_handler(handler: fn()) {
    IRQ_HANDLER.call_once(|| handler);
}

/// The exception class (ESR_EL1.EC) by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    Unknown,
    TrappedWfiWfe,
    SimdFpAccess,
    IllegalExecutionState,
    Svc,
    Hvc,
    Smc,
    TrappedSystemRegister,
    InstructionAbort,
    PcAlignment,
    DataAbort,
    SpAlignment,
    FpException,
    SError,
    Breakpoint,
    SoftwareStep,
    Watchpoint,
    Brk,
    Other(u8),
}

impl ExceptionClass {
    pub fn from_esr(esr: u64) -> Self {
        match (esr >> 26) & 0x3f {
            0x00 => Self::Unknown,
            0x01 => Self::TrappedWfiWfe,
            0x07 => Self::SimdFpAccess,
            0x0e => Self::IllegalExecutionState,
            0x15 => Self::Svc,
            0x16 => Self::Hvc,
            0x17 => Self::Smc,
            0x18 => Self::TrappedSystemRegister,
            0x20 | 0x21 => Self::InstructionAbort,
            0x22 => Self::PcAlignment,
            0x24 | 0x25 => Self::DataAbort,
            0x26 => Self::SpAlignment,
            0x2c => Self::FpException,
            0x2f => Self::SError,
            0x30 | 0x31 => Self::Breakpoint,
            0x32 | 0x33 => Self::SoftwareStep,
            0x34 | 0x35 => Self::Watchpoint,
            0x3c => Self::Brk,
            other => Self::Other(other as u8),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "undefined instruction",
            Self::TrappedWfiWfe => "trapped WFI/WFE",
            Self::SimdFpAccess => "trapped SIMD/FP access",
            Self::IllegalExecutionState => "illegal execution state",
            Self::Svc => "SVC",
            Self::Hvc => "HVC",
            Self::Smc => "SMC",
            Self::TrappedSystemRegister => "trapped system register access",
            Self::InstructionAbort => "instruction abort",
            Self::PcAlignment => "PC alignment fault",
            Self::DataAbort => "data abort",
            Self::SpAlignment => "SP alignment fault",
            Self::FpException => "floating-point exception",
            Self::SError => "SError",
            Self::Breakpoint => "breakpoint",
            Self::SoftwareStep => "software step",
            Self::Watchpoint => "watchpoint",
            Self::Brk => "BRK instruction",
            Self::Other(_) => "unrecognised exception class",
        }
    }
}

/// The fault status code of an instruction or data abort (ISS bits 5:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    AddressSize { level: u8 },
    Translation { level: u8 },
    AccessFlag { level: u8 },
    Permission { level: u8 },
    SynchronousExternal,
    Alignment,
    TlbConflict,
    Other(u8),
}

impl FaultStatus {
    pub fn from_iss(iss: u64) -> Self {
        let code = (iss & 0x3f) as u8;
        let level = code & 3;
        match code {
            0x00..=0x03 => Self::AddressSize { level },
            0x04..=0x07 => Self::Translation { level },
            0x09..=0x0b => Self::AccessFlag { level },
            0x0d..=0x0f => Self::Permission { level },
            0x10 => Self::SynchronousExternal,
            0x21 => Self::Alignment,
            0x30 => Self::TlbConflict,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddressSize { level } => write!(f, "address size fault level {level}"),
            Self::Translation { level } => write!(f, "translation fault level {level}"),
            Self::AccessFlag { level } => write!(f, "access flag fault level {level}"),
            Self::Permission { level } => write!(f, "permission fault level {level}"),
            Self::SynchronousExternal => f.write_str("synchronous external abort"),
            Self::Alignment => f.write_str("alignment fault"),
            Self::TlbConflict => f.write_str("TLB conflict abort"),
            Self::Other(code) => write!(f, "fault status {code:#04x}"),
        }
    }
}

/// Everything a report says about one synchronous exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    pub core: usize,
    pub class: ExceptionClass,
    /// For instruction and data aborts.
    pub status: Option<FaultStatus>,
    /// For data aborts: the access was a write.
    pub write: bool,
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    pub spsr: u64,
}

impl FaultInfo {
    fn read(frame: &ExceptionFrame) -> Self {
        let esr = ESR_EL1.get();
        let class = ExceptionClass::from_esr(esr);
        let aborts = matches!(
            class,
            ExceptionClass::InstructionAbort | ExceptionClass::DataAbort
        );
        FaultInfo {
            core: super::cpu::core_index(),
            class,
            status: aborts.then(|| FaultStatus::from_iss(esr)),
            write: class == ExceptionClass::DataAbort && esr & (1 << 6) != 0,
            esr,
            far: FAR_EL1.get(),
            elr: frame.elr,
            spsr: frame.spsr,
        }
    }
}

/// One line: "data abort, permission fault level 3, write".
impl fmt::Display for FaultInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class.name())?;
        if let Some(status) = self.status {
            write!(f, ", {status}")?;
        }
        if self.class == ExceptionClass::DataAbort {
            f.write_str(if self.write { ", write" } else { ", read" })?;
        }
        Ok(())
    }
}

/// Per-core state of [`catch_fault`].
#[derive(Clone, Copy)]
enum Catch {
    Idle,
    Armed,
    Caught(FaultInfo),
}

static CATCH: [IrqMutex<Catch>; MAX_CORES] = [const { IrqMutex::new(Catch::Idle) }; MAX_CORES];

/// Run `f`, expecting it to raise one synchronous exception on this core; return the report
/// of the first one (printed as usual), or `None` if `f` finished without one. The faulting
/// instruction is skipped, except an instruction abort, which returns to x30 (so a call
/// through a bad function pointer returns to its caller). For tests of the fault path only.
pub fn catch_fault(f: impl FnOnce()) -> Option<FaultInfo> {
    let core = super::cpu::core_index();
    *CATCH[core].lock() = Catch::Armed;
    f();
    match core::mem::replace(&mut *CATCH[core].lock(), Catch::Idle) {
        Catch::Caught(info) => Some(info),
        _ => None,
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::CurrentElSp0 => "EL1 on SP_EL0",
        Source::CurrentElSpx => "EL1 on SP_EL1",
        Source::LowerEl64 => "EL0 (AArch64)",
        Source::LowerEl32 => "EL0 (AArch32)",
    }
}

#[unsafe(no_mangle)]
extern "C" fn exception_dispatch(frame: &mut ExceptionFrame, kind: u64) {
    let source = [
        Source::CurrentElSp0,
        Source::CurrentElSpx,
        Source::LowerEl64,
        Source::LowerEl32,
    ][(kind as usize / 4) & 3];
    let kind = [Kind::Synchronous, Kind::Irq, Kind::Fiq, Kind::SError][kind as usize & 3];
    match kind {
        Kind::Irq => {
            let Some(handler) = IRQ_HANDLER.get() else {
                fatal(
                    frame,
                    source,
                    format_args!("IRQ before the interrupt controller was set up"),
                )
            };
            if source == Source::CurrentElSp0 {
                // From a process: the handler is kernel code on its behalf; on the way out
                // the process may be preempted (then this call does not return).
                let kernel = crate::sched::KernelCall::enter();
                handler();
                crate::sched::scheduler::leave_handler(kernel);
                // SAFETY: an IRQ taken at EL1t, `frame` its frame.
                unsafe { crate::sched::scheduler::preempt_point(frame) };
            } else {
                handler();
            }
        }
        Kind::Synchronous => synchronous(frame, source),
        Kind::Fiq => fatal(frame, source, format_args!("unexpected FIQ")),
        Kind::SError => fatal(
            frame,
            source,
            format_args!("SError (asynchronous abort), ESR {:#010x}", ESR_EL1.get()),
        ),
    }
}

fn synchronous(frame: &mut ExceptionFrame, source: Source) {
    let info = FaultInfo::read(frame);
    // Process code runs at EL1t: its faults end the process (or grow its stack).
    if source == Source::CurrentElSp0
        && crate::process::fault::on_synchronous(frame, &info)
            == crate::process::fault::Handled::Resume
    {
        return;
    }
    let mut catch = CATCH[info.core].lock();
    if let Catch::Armed = *catch {
        *catch = Catch::Caught(info);
        drop(catch);
        crate::println!(
            "caught expected fault on core {}: {info}\n    ESR {:#010x}  FAR {:#018x}  ELR {:#018x}",
            info.core,
            info.esr,
            info.far,
            info.elr
        );
        frame.elr = match info.class {
            ExceptionClass::InstructionAbort => frame.x[30],
            _ => frame.elr + 4,
        };
        return;
    }
    drop(catch);
    fatal(frame, source, format_args!("{info}"));
}

/// Print the full report of an exception the kernel cannot handle, then stop.
fn fatal(frame: &ExceptionFrame, source: Source, what: fmt::Arguments) -> ! {
    let core = super::cpu::core_index();
    let esr = ESR_EL1.get();
    let far = FAR_EL1.get();
    let sp = if source == Source::CurrentElSpx {
        frame as *const _ as u64 + core::mem::size_of::<ExceptionFrame>() as u64
    } else {
        frame.sp_el0
    };
    crate::console::emergency(|out| {
        let _ = writeln!(
            out,
            "\n*** kernel exception on core {core} (MPIDR {:#x}), taken from {}",
            super::cpu::mpidr(),
            source_name(source)
        );
        let _ = writeln!(out, "    {what}");
        let _ = writeln!(
            out,
            "    ESR {esr:#010x}  FAR {far:#018x}  ELR {:#018x}  SPSR {:#010x}",
            frame.elr, frame.spsr
        );
        for row in 0..8 {
            let _ = write!(out, "   ");
            for col in 0..4 {
                let r = row * 4 + col;
                if r < 31 {
                    let _ = write!(out, " x{r:<2} {:#018x}", frame.x[r]);
                } else {
                    let _ = write!(out, " sp  {sp:#018x}");
                }
            }
            let _ = writeln!(out);
        }
    });
    crate::boot::die(format_args!("kernel exception on core {core}: {what}"))
}
