//! Links boot/entry.s into the kernel and owns what it needs from Rust: the per-core boot
//! stacks (each with a guard page below it, left unmapped by the MMU setup) and the MMU
//! configuration that secondary cores load before running any Rust.

use crate::MAX_CORES;
use crate::mem::PAGE_SIZE;

/// Usable bytes of each core's boot stack. Exception frames (800 bytes) and formatting
/// run on it; 32 KiB leaves generous room.
pub const BOOT_STACK_SIZE: usize = 32 * 1024;

/// One core's slot: an unmapped guard page, then the stack (growing down towards the guard).
#[repr(C, align(4096))]
pub struct BootStack {
    guard: [u8; PAGE_SIZE],
    stack: [u8; BOOT_STACK_SIZE],
}

const STACK_STRIDE: usize = core::mem::size_of::<BootStack>();

/// In the NOLOAD `.stacks` section: not zeroed, not in the file, covered by image_size.
#[unsafe(link_section = ".stacks")]
#[unsafe(no_mangle)]
static mut BOOT_STACKS: [BootStack; MAX_CORES] = [const {
    BootStack {
        guard: [0; PAGE_SIZE],
        stack: [0; BOOT_STACK_SIZE],
    }
}; MAX_CORES];

/// What a secondary core loads into its MMU registers before it runs Rust. The primary fills it
/// and cleans it to the point of coherency, because the secondary reads it with the MMU and
/// caches off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SecondaryMmuConfig {
    pub mair: u64,
    pub tcr: u64,
    pub ttbr0: u64,
    pub sctlr: u64,
}

#[unsafe(no_mangle)]
static mut SECONDARY_MMU_CONFIG: SecondaryMmuConfig = SecondaryMmuConfig {
    mair: 0,
    tcr: 0,
    ttbr0: 0,
    sctlr: 0,
};

/// MPIDR affinity of each logical core, for `spin_table_entry`, which must find its own
/// index with the MMU off. All ones (no core has that affinity) where unassigned.
#[unsafe(no_mangle)]
static mut CORE_MPIDRS: [u64; MAX_CORES] = [u64::MAX; MAX_CORES];

core::arch::global_asm!(
    include_str!("../../../../boot/entry.s"),
    stacks = sym BOOT_STACKS,
    stack_stride = const STACK_STRIDE,
    mmu_config = sym SECONDARY_MMU_CONFIG,
    core_mpidrs = sym CORE_MPIDRS,
    max_cores = const MAX_CORES,
);

unsafe extern "C" {
    /// Entry point for secondary cores started by PSCI CPU_ON, x0 = core index.
    fn secondary_entry();
    /// Entry point for secondary cores released from a spin table (no context id).
    fn spin_table_entry();
    /// Test-only firmware stand-in: a spin-table holding pen, x0 = release word.
    fn spin_table_pen();
}

/// Physical (= virtual) address where PSCI-started secondary cores start.
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as u64
}

/// Physical (= virtual) address a spin-table release sends a core to.
pub fn spin_table_entry_address() -> u64 {
    spin_table_entry as *const () as u64
}

/// Address of the test-only holding pen (see boot/entry.s).
pub fn spin_table_pen_address() -> u64 {
    spin_table_pen as *const () as u64
}

/// Record core `index`'s affinity for `spin_table_entry`, visible to a core whose MMU is off.
pub fn publish_core_mpidr(index: usize, mpidr: u64) {
    assert!(index < MAX_CORES);
    // SAFETY: each slot is written by the boot core (or the core starting another) before
    // that core is released; the released core only reads it.
    let slot = unsafe { (&raw mut CORE_MPIDRS).cast::<u64>().add(index) };
    // SAFETY: `slot` is within CORE_MPIDRS.
    unsafe { slot.write_volatile(mpidr & super::cpu::AFFINITY_MASK) };
    super::cache::clean_to_poc(slot as usize, 8);
}

/// Publishes the MMU configuration for secondaries; call before starting any.
pub fn publish_secondary_mmu_config(config: SecondaryMmuConfig) {
    let slot = &raw mut SECONDARY_MMU_CONFIG;
    // SAFETY: written only by the boot core before any secondary is started; secondaries only
    // read it, after the clean below has made it visible to their non-cacheable reads.
    unsafe { slot.write_volatile(config) };
    super::cache::clean_to_poc(slot as usize, core::mem::size_of::<SecondaryMmuConfig>());
}

/// Address ranges of core `index`'s guard page and stack, for the MMU setup and for tests.
pub fn boot_stack_layout(index: usize) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
    assert!(index < MAX_CORES);
    let base = &raw const BOOT_STACKS as usize + index * STACK_STRIDE;
    (
        base..base + PAGE_SIZE,
        base + PAGE_SIZE..base + STACK_STRIDE,
    )
}

/// Where the image's sections lie, from the linker script's symbols.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    pub start: usize,
    pub text_end: usize,
    pub rodata_end: usize,
    pub data_end: usize,
    pub stacks_start: usize,
    pub end: usize,
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __data_end: u8;
    static __stacks_start: u8;
    static __image_end: u8;
}

pub fn image_layout() -> ImageLayout {
    ImageLayout {
        start: (&raw const __image_start) as usize,
        text_end: (&raw const __text_end) as usize,
        rodata_end: (&raw const __rodata_end) as usize,
        data_end: (&raw const __data_end) as usize,
        stacks_start: (&raw const __stacks_start) as usize,
        end: (&raw const __image_end) as usize,
    }
}
