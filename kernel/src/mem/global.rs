//! The `#[global_allocator]`: the running process's own heap while process code runs, the
//! kernel heap everywhere else (kernel context, interrupt handlers, kernel calls).
//!
//! Frees go by address, not by who is running: a block inside the kernel heap's range goes
//! back there, any other block belongs to some process heap and finds its chunk from the
//! pointer alone. So a message term dropped by its receiver, or an exit reason dropped by
//! the kernel, always returns to the heap it came from.
//!
//! The invariant this rests on, which every kernel call keeps: kernel state never points
//! into a process heap. A kernel call copies what it keeps (a spawn argument into the
//! child's heap, an exit reason into the kernel heap) and runs with the kernel heap as its
//! allocator (`sched::KernelCall`).

use super::heap::KERNEL_HEAP;
use super::pages::Pages;
use super::process_heap::{HeapError, ProcessHeap};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

pub struct Allocator;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

// SAFETY: each block comes from exactly one underlying allocator (kernel heap or one process
// heap) and is returned to that same allocator, found by address; both underlying
// allocators hand out non-overlapping blocks of the requested layout.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match crate::process::current_heap() {
            Some(heap) => match heap.alloc(layout, &Pages) {
                Ok(block) => block.as_ptr(),
                Err(error) => crate::process::heap_exhausted(error),
            },
            // SAFETY: forwarded GlobalAlloc contract.
            None => unsafe { KERNEL_HEAP.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if KERNEL_HEAP.contains(block as usize) {
            // SAFETY: the block came from the kernel heap (by address) with this layout.
            unsafe { KERNEL_HEAP.dealloc(block, layout) }
        } else if let Some(block) = NonNull::new(block) {
            // SAFETY: every block outside the kernel heap came from a live process heap
            // (heaps are released only with their process, whose blocks die with it).
            unsafe { ProcessHeap::dealloc(block, layout, &Pages) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if KERNEL_HEAP.contains(block as usize) {
            // A kernel block stays in the kernel heap whoever grows it.
            // SAFETY: forwarded GlobalAlloc contract.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = KERNEL_HEAP.alloc(new_layout);
                if !new.is_null() {
                    ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                    KERNEL_HEAP.dealloc(block, layout);
                }
                new
            }
        } else {
            let Some(old) = NonNull::new(block) else {
                return ptr::null_mut();
            };
            // SAFETY: as in dealloc: a live process heap's block with this layout.
            match unsafe { ProcessHeap::realloc(old, layout, new_size, &Pages) } {
                Ok(new) => new.as_ptr(),
                Err(error) => crate::process::heap_exhausted(error),
            }
        }
    }
}

/// Why a process heap refused an allocation, for the exit reason.
pub fn describe(error: HeapError) -> &'static str {
    match error {
        HeapError::LimitExceeded { .. } => "heap_limit",
        HeapError::OutOfMemory { .. } => "out_of_memory",
        HeapError::TooLarge => "out_of_memory",
    }
}
