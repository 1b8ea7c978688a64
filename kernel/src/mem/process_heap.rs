//! Per-process heaps, BEAM-style: every lightweight process allocates from its own heap, and at
//! exit the whole heap goes back in one step, so nothing a process allocated can outlive it.
//!
//! Portable logic (no `asm!`, no MMIO, no allocation of its own): it runs *inside* the kernel's
//! `#[global_allocator]`, which serves a running process from that process's [`ProcessHeap`]:
//! `alloc` -> `current.heap.alloc(layout, &PAGES)`; `dealloc`/`realloc` of a pointer outside
//! the kernel heap -> [`ProcessHeap::dealloc`]/[`ProcessHeap::realloc`], which find the block's
//! chunk and owning heap from the pointer alone (kernel code may free a block on another
//! process's behalf, e.g. the receiver dropping a message term).
//!
//! How it works:
//! - Memory comes in *chunks*: runs of pages from a [`PageSource`], each starting with a
//!   `Chunk` header (owner, size, live-block count, links in the owner's chunk list).
//! - Blocks are bumped upward in the heap's *current* chunk. One word before each block holds
//!   its chunk's address (page aligned, so the low 12 bits are free and carry the alignment
//!   padding in front of the word, which lets a free rewind the bump exactly).
//! - Freeing the last-bumped block rewinds the bump (alloc/free loops cost nothing); a chunk
//!   whose live count drops to 0 is reset if it is current, otherwise its pages go back at once.
//!   So memory is reclaimed at least chunk by chunk and a loop that allocates and frees forever
//!   stays bounded.
//! - Chunks grow geometrically (first: `min_bytes`; then doubling, capped at 64 KiB or the
//!   first chunk's size) to amortise page-source calls; a block too big for that (more than a
//!   quarter of the cap) gets a dedicated chunk of exactly the pages it needs.
//! - `max_bytes` caps the sum of chunk sizes ([`HeapError::LimitExceeded`]; the kernel kills the
//!   process with reason `heap_limit`).
//!
//! What must stay true (the kernel guarantees it; nothing here can check it):
//! - **Pinned.** Once a heap holds a chunk it must not move: chunk headers point back at it.
//!   The kernel keeps it in the process control block, which never moves; host tests box it.
//!   (Debug builds check this on every slow-path call.)
//! - **One core at a time, no reentrancy.** There are no locks. Only the core running the
//!   owning process, or kernel code acting for it while it cannot run (exit, message delivery
//!   under the kernel's own serialisation), touches a heap and its blocks; an interrupt handler
//!   must never allocate from a process heap (route it to the kernel heap).
//! - The heap is mutated through shared paths (a free reaches its owner through a raw pointer),
//!   so its state lives in `Cell`s and every method takes `&self`: holding a `&mut ProcessHeap`
//!   while a block of it may be freed would be aliasing UB.

use super::PAGE_SIZE;
use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::ptr::{self, NonNull};

/// Where a process heap gets its memory: in the kernel, the physical frame allocator.
pub trait PageSource {
    /// `pages` contiguous 4 KiB pages, at least 4 KiB aligned, or None when memory is exhausted.
    fn allocate_pages(&self, pages: usize) -> Option<NonNull<u8>>;
    /// Give back exactly what allocate_pages(pages) returned.
    fn free_pages(&self, start: NonNull<u8>, pages: usize);
}

/// Why an allocation failed. The heap is unchanged and still usable after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapError {
    /// A new chunk would take the heap's reserved bytes (`wanted`) past `max_bytes` (`limit`).
    LimitExceeded { limit: usize, wanted: usize },
    /// The page source had no run of `pages` pages.
    OutOfMemory { pages: usize },
    /// No chunk could ever hold this layout (its size would pass `isize::MAX`).
    TooLarge,
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LimitExceeded { limit, wanted } => write!(
                f,
                "process heap limit of {limit} bytes exceeded ({wanted} bytes wanted)"
            ),
            Self::OutOfMemory { pages } => {
                write!(f, "out of memory ({pages} pages for a process heap chunk)")
            }
            Self::TooLarge => f.write_str("allocation too large for any process heap chunk"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Chunks currently held.
    pub chunks: usize,
    /// Sum of chunk sizes: what the heap takes from the page source.
    pub reserved_bytes: usize,
    /// Blocks allocated and not yet freed.
    pub live_allocations: usize,
}

/// The header at the start of every chunk. Only ever accessed through raw pointers (a block's
/// word, the owner's list), never through references that could outlive a free.
#[repr(C)]
struct Chunk {
    /// The heap this chunk belongs to (pinned, see the module docs).
    owner: *const ProcessHeap,
    /// Neighbours in the owner's chunk list (null at the ends): O(1) unlink.
    prev: *mut Chunk,
    next: *mut Chunk,
    /// Size of the chunk, header included, in pages: what goes back to the page source.
    pages: usize,
    /// Blocks in this chunk not yet freed.
    live: usize,
}

/// Bytes of chunk header; blocks start after it. A multiple of `WORD` (checked below), so the
/// first block's data lands on `HEADER + WORD` = 48 on 64-bit: 16-byte aligned without padding.
const HEADER: usize = size_of::<Chunk>();

/// The word in front of every block: a tagged pointer to the block's chunk header.
const WORD: usize = size_of::<*mut Chunk>();

/// Low bits of a chunk address that are always zero (chunks are page aligned): they hold the
/// alignment padding in front of a block's word, modulo `PAGE_SIZE`.
const PAD_MASK: usize = PAGE_SIZE - 1;

/// Chunks grow by doubling up to this many pages (64 KiB), or up to the first chunk if larger.
const MAX_CHUNK_PAGES: usize = 16;

/// `first_pages` is kept as a `u32` and chunk sizes in bytes must fit an `isize`.
const MAX_FIRST_PAGES: usize = {
    let by_isize = isize::MAX as usize / PAGE_SIZE;
    if by_isize < u32::MAX as usize {
        by_isize
    } else {
        u32::MAX as usize
    }
};

const _: () = assert!(HEADER.is_multiple_of(WORD) && HEADER + WORD <= PAGE_SIZE);
const _: () = assert!(align_of::<Chunk>() <= PAGE_SIZE);

/// A process's heap. See the module docs for the invariants (pinned, one core at a time).
pub struct ProcessHeap {
    /// Next free byte in the current chunk. Both `bump` and `end` are 0 when there is no
    /// current chunk, so the fast path fails on its size check without a null test.
    /// Invariant: every live block of the current chunk ends at or below `bump`.
    bump: Cell<usize>,
    /// End of the current chunk.
    end: Cell<usize>,
    /// The chunk being bumped, or null.
    current: Cell<*mut Chunk>,
    /// First of all chunks (current, retired and dedicated, in no particular order).
    head: Cell<*mut Chunk>,
    /// Sum of chunk sizes in bytes. Invariant: `<= max` whenever a chunk was added.
    reserved: Cell<usize>,
    /// `max_bytes`; `usize::MAX` when unlimited.
    max: Cell<usize>,
    /// Size of the first chunk (and growth cap when above `MAX_CHUNK_PAGES`).
    first_pages: u32,
    /// Size of the next geometric chunk.
    next_pages: Cell<u32>,
}

const _: () = assert!(size_of::<ProcessHeap>() <= 64);

// SAFETY: a heap exclusively owns its chunks and the blocks in them; handing it (with its
// process) to another core is sound because the kernel lets only one core at a time touch a
// heap or its blocks (module docs). It is not `Sync`: its `Cell`s are unsynchronised.
unsafe impl Send for ProcessHeap {}

impl ProcessHeap {
    /// No memory is taken until the first allocation. min_bytes: size of the first chunk
    /// (rounded up to pages, at least one page). max_bytes: None = unlimited.
    pub const fn new(min_bytes: usize, max_bytes: Option<usize>) -> Self {
        let mut first = min_bytes.div_ceil(PAGE_SIZE);
        if first == 0 {
            first = 1;
        }
        if first > MAX_FIRST_PAGES {
            first = MAX_FIRST_PAGES;
        }
        Self {
            bump: Cell::new(0),
            end: Cell::new(0),
            current: Cell::new(ptr::null_mut()),
            head: Cell::new(ptr::null_mut()),
            reserved: Cell::new(0),
            max: Cell::new(match max_bytes {
                Some(max) => max,
                None => usize::MAX,
            }),
            first_pages: first as u32,
            next_pages: Cell::new(first as u32),
        }
    }

    /// A block for `layout`. The heap must stay where it is from now on (module docs).
    #[inline]
    pub fn alloc(&self, layout: Layout, pages: &impl PageSource) -> Result<NonNull<u8>, HeapError> {
        match self.bump_current(layout) {
            Some(block) => Ok(block),
            None => self.alloc_slow(layout, pages),
        }
    }

    /// Free a block, crediting the heap that owns it, whichever process is running.
    ///
    /// # Safety
    /// `ptr` came from `ProcessHeap::alloc`/`realloc` of a heap that is still alive (not
    /// released) and has not moved since the allocation, with this `layout`; it is freed once.
    /// `pages` is the source that heap's chunks came from. No other core is using that heap.
    pub unsafe fn dealloc(ptr: NonNull<u8>, layout: Layout, pages: &impl PageSource) {
        // SAFETY: per the caller, `ptr` is a live block, so its word is intact.
        let (chunk, pad) = unsafe { chunk_of(ptr) };
        // SAFETY: the block is live, so its chunk is too, and the chunk's owner is alive and
        // pinned (per the caller). Only shared references to the owner are made: its state is
        // in `Cell`s, so a caller up the stack using the same heap is not invalidated.
        let (owner, live) = unsafe {
            let live = (*chunk).live - 1;
            (*chunk).live = live;
            (&*(*chunk).owner, live)
        };
        let start = ptr.as_ptr().addr();
        // The last block bumped: give its bytes and the padding in front of it back. A block
        // of another chunk cannot end at `bump`, which lies strictly inside the current chunk.
        if start + layout.size() == owner.bump.get() {
            owner.bump.set(start - WORD - pad);
        }
        if live == 0 {
            // SAFETY: `chunk` belongs to `owner` and now holds no live block.
            unsafe { owner.chunk_emptied(chunk, pages) };
        }
    }

    /// Resize a block, keeping it in the heap that owns it. Grows or shrinks in place when the
    /// block is the last one bumped in its chunk (or the only live one) and room remains;
    /// otherwise allocates, copies and frees. A lone block in a non-current chunk that would
    /// fill less than half of it moves, so that the chunk's pages go back. On error the old
    /// block is untouched.
    ///
    /// # Safety
    /// As for [`ProcessHeap::dealloc`].
    pub unsafe fn realloc(
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
        pages: &impl PageSource,
    ) -> Result<NonNull<u8>, HeapError> {
        let new_layout =
            Layout::from_size_align(new_size, layout.align()).map_err(|_| HeapError::TooLarge)?;
        // SAFETY: per the caller, `ptr` is a live block, so its word is intact.
        let (chunk, _) = unsafe { chunk_of(ptr) };
        // SAFETY: as in `dealloc`: the chunk and its owner are alive and pinned.
        let (owner, alone, chunk_bytes) = unsafe {
            (
                &*(*chunk).owner,
                (*chunk).live == 1,
                (*chunk).pages * PAGE_SIZE,
            )
        };
        let start = ptr.as_ptr().addr();
        let old_end = start + layout.size();
        let current = chunk == owner.current.get();
        // Where the block may end in place. Nothing live lies above the last-bumped block of
        // the current chunk, nor anywhere else in a chunk whose only live block this is.
        let topmost = current && (alone || old_end == owner.bump.get());
        let room_end = if topmost {
            owner.end.get()
        } else if alone {
            chunk.addr() + chunk_bytes
        } else {
            old_end
        };
        let fits = new_size <= room_end - start;
        let wasteful = !current
            && alone
            && chunk_bytes_for(new_layout).is_some_and(|bytes| bytes <= chunk_bytes / 2);
        let in_place = || {
            if topmost {
                owner.bump.set(start + new_size);
            }
            Ok(ptr)
        };
        if fits && !wasteful {
            return in_place();
        }
        match owner.alloc(new_layout, pages) {
            Ok(new) => {
                let len = layout.size().min(new_size);
                // SAFETY: both blocks are live, distinct (the old one is not freed yet), and
                // at least `len` bytes long.
                unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), len) };
                // SAFETY: per the caller; the contents now live on in `new`.
                unsafe { Self::dealloc(ptr, layout, pages) };
                Ok(new)
            }
            Err(_) if fits => in_place(),
            Err(error) => Err(error),
        }
    }

    /// Free every chunk at once (process exit). Afterwards the heap is empty and reusable;
    /// every block it handed out is gone.
    pub fn release_all(&self, pages: &impl PageSource) {
        self.debug_check_pinned();
        let mut chunk = self.head.get();
        while let Some(c) = NonNull::new(chunk) {
            // SAFETY: every chunk in the list is a live chunk of this heap; it is read before
            // its pages are returned and never touched after.
            let (next, count) = unsafe { ((*chunk).next, (*chunk).pages) };
            pages.free_pages(c.cast(), count);
            chunk = next;
        }
        self.head.set(ptr::null_mut());
        self.current.set(ptr::null_mut());
        self.bump.set(0);
        self.end.set(0);
        self.reserved.set(0);
        self.next_pages.set(self.first_pages);
    }

    /// Chunks, reserved bytes and live blocks. Walks the chunk list: not for hot paths.
    pub fn stats(&self) -> HeapStats {
        let mut stats = HeapStats {
            reserved_bytes: self.reserved.get(),
            ..HeapStats::default()
        };
        let mut chunk = self.head.get();
        while !chunk.is_null() {
            // SAFETY: every chunk in the list is a live chunk of this heap.
            let (live, next) = unsafe { ((*chunk).live, (*chunk).next) };
            stats.chunks += 1;
            stats.live_allocations += live;
            chunk = next;
        }
        stats
    }

    /// Sum of chunk sizes: what the heap takes from the page source.
    pub fn reserved_bytes(&self) -> usize {
        self.reserved.get()
    }

    /// Change the limit. Lowering it below what is reserved frees nothing: only new chunks
    /// are refused.
    pub fn set_max(&self, max_bytes: Option<usize>) {
        self.max.set(max_bytes.unwrap_or(usize::MAX));
    }

    /// The fast path: bump in the current chunk, or None when the block does not fit (or
    /// there is no current chunk: `bump == end == 0`).
    #[inline(always)]
    fn bump_current(&self, layout: Layout) -> Option<NonNull<u8>> {
        let start = self.bump.get();
        let (pad, need) = place(start, layout);
        // `end >= start` always holds, so this cannot wrap.
        if need > self.end.get() - start {
            return None;
        }
        self.bump.set(start + need);
        let chunk = self.current.get();
        // SAFETY: the block and its word lie in `[start, end)`, free memory of the current
        // chunk (`chunk` is not null: `end != 0`), and the word is aligned (see `place`).
        Some(unsafe { write_block(chunk, start + pad, pad) })
    }

    /// A new chunk, then the block: dedicated when large, else in a new current chunk.
    #[cold]
    #[inline(never)]
    fn alloc_slow(
        &self,
        layout: Layout,
        pages: &impl PageSource,
    ) -> Result<NonNull<u8>, HeapError> {
        self.debug_check_pinned();
        let need = chunk_bytes_for(layout).ok_or(HeapError::TooLarge)?;
        let need_pages = need.div_ceil(PAGE_SIZE);
        let cap = MAX_CHUNK_PAGES.max(self.first_pages as usize);
        if need > (cap * PAGE_SIZE) >> 2 {
            // Dedicated: never current, so it goes back as soon as its block is freed.
            let chunk = self.add_chunk(need_pages, need_pages, pages)?;
            let start = chunk.addr() + HEADER;
            let (pad, _) = place(start, layout);
            // SAFETY: the fresh chunk has room for the block by construction of `need`.
            return Ok(unsafe { write_block(chunk, start + pad, pad) });
        }
        // The current chunk is full for this block. If nothing in it is live it would never be
        // freed once retired, so give it back now (which also frees room under the limit).
        let old = self.current.get();
        // SAFETY: a non-null current chunk is a live chunk of this heap.
        if !old.is_null() && unsafe { (*old).live } == 0 {
            // SAFETY: as above; it holds no live block.
            unsafe { self.remove_chunk(old, pages) };
        }
        self.current.set(ptr::null_mut());
        self.bump.set(0);
        self.end.set(0);
        let preferred = need_pages.max(self.next_pages.get() as usize);
        let chunk = self.add_chunk(preferred, need_pages, pages)?;
        // SAFETY: `add_chunk` returned a live chunk of this heap.
        let chunk_pages = unsafe { (*chunk).pages };
        // `chunk_pages <= cap`, which fits a u32 (`MAX_CHUNK_PAGES`, or `first_pages`).
        self.next_pages.set((chunk_pages * 2).min(cap) as u32);
        self.current.set(chunk);
        self.bump.set(chunk.addr() + HEADER);
        self.end.set(chunk.addr() + chunk_pages * PAGE_SIZE);
        let block = self.bump_current(layout);
        debug_assert!(block.is_some(), "a fresh chunk fits its block");
        block.ok_or(HeapError::TooLarge)
    }

    /// Take a chunk of `preferred` pages, or of just `minimum` if that one is over the limit
    /// or the page source cannot supply it, and link it into this heap. The error reported is
    /// the one for `minimum`: what the block needs at the least.
    fn add_chunk(
        &self,
        preferred: usize,
        minimum: usize,
        pages: &impl PageSource,
    ) -> Result<*mut Chunk, HeapError> {
        match self.try_add_chunk(preferred, pages) {
            Err(_) if preferred > minimum => self.try_add_chunk(minimum, pages),
            result => result,
        }
    }

    /// `count` (at least 1, at most `isize::MAX / PAGE_SIZE`) pages as a new chunk.
    fn try_add_chunk(
        &self,
        count: usize,
        pages: &impl PageSource,
    ) -> Result<*mut Chunk, HeapError> {
        let bytes = count * PAGE_SIZE;
        let wanted = self.reserved.get().saturating_add(bytes);
        if wanted > self.max.get() {
            return Err(HeapError::LimitExceeded {
                limit: self.max.get(),
                wanted,
            });
        }
        let start = pages
            .allocate_pages(count)
            .ok_or(HeapError::OutOfMemory { pages: count })?;
        // Block words keep their padding in the low bits of the chunk address.
        assert_eq!(
            start.as_ptr().addr() & PAD_MASK,
            0,
            "page source broke its alignment promise"
        );
        let chunk = start.as_ptr().cast::<Chunk>();
        let head = self.head.get();
        // SAFETY: `start` is `count >= 1` fresh pages owned by us alone, page aligned, so they
        // hold a `Chunk`; `head`, if not null, is a live chunk of this heap.
        unsafe {
            chunk.write(Chunk {
                owner: self,
                prev: ptr::null_mut(),
                next: head,
                pages: count,
                live: 0,
            });
            if !head.is_null() {
                (*head).prev = chunk;
            }
        }
        self.head.set(chunk);
        self.reserved.set(self.reserved.get() + bytes);
        Ok(chunk)
    }

    /// A chunk's last live block was just freed.
    ///
    /// # Safety
    /// `chunk` is a live chunk of this heap with no live block.
    unsafe fn chunk_emptied(&self, chunk: *mut Chunk, pages: &impl PageSource) {
        if chunk == self.current.get() {
            self.bump.set(chunk.addr() + HEADER);
        } else {
            // SAFETY: per the caller.
            unsafe { self.remove_chunk(chunk, pages) };
        }
    }

    /// Unlink a chunk and give its pages back.
    ///
    /// # Safety
    /// `chunk` is a live chunk of this heap, not current, or current but about to be replaced.
    unsafe fn remove_chunk(&self, chunk: *mut Chunk, pages: &impl PageSource) {
        // SAFETY: per the caller; its neighbours are live chunks of this heap too. The header
        // is read before the pages go back and never touched after.
        let count = unsafe {
            let Chunk {
                prev, next, pages, ..
            } = chunk.read();
            if prev.is_null() {
                self.head.set(next);
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            pages
        };
        self.reserved.set(self.reserved.get() - count * PAGE_SIZE);
        // SAFETY: a chunk's address is the non-null start of the pages it was built on.
        pages.free_pages(unsafe { NonNull::new_unchecked(chunk.cast()) }, count);
    }

    /// Chunk headers point back at their heap: catch a heap that moved (debug builds).
    fn debug_check_pinned(&self) {
        let head = self.head.get();
        // SAFETY: a non-null head is a live chunk of this heap.
        debug_assert!(
            head.is_null() || ptr::eq(unsafe { (*head).owner }, self),
            "a process heap moved after its first allocation"
        );
    }
}

impl fmt::Debug for ProcessHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.max.get();
        f.debug_struct("ProcessHeap")
            .field("stats", &self.stats())
            .field("max_bytes", &(max != usize::MAX).then_some(max))
            .finish()
    }
}

/// Padding in front of the word, and bytes used (padding + word + block), for a block of
/// `layout` placed at `start`. The word ends on an address aligned to the block's alignment
/// (at least `WORD`), so the word itself is `WORD`-aligned.
///
/// Cannot overflow: padding < max(align, WORD) and `Layout` keeps size <= isize::MAX + 1 -
/// align, so the sum stays below `isize::MAX + 2 * WORD`.
#[inline(always)]
fn place(start: usize, layout: Layout) -> (usize, usize) {
    let mask = layout.align().max(WORD) - 1;
    let pad = start.wrapping_add(WORD).wrapping_neg() & mask;
    (pad, pad + WORD + layout.size())
}

/// Bytes a chunk needs to hold one block of `layout` after its header, whatever the padding;
/// None if that passes `isize::MAX` (no allocation may).
fn chunk_bytes_for(layout: Layout) -> Option<usize> {
    // The block area starts `WORD`-aligned, so at most max(align, WORD) - WORD of padding.
    let pad = layout.align().max(WORD) - WORD;
    let bytes = (HEADER + WORD + pad).checked_add(layout.size())?;
    let rounded = bytes.checked_next_multiple_of(PAGE_SIZE)?;
    (rounded <= isize::MAX as usize).then_some(bytes)
}

/// Write a block's word at `word` (tagged with `pad` modulo the page size: only used to
/// rewind, and a smaller value only rewinds less) and count the block in its chunk.
///
/// # Safety
/// `chunk` is a live chunk; `word` is `WORD`-aligned and `word + WORD` is the start of a free
/// block inside it.
#[inline(always)]
unsafe fn write_block(chunk: *mut Chunk, word: usize, pad: usize) -> NonNull<u8> {
    let at = chunk.cast::<*mut Chunk>().with_addr(word);
    // SAFETY: per the caller; `at` keeps the chunk's provenance, and so does the stored tag.
    unsafe {
        at.write(chunk.map_addr(|a| a | (pad & PAD_MASK)));
        (*chunk).live += 1;
        NonNull::new_unchecked(at.add(1).cast())
    }
}

/// The chunk of a block and the padding in front of its word.
///
/// # Safety
/// `ptr` is a live block from a process heap.
#[inline(always)]
unsafe fn chunk_of(ptr: NonNull<u8>) -> (*mut Chunk, usize) {
    // SAFETY: per the caller, the aligned word in front of the block is its tagged chunk.
    let tagged = unsafe { ptr.as_ptr().cast::<*mut Chunk>().sub(1).read() };
    (tagged.map_addr(|a| a & !PAD_MASK), tagged.addr() & PAD_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc as sys;
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::vec::Vec;

    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;

    /// Pages from the host allocator, counted, each run checked on return, and able to run out.
    struct TestPages {
        /// Pages handed out and not returned.
        outstanding: Cell<usize>,
        /// Pages that may still be handed out before allocate_pages says None.
        budget: Cell<usize>,
        /// Address -> pages of every run handed out.
        runs: RefCell<HashMap<usize, usize>>,
    }

    impl TestPages {
        fn new() -> Self {
            Self::with_budget(usize::MAX)
        }

        fn with_budget(pages: usize) -> Self {
            Self {
                outstanding: Cell::new(0),
                budget: Cell::new(pages),
                runs: RefCell::new(HashMap::new()),
            }
        }

        fn outstanding(&self) -> usize {
            self.outstanding.get()
        }

        fn layout(pages: usize) -> sys::Layout {
            sys::Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap()
        }
    }

    impl PageSource for TestPages {
        fn allocate_pages(&self, pages: usize) -> Option<NonNull<u8>> {
            assert!(pages > 0, "asked for no pages");
            if pages > self.budget.get() {
                return None;
            }
            // SAFETY: the layout has a non-zero size.
            let start = NonNull::new(unsafe { sys::alloc(Self::layout(pages)) })?;
            self.budget.set(self.budget.get() - pages);
            self.outstanding.set(self.outstanding.get() + pages);
            self.runs.borrow_mut().insert(start.as_ptr().addr(), pages);
            Some(start)
        }

        fn free_pages(&self, start: NonNull<u8>, pages: usize) {
            let recorded = self.runs.borrow_mut().remove(&start.as_ptr().addr());
            assert_eq!(recorded, Some(pages), "freed a run that was not handed out");
            self.budget.set(self.budget.get().saturating_add(pages));
            self.outstanding.set(self.outstanding.get() - pages);
            // SAFETY: allocated above with this layout and not freed since.
            unsafe { sys::dealloc(start.as_ptr(), Self::layout(pages)) };
        }
    }

    impl Drop for TestPages {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                assert_eq!(self.outstanding(), 0, "pages leaked");
            }
        }
    }

    /// Heaps must not move once used: box them, as the kernel keeps them in the (fixed) PCB.
    fn heap(min_bytes: usize, max_bytes: Option<usize>) -> Box<ProcessHeap> {
        Box::new(ProcessHeap::new(min_bytes, max_bytes))
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn free(ptr: NonNull<u8>, layout: Layout, pages: &TestPages) {
        // SAFETY: the tests only free live blocks of live heaps, once, with their layout.
        unsafe { ProcessHeap::dealloc(ptr, layout, pages) }
    }

    fn realloc(
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
        pages: &TestPages,
    ) -> Result<NonNull<u8>, HeapError> {
        // SAFETY: as for `free`.
        unsafe { ProcessHeap::realloc(ptr, layout, new_size, pages) }
    }

    /// Fill a block with a pattern derived from `seed`.
    fn fill(ptr: NonNull<u8>, len: usize, seed: u64) {
        // SAFETY: the tests pass live blocks of at least `len` bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), len) };
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = pattern(seed, i);
        }
    }

    /// Check the first `len` bytes still hold the pattern for `seed`.
    fn check(ptr: NonNull<u8>, len: usize, seed: u64) {
        // SAFETY: as for `fill`.
        let bytes = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), len) };
        if let Some(i) = (0..len).find(|&i| bytes[i] != pattern(seed, i)) {
            panic!("block {ptr:?} (seed {seed}) corrupted at byte {i} of {len}");
        }
    }

    fn pattern(seed: u64, i: usize) -> u8 {
        (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 ^ (i as u8).wrapping_mul(31)
    }

    use crate::test_rng::Rng;

    /// Everything the heap says about itself agrees with the page source.
    fn assert_accounts(heap: &ProcessHeap, pages: &TestPages) {
        assert_eq!(heap.reserved_bytes(), pages.outstanding() * PAGE_SIZE);
        assert_eq!(heap.stats().reserved_bytes, heap.reserved_bytes());
    }

    #[test]
    fn fits_in_a_cache_line_and_takes_nothing_until_used() {
        assert!(size_of::<ProcessHeap>() <= 64);
        let pages = TestPages::new();
        let heap = heap(10_000, None);
        assert_eq!(heap.stats(), HeapStats::default());
        assert_eq!(pages.outstanding(), 0);
        let p = heap.alloc(layout(1, 1), &pages).unwrap();
        // 10 000 bytes round up to 3 pages.
        assert_eq!(pages.outstanding(), 3);
        let stats = heap.stats();
        assert_eq!((stats.chunks, stats.live_allocations), (1, 1));
        free(p, layout(1, 1), &pages);
        heap.release_all(&pages);
        assert_eq!(pages.outstanding(), 0);

        // No minimum still means one page.
        let heap = self::heap(0, None);
        let p = heap.alloc(layout(8, 8), &pages).unwrap();
        assert_eq!(heap.reserved_bytes(), PAGE_SIZE);
        free(p, layout(8, 8), &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn blocks_of_many_sizes_and_alignments_are_aligned_and_disjoint() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        let mut blocks = Vec::new();
        let mut seed = 0;
        for shift in 0..=12 {
            let align = 1 << shift;
            for size in [
                0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 255, 1000, 4096, 5000,
            ] {
                let l = layout(size, align);
                let p = heap.alloc(l, &pages).unwrap();
                assert_eq!(p.as_ptr().addr() % align, 0, "{l:?} misaligned");
                fill(p, size, seed);
                blocks.push((p, l, seed));
                seed += 1;
            }
        }
        // Disjoint: sort by address and compare neighbours (zero-size blocks included).
        let mut spans: Vec<_> = blocks
            .iter()
            .map(|(p, l, _)| (p.as_ptr().addr(), p.as_ptr().addr() + l.size()))
            .collect();
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "blocks overlap: {pair:?}");
            assert_ne!(pair[0].0, pair[1].0, "two blocks share an address");
        }
        assert_eq!(heap.stats().live_allocations, blocks.len());
        // Free in an interleaved order, checking every block survived its neighbours.
        let (even, odd): (Vec<_>, Vec<_>) =
            blocks.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        for (_, &(p, l, seed)) in even.into_iter().chain(odd) {
            check(p, l.size(), seed);
            free(p, l, &pages);
        }
        let stats = heap.stats();
        assert_eq!(stats.live_allocations, 0);
        assert_eq!(stats.chunks, 1, "only the (reset) current chunk remains");
        assert_accounts(&heap, &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn zero_sized_blocks_are_distinct() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        let a = heap.alloc(layout(0, 1), &pages).unwrap();
        let b = heap.alloc(layout(0, 1), &pages).unwrap();
        assert_ne!(a, b);
        free(a, layout(0, 1), &pages);
        free(b, layout(0, 1), &pages);
        assert_eq!(heap.stats().live_allocations, 0);
        heap.release_all(&pages);
    }

    #[test]
    fn freeing_the_last_block_rewinds_exactly() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        let base = heap.alloc(layout(3, 1), &pages).unwrap();
        // A stack of blocks with padding in front of them, freed in reverse: each free gives
        // back padding too, so the same sequence lands on the same addresses again.
        let layouts = [layout(5, 64), layout(1, 1), layout(100, 256), layout(7, 16)];
        let first: Vec<_> = layouts
            .iter()
            .map(|&l| heap.alloc(l, &pages).unwrap())
            .collect();
        for (&p, &l) in first.iter().zip(&layouts).rev() {
            free(p, l, &pages);
        }
        let again: Vec<_> = layouts
            .iter()
            .map(|&l| heap.alloc(l, &pages).unwrap())
            .collect();
        assert_eq!(first, again);
        // And an alloc/free pair of one layout reuses one address.
        let p = heap.alloc(layout(48, 8), &pages).unwrap();
        free(p, layout(48, 8), &pages);
        assert_eq!(heap.alloc(layout(48, 8), &pages).unwrap(), p);
        free(p, layout(48, 8), &pages);
        for (&p, &l) in again.iter().zip(&layouts) {
            free(p, l, &pages);
        }
        free(base, layout(3, 1), &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn a_million_allocs_and_frees_stay_within_a_few_chunks() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        // A live set of 64 blocks of varying sizes, each replaced 64 iterations after it was
        // made, plus per-iteration scratch blocks freed in reverse (one grown by realloc,
        // like a local Vec). Sampled every iteration: the peak must not grow with time.
        let mut ring: Vec<Option<(NonNull<u8>, Layout)>> = std::vec![None; 64];
        let mut scratch: Vec<(NonNull<u8>, Layout)> = Vec::new();
        let (mut max_chunks, mut max_pages) = (0, 0);
        for i in 0..1_000_000 {
            let l = layout(1 + rng.index(512), 1 << rng.index(5));
            let p = heap.alloc(l, &pages).unwrap();
            // SAFETY: the block has at least one byte.
            unsafe { p.as_ptr().write(i as u8) };
            if let Some((old, old_l)) = ring[i % 64].replace((p, l)) {
                // SAFETY: as above; it was written 64 iterations ago.
                assert_eq!(unsafe { old.as_ptr().read() }, (i - 64) as u8);
                free(old, old_l, &pages);
            }
            for _ in 0..rng.index(4) {
                let l = layout(1 + rng.index(256), 8);
                scratch.push((heap.alloc(l, &pages).unwrap(), l));
            }
            if let Some((p, l)) = scratch.last_mut() {
                let grown = l.size() * 2 + rng.index(1024);
                *p = realloc(*p, *l, grown, &pages).unwrap();
                *l = layout(grown, 8);
            }
            max_chunks = max_chunks.max(heap.stats().chunks);
            max_pages = max_pages.max(pages.outstanding());
            while let Some((p, l)) = scratch.pop() {
                free(p, l, &pages);
            }
        }
        assert!(max_chunks <= 4, "{max_chunks} chunks");
        assert!(max_pages <= 4 * MAX_CHUNK_PAGES, "{max_pages} pages");
        for (p, l) in ring.into_iter().flatten() {
            free(p, l, &pages);
        }
        assert_eq!(heap.stats().chunks, 1);
        assert_accounts(&heap, &pages);
        heap.release_all(&pages);
    }

    /// Grow a block by realloc through `sizes`, checking contents are carried along.
    fn grow(
        heap: &ProcessHeap,
        pages: &TestPages,
        sizes: impl IntoIterator<Item = usize>,
    ) -> (NonNull<u8>, Layout, Result<(), HeapError>) {
        let mut l = layout(16, 8);
        let mut p = heap.alloc(l, pages).unwrap();
        fill(p, l.size(), 7);
        for size in sizes {
            match realloc(p, l, size, pages) {
                Ok(q) => {
                    check(q, l.size(), 7);
                    (p, l) = (q, layout(size, 8));
                    fill(p, size, 7);
                }
                Err(e) => return (p, l, Err(e)),
            }
        }
        (p, l, Ok(()))
    }

    #[test]
    fn vec_like_growth_to_10_mib_fits_a_16_mib_limit() {
        let pages = TestPages::new();
        let heap = heap(0, Some(16 * MIB));
        // Doubling up to 10 MiB: the last step has 5 and 10 MiB live at once.
        let (p, l, result) = grow(&heap, &pages, (0..=19).rev().map(|k| (10 * MIB) >> k));
        assert_eq!(result, Ok(()));
        assert_eq!(l.size(), 10 * MIB);
        assert!(heap.reserved_bytes() <= 16 * MIB);
        assert_accounts(&heap, &pages);
        free(p, l, &pages);
        // The dedicated chunk went back; only small chunks are left.
        assert!(pages.outstanding() <= 2 * MAX_CHUNK_PAGES);
        heap.release_all(&pages);
    }

    #[test]
    fn growth_past_the_limit_fails_and_the_heap_stays_usable() {
        let pages = TestPages::new();
        let heap = heap(0, Some(16 * MIB));
        let (p, l, result) = grow(&heap, &pages, (0..=20).rev().map(|k| (32 * MIB) >> k));
        match result {
            Err(HeapError::LimitExceeded { limit, wanted }) => {
                assert_eq!(limit, 16 * MIB);
                assert!(wanted > 16 * MIB);
            }
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
        assert!(l.size() <= 16 * MIB);
        check(p, l.size(), 7);
        assert_accounts(&heap, &pages);
        free(p, l, &pages);
        // Usable: small blocks, and a big one that fits under the limit again.
        let small = heap.alloc(layout(100, 8), &pages).unwrap();
        let big = heap.alloc(layout(12 * MIB, 8), &pages).unwrap();
        fill(big, 12 * MIB, 1);
        check(big, 12 * MIB, 1);
        free(big, layout(12 * MIB, 8), &pages);
        free(small, layout(100, 8), &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn the_limit_takes_a_smaller_chunk_before_failing() {
        let pages = TestPages::new();
        let heap = heap(0, Some(4 * PAGE_SIZE));
        let l = layout(3000, 8);
        // Chunks of 1 and 2 pages; the next would be 4 (7 in all), so it takes 1 (4 in all).
        let blocks: Vec<_> = (0..4).map(|_| heap.alloc(l, &pages).unwrap()).collect();
        assert_eq!(heap.reserved_bytes(), 4 * PAGE_SIZE);
        assert_eq!(heap.stats().chunks, 3);
        assert_eq!(
            heap.alloc(l, &pages),
            Err(HeapError::LimitExceeded {
                limit: 4 * PAGE_SIZE,
                wanted: 5 * PAGE_SIZE
            })
        );
        // Raising the limit lets the heap grow again; lowering it refuses new chunks only.
        heap.set_max(None);
        let more = heap.alloc(l, &pages).unwrap();
        heap.set_max(Some(PAGE_SIZE));
        assert!(matches!(
            heap.alloc(layout(64 * KIB, 8), &pages),
            Err(HeapError::LimitExceeded { .. })
        ));
        for p in blocks.into_iter().chain([more]) {
            free(p, l, &pages);
        }
        assert_accounts(&heap, &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn out_of_memory_is_reported_and_nothing_leaks() {
        let pages = TestPages::with_budget(20);
        let heap = heap(0, None);
        let l = layout(1000, 8);
        let mut blocks = Vec::new();
        let error = loop {
            match heap.alloc(l, &pages) {
                Ok(p) => blocks.push(p),
                Err(e) => break e,
            }
        };
        // Chunks of 1, 2, 4, 8 pages (15); then each preferred size that the source refuses
        // falls back to the pages the block needs (1), until the 20 pages are all out.
        assert_eq!(error, HeapError::OutOfMemory { pages: 1 });
        assert_eq!(pages.outstanding(), 20);
        assert_accounts(&heap, &pages);
        // A big block fails the same way, and leaves the heap as it was.
        assert_eq!(
            heap.alloc(layout(MIB, 8), &pages),
            Err(HeapError::OutOfMemory { pages: 257 })
        );
        assert_eq!(heap.stats().live_allocations, blocks.len());
        for p in blocks {
            free(p, l, &pages);
        }
        assert!(pages.outstanding() <= 1);
        heap.release_all(&pages);
        assert_eq!(pages.outstanding(), 0);
    }

    #[test]
    fn impossible_layouts_are_too_large() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        let huge = layout(isize::MAX as usize - PAGE_SIZE, 1);
        assert_eq!(heap.alloc(huge, &pages), Err(HeapError::TooLarge));
        let p = heap.alloc(layout(8, 8), &pages).unwrap();
        assert_eq!(
            realloc(p, layout(8, 8), usize::MAX - 4, &pages),
            Err(HeapError::TooLarge)
        );
        free(p, layout(8, 8), &pages);
        assert_eq!(pages.runs.borrow().len(), 1);
        heap.release_all(&pages);
    }

    #[test]
    fn release_all_returns_every_page_and_the_heap_works_again() {
        let pages = TestPages::new();
        let heap = heap(8 * KIB, Some(4 * MIB));
        for round in 0..3 {
            let mut rng = Rng(round + 1);
            for _ in 0..2000 {
                // Never freed: exit takes them all.
                let l = layout(1 + rng.index(3000), 1 << rng.index(7));
                fill(heap.alloc(l, &pages).unwrap(), l.size(), round);
            }
            heap.alloc(layout(MIB, 4096), &pages).unwrap();
            assert!(heap.stats().chunks > 5);
            assert_accounts(&heap, &pages);
            heap.release_all(&pages);
            assert_eq!(pages.outstanding(), 0);
            assert_eq!(heap.stats(), HeapStats::default());
        }
        // The first chunk after a release is the minimum size again.
        let p = heap.alloc(layout(1, 1), &pages).unwrap();
        assert_eq!(heap.reserved_bytes(), 8 * KIB);
        free(p, layout(1, 1), &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn a_dedicated_big_chunk_goes_back_when_freed() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        let small = heap.alloc(layout(10, 8), &pages).unwrap();
        let before = pages.outstanding();
        let l = layout(200 * KIB, 4096);
        let big = heap.alloc(l, &pages).unwrap();
        assert_eq!(big.as_ptr().addr() % 4096, 0);
        // 200 KiB + header, word and up to 4088 bytes of padding: 52 pages.
        assert_eq!(pages.outstanding() - before, 52);
        assert_eq!(heap.stats().chunks, 2);
        fill(big, l.size(), 3);
        // The small chunk is still current: small blocks keep going there.
        let small2 = heap.alloc(layout(10, 8), &pages).unwrap();
        assert_eq!(
            small2.as_ptr().addr() / PAGE_SIZE,
            small.as_ptr().addr() / PAGE_SIZE
        );
        check(big, l.size(), 3);
        free(big, l, &pages);
        assert_eq!(pages.outstanding(), before);
        assert_eq!(heap.stats().chunks, 1);
        free(small, layout(10, 8), &pages);
        free(small2, layout(10, 8), &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn realloc_stays_in_place_when_it_can_and_keeps_contents_when_it_moves() {
        let pages = TestPages::new();
        let heap = heap(64 * KIB, None);
        let la = layout(100, 8);
        let a = heap.alloc(la, &pages).unwrap();
        fill(a, 100, 1);
        let b = heap.alloc(layout(100, 8), &pages).unwrap();
        fill(b, 100, 2);
        // b is the last block bumped: it grows and shrinks in place.
        assert_eq!(realloc(b, layout(100, 8), 1000, &pages), Ok(b));
        assert_eq!(realloc(b, layout(1000, 8), 50, &pages), Ok(b));
        check(b, 50, 2);
        // a is not last: shrinking stays, growing moves (to above b) with its contents.
        assert_eq!(realloc(a, la, 60, &pages), Ok(a));
        let a2 = realloc(a, layout(60, 8), 500, &pages).unwrap();
        assert!(a2 > b);
        check(a2, 60, 1);
        // Freeing b now leaves a2 as last: a2 grows in place, and shrinking gives bytes back.
        free(b, layout(50, 8), &pages);
        assert_eq!(realloc(a2, layout(500, 8), 4000, &pages), Ok(a2));
        assert_eq!(realloc(a2, layout(4000, 8), 60, &pages), Ok(a2));
        let c = heap.alloc(layout(8, 8), &pages).unwrap();
        assert_eq!(c.as_ptr().addr(), a2.as_ptr().addr() + 64 + WORD);
        free(c, layout(8, 8), &pages);
        check(a2, 60, 1);
        free(a2, layout(60, 8), &pages);
        assert_eq!(heap.stats().live_allocations, 0);
        heap.release_all(&pages);
    }

    #[test]
    fn realloc_of_big_blocks_uses_slack_and_gives_chunks_back() {
        let pages = TestPages::new();
        let heap = heap(0, None);
        // 100 000 bytes + 48 of header and word take 25 pages: 2352 bytes to spare.
        let l = layout(100_000, 8);
        let p = heap.alloc(l, &pages).unwrap();
        fill(p, l.size(), 5);
        let held = pages.outstanding();
        assert_eq!(realloc(p, l, 102_000, &pages), Ok(p));
        // Past the slack it moves to a new dedicated chunk, and the old one goes back.
        let q = realloc(p, layout(102_000, 8), 150_000, &pages).unwrap();
        assert_ne!(p, q);
        check(q, l.size(), 5);
        assert_eq!(heap.stats().chunks, 1, "only dedicated chunks so far");
        assert!(pages.outstanding() > held);
        // Shrinking to a small block moves it into a (first) current chunk of one page and
        // frees the big one.
        let r = realloc(q, layout(150_000, 8), 1000, &pages).unwrap();
        check(r, 1000, 5);
        assert_eq!(heap.stats().chunks, 1);
        assert_eq!(pages.outstanding(), 1);
        // A modest shrink stays put.
        let big = heap.alloc(l, &pages).unwrap();
        assert_eq!(realloc(big, l, 80_000, &pages), Ok(big));
        free(big, layout(80_000, 8), &pages);
        free(r, layout(1000, 8), &pages);
        assert_accounts(&heap, &pages);
        heap.release_all(&pages);
    }

    /// Random allocs, frees and reallocs against a shadow model of what should be live.
    fn random_workload(seed: u64, steps: usize) {
        struct Block {
            ptr: NonNull<u8>,
            layout: Layout,
            seed: u64,
        }
        let pages = TestPages::new();
        let heap = heap(4 * KIB, None);
        let mut rng = Rng(seed);
        let mut live: Vec<Block> = Vec::new();
        let mut tag = 0;
        for step in 0..steps {
            let roll = rng.index(100);
            if live.is_empty() || (roll < 45 && live.len() < 2000) {
                let size = match rng.index(20) {
                    0 => rng.index(200 * KIB),
                    1..=4 => rng.index(8 * KIB),
                    _ => rng.index(300),
                };
                let l = layout(size, 1 << rng.index(13));
                let ptr = heap.alloc(l, &pages).unwrap();
                assert_eq!(ptr.as_ptr().addr() % l.align(), 0);
                tag += 1;
                fill(ptr, size, tag);
                live.push(Block {
                    ptr,
                    layout: l,
                    seed: tag,
                });
            } else if roll < 80 {
                // Mostly recent blocks, sometimes any: both the rewind and the holes.
                let i = if rng.index(2) == 0 {
                    live.len() - 1
                } else {
                    rng.index(live.len())
                };
                let b = live.swap_remove(i);
                check(b.ptr, b.layout.size(), b.seed);
                free(b.ptr, b.layout, &pages);
            } else {
                let i = rng.index(live.len());
                let b = &mut live[i];
                let new_size = match rng.index(4) {
                    0 => b.layout.size() / 2,
                    1 => b.layout.size() + rng.index(64),
                    2 => b.layout.size() * 2 + 1,
                    _ => rng.index(20 * KIB),
                };
                let ptr = realloc(b.ptr, b.layout, new_size, &pages).unwrap();
                check(ptr, b.layout.size().min(new_size), b.seed);
                b.ptr = ptr;
                b.layout = layout(new_size, b.layout.align());
                tag += 1;
                b.seed = tag;
                fill(ptr, new_size, tag);
            }
            if step % 64 == 0 {
                assert_eq!(heap.stats().live_allocations, live.len());
                assert_accounts(&heap, &pages);
            }
        }
        for b in live.drain(..) {
            check(b.ptr, b.layout.size(), b.seed);
            free(b.ptr, b.layout, &pages);
        }
        let stats = heap.stats();
        assert_eq!(stats.live_allocations, 0);
        assert!(stats.chunks <= 1, "empty chunks were kept: {stats:?}");
        assert_accounts(&heap, &pages);
        heap.release_all(&pages);
    }

    #[test]
    fn random_workload_matches_a_shadow_model() {
        for seed in [1, 0xdead_beef, 0x0123_4567_89ab_cdef] {
            random_workload(seed, 30_000);
        }
    }

    #[test]
    fn frees_from_another_heaps_context_credit_the_owner() {
        let pages = TestPages::new();
        let (a, b) = (heap(0, None), heap(0, None));
        let l = layout(500, 16);
        let mut from_a = Vec::new();
        let mut from_b = Vec::new();
        for i in 0..400 {
            from_a.push(a.alloc(l, &pages).unwrap());
            from_b.push(b.alloc(l, &pages).unwrap());
            fill(from_a[i], 500, i as u64);
            fill(from_b[i], 500, !(i as u64));
        }
        let (stats_a, stats_b) = (a.stats(), b.stats());
        assert_eq!(stats_a.live_allocations, 400);
        assert_eq!(
            a.reserved_bytes() + b.reserved_bytes(),
            pages.outstanding() * PAGE_SIZE
        );
        // "Running b", free a's blocks (all but the last few): only a shrinks.
        for (i, &p) in from_a.iter().enumerate().take(390) {
            check(p, 500, i as u64);
            free(p, l, &pages);
        }
        assert_eq!(b.stats(), stats_b);
        assert_eq!(a.stats().live_allocations, 10);
        assert!(a.reserved_bytes() < stats_a.reserved_bytes);
        // And the other way round; interleaved reallocs stay in their owner's heap too.
        for (i, &p) in from_b.iter().enumerate().take(390) {
            check(p, 500, !(i as u64));
            free(p, l, &pages);
        }
        let moved = realloc(from_a[399], l, 20_000, &pages).unwrap();
        check(moved, 500, 399);
        assert_eq!(a.stats().live_allocations, 10);
        assert_eq!(b.stats().live_allocations, 10);
        assert_eq!(
            a.reserved_bytes() + b.reserved_bytes(),
            pages.outstanding() * PAGE_SIZE
        );
        free(moved, layout(20_000, 16), &pages);
        for &p in from_a[390..399].iter().chain(&from_b[390..]) {
            free(p, l, &pages);
        }
        assert_eq!(a.stats().live_allocations + b.stats().live_allocations, 0);
        a.release_all(&pages);
        b.release_all(&pages);
    }
}
