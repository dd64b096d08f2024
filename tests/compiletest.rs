//! The compile-time shape checker as a user meets it: every mistake in `tests/ui/fail` must
//! fail with the message in its `.stderr`, every model in `tests/ui/pass` must compile and run.
//!
//! The `.stderr` files were written by rustc 1.95; regenerate them with
//! `TRYBUILD=overwrite cargo test --test compiletest` after a compiler upgrade that changes
//! rustc's framing of the messages (the messages themselves are the macro's own).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
