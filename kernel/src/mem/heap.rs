//! The kernel heap: what the global allocator (`mem::global`) serves outside process context, a
//! linked-list allocator over one block of RAM taken at boot (before the frame allocator,
//! which itself allocates from this heap). IRQs are masked while the lock is held so an
//! interrupt handler may allocate.
//!
//! Exhaustion is reported by `alloc` returning null: fallible callers (`try_reserve`,
//! `Box::try_new`) see an error; infallible ones end in the panic handler's report.

use crate::sync::IrqMutex;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

pub struct KernelHeap {
    heap: IrqMutex<linked_list_allocator::Heap>,
    /// `[start, end)` of the heap, fixed at init: how `dealloc` tells kernel blocks from
    /// process-heap blocks without a lock.
    start: AtomicUsize,
    end: AtomicUsize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub size: usize,
    pub used: usize,
}

impl KernelHeap {
    pub const fn empty() -> Self {
        Self {
            heap: IrqMutex::new(linked_list_allocator::Heap::empty()),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }

    /// Whether `address` lies in this heap's memory.
    #[inline]
    pub fn contains(&self, address: usize) -> bool {
        address >= self.start.load(Ordering::Relaxed) && address < self.end.load(Ordering::Relaxed)
    }

    /// # Safety
    /// `[start, start + size)` must be mapped RAM owned by nobody else, for ever; once only.
    pub unsafe fn init(&self, start: usize, size: usize) {
        // SAFETY: per the caller.
        unsafe { self.heap.lock().init(start as *mut u8, size) };
        self.start.store(start, Ordering::Relaxed);
        self.end.store(start + size, Ordering::Release);
    }

    pub fn stats(&self) -> HeapStats {
        let heap = self.heap.lock();
        HeapStats {
            size: heap.size(),
            used: heap.used(),
        }
    }
}

// SAFETY: linked_list_allocator returns non-overlapping blocks of the requested layout, and
// the IrqMutex serialises all access to it, from any core and from interrupt handlers.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract).
            unsafe { self.heap.lock().deallocate(ptr, layout) };
        }
    }
}

pub static KERNEL_HEAP: KernelHeap = KernelHeap::empty();
