//! Class A, clever: build tenancy's own condition or value around something raw.
use entities::person;
use tenancy::{Cond, Value};

fn forged_condition(raw: Cond<person::Column>) -> Cond<person::Column> {
    Cond {
        expr: raw.expr,
        column: std::marker::PhantomData,
    }
}

fn forged_value(raw: Value) -> Value {
    Value(raw.0)
}

fn main() {}
