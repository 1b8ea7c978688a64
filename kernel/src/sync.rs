//! Locks for kernel data shared between cores and interrupt handlers.
//!
//! Two rules from DESIGN.md live here so that callers cannot forget them:
//! - a lock must never be held across an interrupt that might take it again on the same core:
//!   [`IrqMutex`] masks IRQs on this core for as long as its guard lives;
//! - spin-waits relax with `yield`, not `isb` (what `core::hint::spin_loop` emits), so that they
//!   hand the host thread to the other vCPUs when QEMU runs them all on one thread (`-icount`).

use core::ops::{Deref, DerefMut};

/// Relax strategy for `spin` locks: the `yield` hint on aarch64, a spin hint elsewhere (host tests).
pub struct YieldRelax;

impl spin::RelaxStrategy for YieldRelax {
    #[inline(always)]
    fn relax() {
        cpu_relax();
    }
}

/// One step of a spin-wait.
#[inline(always)]
pub fn cpu_relax() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `yield` is a hint with no architectural effect.
    unsafe {
        core::arch::asm!("yield", options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "aarch64"))]
    core::hint::spin_loop();
}

/// A spin lock that relaxes with `yield`. Use directly only for data never touched from an
/// interrupt handler; otherwise use [`IrqMutex`].
pub type SpinMutex<T> = spin::mutex::SpinMutex<T, YieldRelax>;
pub type SpinMutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T, YieldRelax>;

/// A spin lock whose guard also masks IRQs on the current core, so an interrupt handler that
/// takes the same lock cannot deadlock against the code it interrupted.
pub struct IrqMutex<T> {
    inner: SpinMutex<T>,
}

/// Holds the lock and the saved interrupt mask; both are released on drop (lock first).
pub struct IrqMutexGuard<'a, T> {
    guard: Option<SpinMutexGuard<'a, T>>,
    saved: irq::Saved,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> Self {
        Self {
            inner: SpinMutex::new(value),
        }
    }

    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let saved = irq::save_and_mask();
        IrqMutexGuard {
            guard: Some(self.inner.lock()),
            saved,
        }
    }

    /// Take the lock when IRQs are already masked on this core (a scheduler path that masked
    /// them for longer): skips saving and restoring the mask. Masking is the caller's duty;
    /// the guard does not unmask.
    #[inline(always)]
    pub fn lock_irqs_already_masked(&self) -> SpinMutexGuard<'_, T> {
        self.inner.lock()
    }

    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let saved = irq::save_and_mask();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqMutexGuard {
                guard: Some(guard),
                saved,
            }),
            None => {
                irq::restore(saved);
                None
            }
        }
    }

    /// Releases the lock whoever holds it.
    ///
    /// # Safety
    /// Only for a dying kernel that must print (the panic and fault paths): the holder must
    /// never touch the data again.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: forwarded to the caller.
        unsafe { self.inner.force_unlock() }
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard present until drop")
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard present until drop")
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        irq::restore(self.saved);
    }
}

/// Masking IRQs on the current core. A no-op on the host, where tests run in threads.
pub mod irq {
    /// The interrupt mask as it was before [`save_and_mask`].
    #[derive(Clone, Copy)]
    pub struct Saved(#[allow(dead_code)] u64);

    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub fn save_and_mask() -> Saved {
        let daif: u64;
        // SAFETY: reading DAIF and setting the I bit only masks IRQs on this core.
        unsafe {
            core::arch::asm!("mrs {0}, daif", "msr daifset, #2", out(reg) daif, options(nostack));
        }
        Saved(daif)
    }

    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub fn restore(saved: Saved) {
        // SAFETY: puts back the mask this core had before `save_and_mask`.
        unsafe {
            core::arch::asm!("msr daif, {0}", in(reg) saved.0, options(nostack));
        }
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub fn save_and_mask() -> Saved {
        Saved(0)
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub fn restore(_saved: Saved) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn irq_mutex_counts_exactly_across_threads() {
        let counter = Arc::new(IrqMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *counter.lock() += 1;
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*counter.lock(), 40_000);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = IrqMutex::new(1);
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
        assert_eq!(*m.try_lock().unwrap(), 1);
    }
}
