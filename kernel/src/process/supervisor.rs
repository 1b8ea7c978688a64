//! Supervisors, as in OTP: a process that starts child processes from a list of child
//! specifications, watches them through links (it traps exits), restarts them by a strategy
//! when they exit, and gives up (exits with `shutdown`) when they fail too often. A
//! supervisor can be a child of another supervisor, so supervisors nest into trees.
//!
//! # Rules
//!
//! - **Start.** [`start_link`] spawns the supervisor linked to the caller and returns once it
//!   has started every child, in the order of the specification, each with `spawn_link`. A
//!   worker counts as started once spawned (there is no init handshake), or, if its spec asks
//!   for [`ChildSpec::init_ack`], once it has called [`init_ack`]; a child supervisor counts
//!   as started when it has started its own children, so a whole tree starts depth first, in
//!   order. If a child fails to start (its spawn fails, an `init_ack` worker exits before
//!   acknowledging, or a child supervisor fails to start its own children), the supervisor
//!   stops the children it has already started, in reverse order, and exits with
//!   `{shutdown, {failed_to_start_child, Id, Reason}}`; the caller gets
//!   [`StartError::Failed`] with that reason (the supervisor unlinks from its caller first, so
//!   a caller that does not trap exits is not taken down by a failed start). [`start`] is the
//!   same without the link, and can be called from the kernel context too (it returns at
//!   once there: the kernel context cannot wait for the acknowledgement).
//! - **Restart types.** When a child exits, a `permanent` child is always restarted; a
//!   `transient` child only if the exit was abnormal (any reason other than `normal`,
//!   `shutdown` or `{shutdown, _}`); a `temporary` child never, and its specification is
//!   then forgotten (as it is when a temporary child is terminated by the supervisor).
//! - **Strategies.** `one_for_one` restarts the child that exited; `one_for_all` stops all the
//!   other children (in reverse order) and starts all of them again (in order);
//!   `rest_for_one` stops the children started after the one that exited (in reverse order)
//!   and starts it and them again (in order). Temporary children stopped by a restart are not
//!   started again.
//! - **Intensity.** Each restart is timestamped ([`crate::time::now_ns`]). If more than
//!   `intensity` (MaxR) restarts happen within `period_s` (MaxT) seconds, the supervisor
//!   stops all its children (reverse order) and exits with `shutdown`, leaving the problem to
//!   its own supervisor. OTP's defaults are 1 restart in 5 seconds. A child that fails to
//!   start during a restart is retried at once, each attempt counting as a restart.
//! - **Stopping a child** (at shutdown, for a restart, for [`terminate_child`]) follows its
//!   [`Shutdown`]: `Timeout(ms)` sends the exit signal `shutdown` and waits up to `ms` for the
//!   child to exit, then sends `kill`; `BrutalKill` sends `kill` at once; `Infinity` sends
//!   `shutdown` and waits for as long as it takes (the default for child supervisors, which
//!   need the time to stop their own subtree). The supervisor monitors the child and unlinks
//!   from it first, as OTP does, so a child that is already gone is handled too.
//! - **Its own end.** An exit signal from its parent (the process that called
//!   [`start_link`], the supervisor above it, or for one [`start`]ed from the kernel context
//!   the kernel context, whose exit signals come from [`KERNEL_PID`]) arrives as
//!   `{'EXIT', Parent, Reason}`, since it traps exits: the supervisor stops its children in
//!   reverse order and exits with the same reason. Exit signals from processes that are
//!   neither its parent nor a child are ignored (a supervisor [`start`]ed by a process has no
//!   parent). [`stop`] stops it from any process (exit reason `normal`); `kill` stops it
//!   at once, and its children with it through their links (unless they trap exits).
//!
//! Each restart is logged as a warning (`supervisor <0.9.0>: child worker (<0.12.0>) exited
//! with {fault,...}; restarting`), giving up as an error, and a child killed after its
//! shutdown timeout as a warning.
//!
//! # The API
//!
//! Queries and commands are calls: a message `{'$sup_call', From, Ref, Request}` to the
//! supervisor and a reply `{'$sup_reply', Ref, Reply}`, matched by `Ref` (a monitor reference,
//! so a supervisor that is not alive, or dies meanwhile, ends the call with
//! [`SupervisorError::Down`]). They must be made from a process: [`which_children`],
//! [`count_children`], [`restart_count`], [`terminate_child`], [`restart_child`], [`stop`].
//! [`total_restarts`] counts the restarts of every supervisor since boot.
//!
//! # Limits
//!
//! - No `start_child` / `delete_child`: the children are the specification's (a spec sent
//!   in a message could not be trusted the way the spawn argument is; see below).
//! - Calls wait without a timeout (OTP's supervisor calls default to `infinity` too).
//!
//! # How the specification travels
//!
//! Processes share nothing: the supervisor gets its specification as its spawn argument, a
//! [`Term`] copied into its heap. A [`SupervisorSpec`] is encoded as (private to this module;
//! the same kernel image runs on every core, so a function's address means the same thing in
//! every process, which is what `runtime`'s `run_entry` relies on too):
//!
//! ```text
//! Arg       = {Parent :: pid() | undefined, Ack :: {pid(), reference()} | undefined, Spec}
//!             (Parent: the linked caller, the parent supervisor, or KERNEL_PID)
//! Spec      = {Strategy :: one_for_one | one_for_all | rest_for_one,
//!              Intensity :: integer(), PeriodS :: integer(), [ChildSpec]}
//! ChildSpec = {Id :: atom(), Type :: worker | supervisor,
//!              Spawner :: integer(), Entry :: integer(), StartArg :: term(),
//!              Restart :: permanent | transient | temporary,
//!              Shutdown :: brutal_kill | infinity | Ms :: integer(),
//!              Opts :: {Priority :: 0..3, Core :: integer() | undefined, StackLimit :: integer(),
//!                       MinHeap :: integer(), MaxHeap :: integer() | undefined},
//!              InitAck :: boolean()}
//! ```
//!
//! `Entry` is the child's `fn(Term) -> R` as an address, and `Spawner` the address of
//! `spawn_erased::<R>`, a monomorphized `spawn_opt` that turns the address back into that
//! very type: the pair is made together by [`ChildSpec::new`], which is what makes turning
//! integers back into functions sound (nothing else produces this encoding; the supervisor
//! entry is private, so no other term ever reaches the decoder). A child supervisor's
//! `StartArg` is its own `Spec`; its parent wraps it into an `Arg` naming itself as parent
//! and acknowledgement address when it starts it. `Ack`: the started supervisor sends
//! `{'$sup_ack', Ref, ok | {error, Reason}}` there when its children are up (or failed). An
//! `init_ack` worker gets `{'$sup_init', Sup, Ref}` right after its spawn and answers
//! `{'$sup_ack', Ref, ok}` from [`init_ack`].
//!
//! # Example
//!
//! ```rust,ignore
//! use kernel::msg::{Atom, Term};
//! use kernel::process::supervisor::{self, ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};
//! use kernel::term;
//!
//! fn worker(arg: Term) -> Result<(), Term> { /* ... */ Ok(()) }
//!
//! fn cache(arg: Term) {
//!     // Initialise (register a name, fill a table...), then let the supervisor go on.
//!     supervisor::init_ack();
//!     loop { /* serve */ }
//! }
//!
//! fn start_tree() {
//!     let leaf = SupervisorSpec::new(Strategy::OneForOne)
//!         .intensity(3, 10)
//!         .child(ChildSpec::new(Atom::new("cache"), cache, term!(cache)).init_ack(true))
//!         .child(
//!             ChildSpec::new(Atom::new("logger"), worker, term!(logger))
//!                 .restart(Restart::Transient)
//!                 .shutdown(Shutdown::BrutalKill),
//!         );
//!     let top = SupervisorSpec::new(Strategy::RestForOne)
//!         .child(ChildSpec::new(Atom::new("db"), worker, term!(db)))
//!         .child(ChildSpec::supervisor(Atom::new("leaf"), leaf));
//!     let sup = supervisor::start_link(top).expect("tree starts");
//!     for (id, pid) in supervisor::which_children(sup).unwrap() {
//!         kernel::println!("{id}: {pid:?}");
//!     }
//!     supervisor::stop(sup).unwrap(); // or exit_signal(sup, shutdown), as its parent
//! }
//!
//! // From the kernel context (the demo): returns once spawned; stop it with
//! // `process::exit_signal(sup, &term!(shutdown))`, which comes from its parent, `KERNEL_PID`.
//! let sup = supervisor::start(SupervisorSpec::new(Strategy::OneForAll)).unwrap();
//! ```

use super::messaging::{
    KERNEL_PID, Timeout, demonitor, exit_signal, monitor, receive_match, send, trap_exit, unlink,
};
use super::runtime::{self, ExitReason, SpawnError, SpawnOpts};
use super::{Pid, current_pid, self_pid};
use crate::msg::term::Seq;
use crate::msg::{Atom, Reference, Term, TermRef, atom};
use crate::sched::Priority;
use alloc::format;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

// ---------------------------------------------------------------------------------------
// Specifications.

/// When a child is restarted after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `normal`, `shutdown` or `{shutdown, _}`).
    Transient,
    /// Never (and its specification is forgotten when it exits).
    Temporary,
}

/// How a child is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `exit(Child, kill)` at once.
    BrutalKill,
    /// `exit(Child, shutdown)`, then `kill` if it has not exited after this many milliseconds.
    Timeout(u64),
    /// `exit(Child, shutdown)`, and wait as long as it takes.
    Infinity,
}

/// Which children a supervisor restarts when one exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The child that exited.
    OneForOne,
    /// All children.
    OneForAll,
    /// The child that exited and those started after it.
    RestForOne,
}

/// What a child is (OTP's `worker | supervisor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildType {
    Worker,
    Supervisor,
}

/// `spawn_opt` with the entry function as an address: `spawn_erased::<R>` turns it back into
/// the `fn(Term) -> R` it was made from.
type Spawner = fn(usize, Term, SpawnOpts) -> Result<Pid, SpawnError>;

fn spawn_erased<R: ExitReason>(
    entry: usize,
    arg: Term,
    opts: SpawnOpts,
) -> Result<Pid, SpawnError> {
    // SAFETY: `ChildSpec::new::<R>` stores `spawn_erased::<R>` together with the address of a
    // `fn(Term) -> R`, and only that pair is ever passed here (see the module comment).
    let entry = unsafe { core::mem::transmute::<usize, fn(Term) -> R>(entry) };
    runtime::spawn_opt(entry, arg, opts)
}

/// How to start a child: a spawner, the entry function it expects, and the argument.
#[derive(Clone, Debug)]
struct Start {
    spawner: usize,
    entry: usize,
    arg: Term,
}

/// One child of a supervisor: its id (unique within the supervisor), how to start it, when
/// to restart it and how to stop it.
#[derive(Clone, Debug)]
pub struct ChildSpec {
    pub id: Atom,
    start: Start,
    pub restart: Restart,
    pub shutdown: Shutdown,
    kind: ChildType,
    opts: SpawnOpts,
    init_ack: bool,
}

impl ChildSpec {
    /// A worker running `entry(arg)`: permanent, 5000 ms to shut down, default spawn options.
    pub fn new<R: ExitReason>(id: Atom, entry: fn(Term) -> R, arg: Term) -> Self {
        Self {
            id,
            start: Start {
                spawner: spawn_erased::<R> as Spawner as usize,
                entry: entry as usize,
                arg,
            },
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(5000),
            kind: ChildType::Worker,
            opts: SpawnOpts::new(),
            init_ack: false,
        }
    }

    /// A child supervisor running `spec`: permanent, with `Shutdown::Infinity` (OTP's default
    /// for supervisors: a subtree takes the time it needs to stop).
    pub fn supervisor(id: Atom, spec: SupervisorSpec) -> Self {
        Self {
            kind: ChildType::Supervisor,
            shutdown: Shutdown::Infinity,
            ..Self::new(id, supervisor_main, encode_spec(&spec))
        }
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Spawn options for the child (core, priority, stack and heap limits); the link is
    /// always made.
    pub fn spawn_opts(mut self, opts: SpawnOpts) -> Self {
        self.opts = opts;
        self
    }

    /// The worker calls [`init_ack`] once it has initialised, and the supervisor waits for
    /// that before it starts the next child (OTP's `proc_lib:init_ack`): its start is then
    /// done when its initialisation is, and an exit before it is a failure to start (with the
    /// exit's reason). Without it a worker counts as started once spawned. A worker started
    /// without this must not call [`init_ack`] (it would wait for ever). A child supervisor
    /// always acknowledges its start (this changes nothing for it).
    pub fn init_ack(mut self, on: bool) -> Self {
        self.init_ack = on;
        self
    }

    pub fn child_type(&self) -> ChildType {
        self.kind
    }
}

/// A supervisor: its strategy, its restart intensity (at most `intensity` restarts in
/// `period_s` seconds) and its children, in start order.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    /// MaxR.
    pub intensity: u32,
    /// MaxT, in seconds (at least 1).
    pub period_s: u32,
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// No children yet, OTP's default intensity (1 restart in 5 seconds).
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            intensity: 1,
            period_s: 5,
            children: Vec::new(),
        }
    }

    /// At most `max_restarts` restarts in `period_s` seconds.
    pub fn intensity(mut self, max_restarts: u32, period_s: u32) -> Self {
        self.intensity = max_restarts;
        self.period_s = period_s;
        self
    }

    /// Add a child after the others.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }
}

impl Default for SupervisorSpec {
    fn default() -> Self {
        Self::new(Strategy::OneForOne)
    }
}

// ---------------------------------------------------------------------------------------
// Errors and results.

/// Why a supervisor did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// Its own spawn failed.
    Spawn(SpawnError),
    /// It exited while starting: `{shutdown, {failed_to_start_child, Id, Reason}}`, or a bad
    /// specification (`{start_spec, {duplicate_child_name, Id}}`,
    /// `{supervisor_data, {invalid_period, 0}}`).
    Failed(Term),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot spawn the supervisor: {e}"),
            Self::Failed(reason) => write!(f, "supervisor failed to start: {reason}"),
        }
    }
}

/// Why a call to a supervisor failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupervisorError {
    /// The supervisor is not alive, or exited during the call: its exit reason (`noproc`
    /// if it was gone already).
    Down(Term),
    /// No child has that id.
    NotFound,
    /// `restart_child` of a child that is running.
    Running,
    /// `restart_child` could not start it: why.
    StartFailed(Term),
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Down(reason) => write!(f, "supervisor down: {reason}"),
            Self::NotFound => f.write_str("no such child"),
            Self::Running => f.write_str("child is running"),
            Self::StartFailed(reason) => write!(f, "child failed to start: {reason}"),
        }
    }
}

/// What [`count_children`] answers (OTP's `specs`, `active`, `supervisors`, `workers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildCounts {
    /// Child specifications.
    pub specs: usize,
    /// Children running now.
    pub active: usize,
    /// Specifications of supervisors, and of workers (running or not).
    pub supervisors: usize,
    pub workers: usize,
}

/// Restarts made by every supervisor since boot.
static TOTAL_RESTARTS: AtomicU64 = AtomicU64::new(0);

/// Restarts made by every supervisor since boot, counted as the intensity counts them: once
/// per restart (a `one_for_all` restart of five children counts once), and once more for
/// each retry after a child failed to start again.
pub fn total_restarts() -> u64 {
    TOTAL_RESTARTS.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// Atoms of the protocol, interned once.

struct CachedAtom {
    name: &'static str,
    /// Index + 1; 0 until first use.
    index: AtomicU32,
}

impl CachedAtom {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            index: AtomicU32::new(0),
        }
    }

    fn get(&self) -> Atom {
        match self.index.load(Ordering::Relaxed) {
            0 => {
                let atom = Atom::new(self.name);
                self.index.store(atom.index() + 1, Ordering::Relaxed);
                atom
            }
            n => Atom::from_index(n - 1),
        }
    }
}

static SUP_CALL: CachedAtom = CachedAtom::new("$sup_call");
static SUP_REPLY: CachedAtom = CachedAtom::new("$sup_reply");
static SUP_ACK: CachedAtom = CachedAtom::new("$sup_ack");
static SUP_INIT: CachedAtom = CachedAtom::new("$sup_init");
static ONE_FOR_ONE: CachedAtom = CachedAtom::new("one_for_one");
static ONE_FOR_ALL: CachedAtom = CachedAtom::new("one_for_all");
static REST_FOR_ONE: CachedAtom = CachedAtom::new("rest_for_one");
static PERMANENT: CachedAtom = CachedAtom::new("permanent");
static TRANSIENT: CachedAtom = CachedAtom::new("transient");
static TEMPORARY: CachedAtom = CachedAtom::new("temporary");
static BRUTAL_KILL: CachedAtom = CachedAtom::new("brutal_kill");
static WORKER: CachedAtom = CachedAtom::new("worker");
static SUPERVISOR: CachedAtom = CachedAtom::new("supervisor");
static WHICH_CHILDREN: CachedAtom = CachedAtom::new("which_children");
static COUNT_CHILDREN: CachedAtom = CachedAtom::new("count_children");
static RESTART_COUNT: CachedAtom = CachedAtom::new("restart_count");
static TERMINATE_CHILD: CachedAtom = CachedAtom::new("terminate_child");
static RESTART_CHILD: CachedAtom = CachedAtom::new("restart_child");
static STOP: CachedAtom = CachedAtom::new("stop");
static NOT_FOUND: CachedAtom = CachedAtom::new("not_found");
static RUNNING: CachedAtom = CachedAtom::new("running");
static FAILED_TO_START_CHILD: CachedAtom = CachedAtom::new("failed_to_start_child");

fn atom_of(cached: &CachedAtom) -> Term {
    Term::atom(cached.get())
}

// ---------------------------------------------------------------------------------------
// The encoding (see the module comment).

fn encode_spec(spec: &SupervisorSpec) -> Term {
    let strategy = match spec.strategy {
        Strategy::OneForOne => atom_of(&ONE_FOR_ONE),
        Strategy::OneForAll => atom_of(&ONE_FOR_ALL),
        Strategy::RestForOne => atom_of(&REST_FOR_ONE),
    };
    Term::tuple([
        strategy,
        Term::int(spec.intensity.into()),
        Term::int(spec.period_s.into()),
        Term::list(spec.children.iter().map(encode_child)),
    ])
}

fn encode_child(child: &ChildSpec) -> Term {
    let kind = match child.kind {
        ChildType::Worker => atom_of(&WORKER),
        ChildType::Supervisor => atom_of(&SUPERVISOR),
    };
    let restart = match child.restart {
        Restart::Permanent => atom_of(&PERMANENT),
        Restart::Transient => atom_of(&TRANSIENT),
        Restart::Temporary => atom_of(&TEMPORARY),
    };
    let shutdown = match child.shutdown {
        Shutdown::BrutalKill => atom_of(&BRUTAL_KILL),
        Shutdown::Infinity => Term::atom(atom::INFINITY),
        Shutdown::Timeout(ms) => Term::int(ms.min(i64::MAX as u64) as i64),
    };
    Term::tuple([
        Term::atom(child.id),
        kind,
        Term::int(child.start.spawner as i64),
        Term::int(child.start.entry as i64),
        child.start.arg.clone(),
        restart,
        shutdown,
        encode_opts(&child.opts),
        Term::from(child.init_ack),
    ])
}

fn int_or_undefined(value: Option<usize>) -> Term {
    value.map_or(Term::atom(atom::UNDEFINED), |n| Term::int(n as i64))
}

fn encode_opts(opts: &SpawnOpts) -> Term {
    Term::tuple([
        Term::int(opts.priority as i64),
        int_or_undefined(opts.core),
        Term::int(opts.stack_limit as i64),
        Term::int(opts.min_heap_size as i64),
        int_or_undefined(opts.max_heap_size),
    ])
}

/// A child as the supervisor keeps it: its decoded specification and its pid, if running.
struct Child {
    id: Atom,
    kind: ChildType,
    spawner: Spawner,
    entry: usize,
    arg: Term,
    restart: Restart,
    shutdown: Shutdown,
    opts: SpawnOpts,
    init_ack: bool,
    pid: Option<Pid>,
}

/// A decoded `Spec`.
struct Decoded {
    strategy: Strategy,
    intensity: u32,
    period_s: u32,
    children: Vec<Child>,
}

fn tuple_of(t: TermRef<'_>, len: usize) -> Option<Seq<'_>> {
    t.as_tuple().filter(|s| s.len() == len)
}

fn decode_spec(t: TermRef<'_>) -> Option<Decoded> {
    let s = tuple_of(t, 4)?;
    let strategy = s.get(0)?.as_atom()?;
    let strategy = if strategy == ONE_FOR_ONE.get() {
        Strategy::OneForOne
    } else if strategy == ONE_FOR_ALL.get() {
        Strategy::OneForAll
    } else if strategy == REST_FOR_ONE.get() {
        Strategy::RestForOne
    } else {
        return None;
    };
    let intensity = u32::try_from(s.get(1)?.as_int()?).ok()?;
    let period_s = u32::try_from(s.get(2)?.as_int()?).ok()?;
    let children = s
        .get(3)?
        .as_list()?
        .iter()
        .map(decode_child)
        .collect::<Option<Vec<_>>>()?;
    Some(Decoded {
        strategy,
        intensity,
        period_s,
        children,
    })
}

fn decode_child(t: TermRef<'_>) -> Option<Child> {
    let s = tuple_of(t, 9)?;
    let id = s.get(0)?.as_atom()?;
    let kind = match s.get(1)?.as_atom()? {
        k if k == WORKER.get() => ChildType::Worker,
        k if k == SUPERVISOR.get() => ChildType::Supervisor,
        _ => return None,
    };
    let spawner = s.get(2)?.as_int()? as usize;
    // SAFETY: the integer is `spawn_erased::<R> as Spawner as usize`, written by
    // `encode_child` (no other code makes this encoding; see the module comment).
    let spawner = unsafe { core::mem::transmute::<usize, Spawner>(spawner) };
    let entry = s.get(3)?.as_int()? as usize;
    let arg = s.get(4)?.to_owned();
    let restart = match s.get(5)?.as_atom()? {
        r if r == PERMANENT.get() => Restart::Permanent,
        r if r == TRANSIENT.get() => Restart::Transient,
        r if r == TEMPORARY.get() => Restart::Temporary,
        _ => return None,
    };
    let shutdown = s.get(6)?;
    let shutdown = if shutdown.is_atom(BRUTAL_KILL.get()) {
        Shutdown::BrutalKill
    } else if shutdown.is_atom(atom::INFINITY) {
        Shutdown::Infinity
    } else {
        Shutdown::Timeout(u64::try_from(shutdown.as_int()?).ok()?)
    };
    let opts = decode_opts(s.get(7)?)?;
    let init_ack = s.get(8)?.is_atom(atom::TRUE);
    Some(Child {
        id,
        kind,
        spawner,
        entry,
        arg,
        restart,
        shutdown,
        opts,
        init_ack,
        pid: None,
    })
}

fn decode_opts(t: TermRef<'_>) -> Option<SpawnOpts> {
    let s = tuple_of(t, 5)?;
    let usize_or_undefined = |t: TermRef<'_>| -> Option<Option<usize>> {
        if t.is_atom(atom::UNDEFINED) {
            Some(None)
        } else {
            Some(Some(usize::try_from(t.as_int()?).ok()?))
        }
    };
    let priority = match s.get(0)?.as_int()? {
        0 => Priority::Low,
        1 => Priority::Normal,
        2 => Priority::High,
        3 => Priority::Max,
        _ => return None,
    };
    Some(SpawnOpts {
        priority,
        core: usize_or_undefined(s.get(1)?)?,
        stack_limit: usize::try_from(s.get(2)?.as_int()?).ok()?,
        min_heap_size: usize::try_from(s.get(3)?.as_int()?).ok()?,
        max_heap_size: usize_or_undefined(s.get(4)?)?,
        link: true,
    })
}

/// A spawn error as an exit reason.
fn spawn_error_term(e: SpawnError) -> Term {
    match e {
        SpawnError::OutOfMemory => Term::atom(atom::OUT_OF_MEMORY),
        SpawnError::TooManyProcesses => Term::atom(atom::SYSTEM_LIMIT),
        SpawnError::NoSuchCore(core) => Term::tuple([
            Term::atom(Atom::new("no_such_core")),
            Term::int(core as i64),
        ]),
        SpawnError::BadOption(what) => Term::tuple([
            Term::atom(Atom::new("bad_option")),
            Term::binary(what.as_bytes()),
        ]),
    }
}

// ---------------------------------------------------------------------------------------
// Small matchers.

/// `{'EXIT', Pid, Reason}` from `pid`.
fn is_exit_from(m: TermRef<'_>, pid: Pid) -> bool {
    tuple_of(m, 3).is_some_and(|t| {
        t.get(0).is_some_and(|x| x.is_atom(atom::EXIT))
            && t.get(1).and_then(|x| x.as_pid()) == Some(pid)
    })
}

/// `{'DOWN', Ref, process, Pid, Reason}` for `reference`.
fn is_down(m: TermRef<'_>, reference: Reference) -> bool {
    tuple_of(m, 5).is_some_and(|t| {
        t.get(0).is_some_and(|x| x.is_atom(atom::DOWN))
            && t.get(1).and_then(|x| x.as_reference()) == Some(reference)
    })
}

/// `{Tag, Ref, _}` for `reference`.
fn is_tagged_reply(m: TermRef<'_>, tag: Atom, reference: Reference) -> bool {
    tuple_of(m, 3).is_some_and(|t| {
        t.get(0).is_some_and(|x| x.is_atom(tag))
            && t.get(1).and_then(|x| x.as_reference()) == Some(reference)
    })
}

/// Element `i` of a tuple message, owned.
fn element(m: &Term, i: usize) -> Term {
    m.as_tuple()
        .and_then(|t| t.get(i))
        .map_or(Term::atom(atom::UNDEFINED), |x| x.to_owned())
}

/// How long a wait lets its receive sleep at most before it looks at its mailbox again.
///
/// `receive_match` with no timeout.
fn recv_forever(accept: impl FnMut(TermRef<'_>) -> bool) -> Term {
    receive_match(Timeout::Infinity, accept).expect("a wait without timeout returns a message")
}

/// Wait for the `'DOWN'` of `reference`; its reason, or `None` on timeout.
fn wait_down(reference: Reference, timeout: Timeout) -> Option<Term> {
    let down = receive_match(timeout, |m| is_down(m, reference))?;
    // (A delivered DOWN also ends the monitor in the kernel: nothing to demonitor.)
    Some(element(&down, 4))
}

/// Drop a `'DOWN'` of `reference` already delivered (after a `demonitor`).
fn flush_down(reference: Reference) {
    let _ = receive_match(Timeout::After(0), |m| is_down(m, reference));
}

/// `normal`, `shutdown` or `{shutdown, _}`: the exits a transient child is not restarted for.
fn is_normal_exit(reason: &Term) -> bool {
    reason.is_atom(atom::NORMAL)
        || reason.is_atom(atom::SHUTDOWN)
        || tuple_of(reason.as_ref(), 2)
            .is_some_and(|t| t.get(0).is_some_and(|x| x.is_atom(atom::SHUTDOWN)))
}

// ---------------------------------------------------------------------------------------
// Starting a supervisor.

/// Start a supervisor linked to the calling process; returns when its children are started.
pub fn start_link(spec: SupervisorSpec) -> Result<Pid, StartError> {
    start_supervisor(spec, true)
}

/// Start a supervisor that is not linked to the caller. From a process it returns when the
/// children are started; from the kernel context as soon as the supervisor is spawned.
pub fn start(spec: SupervisorSpec) -> Result<Pid, StartError> {
    start_supervisor(spec, false)
}

fn start_supervisor(spec: SupervisorSpec, link: bool) -> Result<Pid, StartError> {
    let caller = current_pid();
    let ack = Reference::new_unique();
    let parent = match (link, caller) {
        (true, Some(caller)) => Term::pid(caller),
        // The kernel context has no pid: its exit signals come from `KERNEL_PID`.
        (_, None) => Term::pid(KERNEL_PID),
        (false, Some(_)) => Term::atom(atom::UNDEFINED),
    };
    let ack_to = caller.map_or(Term::atom(atom::UNDEFINED), |caller| {
        Term::tuple([Term::pid(caller), Term::reference(ack)])
    });
    let arg = Term::tuple([parent, ack_to, encode_spec(&spec)]);
    drop(spec);
    let pid = runtime::spawn_opt(supervisor_main, arg, SpawnOpts::new().link(link))
        .map_err(StartError::Spawn)?;
    if caller.is_none() {
        return Ok(pid);
    }
    let mref = monitor(pid);
    let ack_tag = SUP_ACK.get();
    let m = recv_forever(|m| is_tagged_reply(m, ack_tag, ack) || is_down(m, mref));
    if is_down(m.as_ref(), mref) {
        return Err(StartError::Failed(element(&m, 4)));
    }
    let result = element(&m, 2);
    if result.is_atom(atom::OK) {
        demonitor(mref);
        flush_down(mref);
        Ok(pid)
    } else {
        // It exits right after: take its DOWN now. (A demonitor racing with an exit does not
        // stop the DOWN, which would then turn up in the caller's mailbox later.)
        let _ = wait_down(mref, Timeout::Infinity);
        Err(StartError::Failed(element(&result, 1)))
    }
}

// ---------------------------------------------------------------------------------------
// The supervisor process.

struct Supervisor {
    me: Pid,
    parent: Option<Pid>,
    strategy: Strategy,
    intensity: u32,
    period_ns: u64,
    children: Vec<Child>,
    /// When the restarts of the last `period_ns` happened.
    restarts: Vec<u64>,
    /// Restarts made since it started.
    restart_count: u64,
}

/// Why a spec is refused, as OTP words it.
fn check_spec(spec: &Decoded) -> Result<(), Term> {
    if spec.period_s == 0 {
        return Err(Term::tuple([
            Term::atom(Atom::new("supervisor_data")),
            Term::tuple([Term::atom(Atom::new("invalid_period")), Term::int(0)]),
        ]));
    }
    for (i, child) in spec.children.iter().enumerate() {
        if spec.children[..i].iter().any(|c| c.id == child.id) {
            return Err(Term::tuple([
                Term::atom(Atom::new("start_spec")),
                Term::tuple([
                    Term::atom(Atom::new("duplicate_child_name")),
                    Term::atom(child.id),
                ]),
            ]));
        }
    }
    Ok(())
}

/// The supervisor's entry: decode `{Parent, Ack, Spec}`, start the children, acknowledge,
/// then serve until told to stop or until the restart intensity is exceeded.
fn supervisor_main(arg: Term) -> Term {
    trap_exit(true);
    let me = self_pid();
    let Some(t) = tuple_of(arg.as_ref(), 3) else {
        return Term::atom(atom::BADARG);
    };
    let parent = t.get(0).and_then(|p| p.as_pid());
    let ack = t.get(1).and_then(|a| {
        let a = tuple_of(a, 2)?;
        Some((a.get(0)?.as_pid()?, a.get(1)?.as_reference()?))
    });
    let acknowledge = |result: Term| {
        if let Some((to, reference)) = ack {
            send(
                to,
                &Term::tuple([atom_of(&SUP_ACK), Term::reference(reference), result]),
            );
        }
    };
    let fail = |reason: Term| -> Term {
        // The caller learns why from the acknowledgement; the link would only kill it.
        if let Some(parent) = parent {
            unlink(parent);
        }
        acknowledge(Term::tuple([Term::atom(atom::ERROR), reason.clone()]));
        reason
    };
    let Some(spec) = t.get(2).and_then(decode_spec) else {
        return fail(Term::atom(atom::BADARG));
    };
    drop(arg);
    if let Err(reason) = check_spec(&spec) {
        return fail(reason);
    }
    let mut sup = Supervisor {
        me,
        parent,
        strategy: spec.strategy,
        intensity: spec.intensity,
        period_ns: spec.period_s as u64 * 1_000_000_000,
        children: spec.children,
        restarts: Vec::new(),
        restart_count: 0,
    };
    if let Err((id, reason)) = sup.start_range(0) {
        sup.terminate_all();
        return fail(Term::tuple([
            Term::atom(atom::SHUTDOWN),
            Term::tuple([atom_of(&FAILED_TO_START_CHILD), Term::atom(id), reason]),
        ]));
    }
    acknowledge(Term::atom(atom::OK));
    loop {
        let m = recv_forever(|_| true);
        if let Some(reason) = sup.handle(m) {
            return reason;
        }
    }
}

impl Supervisor {
    fn position(&self, id: Atom) -> Option<usize> {
        self.children.iter().position(|c| c.id == id)
    }

    /// Start child `i`; if it fails, why. A child supervisor is started when it acknowledges
    /// (its children are up), a worker with `init_ack` when it calls [`init_ack`].
    fn start_child(&mut self, i: usize) -> Result<Pid, Term> {
        let child = &self.children[i];
        let ack = Reference::new_unique();
        let arg = match child.kind {
            ChildType::Worker => child.arg.clone(),
            ChildType::Supervisor => Term::tuple([
                Term::pid(self.me),
                Term::tuple([Term::pid(self.me), Term::reference(ack)]),
                child.arg.clone(),
            ]),
        };
        let pid =
            (child.spawner)(child.entry, arg, child.opts.link(true)).map_err(spawn_error_term)?;
        if child.kind == ChildType::Worker && child.init_ack {
            send(
                pid,
                &Term::tuple([atom_of(&SUP_INIT), Term::pid(self.me), Term::reference(ack)]),
            );
        }
        if child.kind == ChildType::Supervisor || child.init_ack {
            let ack_tag = SUP_ACK.get();
            let m = recv_forever(|m| is_tagged_reply(m, ack_tag, ack) || is_exit_from(m, pid));
            if is_exit_from(m.as_ref(), pid) {
                return Err(element(&m, 2));
            }
            let result = element(&m, 2);
            if !result.is_atom(atom::OK) {
                // It unlinked from us and exits with that reason.
                return Err(element(&result, 1));
            }
        }
        self.children[i].pid = Some(pid);
        Ok(pid)
    }

    /// Start the children from `from` on that are not running, in order. On a failure, the
    /// id of the child that failed and why (the ones started stay up).
    fn start_range(&mut self, from: usize) -> Result<(), (Atom, Term)> {
        for i in from..self.children.len() {
            if self.children[i].pid.is_none() {
                self.start_child(i)
                    .map_err(|reason| (self.children[i].id, reason))?;
            }
        }
        Ok(())
    }

    /// Stop child `i` (if running) as its `Shutdown` says; returns when it is gone.
    fn terminate_child(&mut self, i: usize) {
        let Some(pid) = self.children[i].pid.take() else {
            return;
        };
        let mref = monitor(pid);
        unlink(pid);
        // Already exited: its EXIT is here (or was dropped by the unlink); the DOWN follows.
        if receive_match(Timeout::After(0), |m| is_exit_from(m, pid)).is_some() {
            let _ = wait_down(mref, Timeout::Infinity);
            return;
        }
        match self.children[i].shutdown {
            Shutdown::BrutalKill => exit_signal(pid, &Term::atom(atom::KILL)),
            Shutdown::Infinity => exit_signal(pid, &Term::atom(atom::SHUTDOWN)),
            Shutdown::Timeout(ms) => {
                exit_signal(pid, &Term::atom(atom::SHUTDOWN));
                if wait_down(mref, Timeout::After(ms)).is_some() {
                    return;
                }
                log::warn!(
                    "supervisor {}: child {} ({pid}) did not shut down within {ms} ms; killing it",
                    self.me,
                    self.children[i].id
                );
                exit_signal(pid, &Term::atom(atom::KILL));
            }
        }
        let _ = wait_down(mref, Timeout::Infinity);
    }

    /// Stop the running children from `from` on, last first; forget the temporary ones.
    fn terminate_from(&mut self, from: usize) {
        for i in (from..self.children.len()).rev() {
            self.terminate_child(i);
        }
        let mut i = from;
        while i < self.children.len() {
            if self.children[i].restart == Restart::Temporary && self.children[i].pid.is_none() {
                self.children.remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn terminate_all(&mut self) {
        self.terminate_from(0);
    }

    /// Record a restart now; false if that makes more than `intensity` in the period.
    fn add_restart(&mut self) -> bool {
        let now = crate::time::now_ns();
        let period = self.period_ns;
        self.restarts.retain(|&t| now - t < period);
        self.restarts.push(now);
        self.restarts.len() <= self.intensity as usize
    }

    /// One message of the main loop; `Some(reason)` to exit with.
    fn handle(&mut self, m: Term) -> Option<Term> {
        if let Some(t) = tuple_of(m.as_ref(), 3)
            && t.get(0).is_some_and(|x| x.is_atom(atom::EXIT))
            && let Some(from) = t.get(1).and_then(|x| x.as_pid())
        {
            let reason = element(&m, 2);
            if let Some(i) = self.children.iter().position(|c| c.pid == Some(from)) {
                return self.child_exited(i, reason);
            }
            if Some(from) == self.parent {
                self.terminate_all();
                return Some(reason);
            }
            // From a child already stopped, or from a stranger: nothing to do.
            return None;
        }
        if tuple_of(m.as_ref(), 5).is_some_and(|t| t.get(0).is_some_and(|x| x.is_atom(atom::DOWN)))
        {
            // A monitor of a child it stopped, whose DOWN came after all (see `wait_down`).
            return None;
        }
        if let Some(t) = tuple_of(m.as_ref(), 4)
            && t.get(0).is_some_and(|x| x.is_atom(SUP_CALL.get()))
            && let Some(from) = t.get(1).and_then(|x| x.as_pid())
            && let Some(reference) = t.get(2).and_then(|x| x.as_reference())
        {
            let request = element(&m, 3);
            let (reply, exit) = self.call(&request);
            send(
                from,
                &Term::tuple([atom_of(&SUP_REPLY), Term::reference(reference), reply]),
            );
            return exit;
        }
        log::warn!("supervisor {}: unexpected message {m}", self.me);
        None
    }

    /// Child `i` exited with `reason`: restart what its restart type and the strategy say.
    fn child_exited(&mut self, i: usize, reason: Term) -> Option<Term> {
        let pid = self.children[i].pid.take();
        let restart = match self.children[i].restart {
            Restart::Permanent => true,
            Restart::Transient => !is_normal_exit(&reason),
            Restart::Temporary => false,
        };
        if !restart {
            if self.children[i].restart == Restart::Temporary {
                self.children.remove(i);
            }
            return None;
        }
        let mut id = self.children[i].id;
        let mut what = match pid {
            Some(pid) => format!(" ({pid}) exited with {reason}"),
            None => format!(" exited with {reason}"),
        };
        loop {
            if !self.add_restart() {
                log::error!(
                    "supervisor {}: child {id}{what}; more than {} restarts in {} s: shutting down",
                    self.me,
                    self.intensity,
                    self.period_ns / 1_000_000_000
                );
                self.terminate_all();
                return Some(Term::atom(atom::SHUTDOWN));
            }
            log::warn!("supervisor {}: child {id}{what}; restarting", self.me);
            self.restart_count += 1;
            TOTAL_RESTARTS.fetch_add(1, Ordering::Relaxed);
            match self.restart(id) {
                Ok(()) => return None,
                Err((failed, reason)) => {
                    id = failed;
                    what = format!(" failed to start: {reason}");
                }
            }
        }
    }

    /// Restart the child `id` (not running) by the strategy.
    fn restart(&mut self, id: Atom) -> Result<(), (Atom, Term)> {
        let from = match self.strategy {
            Strategy::OneForOne => {
                let i = self.position(id).expect("the child to restart is known");
                return self
                    .start_child(i)
                    .map(|_| ())
                    .map_err(|reason| (id, reason));
            }
            Strategy::OneForAll => 0,
            Strategy::RestForOne => self.position(id).expect("the child to restart is known"),
        };
        self.terminate_from(from);
        self.start_range(from)
    }

    /// Answer a call; the reply, and an exit reason if the supervisor is to stop.
    fn call(&mut self, request: &Term) -> (Term, Option<Term>) {
        let ok = Term::atom(atom::OK);
        let error = |what: Term| Term::tuple([Term::atom(atom::ERROR), what]);
        if request.is_atom(WHICH_CHILDREN.get()) {
            let list = Term::list(self.children.iter().map(|c| {
                Term::tuple([
                    Term::atom(c.id),
                    c.pid.map_or(Term::atom(atom::UNDEFINED), Term::pid),
                    match c.kind {
                        ChildType::Worker => atom_of(&WORKER),
                        ChildType::Supervisor => atom_of(&SUPERVISOR),
                    },
                ])
            }));
            return (list, None);
        }
        if request.is_atom(COUNT_CHILDREN.get()) {
            let count = |f: &dyn Fn(&Child) -> bool| {
                Term::int(self.children.iter().filter(|c| f(c)).count() as i64)
            };
            let counts = Term::tuple([
                count(&|_| true),
                count(&|c| c.pid.is_some()),
                count(&|c| c.kind == ChildType::Supervisor),
                count(&|c| c.kind == ChildType::Worker),
            ]);
            return (counts, None);
        }
        if request.is_atom(RESTART_COUNT.get()) {
            return (Term::int(self.restart_count as i64), None);
        }
        if request.is_atom(STOP.get()) {
            self.terminate_all();
            return (ok, Some(Term::atom(atom::NORMAL)));
        }
        let Some(r) = tuple_of(request.as_ref(), 2) else {
            return (error(Term::atom(atom::BADARG)), None);
        };
        let (Some(what), Some(id)) = (r.get(0).and_then(|x| x.as_atom()), r.get(1)) else {
            return (error(Term::atom(atom::BADARG)), None);
        };
        let Some(i) = id.as_atom().and_then(|id| self.position(id)) else {
            return (error(atom_of(&NOT_FOUND)), None);
        };
        if what == TERMINATE_CHILD.get() {
            self.terminate_child(i);
            if self.children[i].restart == Restart::Temporary {
                self.children.remove(i);
            }
            (ok, None)
        } else if what == RESTART_CHILD.get() {
            if self.children[i].pid.is_some() {
                return (error(atom_of(&RUNNING)), None);
            }
            match self.start_child(i) {
                Ok(pid) => (Term::tuple([ok, Term::pid(pid)]), None),
                Err(reason) => (error(reason), None),
            }
        } else {
            (error(Term::atom(atom::BADARG)), None)
        }
    }
}

/// In a worker started with [`ChildSpec::init_ack`]: tell the supervisor that this worker
/// has initialised, so that it starts the next child (and [`start_link`] returns once all
/// have). Waits for the supervisor's `{'$sup_init', Sup, Ref}`, which may not have arrived
/// yet, and answers it. Until then the supervisor serves nothing else: calling it (say
/// [`which_children`]) before acknowledging deadlocks, as in OTP.
pub fn init_ack() {
    let tag = SUP_INIT.get();
    let m =
        recv_forever(|m| tuple_of(m, 3).is_some_and(|t| t.get(0).is_some_and(|x| x.is_atom(tag))));
    if let Some(sup) = element(&m, 1).as_pid() {
        send(
            sup,
            &Term::tuple([atom_of(&SUP_ACK), element(&m, 2), Term::atom(atom::OK)]),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Calls.

/// Send `{'$sup_call', Self, Ref, Request}` to `sup`, `mref` being a monitor of it.
fn send_call(sup: Pid, mref: Reference, request: Term) {
    send(
        sup,
        &Term::tuple([
            atom_of(&SUP_CALL),
            Term::pid(self_pid()),
            Term::reference(mref),
            request,
        ]),
    );
}

/// Send `request` to `sup` and wait for its reply. From a process only.
fn call(sup: Pid, request: Term) -> Result<Term, SupervisorError> {
    let _ = self_pid(); // a clear panic from the kernel context, before anything is sent
    let mref = monitor(sup);
    send_call(sup, mref, request);
    let reply_tag = SUP_REPLY.get();
    let m = recv_forever(|m| is_tagged_reply(m, reply_tag, mref) || is_down(m, mref));
    demonitor(mref);
    if is_down(m.as_ref(), mref) {
        return Err(SupervisorError::Down(element(&m, 4)));
    }
    flush_down(mref);
    Ok(element(&m, 2))
}

/// `{error, What}` as a [`SupervisorError`].
fn call_error(reply: &Term) -> SupervisorError {
    let what = element(reply, 1);
    if what.is_atom(NOT_FOUND.get()) {
        SupervisorError::NotFound
    } else if what.is_atom(RUNNING.get()) {
        SupervisorError::Running
    } else {
        SupervisorError::StartFailed(what)
    }
}

/// The children, in start order: id and pid (`None`: not running).
pub fn which_children(sup: Pid) -> Result<Vec<(Atom, Option<Pid>)>, SupervisorError> {
    let reply = call(sup, atom_of(&WHICH_CHILDREN))?;
    let list = reply.as_list().map_or(Vec::new(), |children| {
        children
            .iter()
            .filter_map(|c| {
                let c = c.as_tuple()?;
                Some((c.get(0)?.as_atom()?, c.get(1)?.as_pid()))
            })
            .collect()
    });
    Ok(list)
}

/// How many children it has, running, supervisors and workers.
pub fn count_children(sup: Pid) -> Result<ChildCounts, SupervisorError> {
    let reply = call(sup, atom_of(&COUNT_CHILDREN))?;
    let n = |i| element(&reply, i).as_int().unwrap_or(0) as usize;
    Ok(ChildCounts {
        specs: n(0),
        active: n(1),
        supervisors: n(2),
        workers: n(3),
    })
}

/// Restarts this supervisor has made (each restart decision once, as [`total_restarts`]).
pub fn restart_count(sup: Pid) -> Result<u64, SupervisorError> {
    let reply = call(sup, atom_of(&RESTART_COUNT))?;
    Ok(reply.as_int().unwrap_or(0) as u64)
}

/// Stop the child `id` (as its `Shutdown` says) and do not restart it; a temporary child's
/// specification is forgotten, any other stays for [`restart_child`].
pub fn terminate_child(sup: Pid, id: Atom) -> Result<(), SupervisorError> {
    let reply = call(
        sup,
        Term::tuple([atom_of(&TERMINATE_CHILD), Term::atom(id)]),
    )?;
    if reply.is_atom(atom::OK) {
        Ok(())
    } else {
        Err(call_error(&reply))
    }
}

/// Start again the child `id`, which must not be running; its new pid.
pub fn restart_child(sup: Pid, id: Atom) -> Result<Pid, SupervisorError> {
    let reply = call(sup, Term::tuple([atom_of(&RESTART_CHILD), Term::atom(id)]))?;
    match element(&reply, 1).as_pid() {
        Some(pid) if element(&reply, 0).is_atom(atom::OK) => Ok(pid),
        _ => Err(call_error(&reply)),
    }
}

/// Stop the supervisor: its children in reverse order, then itself (reason `normal`).
/// Returns when it is gone.
pub fn stop(sup: Pid) -> Result<(), SupervisorError> {
    let _ = self_pid();
    // Not `call`: the supervisor exits right after its reply, so wait for the DOWN rather
    // than demonitor (see `start_supervisor`). The reply, sent before it exited, is here
    // by the time the DOWN is.
    let mref = monitor(sup);
    send_call(sup, mref, atom_of(&STOP));
    let reason = wait_down(mref, Timeout::Infinity).expect("an infinite wait ends");
    let reply_tag = SUP_REPLY.get();
    match receive_match(Timeout::After(0), |m| is_tagged_reply(m, reply_tag, mref)) {
        Some(_) => Ok(()),
        None => Err(SupervisorError::Down(reason)),
    }
}
