//! Process stacks: one fixed-size slot of virtual addresses per process-table index, in a
//! region of its own, grown page by page on demand.
//!
//! Slot `i` spans `[STACK_REGION + i * SLOT_SIZE, + SLOT_SIZE)`. Its top page is mapped at
//! spawn and holds the process record at its very top (so an idle process costs one frame);
//! the stack grows down from just below the record. Lower pages are mapped by the
//! translation-fault handler when first touched, down to the process's limit. Below the
//! limit nothing is ever mapped: the slot's bottom page is always a guard, and every page
//! between the limit and it acts as one too. A fault there ends the process with
//! `stack_overflow`.
//!
//! 128 KiB slots put 16 slots under one L3 table, so the tables cost 256 bytes per process;
//! the price is a largest stack limit of 124 KiB.

use crate::mem::PAGE_SIZE;
use crate::mem::pages;
use crate::process::table::MAX_PROCESSES;

/// Start of the stack region: far above any RAM or device (VA bit 47, within T0SZ = 16).
pub const STACK_REGION: u64 = 1 << 47;
/// Virtual size of one slot.
pub const SLOT_SIZE: u64 = 128 * 1024;
/// The default stack limit (including the page that holds the process record).
pub const DEFAULT_LIMIT: usize = 64 * 1024;
/// The largest limit: the slot minus its guard page.
pub const MAX_LIMIT: usize = SLOT_SIZE as usize - PAGE_SIZE;
/// The smallest limit: the record's page and one more.
pub const MIN_LIMIT: usize = 2 * PAGE_SIZE;

const PAGE: u64 = PAGE_SIZE as u64;
const _: () = assert!(STACK_REGION + MAX_PROCESSES as u64 * SLOT_SIZE <= 1 << 48);

/// One end of a process's stack: the slot's top (exclusive).
pub fn slot_top(index: u32) -> u64 {
    STACK_REGION + (index as u64 + 1) * SLOT_SIZE
}

/// Whether `va` lies in the stack slot that ends at `top`.
pub fn in_slot(top: u64, va: u64) -> bool {
    va < top && va >= top - SLOT_SIZE
}

/// Why a stack page could not be provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The address lies below the process's limit (or in the guard page).
    Overflow,
    /// No free frame (or page table) for it.
    OutOfMemory,
}

/// Map a fresh frame at the page containing `va`.
pub fn map_page(va: u64) -> Result<(), StackError> {
    let frame = pages::allocate_page().ok_or(StackError::OutOfMemory)?;
    match crate::boot::map_process_page(va & !(PAGE - 1), frame.as_ptr() as u64) {
        Ok(()) => Ok(()),
        Err(_) => {
            pages::free_page(frame);
            Err(StackError::OutOfMemory)
        }
    }
}

/// Unmap every page of `[low, top)` that is mapped and free its frame. TLBs are clean when
/// this returns.
pub fn unmap_range(low: u64, top: u64) {
    let mut page = low & !(PAGE - 1);
    while page < top {
        if let Some(frame) = crate::boot::unmap_process_page(page)
            && let Some(frame) = core::ptr::NonNull::new(frame as *mut u8)
        {
            pages::free_page(frame);
        }
        page += PAGE;
    }
}
