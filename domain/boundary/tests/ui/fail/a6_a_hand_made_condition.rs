//! Class A, clever: a condition literal, re-using the parts of a legitimate one.
use entities::person;
use tenancy::Cond;

fn forged(raw: Cond<person::Column>) -> Cond<person::Column> {
    Cond {
        column: std::marker::PhantomData,
        ..raw
    }
}

fn main() {}
