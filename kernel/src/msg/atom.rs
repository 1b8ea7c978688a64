//! Atoms: interned names, compared and copied as a 32-bit index.
//!
//! An atom is an index into one kernel-wide table of names, so that a term holding an atom is
//! one word wherever it goes (a message copied into another process's heap copies the index,
//! never the name). As in Erlang, atoms are never freed: a name, once interned, lives as long
//! as the kernel, which is what lets [`Atom::name`] hand out `&'static str`. The table is
//! bounded like the BEAM's (1 048 576 atoms, names of at most 255 bytes).
//!
//! The atoms the kernel itself needs (exit reasons, fault kinds, `true`/`false`) are constants
//! with fixed indices: the table interns them first, in the order of [`PREDEFINED`], the first
//! time it is used, so the constants are valid without anybody calling [`Atom::new`].

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::mem::in_kernel_heap;
use crate::sync::IrqMutex;

/// An interned name. Equal names are equal atoms (the same index), and the index never
/// changes.
///
/// `Ord` here orders by index, which is cheap and enough for maps and sets of atoms; Erlang's
/// term order compares atoms by name, and that is what `Term`'s `Ord` does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom(u32);

/// The longest name an atom may have, in bytes (the BEAM's limit, in characters).
pub const MAX_NAME_BYTES: usize = 255;

/// The most atoms the table holds (the BEAM's default limit).
pub const MAX_ATOMS: usize = 1 << 20;

/// Why an atom could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomError {
    /// The name is longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// The table already holds [`MAX_ATOMS`] atoms.
    TableFull,
}

impl fmt::Display for AtomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "atom name longer than {MAX_NAME_BYTES} bytes"),
            Self::TableFull => write!(f, "atom table full ({MAX_ATOMS} atoms)"),
        }
    }
}

pub const NORMAL: Atom = Atom(0);
pub const KILL: Atom = Atom(1);
pub const KILLED: Atom = Atom(2);
pub const NOPROC: Atom = Atom(3);
pub const OK: Atom = Atom(4);
pub const ERROR: Atom = Atom(5);
pub const UNDEFINED: Atom = Atom(6);
pub const TRUE: Atom = Atom(7);
pub const FALSE: Atom = Atom(8);
pub const BADARG: Atom = Atom(9);
pub const SHUTDOWN: Atom = Atom(10);
pub const STACK_OVERFLOW: Atom = Atom(11);
pub const HEAP_LIMIT: Atom = Atom(12);
pub const OUT_OF_MEMORY: Atom = Atom(13);
pub const PANIC: Atom = Atom(14);
pub const FAULT: Atom = Atom(15);
pub const DATA_ABORT: Atom = Atom(16);
pub const INSTRUCTION_ABORT: Atom = Atom(17);
pub const UNDEFINED_INSTRUCTION: Atom = Atom(18);
pub const ALIGNMENT: Atom = Atom(19);
pub const PC_ALIGNMENT: Atom = Atom(20);
pub const SP_ALIGNMENT: Atom = Atom(21);
pub const PERMISSION: Atom = Atom(22);
/// `'EXIT'`, the tag of the message a trapped exit arrives as.
pub const EXIT: Atom = Atom(23);
/// `'DOWN'`, the tag of a monitor's message.
pub const DOWN: Atom = Atom(24);
pub const PROCESS: Atom = Atom(25);
pub const INFINITY: Atom = Atom(26);
pub const TIMEOUT: Atom = Atom(27);
pub const NOCONNECTION: Atom = Atom(28);
pub const BADARITH: Atom = Atom(29);
pub const SYSTEM_LIMIT: Atom = Atom(30);

/// The predefined atoms with their names. Entry `i` must be the atom with index `i` (checked
/// at compile time below): the table interns these names in this order.
pub const PREDEFINED: [(Atom, &str); 31] = [
    (NORMAL, "normal"),
    (KILL, "kill"),
    (KILLED, "killed"),
    (NOPROC, "noproc"),
    (OK, "ok"),
    (ERROR, "error"),
    (UNDEFINED, "undefined"),
    (TRUE, "true"),
    (FALSE, "false"),
    (BADARG, "badarg"),
    (SHUTDOWN, "shutdown"),
    (STACK_OVERFLOW, "stack_overflow"),
    (HEAP_LIMIT, "heap_limit"),
    (OUT_OF_MEMORY, "out_of_memory"),
    (PANIC, "panic"),
    (FAULT, "fault"),
    (DATA_ABORT, "data_abort"),
    (INSTRUCTION_ABORT, "instruction_abort"),
    (UNDEFINED_INSTRUCTION, "undefined_instruction"),
    (ALIGNMENT, "alignment"),
    (PC_ALIGNMENT, "pc_alignment"),
    (SP_ALIGNMENT, "sp_alignment"),
    (PERMISSION, "permission"),
    (EXIT, "EXIT"),
    (DOWN, "DOWN"),
    (PROCESS, "process"),
    (INFINITY, "infinity"),
    (TIMEOUT, "timeout"),
    (NOCONNECTION, "noconnection"),
    (BADARITH, "badarith"),
    (SYSTEM_LIMIT, "system_limit"),
];

const _: () = {
    let mut i = 0;
    while i < PREDEFINED.len() {
        assert!(
            PREDEFINED[i].0.0 as usize == i,
            "PREDEFINED out of index order"
        );
        i += 1;
    }
};

/// The kernel's atom table. Everything it allocates (names, map nodes, the vector) is made
/// inside `in_kernel_heap`, because it outlives whichever process happened to intern a name.
static TABLE: IrqMutex<Table> = IrqMutex::new(Table::new());

impl Atom {
    /// The atom named `name`, interning it if it is new.
    ///
    /// # Panics
    /// If the name is longer than [`MAX_NAME_BYTES`] or the table is full: both are limits of
    /// the system (`system_limit` in Erlang), not conditions a caller handles. Use
    /// [`Atom::try_new`] for names that come from outside.
    pub fn new(name: &str) -> Atom {
        match Atom::try_new(name) {
            Ok(atom) => atom,
            Err(e) => panic!("cannot make atom {name:?}: {e}"),
        }
    }

    /// The atom named `name`, interning it if it is new.
    pub fn try_new(name: &str) -> Result<Atom, AtomError> {
        if name.len() > MAX_NAME_BYTES {
            return Err(AtomError::TooLong);
        }
        let mut table = TABLE.lock();
        in_kernel_heap(|| table.intern(name, MAX_ATOMS)).map(Atom)
    }

    /// The atom named `name` if it already exists; never adds to the table (for names from
    /// outside, which must not be able to fill it).
    pub fn existing(name: &str) -> Option<Atom> {
        let mut table = TABLE.lock();
        in_kernel_heap(|| table.init());
        table.lookup(name).map(Atom)
    }

    /// The index of this atom in the table (stable for the life of the kernel).
    pub const fn index(self) -> u32 {
        self.0
    }

    /// Rebuilds an atom from its index, as stored in a term's block. Only for indices that
    /// came from [`Atom::index`]: any other makes [`Atom::name`] panic.
    pub(crate) const fn from_index(index: u32) -> Atom {
        Atom(index)
    }

    /// The atom's name. Predefined atoms answer without locking; others take the table lock
    /// briefly.
    pub fn name(self) -> &'static str {
        let index = self.0 as usize;
        if let Some((_, name)) = PREDEFINED.get(index) {
            return name;
        }
        TABLE.lock().names[index]
    }

    /// Whether Erlang must print the name in single quotes: anything but
    /// `[a-z][a-zA-Z0-9_@]*`, and the reserved words, which read back as keywords otherwise.
    pub fn needs_quotes(self) -> bool {
        needs_quotes(self.name())
    }
}

/// Erlang's reserved words (`maybe`/`else` since OTP 27 enables the `maybe` expression by
/// default): an atom with one of these names is printed quoted.
const RESERVED: [&str; 29] = [
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "else", "end", "fun", "if", "let", "maybe", "not", "of", "or",
    "orelse", "receive", "rem", "try", "when", "xor",
];

fn needs_quotes(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return true;
    };
    !first.is_ascii_lowercase()
        || !bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'@')
        || RESERVED.contains(&name)
}

/// Writes `name` the way Erlang prints an atom: bare when it can be, else in single quotes
/// with `\\`, `\'` and control characters escaped. No allocation.
pub(crate) fn write_atom_name(f: &mut dyn fmt::Write, name: &str) -> fmt::Result {
    if !needs_quotes(name) {
        return f.write_str(name);
    }
    f.write_char('\'')?;
    for c in name.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\'' => f.write_str("\\'")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            // Other control characters as octal escapes, which Erlang reads back.
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\{:03o}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('\'')
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_atom_name(f, self.name())
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Names by index and indices by name. Invariant: `names[i]` is the name of atom `i`, and
/// `by_name` maps every name in `names` to its index, nothing else. Both only grow.
struct Table {
    by_name: BTreeMap<&'static str, u32>,
    names: Vec<&'static str>,
}

impl Table {
    const fn new() -> Self {
        Self {
            by_name: BTreeMap::new(),
            names: Vec::new(),
        }
    }

    /// Interns the predefined atoms, once. Allocates: call inside `in_kernel_heap`.
    fn init(&mut self) {
        if self.names.is_empty() {
            for (atom, name) in PREDEFINED {
                let index = self.push(name);
                debug_assert_eq!(index, atom.0);
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The index of `name`, added if new while the table holds fewer than `limit` atoms.
    /// Allocates: call inside `in_kernel_heap`.
    fn intern(&mut self, name: &str, limit: usize) -> Result<u32, AtomError> {
        self.init();
        if name.len() > MAX_NAME_BYTES {
            return Err(AtomError::TooLong);
        }
        if let Some(index) = self.lookup(name) {
            return Ok(index);
        }
        if self.names.len() >= limit {
            return Err(AtomError::TableFull);
        }
        // Leaked on purpose: atoms are never freed, so their names are `'static`.
        let name: &'static str = Box::leak(Box::<str>::from(name));
        Ok(self.push(name))
    }

    fn push(&mut self, name: &'static str) -> u32 {
        let index = u32::try_from(self.names.len()).expect("atom limit fits in u32");
        self.names.push(name);
        self.by_name.insert(name, index);
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::format;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[test]
    fn predefined_atoms_have_their_names_and_indices() {
        let mut seen = HashSet::new();
        for (i, (atom, name)) in PREDEFINED.iter().enumerate() {
            assert_eq!(atom.index() as usize, i);
            assert_eq!(atom.name(), *name);
            assert_eq!(Atom::new(name), *atom, "{name} interns to its constant");
            assert_eq!(Atom::existing(name), Some(*atom));
            assert!(seen.insert(*name), "{name} is listed twice");
        }
    }

    #[test]
    fn interning_is_idempotent_and_existing_does_not_insert() {
        assert_eq!(Atom::existing("atom_test_never_interned_xyz"), None);
        assert_eq!(Atom::existing("atom_test_never_interned_xyz"), None);
        let a = Atom::new("atom_test_fresh");
        assert_eq!(Atom::new("atom_test_fresh"), a);
        assert_eq!(Atom::try_new("atom_test_fresh"), Ok(a));
        assert_eq!(Atom::existing("atom_test_fresh"), Some(a));
        assert_eq!(a.name(), "atom_test_fresh");
        assert_ne!(Atom::new("atom_test_other"), a);
        assert!(a.index() as usize >= PREDEFINED.len());
    }

    #[test]
    fn names_over_255_bytes_are_refused() {
        let ok = "a".repeat(MAX_NAME_BYTES);
        assert_eq!(Atom::try_new(&ok).unwrap().name(), ok);
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(Atom::try_new(&long), Err(AtomError::TooLong));
        assert_eq!(Atom::existing(&long), None);
        // 128 two-byte characters: 128 characters but 256 bytes.
        assert_eq!(Atom::try_new(&"é".repeat(128)), Err(AtomError::TooLong));
        assert_eq!(
            AtomError::TooLong.to_string(),
            "atom name longer than 255 bytes"
        );
    }

    #[test]
    #[should_panic(expected = "cannot make atom")]
    fn new_panics_on_a_name_too_long() {
        Atom::new(&"b".repeat(300));
    }

    #[test]
    fn a_full_table_refuses_new_names_but_finds_old_ones() {
        let mut table = Table::new();
        let limit = PREDEFINED.len() + 2;
        let a = table.intern("one", limit).unwrap();
        let b = table.intern("two", limit).unwrap();
        assert_eq!((a, b), (31, 32));
        assert_eq!(table.intern("three", limit), Err(AtomError::TableFull));
        assert_eq!(table.intern("one", limit), Ok(a));
        assert_eq!(table.intern("normal", limit), Ok(0));
        assert_eq!(table.names.len(), table.by_name.len());
        assert_eq!(
            AtomError::TableFull.to_string(),
            "atom table full (1048576 atoms)"
        );
    }

    #[test]
    fn threads_interning_overlapping_names_agree() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    // Thread t interns names t*50 .. t*50+100: each name is shared by two.
                    (t * 50..t * 50 + 100)
                        .map(|i| {
                            let name = format!("atom_test_thread_{i}");
                            let atom = Atom::new(&name);
                            (name, atom)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: std::collections::HashMap<String, Atom> = Default::default();
        for t in threads {
            for (name, atom) in t.join().unwrap() {
                assert_eq!(atom.name(), name);
                if let Some(prev) = all.insert(name.clone(), atom) {
                    assert_eq!(prev, atom, "{name} interned twice");
                }
            }
        }
        assert_eq!(all.len(), 250);
        let distinct: HashSet<_> = all.values().collect();
        assert_eq!(distinct.len(), 250, "different names, different atoms");
    }

    #[test]
    fn prints_like_erlang() {
        let show = |name: &str| Atom::new(name).to_string();
        assert_eq!(show("ok"), "ok");
        assert_eq!(show("data_abort"), "data_abort");
        assert_eq!(show("node@host"), "node@host");
        assert_eq!(show("a1_B2"), "a1_B2");
        assert_eq!(show("EXIT"), "'EXIT'");
        assert_eq!(show("hello world"), "'hello world'");
        assert_eq!(show(""), "''");
        assert_eq!(show("_x"), "'_x'");
        assert_eq!(show("1a"), "'1a'");
        assert_eq!(show("it's"), "'it\\'s'");
        assert_eq!(show("back\\slash"), "'back\\\\slash'");
        assert_eq!(show("new\nline"), "'new\\nline'");
        assert_eq!(show("bell\u{7}"), "'bell\\007'");
        assert_eq!(show("case"), "'case'");
        assert_eq!(show("end"), "'end'");
        assert_eq!(show("ends"), "ends");
        assert_eq!(show("héllo"), "'héllo'");
        assert_eq!(format!("{:?}", EXIT), "'EXIT'");
        assert!(EXIT.needs_quotes() && !OK.needs_quotes());
    }
}
