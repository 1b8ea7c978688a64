//! Terms: the immutable Erlang values processes exchange (spawn arguments, exit reasons,
//! messages).
//!
//! A [`Term`] is an atom, an integer (`i64`), a float (`f64`), a binary, a tuple, a proper
//! list, a pid or a reference. There are no improper lists (`[a|b]`), no maps and no funs.
//!
//! # Representation
//!
//! A `Term` is two words. Atoms, integers, floats, pids, references, and empty tuples, lists
//! and binaries are *immediate*: stored in those two words, no allocation. A non-empty
//! binary, tuple or list is *boxed*: the whole value, with every subterm, lives in one
//! contiguous *block* of `u64` words that the `Term` owns (the layout is in `term/block.rs`).
//! Inside a block, subterms refer to each other by relative offsets, never by address, so a
//! block can be copied anywhere with one `memcpy`: that is how a message reaches another
//! process's heap ([`Term::copy_in`]), and why the encoding must stay position independent.
//!
//! Building a container moves its elements in: each boxed element's block is copied into the
//! new block and freed. Nothing is shared between terms, and a term is never mutated, so a
//! `Term` is `Send + Sync`.
//!
//! # Reading
//!
//! [`Term::view`] borrows a term as a [`View`] to `match` on; elements of tuples and lists are
//! [`TermRef`]s, borrowed subterms with the same accessors:
//!
//! ```
//! use kernel::msg::{atom, Term, View};
//! use kernel::term;
//!
//! fn describe(reason: &Term) -> &'static str {
//!     match reason.view() {
//!         View::Atom(a) if a == atom::NORMAL => "normal exit",
//!         View::Tuple(t) if t.len() == 2 && t.get(0).unwrap().is_atom(atom::PANIC) => {
//!             match t.get(1).unwrap().as_binary() {
//!                 Some(b"oops") => "panicked: oops",
//!                 _ => "panicked",
//!             }
//!         }
//!         _ => "something else",
//!     }
//! }
//! assert_eq!(describe(&term!(normal)), "normal exit");
//! assert_eq!(describe(&term!({panic, "oops"})), "panicked: oops");
//! assert_eq!(describe(&term!({panic, 1, 2})), "something else");
//! ```
//!
//! # Equality and order
//!
//! `==` is Erlang's exact equality `=:=`: `1 != 1.0`. Floats compare by value except that,
//! to keep `Eq` lawful, a NaN (which Erlang never produces) equals itself (bit for bit), and
//! `-0.0 == 0.0`. `Ord` is Erlang's term order (`number < atom < reference < pid < tuple <
//! list < binary`, see `order`), with `1 < 1.0` to break the tie between equal numbers.
//!
//! # Depth
//!
//! Building and copying never recurse (children are already encoded; a copy is a `memcpy`).
//! Display, comparison, equality and hashing are iterative too: any nesting depth is safe on
//! a small stack.

mod block;
mod display;
mod macros;
mod order;
#[cfg(test)]
mod tests;

use alloc::alloc::{Layout, dealloc};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::iter::FusedIterator;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering as MemOrdering};

use block::{Cell, Kind, SLOT};

use crate::msg::atom::{self, Atom};
use crate::process::Pid;

// ---- References ------------------------------------------------------------------------

/// A unique reference (`make_ref()`): tags a request so its reply can be told apart, names a
/// monitor. Printed `#Ref<0.HI.LO>` (node 0, then the high and low halves of the number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference(u64);

/// The next reference number. Starts at 1 so that 0 is never a real reference.
static NEXT_REFERENCE: AtomicU64 = AtomicU64::new(1);

impl Reference {
    /// A reference different from every other one made since boot (a 64-bit counter does not
    /// wrap in the life of a machine).
    pub fn new_unique() -> Self {
        // Relaxed: only uniqueness matters, which the atomic increment gives on its own.
        Self(NEXT_REFERENCE.fetch_add(1, MemOrdering::Relaxed))
    }

    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    pub const fn to_bits(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<0.{}.{}>", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ---- Allocation --------------------------------------------------------------------------

/// Where term blocks come from: the kernel heap ([`Global`]), or a process heap when a
/// message is copied into its receiver.
///
/// # Contract
/// `alloc_words(words)` (always called with `words > 0`) must return either `None` or a
/// pointer to fresh memory that:
/// - is valid for reads and writes of `words` `u64`s and aligned for `u64`;
/// - nothing else uses until it is freed;
/// - can be freed with `alloc::alloc::dealloc(ptr.cast(), Layout::array::<u64>(words))`:
///   that is how dropping a `Term` frees its block, whoever allocated it (on the target, the
///   global allocator returns a block to the heap it came from by its address).
///
/// # Safety
/// Terms write and free that memory on the strength of this contract, so an implementation
/// that breaks it breaks memory safety: implement it only over a real allocator.
pub unsafe trait TermAlloc {
    fn alloc_words(&self, words: usize) -> Option<NonNull<u64>>;
}

/// The global allocator: the kernel heap, or on the target whichever heap it serves the
/// current context from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Global;

// The contract holds: memory from `alloc::alloc::alloc` with `Layout::array::<u64>(words)` is
// exactly what `dealloc` with that layout frees, and it is fresh, aligned and large enough.
// SAFETY: the global allocator, freed by the same.
unsafe impl TermAlloc for Global {
    fn alloc_words(&self, words: usize) -> Option<NonNull<u64>> {
        let layout = Layout::array::<u64>(words).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { alloc::alloc::alloc(layout) }.cast::<u64>())
    }
}

/// The allocator had no room for a term's block (or its size overflowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("term allocation failed")
    }
}

/// A fresh block of `words` words from `alloc`, zeroed, filled by `fill` and owned by the
/// returned `Term`. `fill` must write a valid object of exactly `words` words.
fn new_block<A: TermAlloc + ?Sized>(
    alloc: &A,
    words: usize,
    fill: impl FnOnce(&mut [u64]),
) -> Result<Term, AllocError> {
    let ptr = alloc.alloc_words(words).ok_or(AllocError)?;
    // SAFETY: by the `TermAlloc` contract `ptr` is valid, aligned and ours for `words` words;
    // zeroing initialises them all before the slice is made.
    let out = unsafe {
        ptr.as_ptr().write_bytes(0, words);
        core::slice::from_raw_parts_mut(ptr.as_ptr(), words)
    };
    fill(out);
    debug_assert_eq!(
        block::obj_words(out),
        words,
        "the block must record its own size"
    );
    Ok(Term {
        repr: Repr::Boxed(ptr),
    })
}

/// Copies `words` (a whole object subtree) into one new block from `alloc`.
fn copy_block<A: TermAlloc + ?Sized>(alloc: &A, words: &[u64]) -> Result<Term, AllocError> {
    let ptr = alloc.alloc_words(words.len()).ok_or(AllocError)?;
    // SAFETY: `ptr` is valid for `words.len()` words and fresh (the `TermAlloc` contract), so
    // it cannot overlap `words`, which are initialised; the copy initialises the block.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), ptr.as_ptr(), words.len()) };
    Ok(Term {
        repr: Repr::Boxed(ptr),
    })
}

// ---- Term --------------------------------------------------------------------------------

/// An Erlang value, owned. See the [module documentation](self).
pub struct Term {
    repr: Repr,
}

/// Invariant of `Boxed`: the pointer is a live block that this `Term` alone owns, allocated
/// per the `TermAlloc` contract with exactly `obj_words` words, holding one valid object
/// written by `block`'s encoders, and never written again.
#[derive(Clone, Copy)]
enum Repr {
    Atom(Atom),
    Int(i64),
    Float(f64),
    Pid(Pid),
    Ref(Reference),
    Empty(Kind),
    Boxed(NonNull<u64>),
}

const _: () = assert!(size_of::<Term>() == 16, "a term is two words");

// SAFETY: a `Term` owns its block outright (no other `Term` or reference points into it
// unless borrowed from this `Term`), the block is immutable after construction, and it can be
// freed from any thread or core (the global allocator is thread-safe).
unsafe impl Send for Term {}
// SAFETY: shared access only ever reads the block.
unsafe impl Sync for Term {}

impl Drop for Term {
    fn drop(&mut self) {
        if let Repr::Boxed(ptr) = self.repr {
            let layout = Layout::array::<u64>(self.block_words()).expect("block layout");
            // SAFETY: the `Repr::Boxed` invariant: the block is ours, was allocated with this
            // layout (per `TermAlloc`), and nothing borrows it any more (we are in `drop`).
            unsafe { dealloc(ptr.as_ptr().cast::<u8>(), layout) };
        }
    }
}

impl Term {
    pub const fn atom(atom: Atom) -> Term {
        Term {
            repr: Repr::Atom(atom),
        }
    }

    pub const fn int(n: i64) -> Term {
        Term { repr: Repr::Int(n) }
    }

    pub const fn float(x: f64) -> Term {
        Term {
            repr: Repr::Float(x),
        }
    }

    pub const fn pid(pid: Pid) -> Term {
        Term {
            repr: Repr::Pid(pid),
        }
    }

    pub const fn reference(reference: Reference) -> Term {
        Term {
            repr: Repr::Ref(reference),
        }
    }

    /// The empty list `[]`. Immediate: no allocation.
    pub const fn nil() -> Term {
        Term {
            repr: Repr::Empty(Kind::List),
        }
    }

    /// A binary holding a copy of `bytes`.
    ///
    /// # Panics
    /// If the global allocator has no room (see [`Term::try_binary_in`]).
    pub fn binary(bytes: &[u8]) -> Term {
        Term::try_binary_in(bytes, &Global).expect("term allocation failed")
    }

    /// A tuple of `items`, moved in.
    ///
    /// # Panics
    /// If the global allocator has no room (see [`Term::try_tuple_in`]).
    pub fn tuple(items: impl IntoIterator<Item = Term>) -> Term {
        Term::try_tuple_in(items, &Global).expect("term allocation failed")
    }

    /// A proper list of `items`, moved in.
    ///
    /// # Panics
    /// If the global allocator has no room (see [`Term::try_list_in`]).
    pub fn list(items: impl IntoIterator<Item = Term>) -> Term {
        Term::try_list_in(items, &Global).expect("term allocation failed")
    }

    /// A binary in a block from `alloc` (none when empty).
    pub fn try_binary_in<A: TermAlloc + ?Sized>(
        bytes: &[u8],
        alloc: &A,
    ) -> Result<Term, AllocError> {
        if bytes.is_empty() {
            return Ok(Term {
                repr: Repr::Empty(Kind::Binary),
            });
        }
        let words = block::binary_words(bytes.len()).ok_or(AllocError)?;
        new_block(alloc, words, |out| block::encode_binary(out, bytes))
    }

    /// A tuple in one block from `alloc` (none when empty). The boxed items' blocks are
    /// copied in and freed.
    pub fn try_tuple_in<A: TermAlloc + ?Sized>(
        items: impl IntoIterator<Item = Term>,
        alloc: &A,
    ) -> Result<Term, AllocError> {
        Term::container_in(Kind::Tuple, items, alloc)
    }

    /// A proper list in one block from `alloc` (none when empty). The boxed items' blocks are
    /// copied in and freed.
    pub fn try_list_in<A: TermAlloc + ?Sized>(
        items: impl IntoIterator<Item = Term>,
        alloc: &A,
    ) -> Result<Term, AllocError> {
        Term::container_in(Kind::List, items, alloc)
    }

    fn container_in<A: TermAlloc + ?Sized>(
        kind: Kind,
        items: impl IntoIterator<Item = Term>,
        alloc: &A,
    ) -> Result<Term, AllocError> {
        // The size of the block depends on every item, so they are held until it is written:
        // on the stack for small containers (the common case), in a temporary vector beyond.
        let items = Staged::new(items);
        let items = items.as_slice();
        if items.is_empty() {
            return Ok(Term {
                repr: Repr::Empty(kind),
            });
        }
        let words = block::container_words(items.len(), items.iter().map(Term::block_words))
            .ok_or(AllocError)?;
        new_block(alloc, words, |out| {
            block::encode_container(out, kind, items.iter().map(|t| t.as_ref().cell));
        })
    }

    /// A copy of this term whose block (if it has one) comes from `alloc`: one allocation of
    /// [`block_words`](Term::block_words) words and one `memcpy`, whatever the shape.
    pub fn copy_in<A: TermAlloc + ?Sized>(&self, alloc: &A) -> Result<Term, AllocError> {
        self.as_ref().copy_in(alloc)
    }

    /// Words of this term's block, 0 if immediate: what a copy costs, for memory accounting.
    pub fn block_words(&self) -> usize {
        match self.repr {
            // SAFETY: the `Repr::Boxed` invariant: a live block whose word 1 (within it: an
            // object has at least two words) is its size in words.
            Repr::Boxed(ptr) => unsafe { ptr.as_ptr().add(1).read() as usize },
            _ => 0,
        }
    }

    /// This term, borrowed: the form subterms are read in. (Not `AsRef`: a `TermRef` is a
    /// value, not a reference.)
    pub fn as_ref(&self) -> TermRef<'_> {
        let cell = match self.repr {
            Repr::Atom(a) => Cell::Atom(a),
            Repr::Int(n) => Cell::Int(n),
            Repr::Float(x) => Cell::Float(x),
            Repr::Pid(p) => Cell::Pid(p),
            Repr::Ref(r) => Cell::Ref(r),
            Repr::Empty(kind) => Cell::Empty(kind),
            Repr::Boxed(ptr) => {
                let words = self.block_words();
                // SAFETY: the `Repr::Boxed` invariant: `words` initialised words, never
                // written again, freed only when `self` drops, which the borrow prevents.
                Cell::Obj(unsafe { core::slice::from_raw_parts(ptr.as_ptr(), words) })
            }
        };
        TermRef::new(cell)
    }

    /// Borrows the term for matching.
    pub fn view(&self) -> View<'_> {
        self.as_ref().view()
    }

    pub fn as_atom(&self) -> Option<Atom> {
        self.as_ref().as_atom()
    }

    pub fn as_int(&self) -> Option<i64> {
        self.as_ref().as_int()
    }

    pub fn as_float(&self) -> Option<f64> {
        self.as_ref().as_float()
    }

    pub fn as_pid(&self) -> Option<Pid> {
        self.as_ref().as_pid()
    }

    pub fn as_reference(&self) -> Option<Reference> {
        self.as_ref().as_reference()
    }

    pub fn as_binary(&self) -> Option<&[u8]> {
        self.as_ref().as_binary()
    }

    pub fn as_tuple(&self) -> Option<Seq<'_>> {
        self.as_ref().as_tuple()
    }

    pub fn as_list(&self) -> Option<Seq<'_>> {
        self.as_ref().as_list()
    }

    /// Whether this term is the atom `atom`.
    pub fn is_atom(&self, atom: Atom) -> bool {
        self.as_ref().is_atom(atom)
    }
}

/// Items waiting to be encoded: up to 8 on the stack, more in a vector.
enum Staged {
    Small(heapless::Vec<Term, 8>),
    Large(Vec<Term>),
}

impl Staged {
    fn new(items: impl IntoIterator<Item = Term>) -> Self {
        let mut items = items.into_iter();
        let mut small = heapless::Vec::new();
        for item in items.by_ref() {
            if let Err(item) = small.push(item) {
                let mut large = Vec::with_capacity(small.len() + 1 + items.size_hint().0);
                large.extend(small);
                large.push(item);
                large.extend(items);
                return Staged::Large(large);
            }
        }
        Staged::Small(small)
    }

    fn as_slice(&self) -> &[Term] {
        match self {
            Staged::Small(items) => items.as_slice(),
            Staged::Large(items) => items.as_slice(),
        }
    }
}

impl Clone for Term {
    /// A copy through the global allocator ([`Term::copy_in`]).
    ///
    /// # Panics
    /// If the global allocator has no room.
    fn clone(&self) -> Term {
        self.copy_in(&Global).expect("term allocation failed")
    }
}

// ---- Borrowed terms ----------------------------------------------------------------------

/// A term borrowed from a [`Term`] (the whole of it, or an element somewhere inside): the same
/// accessors as `Term`, at the cost of a copy only when made owned.
#[derive(Clone, Copy)]
pub struct TermRef<'a> {
    cell: Cell<'a>,
}

impl<'a> TermRef<'a> {
    fn new(cell: Cell<'a>) -> Self {
        Self { cell }
    }

    /// Borrows the term for matching.
    pub fn view(self) -> View<'a> {
        match self.cell {
            Cell::Atom(a) => View::Atom(a),
            Cell::Int(n) => View::Int(n),
            Cell::Float(x) => View::Float(x),
            Cell::Pid(p) => View::Pid(p),
            Cell::Ref(r) => View::Ref(r),
            Cell::Empty(Kind::Binary) => View::Binary(&[]),
            Cell::Empty(Kind::Tuple) => View::Tuple(Seq::EMPTY),
            Cell::Empty(Kind::List) => View::List(Seq::EMPTY),
            Cell::Obj(obj) => {
                let len = block::obj_len(obj);
                let seq = || Seq::new(block::obj_items(obj), len);
                match block::obj_kind(obj) {
                    Kind::Binary => View::Binary(block::obj_bytes(obj)),
                    Kind::Tuple => View::Tuple(seq()),
                    Kind::List => View::List(seq()),
                }
            }
        }
    }

    /// An owned copy of this (sub)term, through the global allocator.
    ///
    /// # Panics
    /// If the global allocator has no room.
    pub fn to_owned(self) -> Term {
        self.copy_in(&Global).expect("term allocation failed")
    }

    /// An owned copy of this (sub)term in a block from `alloc`: one allocation of
    /// [`block_words`](TermRef::block_words) words and one `memcpy` (a subterm's encoding is
    /// contiguous and position independent).
    pub fn copy_in<A: TermAlloc + ?Sized>(self, alloc: &A) -> Result<Term, AllocError> {
        let repr = match self.cell {
            Cell::Atom(a) => Repr::Atom(a),
            Cell::Int(n) => Repr::Int(n),
            Cell::Float(x) => Repr::Float(x),
            Cell::Pid(p) => Repr::Pid(p),
            Cell::Ref(r) => Repr::Ref(r),
            Cell::Empty(kind) => Repr::Empty(kind),
            Cell::Obj(words) => return copy_block(alloc, words),
        };
        Ok(Term { repr })
    }

    /// Words a copy of this (sub)term costs, 0 if immediate.
    pub fn block_words(self) -> usize {
        match self.cell {
            Cell::Obj(words) => words.len(),
            _ => 0,
        }
    }

    pub fn as_atom(&self) -> Option<Atom> {
        match self.cell {
            Cell::Atom(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.cell {
            Cell::Int(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self.cell {
            Cell::Float(x) => Some(x),
            _ => None,
        }
    }

    pub fn as_pid(&self) -> Option<Pid> {
        match self.cell {
            Cell::Pid(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_reference(&self) -> Option<Reference> {
        match self.cell {
            Cell::Ref(r) => Some(r),
            _ => None,
        }
    }

    pub fn as_binary(&self) -> Option<&'a [u8]> {
        match self.view() {
            View::Binary(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn as_tuple(&self) -> Option<Seq<'a>> {
        match self.view() {
            View::Tuple(seq) => Some(seq),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<Seq<'a>> {
        match self.view() {
            View::List(seq) => Some(seq),
            _ => None,
        }
    }

    /// Whether this term is the atom `atom`.
    pub fn is_atom(&self, atom: Atom) -> bool {
        self.as_atom() == Some(atom)
    }
}

impl<'a> From<&'a Term> for TermRef<'a> {
    fn from(term: &'a Term) -> Self {
        term.as_ref()
    }
}

/// A term borrowed for `match`. Empty binaries, tuples and lists are views like any other.
#[derive(Clone, Copy, Debug)]
pub enum View<'a> {
    Atom(Atom),
    Int(i64),
    Float(f64),
    Pid(Pid),
    Ref(Reference),
    Binary(&'a [u8]),
    Tuple(Seq<'a>),
    List(Seq<'a>),
}

/// The elements of a tuple or list, borrowed. Indexing is O(1), and so is
/// [`split_first`](Seq::split_first), the `[H|T]` match.
#[derive(Clone, Copy)]
pub struct Seq<'a> {
    /// From the first element's slot to the end of the container's subtree (the children
    /// live after the slots). Element `i`'s slot is at `2 * i`.
    words: &'a [u64],
    len: usize,
}

impl<'a> Seq<'a> {
    const EMPTY: Seq<'static> = Seq { words: &[], len: 0 };

    fn new(words: &'a [u64], len: usize) -> Self {
        Self { words, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, index: usize) -> Option<TermRef<'a>> {
        (index < self.len).then(|| TermRef::new(block::slot(self.words, index * SLOT)))
    }

    pub fn first(&self) -> Option<TermRef<'a>> {
        self.get(0)
    }

    /// The head and the tail, if not empty (`[H|T]`). The tail borrows the same block.
    pub fn split_first(&self) -> Option<(TermRef<'a>, Seq<'a>)> {
        let head = self.first()?;
        // Offsets are relative to each slot, so the tail can start at the next slot.
        Some((head, Seq::new(&self.words[SLOT..], self.len - 1)))
    }

    pub fn iter(&self) -> SeqIter<'a> {
        SeqIter {
            seq: *self,
            front: 0,
            back: self.len,
        }
    }
}

impl<'a> IntoIterator for Seq<'a> {
    type Item = TermRef<'a>;
    type IntoIter = SeqIter<'a>;

    fn into_iter(self) -> SeqIter<'a> {
        self.iter()
    }
}

/// The elements of a [`Seq`], in order.
#[derive(Clone)]
pub struct SeqIter<'a> {
    seq: Seq<'a>,
    front: usize,
    back: usize,
}

impl<'a> Iterator for SeqIter<'a> {
    type Item = TermRef<'a>;

    fn next(&mut self) -> Option<TermRef<'a>> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        self.seq.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for SeqIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.seq.get(self.back)
    }
}

impl ExactSizeIterator for SeqIter<'_> {}
impl FusedIterator for SeqIter<'_> {}

impl fmt::Debug for Seq<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// ---- Conversions -------------------------------------------------------------------------

impl From<i64> for Term {
    fn from(n: i64) -> Term {
        Term::int(n)
    }
}

impl From<i32> for Term {
    fn from(n: i32) -> Term {
        Term::int(n.into())
    }
}

impl From<u32> for Term {
    fn from(n: u32) -> Term {
        Term::int(n.into())
    }
}

impl From<usize> for Term {
    /// # Panics
    /// If `n` does not fit in an `i64` (integers are 64-bit signed; there are no bignums).
    fn from(n: usize) -> Term {
        Term::int(i64::try_from(n).expect("usize too large for a term integer"))
    }
}

impl From<f64> for Term {
    fn from(x: f64) -> Term {
        Term::float(x)
    }
}

impl From<Atom> for Term {
    fn from(atom: Atom) -> Term {
        Term::atom(atom)
    }
}

impl From<Pid> for Term {
    fn from(pid: Pid) -> Term {
        Term::pid(pid)
    }
}

impl From<Reference> for Term {
    fn from(reference: Reference) -> Term {
        Term::reference(reference)
    }
}

impl From<bool> for Term {
    /// The atom `true` or `false`.
    fn from(b: bool) -> Term {
        Term::atom(if b { atom::TRUE } else { atom::FALSE })
    }
}

impl From<&str> for Term {
    /// A binary of the UTF-8 bytes, as Elixir writes strings.
    fn from(text: &str) -> Term {
        Term::binary(text.as_bytes())
    }
}

impl From<&[u8]> for Term {
    fn from(bytes: &[u8]) -> Term {
        Term::binary(bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for Term {
    fn from(bytes: &[u8; N]) -> Term {
        Term::binary(bytes)
    }
}

impl From<TermRef<'_>> for Term {
    /// [`TermRef::to_owned`].
    fn from(term: TermRef<'_>) -> Term {
        term.to_owned()
    }
}

impl From<&Term> for Term {
    /// A clone.
    fn from(term: &Term) -> Term {
        term.clone()
    }
}

// ---- Equality, order, hashing ------------------------------------------------------------

impl PartialEq for TermRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        block::cell_eq(self.cell, other.cell)
    }
}

impl Eq for TermRef<'_> {}

impl PartialEq for Term {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for Term {}

impl PartialEq<TermRef<'_>> for Term {
    fn eq(&self, other: &TermRef<'_>) -> bool {
        self.as_ref() == *other
    }
}

impl PartialEq<Term> for TermRef<'_> {
    fn eq(&self, other: &Term) -> bool {
        *self == other.as_ref()
    }
}

impl PartialEq<Atom> for Term {
    fn eq(&self, other: &Atom) -> bool {
        self.is_atom(*other)
    }
}

impl PartialEq<Atom> for TermRef<'_> {
    fn eq(&self, other: &Atom) -> bool {
        self.is_atom(*other)
    }
}

impl PartialEq<i64> for Term {
    fn eq(&self, other: &i64) -> bool {
        self.as_int() == Some(*other)
    }
}

impl PartialEq<i64> for TermRef<'_> {
    fn eq(&self, other: &i64) -> bool {
        self.as_int() == Some(*other)
    }
}

impl Ord for TermRef<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        order::compare(self.cell, other.cell)
    }
}

impl PartialOrd for TermRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Term {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_ref().cmp(&other.as_ref())
    }
}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for TermRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        block::hash_cell(self.cell, state);
    }
}

impl Hash for Term {
    /// The same hash as the term's [`TermRef`].
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

// ---- Display -----------------------------------------------------------------------------

impl fmt::Display for TermRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display::write_term(f, self.cell)
    }
}

impl fmt::Debug for TermRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_ref(), f)
    }
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_ref(), f)
    }
}
