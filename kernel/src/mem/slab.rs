//! Blocks for message buffers: power-of-two size classes from 64 bytes to 2 KiB, carved from
//! pages and kept on per-core free lists, so sending a message costs no lock and no search;
//! anything larger is a run of whole pages.
//!
//! A message is allocated by its sender's core and freed by its receiver's core: a freed
//! block joins the free list of the core that frees it. Pages carved into blocks are never
//! given back (the lists hold what the busiest moment needed); a freed large block goes back
//! to the frame allocator at once.
//!
//! Each core's lists are touched only by that core with IRQs masked (timers send messages
//! from the tick handler).

use super::PAGE_SIZE;
use super::pages::{self, Pages};
use super::process_heap::PageSource;
use crate::MAX_CORES;
use crate::arch::cpu;
use crate::sync::irq;
use core::cell::Cell;
use core::ptr::NonNull;

/// Size classes: 64 << class bytes.
const CLASSES: usize = 6;
const SMALLEST: usize = 64;

struct Lists {
    heads: [Cell<Option<NonNull<u64>>>; CLASSES],
}

struct PerCore([Lists; MAX_CORES]);

// SAFETY: core `i`'s lists are touched only by core `i` with IRQs masked.
unsafe impl Sync for PerCore {}

static LISTS: PerCore = PerCore(
    [const {
        Lists {
            heads: [const { Cell::new(None) }; CLASSES],
        }
    }; MAX_CORES],
);

/// A block of at least the asked size: its address and the size class (or page count) needed
/// to free it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub start: NonNull<u8>,
    /// `Small(class)` or `Pages(n)`.
    pub kind: BlockKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Small(u8),
    Pages(u32),
}

impl BlockKind {
    pub fn bytes(self) -> usize {
        match self {
            Self::Small(class) => SMALLEST << class,
            Self::Pages(pages) => pages as usize * PAGE_SIZE,
        }
    }
}

fn class_for(bytes: usize) -> Option<usize> {
    (0..CLASSES).find(|&c| SMALLEST << c >= bytes)
}

/// A block of at least `bytes` bytes (8-byte aligned at least; small blocks are aligned to
/// their size), or `None` when memory is exhausted. Contents are undefined.
pub fn allocate(bytes: usize) -> Option<Block> {
    let Some(class) = class_for(bytes) else {
        let pages = bytes.div_ceil(PAGE_SIZE);
        let start = Pages.allocate_pages(pages)?;
        return Some(Block {
            start,
            kind: BlockKind::Pages(pages as u32),
        });
    };
    let saved = irq::save_and_mask();
    let head = &LISTS.0[cpu::core_index()].heads[class];
    if head.get().is_none() {
        refill(head, SMALLEST << class);
    }
    let block = head.get().inspect(|block| {
        // SAFETY: a free block holds the link written by `push`.
        let next = unsafe { block.as_ptr().read() };
        head.set(NonNull::new(next as *mut u64));
    });
    irq::restore(saved);
    let block = block?;
    Some(Block {
        start: block.cast(),
        kind: BlockKind::Small(class as u8),
    })
}

/// Carve a fresh page into blocks of `size` bytes for an empty list.
fn refill(head: &Cell<Option<NonNull<u64>>>, size: usize) {
    let Some(page) = pages::allocate_page() else {
        return;
    };
    for offset in (0..PAGE_SIZE).step_by(size).rev() {
        // SAFETY: inside the page we own.
        let block = unsafe { page.add(offset) }.cast::<u64>();
        push(head, block);
    }
}

fn push(head: &Cell<Option<NonNull<u64>>>, block: NonNull<u64>) {
    // SAFETY: a free block is ours to write.
    unsafe {
        block
            .as_ptr()
            .write(head.get().map_or(0, |p| p.as_ptr() as u64))
    };
    head.set(Some(block));
}

/// Give back a block from [`allocate`].
pub fn free(block: Block) {
    match block.kind {
        BlockKind::Pages(pages) => Pages.free_pages(block.start, pages as usize),
        BlockKind::Small(class) => {
            let saved = irq::save_and_mask();
            push(
                &LISTS.0[cpu::core_index()].heads[class as usize],
                block.start.cast(),
            );
            irq::restore(saved);
        }
    }
}
