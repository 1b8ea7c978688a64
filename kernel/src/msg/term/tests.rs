//! Host tests for terms: every constructor and `term!` form, display, views, equality and
//! order, and copies that must be self-contained. A plain recursive model of terms (`M`) is
//! the reference the iterative code is checked against, on hand-written and random terms.
//!
//! The test binary's global allocator (below) fills every block with 0xAA when it is freed,
//! so a term that kept a pointer into a freed block (its source, or a child it was built
//! from) would print and compare as garbage instead of passing by luck.

use super::*;
use crate::msg::atom;
use crate::term;

use core::cell::Cell as StdCell;
use std::alloc::{GlobalAlloc, System};
use std::collections::hash_map::DefaultHasher;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

// ---- Allocators --------------------------------------------------------------------------

/// Poisons freed memory, and counts this thread's allocations.
struct Poison;

std::thread_local! {
    static ALLOCATIONS: StdCell<usize> = const { StdCell::new(0) };
}

// SAFETY: forwards to `System`, only adding a write to memory being freed (still ours).
unsafe impl GlobalAlloc for Poison {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded to the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes, being freed by its owner.
        unsafe {
            ptr.write_bytes(0xaa, layout.size());
            System.dealloc(ptr, layout);
        }
    }
}

#[global_allocator]
static POISON: Poison = Poison;

/// Allocations made on this thread by `f`, through any allocator.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(|n| n.get());
    let r = f();
    (r, ALLOCATIONS.with(|n| n.get()) - before)
}

/// A `TermAlloc` that counts what it hands out and remembers where, so a test can scribble
/// over a source block while its `Term` is alive (and put it back before the drop).
#[derive(Default)]
struct Counting {
    blocks: std::cell::RefCell<Vec<(NonNull<u64>, usize)>>,
    bytes: StdCell<usize>,
}

impl Counting {
    fn count(&self) -> usize {
        self.blocks.borrow().len()
    }

    fn last(&self) -> (NonNull<u64>, usize) {
        *self.blocks.borrow().last().unwrap()
    }
}

// Memory from the global allocator, with the layout `Term` frees it with.
// SAFETY: backed by the global allocator.
unsafe impl TermAlloc for Counting {
    fn alloc_words(&self, words: usize) -> Option<NonNull<u64>> {
        let ptr = Global.alloc_words(words)?;
        self.blocks.borrow_mut().push((ptr, words));
        self.bytes.set(self.bytes.get() + words * 8);
        Some(ptr)
    }
}

/// Always out of memory.
struct Full;

// SAFETY: never hands out memory.
unsafe impl TermAlloc for Full {
    fn alloc_words(&self, _words: usize) -> Option<NonNull<u64>> {
        None
    }
}

// ---- The model ---------------------------------------------------------------------------

/// A term as a plain recursive tree: the reference for display, order and equality.
#[derive(Clone, Debug)]
enum M {
    Atom(Atom),
    Int(i64),
    Float(f64),
    Pid(Pid),
    Ref(Reference),
    Bin(Vec<u8>),
    Tuple(Vec<M>),
    List(Vec<M>),
}

fn build_in(m: &M, alloc: &impl TermAlloc) -> Term {
    match m {
        M::Atom(a) => Term::atom(*a),
        M::Int(n) => Term::int(*n),
        M::Float(x) => Term::float(*x),
        M::Pid(p) => Term::pid(*p),
        M::Ref(r) => Term::reference(*r),
        M::Bin(b) => Term::try_binary_in(b, alloc).unwrap(),
        M::Tuple(items) => {
            Term::try_tuple_in(items.iter().map(|i| build_in(i, alloc)), alloc).unwrap()
        }
        M::List(items) => {
            Term::try_list_in(items.iter().map(|i| build_in(i, alloc)), alloc).unwrap()
        }
    }
}

fn build(m: &M) -> Term {
    build_in(m, &Global)
}

fn show(m: &M) -> String {
    let join = |items: &[M]| items.iter().map(show).collect::<Vec<_>>().join(",");
    match m {
        M::Atom(a) => a.to_string(),
        M::Int(n) => n.to_string(),
        M::Float(x) => {
            let mut s = String::new();
            display::write_float(&mut s, *x).unwrap();
            s
        }
        M::Pid(p) => p.to_string(),
        M::Ref(r) => r.to_string(),
        M::Bin(b) => {
            let mut s = String::new();
            display::write_binary(&mut s, b).unwrap();
            s
        }
        M::Tuple(items) => format!("{{{}}}", join(items)),
        M::List(items) => format!("[{}]", join(items)),
    }
}

fn rank(m: &M) -> u8 {
    match m {
        M::Int(_) | M::Float(_) => 0,
        M::Atom(_) => 1,
        M::Ref(_) => 2,
        M::Pid(_) => 3,
        M::Tuple(_) => 4,
        M::List(_) => 5,
        M::Bin(_) => 6,
    }
}

fn norm(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x }
}

/// The model's integer-against-float rule, stated differently from `order::int_float`: the
/// integer is smaller exactly when it is at most the float's floor.
fn model_int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return if f.is_sign_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    if f >= 2f64.powi(63) {
        return Ordering::Less;
    }
    if f < -(2f64.powi(63)) {
        return Ordering::Greater;
    }
    if i128::from(i) <= f.floor() as i128 {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

fn mcmp(a: &M, b: &M) -> Ordering {
    use M::*;
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => norm(*x).total_cmp(&norm(*y)),
        (Int(x), Float(y)) => model_int_float(*x, *y),
        (Float(x), Int(y)) => model_int_float(*y, *x).reverse(),
        (Atom(x), Atom(y)) => x.name().cmp(y.name()),
        (Ref(x), Ref(y)) => x.cmp(y),
        (Pid(x), Pid(y)) => x.cmp(y),
        (Bin(x), Bin(y)) => x.cmp(y),
        (Tuple(x), Tuple(y)) => x.len().cmp(&y.len()).then_with(|| seq_cmp(x, y)),
        (List(x), List(y)) => seq_cmp(x, y),
        _ => unreachable!(),
    })
}

fn seq_cmp(x: &[M], y: &[M]) -> Ordering {
    for (a, b) in x.iter().zip(y) {
        let o = mcmp(a, b);
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

fn meq(a: &M, b: &M) -> bool {
    use M::*;
    match (a, b) {
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => norm(*x).to_bits() == norm(*y).to_bits(),
        (Atom(x), Atom(y)) => x == y,
        (Ref(x), Ref(y)) => x == y,
        (Pid(x), Pid(y)) => x == y,
        (Bin(x), Bin(y)) => x == y,
        (Tuple(x), Tuple(y)) | (List(x), List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| meq(a, b))
        }
        _ => false,
    }
}

/// Words the model's block must have, computed from the layout description alone.
fn model_words(m: &M) -> usize {
    match m {
        M::Bin(b) if !b.is_empty() => 2 + b.len().div_ceil(8),
        M::Tuple(items) | M::List(items) if !items.is_empty() => {
            2 + 2 * items.len() + items.iter().map(model_words).sum::<usize>()
        }
        _ => 0,
    }
}

/// Checks `t` against `m` through `view` and the accessors, and every subterm's `to_owned`.
fn check_view(t: TermRef<'_>, m: &M) {
    assert_eq!(t.block_words(), model_words(m), "{m:?}");
    let owned = t.to_owned();
    assert!(owned == t, "{m:?}");
    assert!(t == owned, "{m:?}");
    assert_eq!(owned.block_words(), t.block_words());
    assert_eq!(owned.to_string(), show(m));
    match (t.view(), m) {
        (View::Atom(a), M::Atom(b)) => assert!(a == *b && t.is_atom(*b) && t == *b),
        (View::Int(a), M::Int(b)) => assert!(a == *b && t.as_int() == Some(*b) && t == *b),
        (View::Float(a), M::Float(b)) => assert_eq!(a.to_bits(), b.to_bits()),
        (View::Pid(a), M::Pid(b)) => assert_eq!(a, *b),
        (View::Ref(a), M::Ref(b)) => assert_eq!(a, *b),
        (View::Binary(a), M::Bin(b)) => assert_eq!(a, &b[..]),
        (View::Tuple(s), M::Tuple(items)) | (View::List(s), M::List(items)) => {
            assert_eq!(s.len(), items.len());
            assert_eq!(s.iter().len(), items.len());
            for (i, item) in items.iter().enumerate() {
                check_view(s.get(i).unwrap(), item);
            }
            assert!(s.get(items.len()).is_none());
        }
        (view, m) => panic!("view {view:?} for {m:?}"),
    }
}

fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

// ---- Random terms ------------------------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const ATOM_NAMES: [&str; 8] = ["ok", "error", "EXIT", "hello world", "", "a", "b", "case"];

/// A random term. With `narrow`, drawn from a small space (so that random pairs often share
/// long prefixes and compare deep), else from a wide one.
fn random(rng: &mut XorShift, depth: u32, narrow: bool) -> M {
    let kinds = if depth == 0 { 6 } else { 8 };
    match rng.below(kinds) {
        0 => M::Atom(Atom::new(
            ATOM_NAMES[rng.below(if narrow { 3 } else { 8 }) as usize],
        )),
        1 => M::Int(match rng.below(4) {
            _ if narrow => rng.below(3) as i64 - 1,
            0 => *rng.pick(&[i64::MIN, i64::MAX, 0, -1, 1 << 53, (1 << 53) + 1]),
            1 => rng.next() as i64,
            _ => rng.below(7) as i64 - 3,
        }),
        2 => M::Float(match rng.below(5) {
            _ if narrow => *rng.pick(&[-1.0, -0.0, 0.0, 0.5, 1.0]),
            0 => *rng.pick(&[
                0.0,
                -0.0,
                1.0,
                -1.0,
                0.5,
                1e10,
                9007199254740992.0,
                f64::NAN,
            ]),
            1 => f64::from_bits(rng.next() & !(0x7ff << 52) | (rng.below(0x7fe) + 1) << 52),
            _ => (rng.below(13) as f64 - 6.0) / 2.0,
        }),
        3 => M::Pid(Pid::new(rng.below(3) as u32, rng.below(2) as u32)),
        4 => M::Ref(Reference::from_bits(rng.below(3) << (32 * rng.below(2)))),
        5 => {
            let len = rng.below(if narrow { 3 } else { 20 }) as usize;
            let printable = rng.below(2) == 0;
            M::Bin(
                (0..len)
                    .map(|_| {
                        if narrow {
                            b'a' + rng.below(2) as u8
                        } else if printable {
                            0x20 + rng.below(0x5f) as u8
                        } else {
                            rng.next() as u8
                        }
                    })
                    .collect(),
            )
        }
        k => {
            let len = rng.below(if narrow { 3 } else { 5 }) as usize;
            let items = (0..len).map(|_| random(rng, depth - 1, narrow)).collect();
            if k == 6 {
                M::Tuple(items)
            } else {
                M::List(items)
            }
        }
    }
}

// ---- Representation ----------------------------------------------------------------------

#[test]
fn a_term_is_two_words_and_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Term>();
    send_sync::<TermRef<'_>>();
    send_sync::<Seq<'_>>();
    assert_eq!(size_of::<Term>(), 16);
}

#[test]
fn immediates_and_empty_containers_do_not_allocate() {
    let (terms, n) = allocations(|| {
        [
            Term::atom(atom::OK),
            Term::int(-7),
            Term::float(2.5),
            Term::pid(Pid::new(1, 2)),
            Term::reference(Reference::from_bits(9)),
            Term::nil(),
            Term::tuple([]),
            Term::list([]),
            Term::binary(b""),
            term!({}),
            term!([]),
            term!(""),
        ]
    });
    assert_eq!(n, 0);
    for t in &terms {
        assert_eq!(t.block_words(), 0, "{t}");
        let (copy, n) = allocations(|| t.copy_in(&Global).unwrap());
        assert_eq!((n, &copy), (0, t));
    }
    assert_eq!(Term::nil(), Term::list([]));
    assert_ne!(Term::nil(), Term::tuple([]));
    assert_ne!(Term::nil(), Term::binary(b""));
}

#[test]
fn building_a_small_container_is_one_allocation() {
    let a = Term::tuple([Term::int(1), Term::atom(atom::OK)]);
    let b = Term::binary(b"xyz");
    let ((t, blocks), n) = allocations(|| {
        let t = Term::list([a, b, Term::nil()]);
        let blocks = t.block_words();
        (t, blocks)
    });
    assert_eq!(n, 1, "one block; the items wait on the stack");
    // header + 3 slots + tuple (2 + 2 slots) + binary (2 + 1 word)
    assert_eq!(blocks, 2 + 6 + 6 + 3);
    assert_eq!(t.to_string(), "[{1,ok},<<\"xyz\">>,[]]");
}

#[test]
fn every_constructor_and_accessor() {
    let pid = Pid::new(42, 3);
    let r = Reference::from_bits(7);
    assert_eq!(Term::atom(atom::OK).as_atom(), Some(atom::OK));
    assert_eq!(Term::int(-5).as_int(), Some(-5));
    assert_eq!(Term::float(1.5).as_float(), Some(1.5));
    assert_eq!(Term::pid(pid).as_pid(), Some(pid));
    assert_eq!(Term::reference(r).as_reference(), Some(r));
    assert_eq!(Term::binary(&[1, 2]).as_binary(), Some(&[1u8, 2][..]));
    assert_eq!(Term::nil().as_list().unwrap().len(), 0);
    let t = Term::tuple([Term::int(1), Term::int(2)]);
    assert_eq!(t.as_tuple().unwrap().len(), 2);
    assert!(t.as_list().is_none() && t.as_int().is_none() && t.as_binary().is_none());
    let l = Term::list((1..=3).map(Term::int));
    assert_eq!(
        l.as_list()
            .unwrap()
            .iter()
            .map(|e| e.as_int().unwrap())
            .sum::<i64>(),
        6
    );
    assert!(l.as_tuple().is_none());
    assert!(Term::atom(atom::OK).is_atom(atom::OK) && !Term::int(1).is_atom(atom::OK));
    assert!(Term::int(1).as_atom().is_none() && Term::atom(atom::OK).as_float().is_none());
    assert!(Term::int(1).as_pid().is_none() && Term::int(1).as_reference().is_none());

    let c = Counting::default();
    let b = Term::try_binary_in(b"0123456789", &c).unwrap();
    assert_eq!((c.count(), c.bytes.get()), (1, 8 * (2 + 2)));
    let tu = Term::try_tuple_in([b, Term::int(1)], &c).unwrap();
    let li = Term::try_list_in([tu, Term::nil()], &c).unwrap();
    assert_eq!(c.count(), 3);
    assert_eq!(li.to_string(), "[{<<\"0123456789\">>,1},[]]");
    assert_eq!(Term::try_binary_in(b"x", &Full), Err(AllocError));
    assert_eq!(
        Term::try_tuple_in([Term::binary(b"x")], &Full),
        Err(AllocError)
    );
    assert_eq!(Term::try_list_in([Term::int(1)], &Full), Err(AllocError));
    assert_eq!(li.copy_in(&Full), Err(AllocError));
    assert_eq!(
        Term::try_list_in([], &Full),
        Ok(Term::nil()),
        "no block, no allocation"
    );
    assert_eq!(AllocError.to_string(), "term allocation failed");
}

#[test]
fn large_containers_and_binaries() {
    let items: Vec<M> = (0..100)
        .map(|i| {
            if i % 3 == 0 {
                M::Bin(vec![i as u8; i])
            } else {
                M::Int(i as i64)
            }
        })
        .collect();
    let m = M::List(items.clone());
    let t = build(&m);
    check_view(t.as_ref(), &m);
    assert_eq!(t.to_string(), show(&m));
    let big = vec![0x5au8; 100_000];
    let b = Term::binary(&big);
    assert_eq!(b.as_binary(), Some(&big[..]));
    assert_eq!(b.block_words(), 2 + 12_500);
    let tuple = Term::tuple((0..1000).map(Term::int));
    assert_eq!(
        tuple.as_tuple().unwrap().get(999).unwrap().as_int(),
        Some(999)
    );
}

#[test]
fn conversions() {
    assert_eq!(Term::from(5i64), Term::int(5));
    assert_eq!(Term::from(-5i32), Term::int(-5));
    assert_eq!(Term::from(u32::MAX), Term::int(u32::MAX.into()));
    assert_eq!(Term::from(7usize), Term::int(7));
    assert_eq!(Term::from(0.5), Term::float(0.5));
    assert_eq!(Term::from(atom::OK), Term::atom(atom::OK));
    assert_eq!(Term::from(Pid::new(1, 1)), Term::pid(Pid::new(1, 1)));
    let r = Reference::new_unique();
    assert_eq!(Term::from(r), Term::reference(r));
    assert_eq!(Term::from(true), atom::TRUE);
    assert_eq!(Term::from(false), atom::FALSE);
    assert_eq!(Term::from("héllo").as_binary(), Some("héllo".as_bytes()));
    assert_eq!(Term::from(&b"ab"[..]), Term::binary(b"ab"));
    assert_eq!(Term::from(b"ab"), Term::binary(b"ab"));
    let t = term!({a, [b]});
    assert_eq!(Term::from(&t), t);
    assert_eq!(
        Term::from(t.as_tuple().unwrap().get(1).unwrap()),
        term!([b])
    );
    assert_eq!(TermRef::from(&t), t);
}

#[test]
#[should_panic(expected = "usize too large")]
fn a_usize_beyond_i64_panics() {
    let _ = Term::from(usize::MAX);
}

// ---- References ----------------------------------------------------------------------------

#[test]
fn references_are_unique_and_print_like_erlang() {
    let a = Reference::new_unique();
    let b = Reference::new_unique();
    assert_ne!(a, b);
    assert!(a.to_bits() >= 1 && b.to_bits() > a.to_bits());
    assert_eq!(Reference::from_bits(a.to_bits()), a);
    assert_eq!(Reference::from_bits(7).to_string(), "#Ref<0.0.7>");
    assert_eq!(
        Reference::from_bits((3 << 32) | 9).to_string(),
        "#Ref<0.3.9>"
    );
    assert_eq!(format!("{:?}", Reference::from_bits(7)), "#Ref<0.0.7>");
}

// ---- The macro ---------------------------------------------------------------------------

#[test]
fn every_macro_form() {
    assert_eq!(term!(ok), Term::atom(atom::OK));
    assert_eq!(term!(data_abort), Term::atom(atom::DATA_ABORT));
    assert_eq!(term!(Foo).to_string(), "'Foo'");
    assert_eq!(term!(true), Term::from(true));
    assert_eq!(term!(42), Term::int(42));
    assert_eq!(term!(-5), Term::int(-5));
    assert_eq!(term!(1.5), Term::float(1.5));
    assert_eq!(term!(-0.25), Term::float(-0.25));
    assert_eq!(term!("text"), Term::binary(b"text"));
    assert_eq!(term!([]), Term::nil());
    assert_eq!(term!({}), Term::tuple([]));
    assert_eq!(
        term!({ok, 42}),
        Term::tuple([Term::atom(atom::OK), Term::int(42)])
    );
    assert_eq!(
        term!({ok, 42,}),
        term!({ok, 42}),
        "a trailing comma is fine"
    );
    assert_eq!(term!([1, 2, 3]), Term::list([1, 2, 3].map(Term::int)));
    assert_eq!(term!([-1, -2.5, x]).to_string(), "[-1,-2.5,x]");
    assert_eq!(
        term!({error, {fault, data_abort}}).to_string(),
        "{error,{fault,data_abort}}"
    );
    assert_eq!(
        term!([[], {}, [[]], { {} }]).to_string(),
        "[[],{},[[]],{{}}]"
    );

    let pid = Pid::new(42, 3);
    let reason = term!({panic, "boom"});
    let n = 7;
    let exit = term!({(atom::EXIT), (pid), (reason)});
    assert_eq!(exit.to_string(), "{'EXIT',<0.42.3>,{panic,<<\"boom\">>}}");
    assert_eq!(term!((-n)), Term::int(-7));
    assert_eq!(term!((n as i64 * 2)), Term::int(14));
    assert_eq!(
        term!((Atom::new("hello world"))).to_string(),
        "'hello world'"
    );
    assert_eq!(term!((Reference::from_bits(7))).to_string(), "#Ref<0.0.7>");
    assert_eq!(
        term!({(exit.clone()), (exit.as_ref())})
            .as_tuple()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        term!([(false), (b"\x01\x02")]).to_string(),
        "[false,<<1,2>>]"
    );
}

// ---- Display -----------------------------------------------------------------------------

#[test]
fn prints_like_erlang() {
    let cases: [(Term, &str); 20] = [
        (
            term!({error, {fault, data_abort}}),
            "{error,{fault,data_abort}}",
        ),
        (term!([1, 2, 3]), "[1,2,3]"),
        (term!([]), "[]"),
        (term!({}), "{}"),
        (Term::pid(Pid::new(42, 3)), "<0.42.3>"),
        (Term::reference(Reference::from_bits(7)), "#Ref<0.0.7>"),
        (term!((atom::EXIT)), "'EXIT'"),
        (term!((Atom::new("hello world"))), "'hello world'"),
        (term!((Atom::new(""))), "''"),
        (term!((Atom::new("it's \\"))), "'it\\'s \\\\'"),
        (term!("text"), "<<\"text\">>"),
        (term!("say \"hi\" \\o/"), "<<\"say \\\"hi\\\" \\\\o/\">>"),
        (Term::binary(&[1, 2, 255]), "<<1,2,255>>"),
        (
            Term::binary(b"tab\there"),
            "<<116,97,98,9,104,101,114,101>>",
        ),
        (Term::binary(b""), "<<>>"),
        (term!([1.0, 0.1, -2.5, 1.0e10]), "[1.0,0.1,-2.5,1.0e10]"),
        (Term::float(f64::INFINITY), "inf"),
        (Term::float(f64::NAN), "nan"),
        (Term::int(i64::MIN), "-9223372036854775808"),
        (
            term!({[{a, [b, {}]}], "x", [[[]]]}),
            "{[{a,[b,{}]}],<<\"x\">>,[[[]]]}",
        ),
    ];
    for (t, want) in &cases {
        assert_eq!(t.to_string(), *want);
        assert_eq!(format!("{t:?}"), *want, "Debug is Display");
        assert_eq!(t.as_ref().to_string(), *want);
    }
    let t = term!({a, [1, 2]});
    let inner = t.as_tuple().unwrap().get(1).unwrap();
    assert_eq!(inner.to_string(), "[1,2]");
    assert_eq!(format!("{:?}", t.view()), "Tuple([a, [1,2]])");
}

/// Display writes into any `fmt::Write` without allocating.
#[test]
fn display_does_not_allocate() {
    struct Sink(usize);
    impl fmt::Write for Sink {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let t = term!({error, [1.5, "bin", {(atom::EXIT), (Atom::new("q q"))}, (Pid::new(1, 2))]});
    let want = t.to_string().len();
    let mut sink = Sink(0);
    let (r, n) = allocations(|| fmt::write(&mut sink, format_args!("{t}")));
    r.unwrap();
    assert_eq!((n, sink.0), (0, want));
}

// ---- Views -------------------------------------------------------------------------------

fn describe(reason: &Term) -> String {
    match reason.view() {
        View::Atom(a) if a == atom::NORMAL => "normal".to_string(),
        View::Tuple(t) if t.len() == 2 && t.get(0).unwrap().is_atom(atom::PANIC) => {
            let msg = t.get(1).unwrap().as_binary();
            format!("panic: {}", String::from_utf8_lossy(msg.unwrap_or(b"?")))
        }
        _ => "other".to_string(),
    }
}

#[test]
fn matching_on_views() {
    assert_eq!(describe(&term!(normal)), "normal");
    assert_eq!(
        describe(&term!({panic, "index out of bounds"})),
        "panic: index out of bounds"
    );
    assert_eq!(describe(&term!({panic, 42})), "panic: ?");
    assert_eq!(describe(&term!({panic, "a", "b"})), "other");
    assert_eq!(describe(&term!(killed)), "other");
    assert_eq!(describe(&term!([])), "other");

    let t = term!({ok, 1.5, (Pid::new(1, 0)), (Reference::from_bits(3)), "b", []});
    let View::Tuple(s) = t.view() else { panic!() };
    assert!(matches!(s.get(0).unwrap().view(), View::Atom(a) if a == atom::OK));
    assert!(matches!(s.get(1).unwrap().view(), View::Float(x) if x == 1.5));
    assert!(matches!(s.get(2).unwrap().view(), View::Pid(p) if p == Pid::new(1, 0)));
    assert!(matches!(s.get(3).unwrap().view(), View::Ref(r) if r.to_bits() == 3));
    assert!(matches!(s.get(4).unwrap().view(), View::Binary(b"b")));
    assert!(matches!(s.get(5).unwrap().view(), View::List(l) if l.is_empty()));
    assert!(matches!(term!({}).view(), View::Tuple(t) if t.is_empty() && t.first().is_none()));
    assert!(matches!(term!("").view(), View::Binary(b"")));
    assert!(matches!(term!(3).view(), View::Int(3)));
}

#[test]
fn split_first_walks_a_list() {
    let list = term!([1, {two, [2]}, "three", [], 5]);
    let mut rest = list.as_list().unwrap();
    let mut seen = Vec::new();
    while let Some((head, tail)) = rest.split_first() {
        assert_eq!(tail.len(), rest.len() - 1);
        assert_eq!(head, rest.first().unwrap());
        seen.push(head.to_string());
        rest = tail;
    }
    assert!(rest.is_empty() && rest.split_first().is_none());
    assert_eq!(seen, ["1", "{two,[2]}", "<<\"three\">>", "[]", "5"]);
    // A tail is a list of its own: its elements, by index and by iteration.
    let (_, tail) = list.as_list().unwrap().split_first().unwrap();
    let (_, tail) = tail.split_first().unwrap();
    assert_eq!(tail.get(0).unwrap().as_binary(), Some(&b"three"[..]));
    assert_eq!(
        Term::list(tail.iter().map(TermRef::to_owned)),
        term!(["three", [], 5])
    );
    let back: Vec<String> = tail.iter().rev().map(|t| t.to_string()).collect();
    assert_eq!(back, ["5", "[]", "<<\"three\">>"]);
    let mut it = tail.iter();
    assert_eq!(it.len(), 3);
    it.next();
    assert_eq!(it.len(), 2);
    assert_eq!(it.next_back().unwrap(), 5);
    assert_eq!(it.len(), 1);
    assert_eq!(tail.into_iter().count(), 3);
}

#[test]
fn to_owned_copies_exactly_the_subtree() {
    let t = term!({outer, [{inner, "bytes", [1, 2]}, x], 3});
    let s = t.as_tuple().unwrap();
    let list = s.get(1).unwrap();
    let inner = list.as_list().unwrap().get(0).unwrap();
    let c = Counting::default();
    let copy = inner.copy_in(&c).unwrap();
    assert_eq!((c.count(), c.bytes.get()), (1, inner.block_words() * 8));
    drop(t);
    assert_eq!(copy, term!({inner, "bytes", [1, 2]}));
    assert_eq!(copy.to_string(), "{inner,<<\"bytes\">>,[1,2]}");
}

// ---- Equality and order ------------------------------------------------------------------

#[test]
fn exact_equality() {
    assert_ne!(term!(1), term!(1.0), "1 =/= 1.0");
    assert_eq!(term!(1.0), term!(1.0));
    assert_eq!(Term::float(-0.0), Term::float(0.0));
    assert_eq!(hash_of(&Term::float(-0.0)), hash_of(&Term::float(0.0)));
    assert_eq!(term!({ (-0.0) }), term!({ (0.0) }));
    assert_eq!(hash_of(&term!({ (-0.0) })), hash_of(&term!({ (0.0) })));
    assert_eq!(
        Term::float(f64::NAN),
        Term::float(f64::NAN),
        "NaN is itself"
    );
    assert_ne!(Term::float(f64::NAN), Term::float(-f64::NAN));
    assert_ne!(term!([1, 2]), term!([1, 2, 3]));
    assert_ne!(term!({1, 2}), term!([1, 2]));
    assert_ne!(term!("ab"), term!([97, 98]));
    assert_ne!(term!("abc"), term!("abd"));
    assert_eq!(term!(ok), atom::OK);
    assert_ne!(term!(ok), atom::ERROR);
    assert_eq!(term!(5), 5);
    assert_ne!(term!(5.0), 5);
    let t = term!({ok, 5});
    let s = t.as_tuple().unwrap();
    assert!(s.get(0).unwrap() == atom::OK && s.get(1).unwrap() == 5);
    assert!(s.get(0).unwrap() == term!(ok) && term!(5) == s.get(1).unwrap());
}

#[test]
fn erlang_term_order() {
    let ascending = [
        term!((f64::NEG_INFINITY)),
        term!((i64::MIN)),
        term!(-1.5),
        term!(-1),
        term!(0),
        term!(0.0),
        term!(0.5),
        term!(1),
        term!(1.0),
        term!(2),
        term!((i64::MAX)),
        term!(1.0e19),
        term!((Atom::new(""))),
        term!((atom::DOWN)),
        term!((atom::EXIT)),
        term!(a),
        term!(ab),
        term!(b),
        term!((Reference::from_bits(1))),
        term!((Reference::from_bits(2))),
        term!((Pid::new(0, 0))),
        term!((Pid::new(0, 1))),
        term!({}),
        term!({ z }),
        term!({1, 2}),
        term!({a, a}),
        term!({a, {}}),
        term!({1, 2, 3}),
        term!([]),
        term!([1]),
        term!([1, 2]),
        term!([1, 2.0]),
        term!([1, a]),
        term!([2]),
        term!([{}]),
        term!([[]]),
        term!(""),
        term!((&[0u8][..])),
        term!("a"),
        term!("ab"),
        term!("b"),
    ];
    for (i, a) in ascending.iter().enumerate() {
        for (j, b) in ascending.iter().enumerate() {
            assert_eq!(a.cmp(b), i.cmp(&j), "{a} vs {b}");
            assert_eq!(a == b, i == j, "{a} == {b}");
        }
    }
    assert_eq!(term!(0).cmp(&term!(-0.0)), Ordering::Less);
    assert_eq!(term!(0.0).cmp(&term!(-0.0)), Ordering::Equal);
    assert!(term!(aaa) > term!(aa), "atoms by name, not by index");
    assert!(term!(zzz_first_interned_xx) > term!(aaa_interned_later_xx));
}

// ---- Copies ------------------------------------------------------------------------------

#[test]
fn copy_in_is_one_allocation_and_owes_nothing_to_the_source() {
    let src_alloc = Counting::default();
    let m = M::Tuple(vec![
        M::Atom(atom::ERROR),
        M::List(vec![
            M::Bin(b"payload".to_vec()),
            M::Tuple(vec![M::Int(1), M::Float(2.5)]),
        ]),
        M::Bin(vec![0, 1, 2, 3, 4, 5, 6, 7, 8]),
        M::List(vec![]),
    ]);
    let original = build_in(&m, &src_alloc);
    let text = original.to_string();
    // The children the original was built from are already freed (and poisoned).
    let (src_ptr, src_words) = src_alloc.last();
    assert_eq!(src_words, original.block_words());

    let dst = Counting::default();
    let copy = original.copy_in(&dst).unwrap();
    assert_eq!(dst.count(), 1, "exactly one allocation");
    assert_eq!(dst.bytes.get(), original.block_words() * 8);
    assert_eq!(copy.block_words(), original.block_words());

    // Scribble over the source block while it is still allocated: the copy must not care.
    let saved = original.as_ref().cell;
    let Cell::Obj(words) = saved else { panic!() };
    let saved: Vec<u64> = words.to_vec();
    // SAFETY: `src_ptr` is the original's block (valid for `src_words`); nothing borrows it
    // now, and its words are restored before anything reads it again.
    unsafe { src_ptr.as_ptr().write_bytes(0xaa, src_words) };
    assert_eq!(copy.to_string(), text);
    assert_eq!(copy, build(&m));
    check_view(copy.as_ref(), &m);
    // SAFETY: as above; puts the original back so that it drops with its real size.
    unsafe { core::ptr::copy_nonoverlapping(saved.as_ptr(), src_ptr.as_ptr(), src_words) };
    assert_eq!(original.to_string(), text);
    drop(original);
    assert_eq!(copy.to_string(), text);
    assert_eq!(copy, build(&m));

    let (clone, n) = allocations(|| copy.clone());
    assert_eq!(n, 1);
    drop(copy);
    assert_eq!(clone.to_string(), text);
}

#[test]
fn terms_cross_threads() {
    let t = term!({hello, [1, 2, "three"]});
    let shared = std::sync::Arc::new(t.clone());
    let moved =
        std::thread::spawn(move || (t.to_string(), *shared == term!({hello, [1, 2, "three"]})))
            .join()
            .unwrap();
    assert_eq!(moved, ("{hello,[1,2,<<\"three\">>]}".to_string(), true));
}

// ---- Depth -------------------------------------------------------------------------------

/// Deeper than the walker's frame cache, with siblings after each nested element so that the
/// walk must climb back correctly; checked against the recursive model.
#[test]
fn deep_terms_print_and_compare_like_the_model() {
    for depth in [15, 16, 17, 33, 200] {
        let mut m = M::List(vec![]);
        for level in 0..depth {
            m = if level % 2 == 0 {
                M::List(vec![
                    M::Int(level),
                    m,
                    M::Tuple(vec![M::Int(level)]),
                    M::Bin(b"x".to_vec()),
                ])
            } else {
                M::Tuple(vec![m, M::Atom(atom::OK)])
            };
        }
        let t = build(&m);
        assert_eq!(t.to_string(), show(&m), "depth {depth}");
        check_view(t.as_ref(), &m);
        assert_eq!(t.cmp(&t.clone()), Ordering::Equal);
        // The same term with the innermost leaf changed differs only at the very bottom.
        let mut m2 = M::List(vec![M::Int(0)]);
        for level in 0..depth {
            m2 = if level % 2 == 0 {
                M::List(vec![
                    M::Int(level),
                    m2,
                    M::Tuple(vec![M::Int(level)]),
                    M::Bin(b"x".to_vec()),
                ])
            } else {
                M::Tuple(vec![m2, M::Atom(atom::OK)])
            };
        }
        let t2 = build(&m2);
        assert_eq!(t.cmp(&t2), mcmp(&m, &m2));
        assert_eq!(t.cmp(&t2), Ordering::Less, "[] < [0] at the bottom");
        assert_ne!(t, t2);
    }
}

/// Very deep nesting on a small stack: nothing may recurse per level (a 64 KiB stack would
/// overflow long before 5 000 levels if display, order, equality, hashing or drop did).
#[test]
fn very_deep_terms_need_no_stack() {
    const DEPTH: usize = 5_000;
    // Built here: each level copies the level below, so building is quadratic (but flat).
    let mut t = Term::nil();
    let mut u = Term::list([Term::int(0)]);
    for i in 0..DEPTH {
        t = Term::tuple([t, Term::int(i as i64)]);
        u = Term::tuple([u, Term::int(i as i64)]);
    }
    let t2 = t.clone();
    let small_stack = std::thread::Builder::new().stack_size(64 * 1024);
    let checked = small_stack
        .spawn(move || {
            assert_eq!(t.block_words(), DEPTH * 6);
            let text = t.to_string();
            assert_eq!(text.matches('{').count(), DEPTH);
            assert!(text[..DEPTH].bytes().all(|b| b == b'{'));
            assert!(text[DEPTH..].starts_with("[],0},1},2},") && text.ends_with(",4998},4999}"));
            assert_eq!(t.cmp(&u), Ordering::Less);
            assert_eq!(u.cmp(&t), Ordering::Greater);
            assert_ne!(t, u);
            assert_eq!(t, t2);
            assert_eq!(t.cmp(&t2), Ordering::Equal);
            assert_eq!(hash_of(&t), hash_of(&t2));
            drop((t, t2, u));
            true
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(checked);
}

// ---- Random terms ------------------------------------------------------------------------

#[test]
fn random_terms_behave_like_the_model() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let models: Vec<M> = (0..1000).map(|i| random(&mut rng, 4, i % 2 == 0)).collect();
    let terms: Vec<Term> = models.iter().map(build).collect();
    for (m, t) in models.iter().zip(&terms) {
        let text = show(m);
        assert_eq!(t.to_string(), text);
        check_view(t.as_ref(), m);
        assert_eq!(t.block_words(), model_words(m));

        let c = Counting::default();
        let copy = t.copy_in(&c).unwrap();
        let boxed = t.block_words() > 0;
        assert_eq!(c.count(), usize::from(boxed), "{text}");
        assert_eq!(c.bytes.get(), t.block_words() * 8);
        assert_eq!(copy.to_string(), text);
        assert!(copy == *t && t.cmp(&copy).is_eq());
        assert_eq!(hash_of(&copy), hash_of(t));
        assert_eq!(hash_of(&copy.as_ref()), hash_of(t));
    }

    // Pairs: agreement with the model, antisymmetry, and eq exactly when cmp is Equal.
    for i in 0..terms.len() {
        for j in [i, (i + 1) % 1000, (i * 7 + 3) % 1000, (i + 2) % 1000] {
            let (a, b) = (&terms[i], &terms[j]);
            let (ma, mb) = (&models[i], &models[j]);
            let o = a.cmp(b);
            assert_eq!(o, mcmp(ma, mb), "{a} vs {b}");
            assert_eq!(b.cmp(a), o.reverse());
            assert_eq!(a == b, meq(ma, mb), "{a} == {b}");
            assert_eq!(a == b, o.is_eq());
            if a == b {
                assert_eq!(hash_of(a), hash_of(b));
            }
        }
    }

    // Triples: transitivity.
    let mut rng = XorShift(42);
    for _ in 0..20_000 {
        let [a, b, c] = [0; 3].map(|_| &terms[rng.below(1000) as usize]);
        if a <= b && b <= c {
            assert!(a <= c, "{a} <= {b} <= {c}");
        }
        if a == b && b == c {
            assert!(a == c);
        }
    }

    // Sorting with the term order sorts by the model's order too.
    let mut sorted: Vec<(usize, &Term)> = terms.iter().enumerate().collect();
    sorted.sort_by(|x, y| x.1.cmp(y.1));
    for w in sorted.windows(2) {
        assert_ne!(mcmp(&models[w[0].0], &models[w[1].0]), Ordering::Greater);
    }
    let equal_pairs = sorted.windows(2).filter(|w| w[0].1 == w[1].1).count();
    assert!(
        equal_pairs > 10,
        "the narrow terms collide, so equality gets exercised"
    );
}
