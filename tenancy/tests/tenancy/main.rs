//! The proof: behaviour on real databases, the SQL each builder generates, random
//! multi-tenant workloads, and the misuses that must not compile.

#[path = "../support/mod.rs"]
mod support;

mod behaviour;
mod compile_fail;
mod generated_sql;
mod guard;
mod property;
mod test_db;
