//! The block encoding: how a boxed term lays itself out in one run of `u64` words, and the
//! pure functions that read and write it (no allocation here: callers hand in the words).
//!
//! A block must be position independent, because sending a message is one allocation and one
//! `memcpy` of it into the receiver's heap. So nothing inside holds an address: a child is
//! found by its distance, in words, from the slot that refers to it.
//!
//! # Layout
//!
//! An *object* is a binary, tuple or list with at least one element (empty ones are
//! immediate: they never appear as objects, which keeps the encoding canonical). Every object
//! starts with a two-word header:
//!
//! ```text
//! word 0: kind code (bits 0..8) | length << 8   length = bytes (binary) or elements
//! word 1: W = words of the whole subtree: this header, the body and every descendant
//! ```
//!
//! - binary body: the bytes, `ceil(length / 8)` words, the padding zeroed;
//! - tuple and list body: `length` two-word *slots*, one per element, then the boxed
//!   elements' objects (each with its own subtree) in element order.
//!
//! A slot is `[tag, value]`: an atom's index, an integer's or float's bits, a pid's or
//! reference's bits, the kind of an empty container, or (tag `BOXED`) the forward offset in
//! words from the slot to the child object's header.
//!
//! So an object's subtree is contiguous (`W` words from its header), and every object in it
//! comes in preorder. That gives three properties the rest of the module builds on:
//! - a subterm is copied out with one `memcpy` of its `W` words (its offsets are internal);
//! - building a container copies each child's block verbatim after the slots: no recursion;
//! - equal terms have identical words, except a float `-0.0` against `0.0` (equal by value),
//!   so equality and hashing are one linear scan of the objects, without a stack.
//!
//! A block is produced only by the encoders here and never mutated afterwards. Decoding
//! trusts it but stays memory safe on garbage: all reads are bounds-checked slice indexing,
//! so a corrupt block panics instead of reading out of bounds.

use core::hash::Hasher;

use super::Reference;
use crate::msg::atom::Atom;
use crate::process::Pid;

/// Words in an object's header.
pub(super) const HEADER: usize = 2;
/// Words in one element slot.
pub(super) const SLOT: usize = 2;

/// The three kinds of container. Each is an object in a block when it has elements, and
/// immediate (`Cell::Empty`) when it has none.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Binary,
    Tuple,
    List,
}

impl Kind {
    const fn code(self) -> u64 {
        match self {
            Kind::Binary => 0xb1,
            Kind::Tuple => 0xb2,
            Kind::List => 0xb3,
        }
    }

    fn from_code(code: u64) -> Kind {
        match code {
            0xb1 => Kind::Binary,
            0xb2 => Kind::Tuple,
            0xb3 => Kind::List,
            _ => panic!("corrupt term block: kind code {code:#x}"),
        }
    }
}

/// Slot tags. Zero is never used, so a zeroed slot is recognisably unwritten.
mod tag {
    pub const ATOM: u64 = 1;
    pub const INT: u64 = 2;
    pub const FLOAT: u64 = 3;
    pub const PID: u64 = 4;
    pub const REF: u64 = 5;
    pub const EMPTY: u64 = 6;
    pub const BOXED: u64 = 7;
}

/// One decoded term: an immediate value, or an object's subtree (header first, exactly `W`
/// words long).
#[derive(Clone, Copy)]
pub(super) enum Cell<'a> {
    Atom(Atom),
    Int(i64),
    Float(f64),
    Pid(Pid),
    Ref(Reference),
    Empty(Kind),
    Obj(&'a [u64]),
}

// ---- Objects -----------------------------------------------------------------------------

pub(super) fn obj_kind(obj: &[u64]) -> Kind {
    Kind::from_code(obj[0] & 0xff)
}

/// Bytes of a binary, elements of a tuple or list.
pub(super) fn obj_len(obj: &[u64]) -> usize {
    (obj[0] >> 8) as usize
}

/// The words of the subtree starting at `obj[0]` (read from its header).
pub(super) fn obj_words(obj: &[u64]) -> usize {
    obj[1] as usize
}

/// A binary object's bytes.
pub(super) fn obj_bytes(obj: &[u64]) -> &[u8] {
    &as_bytes(&obj[HEADER..])[..obj_len(obj)]
}

/// A tuple or list object's slots onwards: the words a `Seq` walks. Slot `i` is at
/// `2 * i`; the boxed children follow, within the same slice.
pub(super) fn obj_items(obj: &[u64]) -> &[u64] {
    &obj[HEADER..]
}

fn header(kind: Kind, len: usize, words: usize) -> [u64; 2] {
    [kind.code() | (len as u64) << 8, words as u64]
}

/// The element at `at` (the slot's first word) in `words`, a slice that extends at least to
/// the end of the container's subtree.
pub(super) fn slot(words: &[u64], at: usize) -> Cell<'_> {
    let value = words[at + 1];
    match words[at] {
        tag::ATOM => Cell::Atom(Atom::from_index(value as u32)),
        tag::INT => Cell::Int(value as i64),
        tag::FLOAT => Cell::Float(f64::from_bits(value)),
        tag::PID => Cell::Pid(Pid::from_bits(value)),
        tag::REF => Cell::Ref(Reference::from_bits(value)),
        tag::EMPTY => Cell::Empty(Kind::from_code(value)),
        tag::BOXED => {
            let child = &words[at + value as usize..];
            Cell::Obj(&child[..obj_words(child)])
        }
        other => panic!("corrupt term block: slot tag {other:#x}"),
    }
}

/// The slot of an immediate cell; `None` for an object.
fn immediate(cell: Cell<'_>) -> Option<[u64; 2]> {
    Some(match cell {
        Cell::Atom(a) => [tag::ATOM, u64::from(a.index())],
        Cell::Int(n) => [tag::INT, n as u64],
        Cell::Float(x) => [tag::FLOAT, x.to_bits()],
        Cell::Pid(p) => [tag::PID, p.to_bits()],
        Cell::Ref(r) => [tag::REF, r.to_bits()],
        Cell::Empty(k) => [tag::EMPTY, k.code()],
        Cell::Obj(_) => return None,
    })
}

/// Where the child object of the `BOXED` slot at `at` starts, within `words`.
fn child_pos(words: &[u64], at: usize) -> Option<usize> {
    (words[at] == tag::BOXED).then(|| at + words[at + 1] as usize)
}

// ---- Encoding ----------------------------------------------------------------------------

/// Words of a binary object of `len` bytes (`len > 0`), or `None` on overflow.
pub(super) fn binary_words(len: usize) -> Option<usize> {
    len.div_ceil(8).checked_add(HEADER)
}

/// Words of a container object whose elements have the given block sizes (0 for immediates),
/// or `None` on overflow.
pub(super) fn container_words(
    len: usize,
    child_words: impl Iterator<Item = usize>,
) -> Option<usize> {
    let mut words = len.checked_mul(SLOT)?.checked_add(HEADER)?;
    for w in child_words {
        words = words.checked_add(w)?;
    }
    Some(words)
}

/// Writes a binary object into `out`, which must be exactly `binary_words(bytes.len())` words
/// and zeroed (the padding stays zero: equality compares whole words).
pub(super) fn encode_binary(out: &mut [u64], bytes: &[u8]) {
    debug_assert!(!bytes.is_empty());
    let head = header(Kind::Binary, bytes.len(), out.len());
    out[..HEADER].copy_from_slice(&head);
    as_bytes_mut(&mut out[HEADER..])[..bytes.len()].copy_from_slice(bytes);
}

/// Writes a tuple or list object of `items` into `out`, which must be exactly
/// `container_words` of them. Boxed items are copied verbatim (their offsets are relative, so
/// they stay valid), after the slots, in element order.
pub(super) fn encode_container<'a>(
    out: &mut [u64],
    kind: Kind,
    items: impl ExactSizeIterator<Item = Cell<'a>>,
) {
    debug_assert!(kind != Kind::Binary && items.len() > 0);
    let len = items.len();
    let head = header(kind, len, out.len());
    out[..HEADER].copy_from_slice(&head);
    let mut next_child = HEADER + len * SLOT;
    for (i, item) in items.enumerate() {
        let at = HEADER + i * SLOT;
        let words = match item {
            Cell::Obj(child) => {
                out[next_child..next_child + child.len()].copy_from_slice(child);
                let offset = next_child - at;
                next_child += child.len();
                [tag::BOXED, offset as u64]
            }
            imm => immediate(imm).expect("not an object"),
        };
        out[at..at + SLOT].copy_from_slice(&words);
    }
    assert_eq!(
        next_child,
        out.len(),
        "container_words disagrees with encode_container"
    );
}

// ---- Equality and hashing ----------------------------------------------------------------

/// The bits a float is compared and hashed by: its own, except that `-0.0` counts as `0.0`.
/// (NaNs are equal only to NaNs with the same bits, which keeps `Eq` reflexive.)
pub(super) fn float_key(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

/// Exact equality (`=:=`).
pub(super) fn cell_eq(a: Cell<'_>, b: Cell<'_>) -> bool {
    match (a, b) {
        (Cell::Atom(x), Cell::Atom(y)) => x == y,
        (Cell::Int(x), Cell::Int(y)) => x == y,
        (Cell::Float(x), Cell::Float(y)) => float_key(x) == float_key(y),
        (Cell::Pid(x), Cell::Pid(y)) => x == y,
        (Cell::Ref(x), Cell::Ref(y)) => x == y,
        (Cell::Empty(x), Cell::Empty(y)) => x == y,
        (Cell::Obj(x), Cell::Obj(y)) => obj_eq(x, y),
        _ => false,
    }
}

/// Equality of two subtrees by one pass over their objects in preorder. Sound because the
/// encoding is canonical: equal terms have the same words, float signs of zero aside.
fn obj_eq(a: &[u64], b: &[u64]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut p = 0;
    while p < a.len() {
        // Same kind, length and subtree size, or not equal.
        if a[p..p + HEADER] != b[p..p + HEADER] {
            return false;
        }
        let body = &a[p..];
        let (kind, len) = (obj_kind(body), obj_len(body));
        let start = p + HEADER;
        p = match kind {
            Kind::Binary => {
                let end = start + len.div_ceil(8);
                if a[start..end] != b[start..end] {
                    return false;
                }
                end
            }
            Kind::Tuple | Kind::List => {
                for at in (start..start + len * SLOT).step_by(SLOT) {
                    let same = a[at] == b[at]
                        && if a[at] == tag::FLOAT {
                            float_key(f64::from_bits(a[at + 1]))
                                == float_key(f64::from_bits(b[at + 1]))
                        } else {
                            a[at + 1] == b[at + 1]
                        };
                    if !same {
                        return false;
                    }
                }
                start + len * SLOT
            }
        };
    }
    true
}

/// Hashes consistently with `cell_eq`: the same words in the same order, floats by
/// `float_key`.
pub(super) fn hash_cell(cell: Cell<'_>, h: &mut impl Hasher) {
    let Cell::Obj(words) = cell else {
        let [tag, value] = immediate(cell).expect("not an object");
        h.write_u64(tag);
        h.write_u64(if tag == tag::FLOAT {
            float_key(f64::from_bits(value))
        } else {
            value
        });
        return;
    };
    h.write_u64(tag::BOXED);
    let mut p = 0;
    while p < words.len() {
        let obj = &words[p..];
        h.write_u64(obj[0]);
        let start = p + HEADER;
        p = match obj_kind(obj) {
            Kind::Binary => {
                let end = start + obj_len(obj).div_ceil(8);
                words[start..end].iter().for_each(|&w| h.write_u64(w));
                end
            }
            Kind::Tuple | Kind::List => {
                let end = start + obj_len(obj) * SLOT;
                for at in (start..end).step_by(SLOT) {
                    h.write_u64(words[at]);
                    h.write_u64(if words[at] == tag::FLOAT {
                        float_key(f64::from_bits(words[at + 1]))
                    } else {
                        words[at + 1]
                    });
                }
                end
            }
        };
    }
}

// ---- Traversal ---------------------------------------------------------------------------

/// A scalar met by a [`Walker`]: everything but an open or close of a tuple or list.
#[derive(Clone, Copy)]
pub(super) enum Leaf<'a> {
    Atom(Atom),
    Int(i64),
    Float(f64),
    Pid(Pid),
    Ref(Reference),
    Binary(&'a [u8]),
}

/// What a [`Walker`] yields, in the order the term is written: `{1,[a]}` is
/// `Open(Tuple, 2), Leaf(1), Open(List, 1), Leaf(a), Close(List), Close(Tuple)`. Empty tuples
/// and lists also open and close, so `[]` and `[x]` differ only after the `Open`.
#[derive(Clone, Copy)]
pub(super) enum Event<'a> {
    Leaf(Leaf<'a>),
    Open(Kind, usize),
    Close(Kind),
}

/// How many enclosing containers a walker remembers. Deeper than that it forgets the
/// outermost ones and finds them again from the root when it climbs back (see `refill`).
const CACHED_FRAMES: usize = 16;

/// An open container: where its header is (in the root's words) and which slot comes next.
#[derive(Clone, Copy, Default)]
struct Frame {
    pos: usize,
    next: usize,
}

/// A preorder walk of a term that needs neither recursion nor allocation, so display and
/// ordering work on terms of any depth on a small kernel stack.
///
/// It keeps the innermost [`CACHED_FRAMES`] open containers in a ring. When it closes a
/// container and the ring has no frame left for the parent, it descends again from the root
/// to the container it just closed (following the child whose subtree contains it: subtrees
/// are contiguous) and refills the ring with that path. Terms nested at most
/// `CACHED_FRAMES` deep never refill; deeper ones pay `O(depth * arity)` per refill, one
/// refill per `CACHED_FRAMES` levels climbed.
pub(super) struct Walker<'a> {
    root: Cell<'a>,
    /// The root object's subtree (empty when the root is immediate). Frame positions index it.
    words: &'a [u64],
    started: bool,
    /// An empty tuple or list was opened: its close comes next.
    pending_close: Option<Kind>,
    /// Containers open right now.
    depth: usize,
    /// How many of the innermost open containers have their frame in the ring (`<= depth`).
    cached: usize,
    /// Where the container closed last starts: the target of a refill.
    last_closed: usize,
    /// Frame of the container open at level `l` (root = 0) is at `l % CACHED_FRAMES`.
    frames: [Frame; CACHED_FRAMES],
}

impl<'a> Walker<'a> {
    pub(super) fn new(root: Cell<'a>) -> Self {
        Self {
            root,
            words: if let Cell::Obj(words) = root {
                words
            } else {
                &[]
            },
            started: false,
            pending_close: None,
            depth: 0,
            cached: 0,
            last_closed: 0,
            frames: [Frame::default(); CACHED_FRAMES],
        }
    }

    /// The event for meeting `cell`, whose object (if it has one) starts at `pos`.
    fn enter(&mut self, cell: Cell<'a>, pos: usize) -> Event<'a> {
        let leaf = match cell {
            Cell::Atom(a) => Leaf::Atom(a),
            Cell::Int(n) => Leaf::Int(n),
            Cell::Float(x) => Leaf::Float(x),
            Cell::Pid(p) => Leaf::Pid(p),
            Cell::Ref(r) => Leaf::Ref(r),
            Cell::Empty(Kind::Binary) => Leaf::Binary(&[]),
            Cell::Empty(kind) => {
                self.pending_close = Some(kind);
                return Event::Open(kind, 0);
            }
            Cell::Obj(obj) => match obj_kind(obj) {
                Kind::Binary => Leaf::Binary(obj_bytes(obj)),
                kind => {
                    self.depth += 1;
                    self.frames[(self.depth - 1) % CACHED_FRAMES] = Frame { pos, next: 0 };
                    self.cached = (self.cached + 1).min(CACHED_FRAMES);
                    return Event::Open(kind, obj_len(obj));
                }
            },
        };
        Event::Leaf(leaf)
    }

    /// Rebuilds the ring for the path from the root to the parent of `last_closed`.
    fn refill(&mut self) {
        let words = self.words;
        let target = self.last_closed;
        let (mut pos, mut level) = (0, 0);
        loop {
            let len = obj_len(&words[pos..]);
            let (j, child) = (0..len)
                .find_map(|j| {
                    let child = child_pos(words, pos + HEADER + j * SLOT)?;
                    let end = child + obj_words(&words[child..]);
                    (child <= target && target < end).then_some((j, child))
                })
                .expect("term walker lost its place in the block");
            self.frames[level % CACHED_FRAMES] = Frame { pos, next: j + 1 };
            level += 1;
            if child == target {
                break;
            }
            pos = child;
        }
        debug_assert_eq!(level, self.depth);
        self.cached = self.depth.min(CACHED_FRAMES);
    }
}

impl<'a> Iterator for Walker<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        if let Some(kind) = self.pending_close.take() {
            return Some(Event::Close(kind));
        }
        if !self.started {
            self.started = true;
            return Some(self.enter(self.root, 0));
        }
        if self.depth == 0 {
            return None;
        }
        if self.cached == 0 {
            self.refill();
        }
        let top = (self.depth - 1) % CACHED_FRAMES;
        let Frame { pos, next } = self.frames[top];
        let obj = &self.words[pos..];
        if next == obj_len(obj) {
            self.depth -= 1;
            self.cached -= 1;
            self.last_closed = pos;
            return Some(Event::Close(obj_kind(obj)));
        }
        self.frames[top].next = next + 1;
        let at = pos + HEADER + next * SLOT;
        let cell = slot(self.words, at);
        let child = child_pos(self.words, at).unwrap_or(0);
        Some(self.enter(cell, child))
    }
}

// ---- Bytes of words ----------------------------------------------------------------------

fn as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: the bytes of initialised `u64`s are initialised `u8`s (no padding); `u8` needs
    // no alignment; the length is the slice's own size in bytes; the borrow carries over.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), size_of_val(words)) }
}

fn as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; and any byte pattern is a valid `u64`, so writes through the
    // byte view cannot break the words.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size_of_val(words)) }
}
