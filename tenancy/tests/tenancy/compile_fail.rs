//! Each file under `tests/ui/` is one misuse; its `.stderr` is the compiler's refusal.

#[test]
fn every_misuse_of_the_scoped_api_is_a_compile_error() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
