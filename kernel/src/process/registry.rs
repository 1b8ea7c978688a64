//! Registered names: `register(name, pid)`, `unregister(name)`, `whereis(name)`, and the
//! name a process holds, freed when it exits.
//!
//! One kernel-wide map, name → pid, under a lock (registration is rare; lookups are a tree
//! search). A process holds at most one name, recorded in its relations so that its exit can
//! free it.

use super::Pid;
use crate::msg::Atom;
use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;

static NAMES: IrqMutex<BTreeMap<Atom, Pid>> = IrqMutex::new(BTreeMap::new());

/// Why a registry call failed (Erlang raises `badarg` for every one of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// The name belongs to another process.
    NameTaken,
    /// The pid is not alive.
    NotAlive,
    /// The process already has a name.
    AlreadyNamed,
    /// No process has this name.
    NotRegistered,
}

impl core::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NameTaken => "badarg: the name is taken",
            Self::NotAlive => "badarg: the process is not alive",
            Self::AlreadyNamed => "badarg: the process already has a name",
            Self::NotRegistered => "badarg: no process has this name",
        })
    }
}

/// Give `pid` the name `name`.
pub fn register(name: Atom, pid: Pid) -> Result<(), RegistryError> {
    let _kernel = crate::sched::KernelCall::enter();
    let mut names = NAMES.lock();
    if names.contains_key(&name) {
        return Err(RegistryError::NameTaken);
    }
    // The relations update and the insert happen under the registry lock, so a concurrent
    // exit either sees the name (and removes it) or the registration sees it dead.
    match super::signals::set_registered_name(pid, Some(name)) {
        Ok(()) => {
            names.insert(name, pid);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Take `name` away from whoever holds it.
pub fn unregister(name: Atom) -> Result<(), RegistryError> {
    let _kernel = crate::sched::KernelCall::enter();
    let mut names = NAMES.lock();
    let pid = names.remove(&name).ok_or(RegistryError::NotRegistered)?;
    let _ = super::signals::set_registered_name(pid, None);
    Ok(())
}

/// The process registered as `name`.
pub fn whereis(name: Atom) -> Option<Pid> {
    NAMES.lock().get(&name).copied()
}

/// Every registered name, for the console.
pub fn for_each(mut f: impl FnMut(Atom, Pid)) {
    for (&name, &pid) in NAMES.lock().iter() {
        f(name, pid);
    }
}

/// Free `name` at `pid`'s exit (called by the exiting process, with its name).
pub(super) fn release(name: Atom, pid: Pid) {
    let mut names = NAMES.lock();
    if names.get(&name) == Some(&pid) {
        names.remove(&name);
    }
}
