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

core::arch::global_asm!(
    include_str!("../../../../boot/entry.s"),
    stacks = sym BOOT_STACKS,
    stack_stride = const STACK_STRIDE,
    mmu_config = sym SECONDARY_MMU_CONFIG,
);

unsafe extern "C" {
    /// Entry point for secondary cores (PSCI CPU_ON or spin-table release), x0 = core index.
    fn secondary_entry();
}

/// Physical (= virtual) address where secondary cores start.
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as u64
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
