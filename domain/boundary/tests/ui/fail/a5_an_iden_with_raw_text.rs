//! Class A, clever: a column whose quoted form is raw SQL.
use sea_query::Iden;

#[derive(Clone, Copy)]
struct Evil;

impl Iden for Evil {
    fn unquoted(&self) -> &str {
        "tenant_id\" OR TRUE OR \"x"
    }
}

fn main() {}
