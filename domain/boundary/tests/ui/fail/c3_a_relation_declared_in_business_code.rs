//! Class C: a `Related` impl whose relation targets another table, written outside the
//! entity crate.
use entities::{account, api_key};

impl sea_orm::Related<api_key::Entity> for account::Entity {
    fn to() -> sea_orm::RelationDef {
        todo!()
    }
}

fn main() {}
