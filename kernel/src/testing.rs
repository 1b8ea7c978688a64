//! The on-target test harness: suites of named cases run inside the kernel under QEMU.
//!
//! Output protocol (read by `cargo xtask test`):
//! - one verdict line per case: `test <suite>::<case> ... ok` or `... FAILED: <message>`;
//! - then `test result: ok. N passed; M failed` (or `FAILED.`), and a semihosting exit with
//!   0 if all passed, 1 otherwise.
//!
//! A case fails by panicking (`assert!` and friends). There is no unwinding, so a panic or a
//! kernel fault ends the suite: the harness prints the case's FAILED line, the result and
//! `suite aborted`, and exits 1; xtask then boots the suite again with `skip=<n>` to run the
//! cases after it. Every case therefore gets a verdict and a hang is impossible (xtask also
//! enforces a timeout on every run).

use crate::sync::IrqMutex;
use core::fmt;

/// One named test function.
pub struct TestCase {
    pub name: &'static str,
    pub run: fn(),
}

/// A named, ordered list of cases.
pub struct Suite {
    pub name: &'static str,
    pub cases: &'static [TestCase],
}

/// `test_cases![a, b, c]`: a `&'static [TestCase]` named after the functions.
#[macro_export]
macro_rules! test_cases {
    ($($case:ident),* $(,)?) => {
        &[$($crate::testing::TestCase { name: stringify!($case), run: $case }),*]
    };
}

/// The case running now, for the panic and fault paths.
struct Running {
    suite: &'static str,
    case: &'static str,
    passed: usize,
}

static RUNNING: IrqMutex<Option<Running>> = IrqMutex::new(None);

/// Run `suite`'s cases after the first `skip`, print the verdicts and exit QEMU.
pub fn run_suite(suite: &Suite, skip: usize) -> ! {
    let mut passed = 0;
    for case in suite.cases.iter().skip(skip) {
        *RUNNING.lock() = Some(Running {
            suite: suite.name,
            case: case.name,
            passed,
        });
        (case.run)();
        *RUNNING.lock() = None;
        crate::println!("test {}::{} ... ok", suite.name, case.name);
        passed += 1;
    }
    crate::println!("test result: ok. {passed} passed; 0 failed");
    crate::boot::exit(0)
}

/// Called by the panic handler and the fatal-exception path: report the running case, if
/// any, as failed and end the suite's output. Returns so the caller can stop the machine.
pub fn on_abort(what: fmt::Arguments) {
    // Take the record without waiting: the lock's holder may be the one dying.
    let running = RUNNING.try_lock().and_then(|mut r| r.take());
    if let Some(r) = running {
        crate::console::emergency(|out| {
            let _ = writeln!(out, "test {}::{} ... FAILED: {what}", r.suite, r.case);
            let _ = writeln!(out, "test result: FAILED. {} passed; 1 failed", r.passed);
            let _ = writeln!(out, "suite aborted");
        });
    }
}
