//! The harness checking itself: the middle case panics; xtask expects its FAILED verdict,
//! `suite aborted`, and then `after` to pass on the automatic rerun with `skip=2`.
use kernel::test_cases;
use kernel::testing::Suite;

pub const SUITE: Suite = Suite {
    name: "selftest",
    cases: test_cases![before, panics, after],
};

fn before() {}

fn panics() {
    panic!("deliberate panic to check the harness");
}

fn after() {}
