//! Single pages for process stacks and heaps, fast: a per-core cache of free frames in front
//! of the buddy allocator, so spawn and exit do not take the global frame lock every time.
//!
//! A cached frame is linked through its own first word (frames are identity-mapped RAM).
//! Each core's cache is touched only by that core with IRQs masked. Cached frames count as
//! free in [`free_pages`]; [`drain_caches`] gives them back, e.g. before comparing frame
//! counts exactly.

use super::PAGE_SIZE;
use super::frames::FRAMES;
use crate::MAX_CORES;
use crate::arch::cpu;
use crate::sync::irq;
use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A cache holds at most this many frames; beyond it, half go back to the buddy allocator.
const CACHE_HIGH: usize = 256;
/// Frames taken from the buddy allocator at once when a cache is empty.
const REFILL: usize = 32;

struct Cache {
    head: Cell<Option<NonNull<u64>>>,
    len: Cell<usize>,
}

/// Per-core caches, each touched only by its own core with IRQs masked.
struct Caches([Cache; MAX_CORES]);

// SAFETY: cache `i` is accessed only by core `i` with IRQs masked (see `with_cache`).
unsafe impl Sync for Caches {}

static CACHES: Caches = Caches(
    [const {
        Cache {
            head: Cell::new(None),
            len: Cell::new(0),
        }
    }; MAX_CORES],
);

/// Frames sitting in caches (any core), for the free count.
static CACHED: AtomicUsize = AtomicUsize::new(0);

fn with_cache<R>(f: impl FnOnce(&Cache) -> R) -> R {
    let saved = irq::save_and_mask();
    let result = f(&CACHES.0[cpu::core_index()]);
    irq::restore(saved);
    result
}

impl Cache {
    fn push(&self, frame: NonNull<u64>) {
        // SAFETY: a free frame is ours to write; it is identity-mapped RAM.
        unsafe {
            frame
                .as_ptr()
                .write(self.head.get().map_or(0, |p| p.as_ptr() as u64))
        };
        self.head.set(Some(frame));
        self.len.set(self.len.get() + 1);
        CACHED.fetch_add(1, Ordering::Relaxed);
    }

    fn pop(&self) -> Option<NonNull<u64>> {
        let frame = self.head.get()?;
        // SAFETY: cached frames hold the link written by `push`.
        let next = unsafe { frame.as_ptr().read() };
        self.head.set(NonNull::new(next as *mut u64));
        self.len.set(self.len.get() - 1);
        CACHED.fetch_sub(1, Ordering::Relaxed);
        Some(frame)
    }
}

/// One free frame, or `None` when physical memory is exhausted. Its contents are whatever
/// its last user left.
pub fn allocate_page() -> Option<NonNull<u8>> {
    with_cache(|cache| {
        if cache.len.get() == 0 {
            for _ in 0..REFILL {
                match FRAMES.allocate(1) {
                    Ok(address) => cache.push(NonNull::new(address as *mut u64)?),
                    Err(_) => break,
                }
            }
        }
        cache.pop().map(NonNull::cast)
    })
}

/// Give back a frame from [`allocate_page`]. Any mapping of it must be gone from every TLB.
pub fn free_page(frame: NonNull<u8>) {
    with_cache(|cache| {
        cache.push(frame.cast());
        if cache.len.get() > CACHE_HIGH {
            for _ in 0..CACHE_HIGH / 2 {
                if let Some(frame) = cache.pop() {
                    FRAMES.free(frame.as_ptr() as u64, 1);
                }
            }
        }
    })
}

/// Give this core's cached frames back to the buddy allocator.
pub fn drain_this_core() {
    with_cache(|cache| {
        while let Some(frame) = cache.pop() {
            FRAMES.free(frame.as_ptr() as u64, 1);
        }
    })
}

/// Free frames: the buddy allocator's plus every core's cache.
pub fn free_pages() -> usize {
    FRAMES.stats().free_frames + CACHED.load(Ordering::Relaxed)
}

/// The frame source of process heaps: single pages from the cache, runs of exactly the
/// pages asked for from the buddy allocator (so a heap's reserved bytes are what it really
/// holds): the power-of-two block's unused tail goes back at once.
pub struct Pages;

impl super::process_heap::PageSource for Pages {
    fn allocate_pages(&self, pages: usize) -> Option<NonNull<u8>> {
        if pages == 1 {
            return allocate_page();
        }
        let address = FRAMES.allocate(pages).ok()?;
        free_run(
            address + (pages * PAGE_SIZE) as u64,
            pages.next_power_of_two() - pages,
        );
        NonNull::new(address as *mut u8)
    }

    fn free_pages(&self, start: NonNull<u8>, pages: usize) {
        if pages == 1 {
            free_page(start)
        } else {
            free_run(start.as_ptr() as u64, pages)
        }
    }
}

/// Give back `[address, address + pages)` as the naturally aligned power-of-two blocks the
/// buddy allocator takes. `address` is aligned to its first block by construction: runs
/// start on a block boundary, and tails start where a smaller power of two ends.
fn free_run(mut address: u64, mut pages: usize) {
    while pages > 0 {
        let frame = (address / PAGE_SIZE as u64) as usize;
        let align = if frame == 0 {
            usize::MAX
        } else {
            1 << frame.trailing_zeros()
        };
        let block = align.min(1 << pages.ilog2());
        FRAMES.free(address, block);
        address += (block * PAGE_SIZE) as u64;
        pages -= block;
    }
}

const _: () = assert!(PAGE_SIZE == 4096);
