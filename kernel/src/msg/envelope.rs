//! Envelopes: what travels between processes. A message, an exit signal, or a link or
//! monitor request, in one block the receiver owns from the moment it is sent.
//!
//! An envelope is a mailbox node holding a [`Signal`]; a term it carries (the message, or the
//! `{'EXIT', From, Reason}` of an exit signal) is copied into the same block, right after the
//! node, so nothing in it points into the sender's heap and the sender may exit at once.
//! Blocks come from the message slab (`mem::slab`); freeing the envelope frees the term with
//! it, so the term inside is never dropped on its own.

use super::mailbox::Node;
use super::{AllocError, Term, TermAlloc, TermRef};
use crate::mem::slab::{self, Block};
use crate::msg::Reference;
use crate::process::Pid;
use core::cell::Cell;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

/// How an exit signal came about (Erlang's rules differ by kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// A linked process exited.
    Link,
    /// `exit(pid, reason)` with a reason other than `kill`.
    Exit,
    /// `exit(pid, kill)`: cannot be trapped; the target dies with `killed`.
    Kill,
}

#[derive(Clone, Copy)]
pub enum Signal {
    /// An ordinary message.
    Message,
    /// An exit signal; the term is `{'EXIT', From, Reason}` (what a trapping receiver gets).
    Exit {
        from: Pid,
        kind: ExitKind,
    },
    Link {
        from: Pid,
    },
    Unlink {
        from: Pid,
    },
    Monitor {
        from: Pid,
        reference: Reference,
    },
    Demonitor {
        from: Pid,
        reference: Reference,
    },
    /// A monitored process went: the term is `{'DOWN', Ref, process, Pid, Reason}`. It
    /// becomes a message only if the receiver still holds the monitor (so none arrives after
    /// `demonitor`).
    Down {
        reference: Reference,
    },
}

/// A signal with its block and its term (`Term::nil()` when the signal has none).
pub struct Envelope {
    block: Cell<Option<Block>>,
    pub signal: Signal,
    term: ManuallyDrop<Term>,
}

impl Envelope {
    /// The term it carries.
    pub fn term(&self) -> TermRef<'_> {
        self.term.as_ref()
    }

    /// Bytes of its block (what it costs its receiver).
    pub fn bytes(&self) -> usize {
        self.block.get().map_or(0, |b| b.kind.bytes())
    }

    /// Turn a trapped exit signal into an ordinary message, in place (its term is already the
    /// `{'EXIT', From, Reason}` message).
    pub fn make_message(&mut self) {
        self.signal = Signal::Message;
    }
}

pub type EnvelopeNode = Node<Envelope>;

/// Bump allocator over the tail of one block: hands out the single term block once.
struct Tail {
    at: Cell<Option<NonNull<u64>>>,
    words: usize,
}

// SAFETY: the memory is the block's tail, sized for exactly `words` words; the term made in
// it is never dropped on its own (ManuallyDrop), so the global allocator never sees it.
unsafe impl TermAlloc for Tail {
    fn alloc_words(&self, words: usize) -> Option<NonNull<u64>> {
        if words > self.words {
            return None;
        }
        self.at.take()
    }
}

const NODE_BYTES: usize = core::mem::size_of::<EnvelopeNode>().next_multiple_of(16);

/// Build an envelope for `signal` carrying a copy of `term`. `None` when memory is exhausted.
pub fn new(signal: Signal, term: TermRef<'_>) -> Option<NonNull<EnvelopeNode>> {
    let words = term.block_words();
    let block = slab::allocate(NODE_BYTES + words * 8)?;
    let node = block.start.cast::<EnvelopeNode>();
    // SAFETY: the block holds NODE_BYTES + words * 8 bytes, 16-byte aligned at least.
    let tail = unsafe { block.start.add(NODE_BYTES) }.cast::<u64>();
    let alloc = Tail {
        at: Cell::new(Some(tail)),
        words,
    };
    let copy = match term.copy_in(&alloc) {
        Ok(copy) => copy,
        Err(AllocError) => {
            slab::free(block);
            return None;
        }
    };
    // SAFETY: the block is ours and large enough for the node.
    unsafe {
        node.as_ptr().write(Node::new(Envelope {
            block: Cell::new(Some(block)),
            signal,
            term: ManuallyDrop::new(copy),
        }))
    };
    Some(node)
}

/// Free an envelope (and the term in it).
///
/// # Safety
/// `node` came from [`new`], is in no queue, and nothing borrows its term any more.
pub unsafe fn free(node: NonNull<EnvelopeNode>) {
    // SAFETY: per the caller.
    let block = unsafe { node.as_ref() }.value.block.take();
    if let Some(block) = block {
        slab::free(block);
    }
}
