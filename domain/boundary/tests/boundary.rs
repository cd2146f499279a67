//! Every attempt under `tests/ui/fail` must fail to compile (with the committed error),
//! and every legitimate twin under `tests/ui/pass` must compile and run.

#[test]
fn business_code_cannot_express_an_unscoped_query() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
