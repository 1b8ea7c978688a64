//! Memory management: physical address arithmetic and the translation tables the MMU walks.
//!
//! Everything in here is portable logic (no `asm!`, no MMIO, no system registers): it compiles
//! for the host and is unit-tested there. The machine side (writing `MAIR_EL1`/`TCR_EL1`/
//! `TTBR0_EL1`, barriers, TLB maintenance, turning the MMU on) lives in `arch::aarch64` and
//! uses the values and tables built here.
//!
//! - [`regions`]: half-open physical ranges and a fixed-capacity set of them, used to compute
//!   free RAM = memory - (kernel image, DTB, reserved regions).
//! - [`page_table`]: AArch64 stage-1 translation tables (4 KiB granule, 48-bit VA, L0..L3)
//!   for the identity map and, later, per-process stack pages.
//! - [`frames`]: the physical frame allocator (buddy system) over free RAM.
//! - [`heap`] (target only): the kernel heap, the `#[global_allocator]`.

pub mod frames;
#[cfg(target_os = "none")]
pub mod global;
#[cfg(target_os = "none")]
pub mod heap;
pub mod page_table;
#[cfg(target_os = "none")]
pub mod pages;
pub mod process_heap;
pub mod regions;
#[cfg(target_os = "none")]
pub mod slab;

/// The translation granule and the unit of physical frame allocation: 4 KiB.
pub const PAGE_SIZE: usize = 4096;

/// A physical address. With the identity map it is numerically the virtual address too.
pub type PhysAddr = u64;

/// Why memory could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemInitError {
    /// No free block large enough for the kernel heap.
    NoRoomForHeap { wanted: u64, largest: u64 },
}

impl core::fmt::Display for MemInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRoomForHeap { wanted, largest } => write!(
                f,
                "no free RAM block of {} KiB for the kernel heap (largest is {} KiB)",
                wanted >> 10,
                largest >> 10
            ),
        }
    }
}

/// Kernel heap size for `free_bytes` of free RAM: 1/16 of it, between 4 and 64 MiB.
pub fn heap_size_for(free_bytes: u64) -> u64 {
    (free_bytes / 16).clamp(4 << 20, 64 << 20) & !(PAGE_SIZE as u64 - 1)
}

/// Carve the kernel heap out of `free` (the frame allocator's free lists live on the heap, so
/// it comes first), then give the rest to the frame allocator.
#[cfg(target_os = "none")]
pub fn init(mut free: regions::RangeSet<64>) -> Result<(), MemInitError> {
    let wanted = heap_size_for(free.total());
    let heap = free
        .take(wanted, PAGE_SIZE as u64)
        .ok_or(MemInitError::NoRoomForHeap {
            wanted,
            largest: free.largest().map_or(0, |r| r.len()),
        })?;
    // SAFETY: `heap` is mapped RAM that `free` no longer holds: nobody else will use it.
    unsafe { heap::KERNEL_HEAP.init(heap.start as usize, heap.len() as usize) };
    for range in free.iter() {
        frames::FRAMES.add(range);
    }
    Ok(())
}

/// Run `f` with the global allocator serving the kernel heap, even when called from a
/// process: for state the kernel keeps beyond the call (atom names, process records). The
/// invariant it protects: kernel state never points into a process heap. On the host there
/// is one heap and this only calls `f`.
#[inline]
pub fn in_kernel_heap<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_os = "none")]
    let _kernel = crate::sched::KernelCall::enter();
    f()
}
